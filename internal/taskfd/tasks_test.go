package taskfd

import "testing"

func TestTaskStateLetter(t *testing.T) {
	for _, c := range []struct {
		state, exit uint32
		want        byte
	}{
		{0, 0, 'R'},
		{0x1, 0, 'S'},
		{0x2001, 0, 'S'}, // TASK_FREEZABLE is not shown
		{0x2, 0, 'D'},
		{0x402, 0, 'I'}, // TASK_IDLE
		{0x4, 0, 'T'},
		{0x8, 0, 't'},
		{0x40, 0, 'P'},
		{0x1000, 0, 'D'}, // TASK_RTLOCK_WAIT
		{0, 0x20, 'Z'},
		{0, 0x10, 'X'},
		{0x1, 0x20, 'Z'},
	} {
		k := Task{State: c.state, ExitState: c.exit}
		if got := k.StateLetter(); got != c.want {
			t.Errorf("state %#x exit %#x: %c, want %c", c.state, c.exit, got, c.want)
		}
	}
}

func TestTaskCmdlineComplete(t *testing.T) {
	for _, c := range []struct {
		cmd  string
		args uint64
		want bool
	}{
		{"", 0, true},              // a kernel thread, or no arguments
		{"sh\x00-c\x00", 6, true},  // the whole area, ending in NUL
		{"sh\x00-c", 5, false},     // rewritten arguments: /proc reads on
		{"sh\x00", 9000, false},    // longer than what was copied
		{"", 12, false},            // the copy failed
		{"sh\x00-c\x00", 4, false}, // a record that contradicts itself
	} {
		k := Task{Cmdline: []byte(c.cmd), Args: c.args}
		if got := k.CmdlineComplete(); got != c.want {
			t.Errorf("%q of %d: %v, want %v", c.cmd, c.args, got, c.want)
		}
	}
	if got := (&Task{StartBoottime: 29_527_390_000_000}).StartTicks(); got != 2_952_739 {
		t.Errorf("StartTicks %d", got)
	}
}

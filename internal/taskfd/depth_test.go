package taskfd

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"strings"
	"testing"
)

// TestDepthProgramRun runs the depth program on fake kernel objects: it
// writes the depth of the reading task's pid (current's, not the visited
// task's, whose thread_pid leads nowhere here), and nothing when there is
// no task or the reader has no pid.
func TestDepthProgramRun(t *testing.T) {
	littleEndianHost(t)
	l := testLayout
	l.Task = TaskLayout{Has: true, AttachID: 4243, CtxMeta: 0, CtxTask: 8}
	code, err := DepthProgram(l)
	if err != nil {
		t.Fatal(err)
	}
	insns := decode(t, code)
	u32 := func(v uint32) []byte { return binary.NativeEndian.AppendUint32(nil, v) }
	for _, tc := range []struct {
		name string
		w    world
		want []byte
	}{
		{"initial namespace", world{readerLevel: 0}, u32(0)},
		{"depth 1", world{readerLevel: 1}, u32(1)},
		{"depth 7", world{readerLevel: 7}, u32(7)},
		{"the final call, without a task", world{readerLevel: 3, noTask: true}, nil},
		{"a reader without a pid", world{readerLevel: 3, noReaderPid: true}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := runProgram(t, insns, build(l, tc.w), ctxA, currentA)
			if !bytes.Equal(got, tc.want) {
				t.Fatalf("wrote % x, want % x", got, tc.want)
			}
			if tc.want != nil {
				if d, err := ParseDepth(got); err != nil || d != int(tc.w.readerLevel) {
					t.Errorf("ParseDepth: %d, %v; want %d", d, err, tc.w.readerLevel)
				}
			}
		})
	}
	if _, err := DepthProgram(testLayout); err == nil {
		t.Error("DepthProgram built without the task iterator's types")
	}
}

// TestExactProgramRun runs the program built for one depth: it writes the
// pid of that depth wherever the reader is (it does not look), and
// otherwise what the program for any depth writes.
func TestExactProgramRun(t *testing.T) {
	littleEndianHost(t)
	l := testLayout
	const sock = sIFSOCK | 0o777
	for _, depth := range []int{0, 1, 3, MaxLevel} {
		code, err := ExactProgram(l, depth, 0)
		if err != nil {
			t.Fatal(err)
		}
		insns := decode(t, code)
		pid := uint32(1000 + depth)
		for _, tc := range []struct {
			name string
			w    world
			want []byte
		}{
			{"socket", world{readerLevel: uint32(depth), mode: sock}, recNS(pid, testFD, testInode, testNetNS)},
			{"socket, the reader's depth not read", world{readerLevel: 99, noReaderPid: true, mode: sock}, recNS(pid, testFD, testInode, testNetNS)},
			{"regular file", world{mode: 0o100644}, rec(pid, testFD, 0)},
			{"socket without sk", world{mode: sock, noSk: true}, rec(pid, testFD, testInode)},
			{"final call without a task", world{mode: sock, noTask: true}, nil},
			{"task without a pid", world{mode: sock, noPid: true}, nil},
		} {
			t.Run(fmt.Sprintf("depth %d: %s", depth, tc.name), func(t *testing.T) {
				got := runProgram(t, insns, build(l, tc.w), ctxA, currentA)
				if !bytes.Equal(got, tc.want) {
					t.Errorf("wrote % x, want % x", got, tc.want)
				}
			})
		}
	}
	edge := testLayout
	edge.PidNumbers, edge.UpidSize, edge.UpidNr = 1<<15-1-4-2*256, 256, 4
	if _, err := ExactProgram(edge, 2, 0); err != nil {
		t.Errorf("depth 2 at offset 32767: %v", err)
	}
	for _, depth := range []int{3, -1, MaxLevel + 1} {
		if _, err := ExactProgram(edge, depth, 0); err == nil {
			t.Errorf("ExactProgram accepted depth %d", depth)
		}
	}
}

func TestParseDepth(t *testing.T) {
	u32s := func(v ...uint32) []byte {
		var b []byte
		for _, x := range v {
			b = binary.NativeEndian.AppendUint32(b, x)
		}
		return b
	}
	for _, tc := range []struct {
		in   []byte
		want int
		err  string
	}{
		{u32s(0), 0, ""},
		{u32s(2), 2, ""},
		{u32s(2, 2, 2), 2, ""},
		{u32s(MaxLevel), MaxLevel, ""},
		{nil, 0, "wrote 0 bytes"},
		{[]byte{1, 0, 0}, 0, "wrote 3 bytes"},
		{u32s(1, 2), 0, "two depths"},
		{u32s(MaxLevel + 1), 0, "beyond"},
		{u32s(1 << 31), 0, "beyond"},
	} {
		d, err := ParseDepth(tc.in)
		switch {
		case tc.err == "" && (err != nil || d != tc.want):
			t.Errorf("ParseDepth(% x) = %d, %v; want %d", tc.in, d, err, tc.want)
		case tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)):
			t.Errorf("ParseDepth(% x) = %d, %v; want an error with %q", tc.in, d, err, tc.err)
		}
	}
}

func FuzzParseDepth(f *testing.F) {
	f.Add([]byte{0, 0, 0, 0})
	f.Add([]byte{1, 0, 0, 0, 1, 0, 0, 0})
	f.Add([]byte{33, 0, 0, 0})
	f.Fuzz(func(t *testing.T, b []byte) {
		d, err := ParseDepth(b)
		if err != nil {
			return
		}
		if d < 0 || d > MaxLevel || len(b)%DepthSize != 0 || len(b) == 0 {
			t.Fatalf("ParseDepth(% x) = %d", b, d)
		}
	})
}

// TestProgramStates runs the program built for the states of listeners
// (TCP LISTEN, and CLOSE, an unconnected UDP socket's): it leaves out an
// IPv4 or IPv6 socket in any other state, and a socket of any family
// that is connected or connecting, and reports every other socket and
// file as the program for every state does.
func TestProgramStates(t *testing.T) {
	littleEndianHost(t)
	l := testLayout
	const (
		sock         = sIFSOCK | 0o777
		listening    = 1<<10 | 1<<7
		afUnix       = 1
		ssConnecting = 2
		ssConnected  = 3
	)
	type run struct {
		name string
		w    world
		want []byte
	}
	// check runs the program built for states on each case.
	check := func(states uint32, prefix string, cases []run) {
		t.Helper()
		code, err := ExactProgram(l, 0, states)
		if err != nil {
			t.Fatal(err)
		}
		insns := decode(t, code)
		for _, tc := range cases {
			t.Run(prefix+tc.name, func(t *testing.T) {
				got := runProgram(t, insns, build(l, tc.w), ctxA, currentA)
				if !bytes.Equal(got, tc.want) {
					t.Errorf("wrote % x, want % x", got, tc.want)
				}
			})
		}
	}
	full := recNS(1000, testFD, testInode, testNetNS)
	check(listening, "", []run{
		{"tcp listener", world{mode: sock, family: afInet, state: 10, sockState: ssUnconnected}, full},
		{"udp unconnected, IPv6", world{mode: sock, family: afInet6, state: 7, sockState: ssUnconnected}, full},
		{"udp connected", world{mode: sock, family: afInet, state: 1, sockState: ssUnconnected}, nil},
		{"tcp established", world{mode: sock, family: afInet, state: 1, sockState: ssConnected}, nil},
		{"tcp established, by its sock alone", world{mode: sock, family: afInet, state: 1}, nil},
		{"tcp connecting, IPv6", world{mode: sock, family: afInet6, state: 2, sockState: ssConnecting}, nil},
		{"tcp time-wait, IPv6", world{mode: sock, family: afInet6, state: 6}, nil},
		{"unix socket, listening", world{mode: sock, family: afUnix, state: 10, sockState: ssUnconnected}, full},
		{"unix socket, connected", world{mode: sock, family: afUnix, state: 1, sockState: ssConnected}, nil},
		{"socket without sk", world{mode: sock, noSk: true, family: afInet, state: 1}, rec(1000, testFD, testInode)},
		{"regular file", world{mode: 0o100644}, rec(1000, testFD, 0)},
	})
	// States beyond a listener's: a connected socket is judged by its
	// sock's state alone.
	check(listening|1<<1, "listening or established: ", []run{
		{"tcp established", world{mode: sock, family: afInet, state: 1, sockState: ssConnected}, full},
		{"tcp connecting", world{mode: sock, family: afInet, state: 2, sockState: ssConnecting}, nil},
		{"unix socket, connected", world{mode: sock, family: afUnix, state: 1, sockState: ssConnected}, full},
	})

	// Every state, or a layout that cannot read one: no filter at all.
	all, err := ExactProgram(l, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	if every, _ := ExactProgram(l, 0, allStates); !bytes.Equal(every, all) {
		t.Errorf("the program for every state differs from the one for none")
	}
	noNS := l
	noNS.HasNetNS = false
	if SocketStates(noNS, listening) != 0 {
		t.Errorf("a layout without the sock's fields filters states")
	}
	a, _ := ExactProgram(noNS, 0, 0)
	if b, _ := ExactProgram(noNS, 0, listening); !bytes.Equal(a, b) {
		t.Errorf("a layout without the sock's fields builds a filter")
	}
	if got := SocketStates(l, listening|1<<31); got != listening {
		t.Errorf("SocketStates kept %#x, want %#x", got, listening)
	}
}

package inventory

import (
	"os/exec"
	"testing"
	"time"

	"github.com/porteiro/porteiro/internal/procfs"
)

// The pidfd check on real processes: a running child is alive, the same
// pid with another start time is not (a reused pid), and the child is
// dead once it has exited, though its pid still shows in /proc (a zombie
// until it is reaped).
func TestAliveSet(t *testing.T) {
	child := exec.Command("sleep", "60")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	pid := child.Process.Pid
	defer func() { child.Process.Kill(); child.Wait() }()
	start, ok := procfs.StartTicks("/proc", pid)
	if !ok {
		t.Fatal("no start time for the child")
	}
	var a aliveSet
	defer a.close()
	me := Identity{PID: pid, StartTicks: start}
	other := Identity{PID: pid, StartTicks: start + 1}
	ids := map[Identity]bool{me: true, other: true}
	a.check("/proc", ids)
	if !ids[me] || ids[other] {
		t.Fatalf("first check: %v, want the child alive and the other start time not", ids)
	}
	if len(a.poll) != 1 {
		t.Fatalf("%d pidfds polled, want 1", len(a.poll))
	}
	ids = map[Identity]bool{me: true}
	a.check("/proc", ids)
	if !ids[me] {
		t.Fatal("the running child reported dead")
	}
	child.Process.Kill()
	// Not reaped yet: the zombie's /proc/PID/stat still reads, the
	// pidfd says it exited.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if st, err := procfs.ReadProcessBuf("/proc", pid, new([]byte)); err == nil && st.Stat.State == "Z" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the killed child never became a zombie")
		}
	}
	ids = map[Identity]bool{me: true}
	a.check("/proc", ids)
	if ids[me] {
		t.Error("the exited child reported alive")
	}
	if len(a.fds) != 0 {
		t.Errorf("%d pidfds kept after the owner exited", len(a.fds))
	}
}

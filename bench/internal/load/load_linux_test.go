package load

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// TestStartStop builds a tiny load, checks that the holders really hold the
// sockets, and that Stop leaves no holder behind.
func TestStartStop(t *testing.T) {
	p, err := NewPlan(Config{Procs: 6, Sockets: 60, FDs: 24})
	if err != nil {
		t.Fatal(err)
	}
	l, err := Start(context.Background(), p, Options{})
	if err != nil {
		t.Skipf("cannot build a load here: %v", err)
	}
	defer l.Stop()
	if len(l.Summary.PIDs) != 6 || !l.Summary.WhoAddr.IsValid() {
		t.Fatalf("summary %s", l.Summary.String())
	}
	sockets := 0
	for _, pid := range l.Summary.PIDs {
		ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if dst, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, e.Name())); err == nil && strings.HasPrefix(dst, "socket:") {
				sockets++
			}
		}
	}
	// Unix socketpairs count too, and shared sockets count once per holder.
	if sockets < 50 {
		t.Errorf("holders hold %d sockets, want at least 50", sockets)
	}
	pids := l.Summary.PIDs
	l.Stop()
	deadline := time.Now().Add(5 * time.Second)
	for _, pid := range pids {
		for {
			if _, err := os.Stat(fmt.Sprintf("/proc/%d", pid)); os.IsNotExist(err) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("holder %d still runs after Stop", pid)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
}

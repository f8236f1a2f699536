package taskstats

import (
	"errors"
	"os"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestLookupSelf asks the live kernel about this process and a pid that
// does not exist.
func TestLookupSelf(t *testing.T) {
	task, err := Lookup(os.Getpid())
	if errors.Is(err, ErrNoFamily) {
		t.Skip("this kernel has no taskstats (CONFIG_TASKSTATS)")
	}
	if errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES) {
		t.Skipf("taskstats refused here (it needs root or CAP_NET_ADMIN): %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	comm, _ := os.ReadFile("/proc/self/comm")
	if task.PID != os.Getpid() || task.Comm != strings.TrimSpace(string(comm)) || task.UID != uint32(os.Getuid()) {
		t.Errorf("Lookup(self) = %+v; /proc says comm %q, uid %d", task, strings.TrimSpace(string(comm)), os.Getuid())
	}
	if _, err := Lookup(1 << 22); !errors.Is(err, unix.ESRCH) {
		t.Errorf("Lookup of a pid that does not exist: %v, want ESRCH", err)
	}
}

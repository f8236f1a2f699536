package inventory

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/porteiro/porteiro/internal/netns"
	"github.com/porteiro/porteiro/internal/testenv"
)

// TestDiscoveryFromTasks: namespace discovery that takes single-threaded
// processes' namespaces from the task pass finds what discovery from /proc
// alone finds, for a process alone in a namespace of its own and for this
// process's, and the task pass answered for most processes.
func TestDiscoveryFromTasks(t *testing.T) {
	requireIterator(t)
	unshare := testenv.RequireCommand(t, "unshare")
	child := exec.Command(unshare, "--net", "sleep", "60")
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { child.Process.Kill(); child.Wait() })
	pid := child.Process.Pid
	var self, own unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &self); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		// unshare enters the namespace, then execs sleep.
		if err := unix.Stat(fmt.Sprintf("/proc/%d/ns/net", pid), &own); err == nil && own.Ino != self.Ino &&
			commOf(pid) == "sleep\n" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pid %d did not enter a namespace of its own", pid)
		}
		time.Sleep(10 * time.Millisecond)
	}

	r := NewIterResolver("/proc")
	defer r.Close()
	r.wantTasks(true)
	r.startTasks(context.Background())
	known := r.processNS()
	if known == nil {
		t.Fatal("no task pass")
	}
	if ino, ok := known(pid); !ok || ino != own.Ino {
		t.Fatalf("task pass: pid %d in namespace %d (%v), /proc says %d", pid, ino, ok, own.Ino)
	}
	var answered, asked atomic.Int64
	counted := func(p int) (uint64, bool) {
		asked.Add(1)
		ino, ok := known(p)
		if ok {
			answered.Add(1)
		}
		return ino, ok
	}
	viaProc, err := netns.Discover(context.Background(), "/proc")
	if err != nil {
		t.Fatal(err)
	}
	viaTasks, err := netns.DiscoverKnown(context.Background(), "/proc", counted)
	if err != nil {
		t.Fatal(err)
	}
	for _, ino := range []uint64{own.Ino, self.Ino} {
		a, b := viaProc.ByInode[ino], viaTasks.ByInode[ino]
		if a == nil || b == nil {
			t.Fatalf("namespace %d: from /proc %v, with the task pass %v", ino, a, b)
		}
		if a.First != b.First || a.Self != b.Self || a.Host != b.Host {
			t.Errorf("namespace %d: from /proc first %d self %v host %v; with the task pass first %d self %v host %v",
				ino, a.First, a.Self, a.Host, b.First, b.Self, b.Host)
		}
	}
	if n := viaTasks.ByInode[own.Ino]; n.Members != 1 || n.First != pid {
		t.Errorf("the child's namespace: %d members, first %d; want 1, %d", n.Members, n.First, pid)
	}
	if asked.Load() == 0 || answered.Load() < asked.Load()/2 {
		t.Errorf("the task pass answered for %d of %d processes", answered.Load(), asked.Load())
	}
	t.Logf("the task pass answered for %d of %d processes", answered.Load(), asked.Load())
}

func commOf(pid int) string {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	return string(b)
}

// TestOnceByKey: a known key is read once; the zero key (not known) and a
// failed read are read again each time.
func TestOnceByKey(t *testing.T) {
	var mu sync.Mutex
	var m map[uint64]string
	reads := 0
	read := func(v string, err error) func() (string, error) {
		return func() (string, error) { reads++; return v, err }
	}
	for range 3 {
		if got := onceByKey(&mu, &m, 7, read("seven", nil)); got != "seven" {
			t.Fatalf("key 7: %q", got)
		}
	}
	if reads != 1 {
		t.Fatalf("key 7 read %d times, want once", reads)
	}
	for range 2 {
		onceByKey(&mu, &m, 0, read("zero", nil))
		onceByKey(&mu, &m, 9, read("", errors.New("gone")))
	}
	if reads != 5 || len(m) != 1 {
		t.Fatalf("%d reads and %d kept, want 5 and 1 (the zero key and a failed read are not kept)", reads, len(m))
	}
}

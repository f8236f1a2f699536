package inventory

import (
	"context"
	"net"
	"os"
	"reflect"
	"slices"
	"sort"
	"testing"
	"time"
)

// TestIterResolverWalksWhatItMissed hides a child's records from the
// iterator (fault injection: it stands for a process the iterator cannot
// see) and checks that the /proc walk of the processes it did not report
// still finds the child, next to this process found by the iterator.
func TestIterResolverWalksWhatItMissed(t *testing.T) {
	requireIterator(t)
	l := listenTCP(t, "tcp4", "127.0.0.1:0")
	child := holdInChild(t, l)
	ino := inodeOf(t, l)
	want := []int{os.Getpid(), child.Process.Pid}
	sort.Ints(want)
	var s Socket
	for i := 0; i < 50; i++ {
		r := NewIterResolver("/proc")
		r.hide = func(pid int) bool { return pid == child.Process.Pid }
		snap, err := NewScanner(Options{Resolver: r}).Scan(context.Background(), Query{})
		r.Close()
		if err != nil {
			t.Fatal(err)
		}
		if snap.Resolver != "taskfd" {
			t.Fatalf("owners found by %q, want taskfd", snap.Resolver)
		}
		s = byInode(snap)[ino]
		if reflect.DeepEqual(s.PIDs(), want) {
			break
		}
		time.Sleep(20 * time.Millisecond) // the child may not be in /proc yet
	}
	if !reflect.DeepEqual(s.PIDs(), want) {
		t.Fatalf("pids = %v, want %v: the walk did not find the hidden child", s.PIDs(), want)
	}
	for _, p := range s.Processes {
		if p.PID == child.Process.Pid && (p.Name != "sleep" || !reflect.DeepEqual(p.FDs, []int{3})) {
			t.Errorf("child = %+v, want sleep holding fd 3", p)
		}
	}
}

// TestIterResolverReuse runs one resolver for several scans, as the daemon
// does, with and without a prefetch that nobody collects.
func TestIterResolverReuse(t *testing.T) {
	requireIterator(t)
	l := listenTCP(t, "tcp4", "127.0.0.1:0")
	ino := inodeOf(t, l)
	r := NewIterResolver("/proc")
	defer r.Close()
	ctx, cancel := context.WithCancel(context.Background())
	r.Prefetch(ctx) // abandoned: the next Resolve must not mix it in
	cancel()
	for i := 0; i < 3; i++ {
		own, err := r.Resolve(context.Background(), map[uint64]struct{}{ino: {}})
		if err != nil {
			t.Fatal(err)
		}
		hs := own.HoldersOf(ino)
		if own.Via != "taskfd" || len(hs) != 1 || hs[0].PID != os.Getpid() || own.Processes[os.Getpid()] == nil {
			t.Fatalf("scan %d: via %s, holders %v, want this process by taskfd", i, own.Via, hs)
		}
	}
	// A cancelled Resolve says so and leaves the resolver usable.
	cctx, ccancel := context.WithCancel(context.Background())
	ccancel()
	if _, err := r.Resolve(cctx, map[uint64]struct{}{ino: {}}); err == nil {
		t.Error("a cancelled Resolve returned no error")
	}
	if own, err := r.Resolve(context.Background(), map[uint64]struct{}{ino: {}}); err != nil || len(own.HoldersOf(ino)) != 1 {
		t.Fatalf("after a cancelled Resolve: %v, %v", own, err)
	}
	if r.Err() != nil {
		t.Fatalf("the iterator was dropped: %v", r.Err())
	}
}

// TestIterResolverStates runs one resolver for a scan of listeners, whose
// iterator leaves connected sockets out in the kernel, then for a scan of
// every state: the second must load an iterator that keeps them, and find
// the owner of a connection.
func TestIterResolverStates(t *testing.T) {
	requireIterator(t)
	l := listenTCP(t, "tcp4", "127.0.0.1:0")
	c, err := net.Dial("tcp4", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	lino, cino := inodeOf(t, l), inodeOf(t, c.(*net.TCPConn))
	r := NewIterResolver("/proc")
	defer r.Close()
	sc := NewScanner(Options{Resolver: r})
	snap, err := sc.Scan(context.Background(), Query{})
	if err != nil {
		t.Fatal(err)
	}
	if s := byInode(snap)[lino]; !slices.Contains(s.PIDs(), os.Getpid()) || snap.Resolver != "taskfd" {
		t.Fatalf("listener held by %v (owners by %q), want this process by taskfd", s.PIDs(), snap.Resolver)
	}
	if r.it != nil && r.it.States() != uint32(MaskTCPListen|MaskUDPListen) {
		t.Errorf("the scan of listeners loaded an iterator for states %#x", r.it.States())
	}
	snap, err = sc.Scan(context.Background(), Query{States: MaskAll})
	if err != nil {
		t.Fatal(err)
	}
	if s := byInode(snap)[cino]; !slices.Contains(s.PIDs(), os.Getpid()) || snap.Resolver != "taskfd" {
		t.Fatalf("connection held by %v (owners by %q, reason %q), want this process by taskfd", s.PIDs(), snap.Resolver, s.UnattributedReason)
	}
	if r.it == nil || r.it.States() != 0 {
		t.Errorf("the scan of every state kept an iterator for states %#x", r.it.States())
	}
}

package netns

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/porteiro/porteiro/internal/sockdiag"
	"github.com/porteiro/porteiro/internal/testenv"
)

// TestDialEntersNamespace opens a sock_diag socket inside a namespace made
// with `ip netns add`, and checks that it sees that namespace's listener
// and not the host's, from another goroutine after the dial.
func TestDialEntersNamespace(t *testing.T) {
	testenv.RequireRoot(t)
	ip := testenv.RequireCommand(t, "ip")
	name := "porteiro-netns-" + strconv.Itoa(os.Getpid())
	if out, err := exec.Command(ip, "netns", "add", name).CombinedOutput(); err != nil {
		t.Skipf("cannot create a network namespace: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command(ip, "netns", "del", name).Run() })
	exec.Command(ip, "-n", name, "link", "set", "lo", "up").Run()
	// A member process, so the namespace has a member as well as a mount.
	py := exec.Command(ip, "netns", "exec", name, "sh", "-c", "exec sleep 60")
	if err := py.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { py.Process.Kill(); py.Wait() })

	s, err := Discover(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	var n *Namespace
	for _, x := range s.ByInode {
		if len(x.Names) > 0 && x.Names[0] == name {
			n = x
		}
	}
	if n == nil {
		t.Fatalf("namespace %s not found", name)
	}
	conn, err := s.Dial(n)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The host has listeners (pid 1's at least) that the new namespace has not.
	count := 0
	err = conn.Dump(sockdiag.AFInet, sockdiag.ProtoTCP, 1<<10, func(sockdiag.Msg) { count++ })
	if err != nil {
		t.Fatal(err)
	}
	if count != 0 {
		t.Errorf("a fresh namespace shows %d TCP listeners: the socket is not inside it", count)
	}
	// And this thread is back home.
	var here, host uint64
	if here, err = nsLink("/proc/thread-self/ns/net"); err != nil {
		t.Fatal(err)
	}
	host = s.Self
	if here != host {
		t.Errorf("after Dial this thread is in namespace %d, not %d", here, host)
	}
	if _, err := s.Dial(&Namespace{Inode: 1}); !errors.Is(err, ErrGone) {
		t.Errorf("Dial of a namespace nothing leads to: %v, want ErrGone", err)
	}
}

// TestDoIsAVisitor enters a namespace that nothing else is in (a thread
// unshared it and came back; an fd keeps it) and checks, from inside Do,
// that the thread is not the process's first, carries VisitorComm while
// the process keeps its name, and that discovery meanwhile does not count
// it as in the namespace. A thread that enters by a bare setns is counted:
// the control, which shows the check can fail.
func TestDoIsAVisitor(t *testing.T) {
	testenv.RequireRoot(t)
	nsfd := orphanNS(t)
	var st unix.Stat_t
	if err := unix.Fstat(nsfd, &st); err != nil {
		t.Fatal(err)
	}
	ino := st.Ino
	before, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	var tid int
	err = Do(nsfd, func() {
		tid = unix.Gettid()
		if tid == os.Getpid() {
			t.Error("Do ran on the process's first thread")
		}
		if b, _ := os.ReadFile("/proc/thread-self/comm"); strings.TrimSpace(string(b)) != VisitorComm {
			t.Errorf("the visiting thread is named %q, want %q", b, VisitorComm)
		}
		if b, _ := os.ReadFile("/proc/self/comm"); !bytes.Equal(b, before) {
			t.Errorf("the process's name changed to %q while visiting", b)
		}
		if here, _ := nsLink("/proc/thread-self/ns/net"); here != ino {
			t.Errorf("inside Do the thread is in namespace %d, not %d", here, ino)
		}
		// Discovery runs on another thread of this process meanwhile.
		if s := discoverElsewhere(t); s != nil && s.ByInode[ino] != nil {
			t.Errorf("discovery counts the visiting thread in namespace %d: %+v", ino, s.ByInode[ino])
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	// The thread is back in the pool, with its name again.
	if b, err := os.ReadFile("/proc/self/task/" + strconv.Itoa(tid) + "/comm"); err == nil && !bytes.Equal(b, before) {
		t.Errorf("after Do thread %d is named %q, want %q", tid, b, before)
	}

	// The control: a thread that enters without Do names the namespace.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(orig)
	if err := unix.Setns(nsfd, unix.CLONE_NEWNET); err != nil {
		t.Fatal(err)
	}
	s := discoverElsewhere(t)
	if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
		t.Fatalf("setns back: %v", err) // the locked thread dies with the test
	}
	want := "pid " + strconv.Itoa(os.Getpid()) + " ("
	if s == nil || s.ByInode[ino] == nil || !strings.HasPrefix(s.ByInode[ino].Name(), want) {
		t.Errorf("a thread entering by a bare setns: namespace %d is %+v, want it named %q...", ino, s.ByInode[ino], want)
	}
}

// discoverElsewhere runs a discovery on another goroutine, so on another
// thread than a caller that holds its own, and returns its set (nil when
// it failed, which is reported).
func discoverElsewhere(t *testing.T) *Set {
	done := make(chan *Set)
	go func() {
		s, err := Discover(context.Background(), "")
		if err != nil {
			t.Error(err)
		}
		done <- s
	}()
	return <-done
}

// orphanNS returns an fd of a new network namespace that no thread and no
// mount is in: a locked thread unshares it, opens it and goes back.
func orphanNS(t *testing.T) int {
	t.Helper()
	fdc := make(chan int, 1)
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(orig)
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- err
			return // the thread dies locked, in its own namespace
		}
		fd, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			errc <- err
			return
		}
		runtime.UnlockOSThread()
		if err != nil {
			errc <- err
			return
		}
		fdc <- fd
	}()
	select {
	case fd := <-fdc:
		t.Cleanup(func() { unix.Close(fd) })
		return fd
	case err := <-errc:
		t.Fatalf("making a namespace: %v", err)
	}
	return -1
}

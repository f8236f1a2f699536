package sockfd_test

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/porteiro/porteiro/internal/procfs"
	"github.com/porteiro/porteiro/internal/sockfd"
	"github.com/porteiro/porteiro/internal/sockfd/sockfdtest"
)

// refusedEnv turns the test binary, run as nobody, into a process that
// asks for the sockets of the pid the variable names.
const refusedEnv = "PORTEIRO_SOCKFD_TEST_REFUSED"

func init() {
	if v := os.Getenv(refusedEnv); v != "" {
		pid, _ := strconv.Atoi(v)
		_, err := sockfd.List("/proc", pid)
		fmt.Printf("refused=%v nosuch=%v err=%v\n", errors.Is(err, sockfd.ErrRefused), errors.Is(err, sockfd.ErrNoProcess), err)
		os.Exit(0)
	}
}

func needRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root: pidfd_getfd of another process, SIOCGSKNS and SO_BINDTODEVICE")
	}
}

func selfNetNS(t testing.TB) uint64 {
	t.Helper()
	ns, err := procfs.NetNS("/proc", "self")
	if err != nil {
		t.Fatal(err)
	}
	return ns
}

func TestSocketsOfAProcess(t *testing.T) {
	needRoot(t)
	h := sockfdtest.Start(t)
	got, err := sockfd.List("/proc", h.PID)
	if err != nil {
		t.Fatal(err)
	}
	byFD := map[int]sockfd.Socket{}
	for _, s := range got {
		byFD[s.FD] = s
	}
	if len(got) != len(h.Sockets) {
		t.Errorf("got %d sockets, want %d (the unix socketpair and the pipe are not TCP or UDP): %+v", len(got), len(h.Sockets), got)
	}
	netns := selfNetNS(t)
	for _, w := range h.Sockets {
		s, ok := byFD[w.FD]
		if !ok {
			t.Errorf("%s (fd %d): missing", w.Name, w.FD)
			continue
		}
		proto := uint8(unix.IPPROTO_UDP)
		if w.TCP {
			proto = unix.IPPROTO_TCP
		}
		want := sockfd.Socket{FD: w.FD, Inode: w.Inode, UID: 0, Family: uint16(w.Family), Protocol: proto,
			State: w.State, Local: w.Local, Remote: w.Remote, Interface: w.Interface, V6Only: w.V6Only, NetNS: netns}
		if w.Interface != "" {
			want.IfIndex = 1 // lo
		}
		want.MPTCP = s.MPTCP // Go's listeners are MPTCP where the kernel allows
		if s != want {
			t.Errorf("%s:\n got %+v\nwant %+v", w.Name, s, want)
		}
	}
}

func TestNoProcess(t *testing.T) {
	// A pid beyond pid_max never exists.
	_, err := sockfd.List("/proc", 1<<30)
	if !errors.Is(err, sockfd.ErrNoProcess) {
		t.Errorf("got %v, want ErrNoProcess", err)
	}
}

// A process without the right to ptrace another is refused, and says so
// with ErrRefused: the test binary runs as nobody and asks for the sockets
// of a process of root.
func TestRefusedWithoutPtraceRights(t *testing.T) {
	needRoot(t)
	h := sockfdtest.Start(t)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "porteiro-sockfd-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "sockfd.test")
	copyFile(t, self, bin)
	cmd := exec.Command(bin)
	cmd.Env = append(os.Environ(), refusedEnv+"="+strconv.Itoa(h.PID))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("running as nobody: %v\n%s", err, out)
	}
	if !strings.HasPrefix(string(out), "refused=true nosuch=false") {
		t.Errorf("as nobody: %s", out)
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	in, err := os.Open(from)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	if err := out.Close(); err != nil {
		t.Fatal(err)
	}
}

// A socket opened in a network namespace that the thread then leaves is the
// only way into that namespace: no process is in it and no mount names
// it. NetNS returns the namespace's fd, and setns through it works.
func TestNetNSOfASocketOnly(t *testing.T) {
	needRoot(t)
	host := selfNetNS(t)
	type result struct {
		sock   int
		err    error
		threw  bool
		closer func()
	}
	res := make(chan result, 1)
	go func() {
		// The thread changes namespace: lock it, and if it cannot come
		// back, never unlock it, so that the runtime ends it.
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			res <- result{err: err}
			return
		}
		defer unix.Close(orig)
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			res <- result{err: fmt.Errorf("unshare: %w", err)}
			return
		}
		s, serr := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			res <- result{err: fmt.Errorf("setns back: %w", err)}
			return // the thread stays locked and dies with the goroutine
		}
		runtime.UnlockOSThread()
		res <- result{sock: s, err: serr}
	}()
	r := <-res
	if r.err != nil {
		t.Fatal(r.err)
	}
	defer unix.Close(r.sock)
	p, err := sockfd.Open(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	nsfd, ino, err := sockfd.NetNS(p.PIDFD(), r.sock)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(nsfd)
	if ino == host || ino == 0 {
		t.Fatalf("the socket's namespace is %d, the host's %d: want another", ino, host)
	}
	// Enter it on a locked thread, check, and come back.
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			done <- err
			return
		}
		defer unix.Close(orig)
		if err := unix.Setns(nsfd, unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("setns into the socket's namespace: %w", err)
			return
		}
		in, _ := procfs.NetNS("/proc", "thread-self")
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			done <- fmt.Errorf("setns back: %w", err)
			return
		}
		runtime.UnlockOSThread()
		if in != ino {
			done <- fmt.Errorf("inside, the namespace is %d, want %d", in, ino)
			return
		}
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The UDP socket is not bound: List still reports it, with its
	// namespace; deciding what to show is the caller's.
	all, err := p.Sockets("/proc", nil)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, s := range all {
		if s.FD == r.sock {
			found = true
			if s.NetNS != ino {
				t.Errorf("Sockets says namespace %d, NetNS %d", s.NetNS, ino)
			}
		}
	}
	if !found {
		t.Errorf("fd %d not among the process's sockets", r.sock)
	}
}

// BenchmarkSockets reads the sockets of a process that holds n TCP and
// UDP sockets and n unix sockets; ns/socket and allocs/socket are per TCP
// or UDP socket.
func BenchmarkSockets(b *testing.B) {
	needRoot(b)
	for _, n := range []int{10, 1000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			pid := sockfdtest.StartN(b, n)
			p, err := sockfd.Open(pid)
			if err != nil {
				b.Fatal(err)
			}
			defer p.Close()
			var out []sockfd.Socket
			b.ReportAllocs()
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			for b.Loop() {
				out, err = p.Sockets("/proc", out[:0])
				if err != nil || len(out) != n {
					b.Fatalf("%d sockets, %v", len(out), err)
				}
			}
			runtime.ReadMemStats(&m1)
			per := float64(b.N * n)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/per, "ns/socket")
			b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/per, "allocs/socket")
		})
	}
}

// Package sockfdtest starts a real process that holds a known set of TCP and
// UDP sockets, IPv4 and IPv6, listeners and connections, for the tests of
// sockfd and of the scans built on it.
package sockfdtest

import (
	"context"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Held is one socket the holder holds, as the kernel should describe it.
type Held struct {
	Name      string
	FD        int // in the holder
	Inode     uint64
	TCP       bool
	Family    int // unix.AF_INET or unix.AF_INET6
	State     uint8
	Local     netip.AddrPort
	Remote    netip.AddrPort // the zero AddrPort when not connected
	Interface string
	V6Only    bool
}

// Holder is a running `sleep` that holds Sockets, and a unix socketpair
// and a pipe that are not TCP or UDP.
type Holder struct {
	PID     int
	Sockets []Held
}

const (
	stateEstablished = 1
	stateSynSent     = 2
	stateClose       = 7
	stateListen      = 10
)

// Start creates the sockets, hands them to a new process as inherited fds
// and closes its own copies: then only the holder holds them. It kills the
// holder, by pid, when the test ends. A dual-stack [::] TCP listener, a
// v6-only one, one bound to lo with SO_BINDTODEVICE, UDP bound and
// connected, established TCP pairs in both families. IPv6 must work on
// loopback; the test is skipped when it does not.
func Start(t testing.TB) *Holder {
	t.Helper()
	if l, err := net.Listen("tcp6", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 on loopback: %v", err)
	} else {
		l.Close()
	}
	var (
		files []*os.File
		held  []Held
	)
	add := func(name string, tcp bool, c interface{ File() (*os.File, error) }, h Held) {
		t.Helper()
		f, err := c.File()
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(int(f.Fd()), &st); err != nil {
			t.Fatal(err)
		}
		h.Name, h.TCP, h.Inode, h.FD = name, tcp, st.Ino, 3+len(files)
		files = append(files, f)
		held = append(held, h)
	}
	ap := func(a net.Addr) netip.AddrPort {
		switch a := a.(type) {
		case *net.TCPAddr:
			return a.AddrPort()
		case *net.UDPAddr:
			return a.AddrPort()
		}
		t.Fatalf("address %v", a)
		return netip.AddrPort{}
	}
	var closers []interface{ Close() error }
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	listen := func(name, network, addr, dev string, fam int, v6only bool) *net.TCPListener {
		t.Helper()
		lc := net.ListenConfig{}
		if dev != "" {
			lc.Control = func(_, _ string, rc syscall.RawConn) error {
				var serr error
				if err := rc.Control(func(fd uintptr) {
					serr = unix.SetsockoptString(int(fd), unix.SOL_SOCKET, unix.SO_BINDTODEVICE, dev)
				}); err != nil {
					return err
				}
				return serr
			}
		}
		l, err := lc.Listen(context.Background(), network, addr)
		if err != nil {
			t.Fatalf("%s: listen %s %s: %v", name, network, addr, err)
		}
		closers = append(closers, l)
		tl := l.(*net.TCPListener)
		add(name, true, tl, Held{Family: fam, State: stateListen, Local: ap(l.Addr()), Interface: dev, V6Only: v6only})
		return tl
	}
	l4 := listen("tcp4 listener", "tcp4", "127.0.0.1:0", "", unix.AF_INET, false)
	listen("tcp dual-stack listener", "tcp", "[::]:0", "", unix.AF_INET6, false)
	listen("tcp6 v6only listener", "tcp6", "[::]:0", "", unix.AF_INET6, true)
	listen("tcp4 listener on lo", "tcp4", "127.0.0.1:0", "lo", unix.AF_INET, false)
	l6 := listen("tcp6 loopback listener", "tcp6", "[::1]:0", "", unix.AF_INET6, false)

	pair := func(name string, l *net.TCPListener, fam int) {
		t.Helper()
		c, err := net.DialTCP(l.Addr().Network(), nil, l.Addr().(*net.TCPAddr))
		if err != nil {
			t.Fatal(err)
		}
		s, err := l.AcceptTCP()
		if err != nil {
			t.Fatal(err)
		}
		closers = append(closers, c, s)
		add(name+" client", true, c, Held{Family: fam, State: stateEstablished, Local: ap(c.LocalAddr()), Remote: ap(c.RemoteAddr())})
		add(name+" server", true, s, Held{Family: fam, State: stateEstablished, Local: ap(s.LocalAddr()), Remote: ap(s.RemoteAddr())})
	}
	pair("tcp4 connection", l4, unix.AF_INET)
	pair("tcp6 connection", l6, unix.AF_INET6)

	udp := func(name, network, laddr, raddr string, fam int, v6only bool) {
		t.Helper()
		var (
			c   *net.UDPConn
			err error
		)
		la, _ := net.ResolveUDPAddr(network, laddr)
		if raddr != "" {
			ra, _ := net.ResolveUDPAddr(network, raddr)
			c, err = net.DialUDP(network, la, ra)
		} else {
			c, err = net.ListenUDP(network, la)
		}
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		closers = append(closers, c)
		h := Held{Family: fam, State: stateClose, Local: ap(c.LocalAddr()), V6Only: v6only}
		if raddr != "" {
			h.State, h.Remote = stateEstablished, ap(c.RemoteAddr())
		}
		add(name, false, c, h)
	}
	udp("udp4 bound", "udp4", "127.0.0.1:0", "", unix.AF_INET, false)
	udp("udp dual-stack", "udp", "[::]:0", "", unix.AF_INET6, false)
	udp("udp6 connected", "udp6", "[::1]:0", "[::1]:9", unix.AF_INET6, false)

	synSent(t, func(name string, fd int, h Held) {
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			t.Fatal(err)
		}
		h.Name, h.TCP, h.Inode, h.FD, h.Family = name, true, st.Ino, 3+len(files), unix.AF_INET
		files = append(files, os.NewFile(uintptr(fd), name))
		held = append(held, h)
	})

	// Not TCP or UDP: a unix socketpair and a pipe.
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	extra := []*os.File{os.NewFile(uintptr(sp[0]), "unix0"), os.NewFile(uintptr(sp[1]), "unix1"), pr, pw}

	cmd := exec.Command("sleep", "600")
	cmd.ExtraFiles = append(files, extra...)
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting the holder: %v", err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() {
		unix.Kill(pid, unix.SIGKILL)
		cmd.Wait()
	})
	for _, f := range cmd.ExtraFiles {
		f.Close()
	}
	// Listeners and UDP sockets not connected have no peer: sock_diag
	// reports the unspecified address of their family and port 0.
	for i := range held {
		if !held[i].Remote.IsValid() {
			if held[i].Family == unix.AF_INET {
				held[i].Remote = netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
			} else {
				held[i].Remote = netip.AddrPortFrom(netip.IPv6Unspecified(), 0)
			}
		}
	}
	return &Holder{PID: pid, Sockets: held}
}

// StartSharing starts a second process that holds the first listener of
// h too (it inherits it from the test, which takes it with pidfd_getfd), and
// returns its pid. It is killed, by pid, when the test ends.
func StartSharing(t testing.TB, h *Holder) int {
	t.Helper()
	pidfd, err := unix.PidfdOpen(h.PID, 0)
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.PidfdGetfd(pidfd, h.Sockets[0].FD, 0)
	unix.Close(pidfd)
	if err != nil {
		t.Fatalf("taking the holder's socket: %v", err)
	}
	f := os.NewFile(uintptr(fd), "shared")
	defer f.Close()
	cmd := exec.Command("sleep", "600")
	cmd.ExtraFiles = []*os.File{f}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() {
		unix.Kill(pid, unix.SIGKILL)
		cmd.Wait()
	})
	return pid
}

// StartN starts a process that holds n sockets on 127.0.0.1, half TCP
// listeners and half bound UDP sockets, and as many unix sockets, as a
// busy server does; for benchmarks. It returns the pid, and kills the
// process, by pid, when the test ends.
func StartN(t testing.TB, n int) int {
	t.Helper()
	var files []*os.File
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	for i := range n {
		typ := unix.SOCK_STREAM
		if i%2 == 1 {
			typ = unix.SOCK_DGRAM
		}
		fd, err := unix.Socket(unix.AF_INET, typ|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, os.NewFile(uintptr(fd), "inet"))
		if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			t.Fatal(err)
		}
		if typ == unix.SOCK_STREAM {
			if err := unix.Listen(fd, 8); err != nil {
				t.Fatal(err)
			}
		}
		u, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, os.NewFile(uintptr(u), "unix"))
	}
	cmd := exec.Command("sleep", "600")
	cmd.ExtraFiles = files
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() {
		unix.Kill(pid, unix.SIGKILL)
		cmd.Wait()
	})
	return pid
}

// synSent makes a connection that stays in SYN-SENT, and gives add its fd,
// with the listener it connects to, the connections that got through, and
// a TCP socket that is bound only:
// the listener's accept queue (backlog 0) is full after one connection, so
// the kernel drops the next SYNs, for the two minutes of SYN retries.
func synSent(t testing.TB, add func(name string, fd int, h Held)) {
	t.Helper()
	l, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(l, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(l, 0); err != nil {
		t.Fatal(err)
	}
	la := addrPort(t, l, false)
	add("tcp4 listener, accept queue full", l, Held{State: stateListen, Local: la})
	// Bound, neither listening nor connected: state CLOSE, a port taken.
	b, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Bind(b, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		t.Fatal(err)
	}
	add("tcp4 bound only", b, Held{State: stateClose, Local: addrPort(t, b, false)})
	for range 8 {
		c, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, 0)
		if err != nil {
			t.Fatal(err)
		}
		if err := unix.Connect(c, &unix.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: int(la.Port())}); err != nil && err != unix.EINPROGRESS {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
		info, err := unix.GetsockoptTCPInfo(c, unix.IPPROTO_TCP, unix.TCP_INFO)
		if err != nil {
			t.Fatal(err)
		}
		h := Held{State: info.State, Local: addrPort(t, c, false), Remote: la}
		switch info.State {
		case stateSynSent:
			add("tcp4 connecting (SYN-SENT)", c, h)
			return
		case stateEstablished:
			add("tcp4 connection waiting to be accepted", c, h)
		default:
			t.Fatalf("a connection to a full accept queue is in state %d", info.State)
		}
	}
	t.Fatal("no connection stayed in SYN-SENT")
}

// addrPort returns the local (or peer) address of socket fd.
func addrPort(t testing.TB, fd int, peer bool) netip.AddrPort {
	t.Helper()
	get := unix.Getsockname
	if peer {
		get = unix.Getpeername
	}
	sa, err := get(fd)
	if err != nil {
		t.Fatal(err)
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port))
	}
	t.Fatalf("address %v", sa)
	return netip.AddrPort{}
}

// Dumped counts the held sockets that a sock_diag dump of every state
// lists: all but the TCP sockets in state CLOSE, which are in no table it
// reads.
func (h *Holder) Dumped() int {
	n := 0
	for _, s := range h.Sockets {
		if !s.TCP || s.State != stateClose {
			n++
		}
	}
	return n
}

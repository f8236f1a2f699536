package bpfevents

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/porteiro/porteiro/inventory"
)

// helperEnv makes the test binary act as a child process for the tests
// that need another pid, another network namespace, or fewer capabilities.
const helperEnv = "PORTEIRO_BPFEVENTS_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "netns":
		helperNetns()
	case "brief":
		helperBrief()
	case "open":
		helperOpen()
	}
	os.Exit(0)
}

// helperNetns listens in a new network namespace, says where, and stays
// until its stdin closes.
func helperNetns() {
	runtime.LockOSThread()
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	l, err := net.Listen("tcp4", "0.0.0.0:0") // lo is down in a new namespace
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println(l.Addr().(*net.TCPAddr).Port, st.Ino, inodeOf(l.(*net.TCPListener)))
	bufio.NewReader(os.Stdin).ReadString('\n')
	l.Close()
}

// helperBrief holds a listener for 5 ms and exits.
func helperBrief() {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	fmt.Println(l.Addr().(*net.TCPAddr).Port, inodeOf(l.(*net.TCPListener)))
	time.Sleep(5 * time.Millisecond)
	l.Close()
}

// helperOpen reports what Open says, with whatever capabilities it got.
func helperOpen() {
	s, err := Open(Options{})
	if err == nil {
		s.Close()
		fmt.Println("opened")
		return
	}
	var ce *CapabilityError
	fmt.Printf("notsupported=%v capability=%v err=%v\n", errors.Is(err, ErrNotSupported), errors.As(err, &ce), err)
}

func inodeOf(c syscall.Conn) uint64 {
	rc, err := c.SyscallConn()
	if err != nil {
		return 0
	}
	var st unix.Stat_t
	rc.Control(func(fd uintptr) { unix.Fstat(int(fd), &st) })
	return st.Ino
}

func ownNetNS(t *testing.T) uint64 {
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/net", &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// collector reads every event of the host into a channel, for the test to
// pick its own from.
type collector struct {
	s      *Source
	ch     chan Event
	cancel context.CancelFunc
	done   chan struct{}
	err    error
}

// openSource opens the real programs. It skips when the test cannot run
// them (not root, or a kernel or sandbox without the features: wrapping
// ErrNotSupported), and fails when they should load and don't.
func openSource(t *testing.T, opts Options, start bool) *collector {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("loading BPF programs needs root (CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN)")
	}
	s, err := Open(opts)
	if errors.Is(err, ErrNotSupported) {
		t.Skipf("listener events are not available on this machine: %v", err)
	}
	if err != nil {
		t.Fatalf("Open: %+v", err)
	}
	c := &collector{s: s, ch: make(chan Event, 1<<16), done: make(chan struct{})}
	if start {
		c.start()
	}
	t.Cleanup(func() {
		c.stop()
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return c
}

func (c *collector) start() {
	ctx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	go func() {
		defer close(c.done)
		for {
			ev, err := c.s.Read(ctx)
			if err != nil {
				if ctx.Err() == nil {
					c.err = err
				}
				return
			}
			c.ch <- ev
		}
	}()
}

func (c *collector) stop() {
	if c.cancel != nil {
		c.cancel()
		<-c.done
		c.cancel = nil
	}
}

// wait gathers the events that keep accepts until want of them arrived or
// timeout passed, then for 100 ms more, so that a duplicate would show.
func (c *collector) wait(t *testing.T, keep func(*Event) bool, want int, timeout time.Duration) []Event {
	t.Helper()
	var out []Event
	deadline := time.After(timeout)
	var grace <-chan time.Time
	for {
		select {
		case ev := <-c.ch:
			if keep(&ev) {
				out = append(out, ev)
				if len(out) >= want && grace == nil {
					grace = time.After(100 * time.Millisecond)
				}
			}
		case <-grace:
			return out
		case <-deadline:
			if c.err != nil {
				t.Errorf("reading events: %v", c.err)
			}
			return out
		}
	}
}

type want struct {
	proto     inventory.Proto
	family    inventory.Family
	addr      netip.Addr
	port      uint16
	pid       int
	netns     uint64
	inode     uint64
	dualStack bool
}

// checkPair checks that evs are exactly one Opened and one Closed event of
// the same socket, with the owner and the address of w.
func checkPair(t *testing.T, evs []Event, w want) (opened Event) {
	t.Helper()
	if len(evs) != 2 {
		for _, e := range evs {
			t.Logf("event: %+v", e)
		}
		t.Fatalf("got %d events for %s port %d, want one opened and one closed", len(evs), w.proto, w.port)
	}
	o, c := evs[0], evs[1]
	if o.Kind != Opened || c.Kind != Closed {
		t.Fatalf("kinds %s, %s; want opened, closed", o.Kind, c.Kind)
	}
	if o.Cookie == 0 || o.Cookie != c.Cookie {
		t.Errorf("cookies %d and %d: a close must carry its open's cookie", o.Cookie, c.Cookie)
	}
	for _, e := range []Event{o, c} {
		if e.Proto != w.proto || e.Family != w.family || e.Addr != w.addr || e.Port != w.port {
			t.Errorf("%s event: %s %s %s port %d; want %s %s %s port %d", e.Kind, e.Proto, e.Family, e.Addr, e.Port,
				w.proto, w.family, w.addr, w.port)
		}
		if e.NetNS != w.netns {
			t.Errorf("%s event: netns %d, want %d", e.Kind, e.NetNS, w.netns)
		}
		if e.Inode != w.inode {
			t.Errorf("%s event: inode %d, want %d", e.Kind, e.Inode, w.inode)
		}
		if e.DualStack != w.dualStack {
			t.Errorf("%s event: dual-stack %v, want %v", e.Kind, e.DualStack, w.dualStack)
		}
		if e.Time.IsZero() || time.Since(e.Time) > time.Minute || time.Until(e.Time) > time.Second {
			t.Errorf("%s event: time %v is not now", e.Kind, e.Time)
		}
	}
	if o.PID != w.pid {
		t.Errorf("opened by pid %d, want %d", o.PID, w.pid)
	}
	if o.UID != uint32(os.Getuid()) {
		t.Errorf("opened by uid %d, want %d", o.UID, os.Getuid())
	}
	if o.Comm == "" || o.CgroupID == 0 {
		t.Errorf("opened event without comm or cgroup: %+v", o)
	}
	return o
}

// byPort keeps the events of one port and one process: other tests on the
// host may use the same ephemeral port a moment later.
func byPort(proto inventory.Proto, port uint16, pid int) func(*Event) bool {
	return func(e *Event) bool { return e.Proto == proto && e.Port == port && e.PID == pid }
}

// ssSocket returns the inode and the cookie that ss reports for the
// listener on port, to check the events against the kernel's own tool.
func ssSocket(t *testing.T, flag string, port uint16) (ino, cookie uint64) {
	t.Helper()
	if _, err := exec.LookPath("ss"); err != nil {
		t.Log("ss not installed; not comparing with it")
		return 0, 0
	}
	out, err := exec.Command("ss", flag, "-nHe", "sport = :"+strconv.Itoa(int(port))).Output()
	if err != nil {
		t.Fatalf("ss: %v", err)
	}
	for _, f := range strings.Fields(string(out)) {
		if v, ok := strings.CutPrefix(f, "ino:"); ok {
			ino, _ = strconv.ParseUint(v, 10, 64)
		}
		if v, ok := strings.CutPrefix(f, "sk:"); ok {
			cookie, _ = strconv.ParseUint(v, 16, 64)
		}
	}
	if ino == 0 || cookie == 0 {
		t.Fatalf("ss shows no listener on port %d: %q", port, out)
	}
	return ino, cookie
}

func TestListeners(t *testing.T) {
	c := openSource(t, Options{}, true)
	netns := ownNetNS(t)
	for _, tc := range []struct {
		name      string
		proto     inventory.Proto
		network   string
		addr      string
		family    inventory.Family
		dualStack bool
	}{
		{"tcp4", inventory.TCP, "tcp4", "127.0.0.1:0", inventory.IPv4, false},
		{"tcp6", inventory.TCP, "tcp6", "[::1]:0", inventory.IPv6, false},
		{"tcp dual-stack", inventory.TCP, "tcp", "[::]:0", inventory.IPv6, true},
		{"udp4", inventory.UDP, "udp4", "127.0.0.1:0", inventory.IPv4, false},
		{"udp6", inventory.UDP, "udp6", "[::1]:0", inventory.IPv6, false},
		{"udp dual-stack", inventory.UDP, "udp", "[::]:0", inventory.IPv6, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var port uint16
			var ino, ssIno, ssCookie uint64
			var evs []Event
			// Another test binding every port (the audit's probe) can
			// fill the ring buffer: an attempt whose events were dropped,
			// and counted as dropped, proves nothing and is made again.
			// Events missing with no drop counted fail the test.
			for attempt := 1; ; attempt++ {
				drops := c.s.Drops()
				port, ino, ssIno, ssCookie = listenOnce(t, tc.proto, tc.network, tc.addr)
				evs = c.wait(t, byPort(tc.proto, port, os.Getpid()), 2, 5*time.Second)
				if len(evs) >= 2 || c.s.Drops() == drops || attempt == 5 {
					break
				}
				t.Logf("attempt %d: %d of 2 events for port %d while %d events were dropped: again", attempt, len(evs), port, c.s.Drops()-drops)
			}
			addr := netip.MustParseAddrPort(tc.addr).Addr()
			o := checkPair(t, evs, want{proto: tc.proto, family: tc.family, addr: addr, port: port,
				pid: os.Getpid(), netns: netns, inode: ino, dualStack: tc.dualStack})
			if ssIno != 0 && (o.Inode != ssIno || o.Cookie != ssCookie) {
				t.Errorf("event: inode %d cookie %x; ss: inode %d cookie %x", o.Inode, o.Cookie, ssIno, ssCookie)
			}
			if len(o.Cmdline) == 0 || o.Exe == "" {
				t.Errorf("no command line or exe for a live process: %q %q", o.Cmdline, o.Exe)
			}
		})
	}
}

// listenOnce opens a listener of proto on network and addr, reads its
// inode and ss's view of it, and closes it.
func listenOnce(t *testing.T, proto inventory.Proto, network, addr string) (port uint16, ino, ssIno, ssCookie uint64) {
	t.Helper()
	if proto == inventory.TCP {
		l, err := net.Listen(network, addr)
		if err != nil {
			t.Skipf("listen %s %s: %v", network, addr, err)
		}
		port, ino = uint16(l.Addr().(*net.TCPAddr).Port), inodeOf(l.(*net.TCPListener))
		ssIno, ssCookie = ssSocket(t, "-tl", port)
		l.Close()
		return port, ino, ssIno, ssCookie
	}
	u, err := net.ListenPacket(network, addr)
	if err != nil {
		t.Skipf("listen %s %s: %v", network, addr, err)
	}
	port, ino = uint16(u.LocalAddr().(*net.UDPAddr).Port), inodeOf(u.(*net.UDPConn))
	ssIno, ssCookie = ssSocket(t, "-ul", port)
	u.Close()
	return port, ino, ssIno, ssCookie
}

func reusePortConfig() net.ListenConfig {
	return net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
		})
		return errors.Join(err, serr)
	}}
}

// Two sockets on one port with SO_REUSEPORT are two listeners: each has
// its own pair of events, told apart by cookie.
func TestReusePort(t *testing.T) {
	c := openSource(t, Options{}, true)
	lc := reusePortConfig()
	netns := ownNetNS(t)
	for _, proto := range []inventory.Proto{inventory.TCP, inventory.UDP} {
		t.Run(string(proto), func(t *testing.T) {
			var port uint16
			var inos [2]uint64
			var closers []func() error
			for i := range 2 {
				addr := "127.0.0.1:" + strconv.Itoa(int(port))
				if proto == inventory.TCP {
					l, err := lc.Listen(context.Background(), "tcp4", addr)
					if err != nil {
						t.Fatal(err)
					}
					closers = append(closers, l.Close)
					port, inos[i] = uint16(l.Addr().(*net.TCPAddr).Port), inodeOf(l.(*net.TCPListener))
				} else {
					u, err := lc.ListenPacket(context.Background(), "udp4", addr)
					if err != nil {
						t.Fatal(err)
					}
					closers = append(closers, u.Close)
					port, inos[i] = uint16(u.LocalAddr().(*net.UDPAddr).Port), inodeOf(u.(*net.UDPConn))
				}
			}
			for _, cl := range closers {
				cl()
			}
			evs := c.wait(t, byPort(proto, port, os.Getpid()), 4, 5*time.Second)
			cookies := map[uint64]bool{}
			for _, ino := range inos {
				var mine []Event
				for _, e := range evs {
					if e.Inode == ino {
						mine = append(mine, e)
					}
				}
				o := checkPair(t, mine, want{proto: proto, family: inventory.IPv4, addr: netip.MustParseAddr("127.0.0.1"),
					port: port, pid: os.Getpid(), netns: netns, inode: ino})
				if !o.ReusePort {
					t.Errorf("inode %d: SO_REUSEPORT not reported", ino)
				}
				cookies[o.Cookie] = true
			}
			if len(evs) != 4 || len(cookies) != 2 {
				t.Errorf("got %d events and %d cookies, want 4 events of 2 sockets", len(evs), len(cookies))
			}
		})
	}
}

// A listener in another network namespace, opened by a child process.
func TestOtherNetns(t *testing.T) {
	c := openSource(t, Options{}, true)
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), helperEnv+"=netns")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("child: %v", err)
	}
	var port uint16
	var netns, ino uint64
	if _, err := fmt.Sscan(line, &port, &netns, &ino); err != nil {
		t.Fatalf("child said %q", line)
	}
	if netns == ownNetNS(t) {
		t.Fatal("the child's listener is in our own namespace")
	}
	stdin.Close() // the child closes its listener and exits
	if err := cmd.Wait(); err != nil {
		t.Fatalf("child: %v", err)
	}
	// The close is matched by port and namespace, not by pid: whoever
	// closes a socket is not always who opened it (checkPair checks the
	// opener's pid and that the close carries the same cookie).
	mine := c.wait(t, func(e *Event) bool {
		return e.Proto == inventory.TCP && e.Port == port && e.NetNS == netns
	}, 2, 5*time.Second)
	checkPair(t, mine, want{proto: inventory.TCP, family: inventory.IPv4, addr: netip.IPv4Unspecified(), port: port,
		pid: cmd.Process.Pid, netns: netns, inode: ino})
}

// A listener that lives 5 ms in a child that then exits: both events, with
// the child's pid, though the child is gone before they are read.
//
// Events are lost only when the ring is full, and then counted (the daemon
// reconciles by a scan). Other tests of the host, running meanwhile, may
// fill it: an audit binds every port of every network namespace. So an
// attempt whose events are missing is tried again when the source counted
// drops during it; a loss without a drop counted fails at once.
func TestBriefListener(t *testing.T) {
	c := openSource(t, Options{}, true)
	for attempt := 1; ; attempt++ {
		drops := c.s.Drops()
		cmd := exec.Command(os.Args[0])
		cmd.Env = append(os.Environ(), helperEnv+"=brief")
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("child: %v: %s", err, out)
		}
		var port uint16
		var ino uint64
		if _, err := fmt.Sscan(string(out), &port, &ino); err != nil {
			t.Fatalf("child said %q", out)
		}
		evs := c.wait(t, byPort(inventory.TCP, port, cmd.Process.Pid), 2, 5*time.Second)
		if lost := c.s.Drops() - drops; len(evs) < 2 && lost > 0 && attempt < 5 {
			t.Logf("attempt %d: %d of 2 events, %d drops counted meanwhile: trying again", attempt, len(evs), lost)
			continue
		}
		checkPair(t, evs, want{proto: inventory.TCP, family: inventory.IPv4, addr: netip.MustParseAddr("127.0.0.1"),
			port: port, pid: cmd.Process.Pid, netns: ownNetNS(t), inode: ino})
		return
	}
}

// churn opens and closes n TCP listeners as fast as a loop goes, and
// returns their inodes.
func churn(t *testing.T, n int) map[uint64]bool {
	inos := make(map[uint64]bool, n)
	for range n {
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		inos[inodeOf(l.(*net.TCPListener))] = true
		l.Close()
	}
	return inos
}

// countOwn gathers the events of this process's listeners in inos until
// every one has both events or quiet passes with nothing new.
func countOwn(c *collector, inos map[uint64]bool, quiet time.Duration) (opened, closed map[uint64]int) {
	opened, closed = map[uint64]int{}, map[uint64]int{}
	pid := os.Getpid()
	for len(opened) < len(inos) || len(closed) < len(inos) {
		select {
		case ev := <-c.ch:
			if ev.PID != pid || ev.Proto != inventory.TCP || !inos[ev.Inode] {
				continue
			}
			if ev.Kind == Opened {
				opened[ev.Inode]++
			} else {
				closed[ev.Inode]++
			}
		case <-time.After(quiet):
			return opened, closed
		}
	}
	// A moment more, so that a duplicate would show.
	for {
		select {
		case ev := <-c.ch:
			if ev.PID == pid && inos[ev.Inode] {
				if ev.Kind == Opened {
					opened[ev.Inode]++
				} else {
					closed[ev.Inode]++
				}
			}
		case <-time.After(100 * time.Millisecond):
			return opened, closed
		}
	}
}

// 1,000 listeners opened and closed as fast as a loop goes: each is seen
// once opened and once closed, or the drops count the ones that are not.
func TestThousandListeners(t *testing.T) {
	c := openSource(t, Options{}, true)
	drops0 := c.s.Drops()
	start := time.Now()
	inos := churn(t, 1000)
	loop := time.Since(start)
	opened, closed := countOwn(c, inos, 5*time.Second)
	drops := c.s.Drops() - drops0
	missing := 0
	for ino := range inos {
		if opened[ino] > 1 || closed[ino] > 1 {
			t.Errorf("inode %d: %d opened, %d closed events", ino, opened[ino], closed[ino])
		}
		if opened[ino] == 0 {
			missing++
		}
		if closed[ino] == 0 {
			missing++
		}
	}
	t.Logf("1000 listeners in %v; %d events missing, %d drops counted", loop.Round(time.Millisecond), missing, drops)
	if uint64(missing) > drops {
		t.Errorf("%d events missing but only %d drops counted: events lost silently", missing, drops)
	}
}

// With a ring buffer of one page and no reader until the loop is done, most
// events cannot be kept: every one lost must be counted.
func TestDropsCounted(t *testing.T) {
	c := openSource(t, Options{RingBytes: os.Getpagesize()}, false)
	drops0 := c.s.Drops()
	inos := churn(t, 500)
	c.start()
	opened, closed := countOwn(c, inos, time.Second)
	drops := c.s.Drops() - drops0
	missing := 2*len(inos) - len(opened) - len(closed)
	t.Logf("ring of %d bytes: %d of %d events missing, %d drops counted", os.Getpagesize(), missing, 2*len(inos), drops)
	if missing == 0 {
		t.Fatal("no event was lost with a one-page ring buffer and no reader: the test proves nothing")
	}
	if uint64(missing) > drops {
		t.Errorf("%d events missing but only %d drops counted", missing, drops)
	}
}

// Without the capabilities, Open says which one is missing and wraps
// ErrNotSupported, so the daemon falls back to polling.
func TestOpenWithoutCapabilities(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("dropping capabilities with setpriv needs root")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv (util-linux) is not installed")
	}
	for _, tc := range []struct{ drop, want string }{
		{"-bpf,-sys_admin", "missing CAP_BPF"},
		{"-perfmon,-sys_admin", "missing CAP_PERFMON"},
		{"-net_admin", "missing CAP_NET_ADMIN"},
	} {
		t.Run(tc.drop, func(t *testing.T) {
			cmd := exec.Command(setpriv, "--inh-caps="+tc.drop, "--bounding-set="+tc.drop, os.Args[0])
			cmd.Env = append(os.Environ(), helperEnv+"=open")
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("setpriv: %v: %s", err, out)
			}
			s := string(out)
			if !strings.Contains(s, "notsupported=true capability=true") || !strings.Contains(s, tc.want) {
				t.Errorf("Open without %s said %q; want ErrNotSupported naming %q", tc.drop, s, tc.want)
			}
		})
	}
}

// Read ends with the context, and the source stays usable.
func TestReadCancel(t *testing.T) {
	c := openSource(t, Options{}, false)
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	var err error
	go func() { defer wg.Done(); _, err = readQuiet(ctx, c.s) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	wg.Wait()
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Read after cancel: %v", err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	if _, err := readQuiet(ctx2, c.s); err != nil && !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Read with a deadline: %v", err)
	}
	// Close interrupts a Read, and a second Close is harmless.
	go func() { time.Sleep(50 * time.Millisecond); c.s.Close() }()
	if _, err := readQuiet(context.Background(), c.s); !errors.Is(err, os.ErrClosed) {
		t.Errorf("Read during Close: %v, want os.ErrClosed", err)
	}
	if err := c.s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
}

// readQuiet reads until ctx ends, ignoring the host's other events.
func readQuiet(ctx context.Context, s *Source) (Event, error) {
	for {
		if _, err := s.Read(ctx); err != nil {
			return Event{}, err
		}
	}
}

func socketInode(t *testing.T, fd int) uint64 {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

func localPort(t *testing.T, fd int) uint16 {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		t.Fatal(err)
	}
	return uint16(sa.(*unix.SockaddrInet4).Port)
}

// listen() without bind(): the kernel picks the port after the socket
// enters LISTEN; the opened event still carries it.
func TestListenWithoutBind(t *testing.T) {
	c := openSource(t, Options{}, true)
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fd, 1); err != nil {
		t.Fatal(err)
	}
	port, ino := localPort(t, fd), socketInode(t, fd)
	unix.Close(fd)
	evs := c.wait(t, byPort(inventory.TCP, port, os.Getpid()), 2, 5*time.Second)
	checkPair(t, evs, want{proto: inventory.TCP, family: inventory.IPv4, addr: netip.IPv4Unspecified(), port: port,
		pid: os.Getpid(), netns: ownNetNS(t), inode: ino})
}

// A listen() that fails (the port is taken) reports nothing: the socket
// entered LISTEN for a moment inside the kernel, but never listened.
func TestFailedListen(t *testing.T) {
	c := openSource(t, Options{}, true)
	fds := [2]int{-1, -1}
	closeAll := func() {
		for i, fd := range fds {
			if fd >= 0 {
				unix.Close(fd)
				fds[i] = -1
			}
		}
	}
	defer closeAll()
	var port int
	for i := range fds {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		fds[i] = fd
		// SO_REUSEADDR on both lets them bind one port; only one may listen.
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err != nil {
			t.Fatal(err)
		}
		if err := unix.Bind(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
			t.Fatal(err)
		}
		port = int(localPort(t, fd))
	}
	if err := unix.Listen(fds[0], 1); err != nil {
		t.Fatal(err)
	}
	if err := unix.Listen(fds[1], 1); !errors.Is(err, unix.EADDRINUSE) {
		t.Fatalf("second listen: %v, want EADDRINUSE", err)
	}
	good, bad := socketInode(t, fds[0]), socketInode(t, fds[1])
	closeAll()
	evs := c.wait(t, byPort(inventory.TCP, uint16(port), os.Getpid()), 2, 5*time.Second)
	for _, e := range evs {
		if e.Inode == bad {
			t.Errorf("the failed listen was reported: %+v", e)
		}
	}
	checkPair(t, evs, want{proto: inventory.TCP, family: inventory.IPv4, addr: netip.MustParseAddr("127.0.0.1"),
		port: uint16(port), pid: os.Getpid(), netns: ownNetNS(t), inode: good})
}

// From listen() returning to Read returning its event, one listener at a
// time. The figures are logged, not judged: speed is the benchmarks'
// (bench/eventbench); this test checks that every listener's event comes.
// One that the kernel could not put in the ring buffer (other tests on the
// machine may flood it with binds) must show in the drop counter, which
// is what makes the daemon reconcile.
func TestLatency(t *testing.T) {
	c := openSource(t, Options{}, true)
	const n = 200
	lat := make([]time.Duration, 0, n)
	pid := os.Getpid()
	lost := 0
	for range n {
		drops := c.s.Drops()
		t0 := time.Now()
		l, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		ino := inodeOf(l.(*net.TCPListener))
		timeout := time.After(5 * time.Second)
	wait:
		for {
			select {
			case ev := <-c.ch:
				if ev.PID == pid && ev.Inode == ino && ev.Kind == Opened {
					lat = append(lat, time.Since(t0))
					break wait
				}
			case <-timeout:
				if c.s.Drops() == drops {
					t.Fatalf("no opened event for inode %d, and no drop counted", ino)
				}
				lost++
				break wait
			}
		}
		l.Close()
	}
	if len(lat) == 0 {
		t.Fatalf("every one of %d events was dropped", n)
	}
	slices.Sort(lat)
	t.Logf("listen() to Read, %d listeners (%d lost to counted drops): p50 %v, p99 %v, max %v",
		len(lat), lost, lat[len(lat)/2], lat[len(lat)*99/100], lat[len(lat)-1])
}

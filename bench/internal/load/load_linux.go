package load

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Load is a running load. Stop it to kill its holders.
type Load struct {
	Summary Summary

	plan   *Plan
	opts   Options
	cmds   []*exec.Cmd
	files  [][2]*os.File // per item; the second is the other end of a pipe or pair
	kept   []*os.File    // loadgen's own fds, closed by Stop
	tmp    string
	groups map[int32]netip.AddrPort
	alloc  map[Kind]*allocator
}

// Start builds the load of plan p. On error, everything started so far is
// stopped. ctx cancels the build, not the running load.
func Start(ctx context.Context, p *Plan, o Options) (l *Load, err error) {
	if len(o.Holder) == 0 {
		o.Holder = []string{"sleep", "infinity"}
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
	t0 := time.Now()
	if err := CheckLimits(p, o.Log); err != nil {
		return nil, err
	}
	path, err := exec.LookPath(o.Holder[0])
	if err != nil {
		return nil, fmt.Errorf("finding the holder command: %w", err)
	}
	l = &Load{
		plan:   p,
		opts:   o,
		files:  make([][2]*os.File, len(p.Items)),
		groups: map[int32]netip.AddrPort{},
		alloc: map[Kind]*allocator{
			// Each kind gets its own loopback /16, so kinds do not compete
			// for ports, and many addresses get past the 64k ports of one.
			TCPListen:    newAllocator(netip.AddrFrom4([4]byte{127, 42, 0, 1}), 20000, 1000),
			TCPReusePort: newAllocator(netip.AddrFrom4([4]byte{127, 45, 0, 1}), 20000, 1000),
			TCPAcceptor:  newAllocator(netip.AddrFrom4([4]byte{127, 41, 0, 1}), 19000, 1),
			TCPListen6:   newAllocator(netip.IPv6Loopback(), 21000, 11000),
			UDPBound:     newAllocator(netip.AddrFrom4([4]byte{127, 43, 0, 1}), 20000, 1000),
			UDPConnected: newAllocator(netip.AddrFrom4([4]byte{127, 44, 0, 1}), 20000, 1000),
			UDPBound6:    newAllocator(netip.IPv6Loopback(), 21000, 11000),
		},
	}
	defer func() {
		if err != nil {
			l.Stop()
			l = nil
		}
	}()
	l.Summary.LoadgenPID = os.Getpid()
	if p.Count[RegularFile] > 0 {
		if l.tmp, err = os.MkdirTemp("", "porteiro-loadgen-"); err != nil {
			return l, err
		}
		if err = os.WriteFile(filepath.Join(l.tmp, "data"), []byte("porteiro loadgen\n"), 0o600); err != nil {
			return l, err
		}
	}
	for _, id := range p.CreateParent {
		if err = l.create(id); err != nil {
			return l, err
		}
	}
	every := max(len(p.Holds)/10, 1)
	for i := range p.Holds {
		if err = ctx.Err(); err != nil {
			return l, err
		}
		for _, id := range p.Create[i] {
			if err = l.create(id); err != nil {
				return l, fmt.Errorf("holder %d: %w", i, err)
			}
		}
		extra := make([]*os.File, 0, len(p.Holds[i]))
		for _, id := range p.Holds[i] {
			for _, f := range l.files[id] {
				if f != nil {
					extra = append(extra, f)
				}
			}
		}
		cmd := &exec.Cmd{
			Path:       path,
			Args:       o.Holder,
			Env:        append(os.Environ(), o.HolderEnv...),
			ExtraFiles: extra,
			// If loadgen dies without cleaning up, the kernel kills the
			// holders.
			SysProcAttr: &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL},
		}
		if err = cmd.Start(); err != nil {
			return l, fmt.Errorf("starting holder %d: %w", i, err)
		}
		l.cmds = append(l.cmds, cmd)
		l.Summary.PIDs = append(l.Summary.PIDs, cmd.Process.Pid)
		for _, id := range p.Release[i] {
			l.closeItem(id)
		}
		if (i+1)%every == 0 {
			fmt.Fprintf(o.Log, "loadgen: %d/%d holders started\n", i+1, len(p.Holds))
		}
	}
	s := &l.Summary
	s.Sockets, s.Shared, s.ReuseGroups, s.OtherFDs, s.Count = p.Sockets, p.Shared, p.ReuseGroups, p.OtherFDs, p.Count
	s.Setup = time.Since(t0)
	return l, nil
}

// Stop kills the holders by pid, waits for them and closes loadgen's fds.
// It is safe to call more than once.
func (l *Load) Stop() {
	for _, c := range l.cmds {
		_ = c.Process.Kill()
	}
	for _, c := range l.cmds {
		_ = c.Wait()
	}
	l.cmds = nil
	for id := range l.files {
		l.closeItem(int32(id))
	}
	for _, f := range l.kept {
		f.Close()
	}
	l.kept = nil
	if l.tmp != "" {
		os.RemoveAll(l.tmp)
		l.tmp = ""
	}
}

func (l *Load) closeItem(id int32) {
	for j, f := range l.files[id] {
		if f != nil {
			f.Close()
			l.files[id][j] = nil
		}
	}
}

// create makes item id (and, for a client, its server end).
func (l *Load) create(id int32) error {
	it := l.plan.Items[id]
	var fds [2]int
	fds[1] = -1
	var err error
	switch it.Kind {
	case TCPWho:
		var fd int
		fd, err = listenTCP(netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), 0), false)
		if err == nil {
			l.Summary.WhoAddr, err = localAddr(fd)
		}
		fds[0] = fd
	case TCPListen, TCPListen6, TCPAcceptor:
		fds[0], err = l.bindNext(it.Kind, func(a netip.AddrPort) (int, error) { return listenTCP(a, false) })
		if it.Kind == TCPAcceptor && err == nil {
			l.groups[id], err = localAddr(fds[0])
		}
	case TCPReusePort:
		g := id
		if it.Peer >= 0 {
			g = it.Peer
		}
		if a, ok := l.groups[g]; ok {
			fds[0], err = listenTCP(a, true)
		} else {
			fds[0], err = l.bindNext(it.Kind, func(a netip.AddrPort) (int, error) { return listenTCP(a, true) })
			if err == nil {
				l.groups[g], err = localAddr(fds[0])
			}
		}
	case TCPClient:
		// The server end is the item after its client (see NewPlan).
		fds[0], fds[1], err = l.connectPair(it.Peer)
		if err == nil {
			l.files[id+1][0] = os.NewFile(uintptr(fds[1]), "tcp-server")
			fds[1] = -1
		}
	case UDPBound, UDPBound6:
		fds[0], err = l.bindNext(it.Kind, func(a netip.AddrPort) (int, error) { return bindUDP(a, netip.AddrPort{}) })
	case UDPConnected:
		// Nothing needs to answer: a connected UDP socket only records its
		// peer. Port 9 is discard.
		peer := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), 9)
		fds[0], err = l.bindNext(it.Kind, func(a netip.AddrPort) (int, error) { return bindUDP(a, peer) })
	case DevNull:
		fds[0], err = unix.Open("/dev/null", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	case RegularFile:
		fds[0], err = unix.Open(filepath.Join(l.tmp, "data"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	case Pipe:
		var p [2]int
		err = unix.Pipe2(p[:], unix.O_CLOEXEC)
		fds = p
	case UnixPair:
		fds, err = unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	default:
		err = fmt.Errorf("unknown kind %v", it.Kind)
	}
	if err != nil {
		return fmt.Errorf("creating %v: %w", it.Kind, err)
	}
	for j, fd := range fds {
		if fd >= 0 {
			l.files[id][j] = os.NewFile(uintptr(fd), it.Kind.String())
		}
	}
	return nil
}

// bindNext binds at the next free address of kind's allocator. An address
// in use (another program, or a second loadgen) makes it skip to the next
// IPv4 address, where the whole port span is likely free.
func (l *Load) bindNext(k Kind, bind func(netip.AddrPort) (int, error)) (int, error) {
	a := l.alloc[k]
	for {
		ap, ok := a.next()
		if !ok {
			return -1, fmt.Errorf("out of %v addresses (is another loadgen running?)", k)
		}
		fd, err := bind(ap)
		if err == nil {
			return fd, nil
		}
		if !errors.Is(err, unix.EADDRINUSE) {
			return -1, fmt.Errorf("binding %v: %w", ap, err)
		}
		a.skipAddress()
	}
}

// connectPair connects a client to the acceptor item acc and accepts it. The
// acceptor has nothing else queued, so the accepted socket is the peer.
func (l *Load) connectPair(acc int32) (client, server int, err error) {
	to := l.groups[acc]
	lf := l.files[acc][0]
	client, err = unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, -1, err
	}
	// RST on close: no TIME-WAIT sockets left behind after the run.
	linger := &unix.Linger{Onoff: 1, Linger: 0}
	if err = unix.SetsockoptLinger(client, unix.SOL_SOCKET, unix.SO_LINGER, linger); err != nil {
		unix.Close(client)
		return -1, -1, err
	}
	if err = unix.Connect(client, sockaddr(to)); err != nil {
		unix.Close(client)
		return -1, -1, fmt.Errorf("connecting to %v: %w", to, err)
	}
	server, _, err = unix.Accept4(int(lf.Fd()), unix.SOCK_CLOEXEC)
	if err != nil {
		unix.Close(client)
		return -1, -1, fmt.Errorf("accepting on %v: %w", to, err)
	}
	_ = unix.SetsockoptLinger(server, unix.SOL_SOCKET, unix.SO_LINGER, linger)
	return client, server, nil
}

func listenTCP(a netip.AddrPort, reusePort bool) (int, error) {
	fd, err := socketFor(a, unix.SOCK_STREAM)
	if err != nil {
		return -1, err
	}
	if err = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); err == nil && reusePort {
		err = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEPORT, 1)
	}
	if err == nil {
		err = unix.Bind(fd, sockaddr(a))
	}
	if err == nil {
		err = unix.Listen(fd, 128)
	}
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func bindUDP(a, peer netip.AddrPort) (int, error) {
	fd, err := socketFor(a, unix.SOCK_DGRAM)
	if err != nil {
		return -1, err
	}
	err = unix.Bind(fd, sockaddr(a))
	if err == nil && peer.IsValid() {
		err = unix.Connect(fd, sockaddr(peer))
	}
	if err != nil {
		unix.Close(fd)
		return -1, err
	}
	return fd, nil
}

func socketFor(a netip.AddrPort, typ int) (int, error) {
	if a.Addr().Is4() {
		return unix.Socket(unix.AF_INET, typ|unix.SOCK_CLOEXEC, 0)
	}
	fd, err := unix.Socket(unix.AF_INET6, typ|unix.SOCK_CLOEXEC, 0)
	if err == nil {
		err = unix.SetsockoptInt(fd, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, 1)
		if err != nil {
			unix.Close(fd)
			return -1, err
		}
	}
	return fd, err
}

func sockaddr(a netip.AddrPort) unix.Sockaddr {
	if a.Addr().Is4() {
		return &unix.SockaddrInet4{Port: int(a.Port()), Addr: a.Addr().As4()}
	}
	return &unix.SockaddrInet6{Port: int(a.Port()), Addr: a.Addr().As16()}
}

func localAddr(fd int) (netip.AddrPort, error) {
	sa, err := unix.Getsockname(fd)
	if err != nil {
		return netip.AddrPort{}, err
	}
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)), nil
	case *unix.SockaddrInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr), uint16(sa.Port)), nil
	}
	return netip.AddrPort{}, fmt.Errorf("unexpected socket address %T", sa)
}

// allocator hands out addr:port pairs: span ports on one address, then the
// next address. IPv6 has only ::1, so it has one address.
type allocator struct {
	base      netip.Addr
	port0     int
	span      int
	n         int
	addresses int
}

func newAllocator(base netip.Addr, port0, span int) *allocator {
	a := &allocator{base: base, port0: port0, span: span, addresses: 250 * 250}
	if base.Is6() {
		a.addresses = 1
	}
	return a
}

func (a *allocator) next() (netip.AddrPort, bool) {
	i := a.n / a.span
	if i >= a.addresses {
		return netip.AddrPort{}, false
	}
	port := a.port0 + a.n%a.span
	a.n++
	if a.base.Is6() {
		return netip.AddrPortFrom(a.base, uint16(port)), true
	}
	b := a.base.As4()
	// 127.B.x.y with y in 1..250: no .0 or .255 last octets.
	b[2] += byte(i / 250)
	b[3] = byte(1 + i%250)
	return netip.AddrPortFrom(netip.AddrFrom4(b), uint16(port)), true
}

// skipAddress moves to the first port of the next IPv4 address.
func (a *allocator) skipAddress() {
	if !a.base.Is6() {
		a.n = (a.n + a.span - 1) / a.span * a.span
	}
}

// CheckLimits checks the kernel and process limits against the plan and
// raises RLIMIT_NOFILE where it can. The error says what to change.
func CheckLimits(p *Plan, log io.Writer) error {
	need := uint64(max(p.MaxHolderFDs+3, p.ParentFDs) + 256)
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return fmt.Errorf("reading RLIMIT_NOFILE: %w", err)
	}
	if rl.Max < need {
		nrOpen := readUint("/proc/sys/fs/nr_open")
		if nrOpen != 0 && nrOpen < need {
			return fmt.Errorf("a process needs %d fds but fs.nr_open is %d: raise it with sysctl fs.nr_open=%d", need, nrOpen, need)
		}
		rl.Max = need
	}
	// Set it even when it is already high enough, so that Go does not
	// restore the original soft limit in the holders.
	rl.Cur = max(rl.Cur, need)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return fmt.Errorf("raising the open files limit to %d: %w (run as root or raise ulimit -Hn)", need, err)
	}
	total := uint64(p.Sockets + p.OtherFDs + 3*len(p.Holds) + p.ParentFDs)
	if fileMax := readUint("/proc/sys/fs/file-max"); fileMax != 0 {
		inUse := uint64(0)
		if b, err := os.ReadFile("/proc/sys/fs/file-nr"); err == nil {
			if f := strings.Fields(string(b)); len(f) > 0 {
				inUse, _ = strconv.ParseUint(f[0], 10, 64)
			}
		}
		if inUse+total+total/10 > fileMax {
			return fmt.Errorf("the load needs %d open files and %d are in use, but fs.file-max is %d: raise it with sysctl fs.file-max", total, inUse, fileMax)
		}
	}
	if pidMax := readUint("/proc/sys/kernel/pid_max"); pidMax != 0 {
		running := uint64(countProcs())
		if running+uint64(len(p.Holds))+256 > pidMax {
			return fmt.Errorf("%d processes run and the load adds %d, but kernel.pid_max is %d: raise it", running, len(p.Holds), pidMax)
		}
	}
	if os.Geteuid() != 0 {
		var np syscall.Rlimit
		if syscall.Getrlimit(unix.RLIMIT_NPROC, &np) == nil && np.Cur != unix.RLIM_INFINITY && np.Cur < uint64(len(p.Holds)+256) {
			return fmt.Errorf("RLIMIT_NPROC is %d, the load needs %d processes: raise ulimit -u", np.Cur, len(p.Holds))
		}
	}
	pairs := uint64(p.Count[TCPClient])
	if ct := readUint("/proc/sys/net/netfilter/nf_conntrack_max"); ct != 0 && pairs > ct*8/10 {
		fmt.Fprintf(log, "loadgen: warning: %d connections and nf_conntrack_max is %d; connections may be dropped\n", pairs, ct)
	}
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		var lo, hi int
		if _, err := fmt.Sscan(string(b), &lo, &hi); err == nil && hi-lo+1 < p.Config.PairsPerAcceptor {
			return fmt.Errorf("net.ipv4.ip_local_port_range has %d ports, fewer than %d connections per acceptor", hi-lo+1, p.Config.PairsPerAcceptor)
		}
	}
	return nil
}

func readUint(path string) uint64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
	return n
}

func countProcs() int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range ents {
		if c := e.Name()[0]; c >= '0' && c <= '9' {
			n++
		}
	}
	return n
}

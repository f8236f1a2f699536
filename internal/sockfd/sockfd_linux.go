package sockfd

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/porteiro/porteiro/internal/procfs"
)

// ErrRefused matches the errors of a kernel that will not hand over the
// process's fds: pidfd_getfd refused (EPERM, without the right to ptrace
// the process), not implemented (ENOSYS, before Linux 5.6), or the fd
// directory unreadable. The caller then lists sockets another way.
var ErrRefused = errors.New("pidfd_getfd refused")

// ErrNoProcess matches the errors for a process that does not exist, or
// exited while its fds were read.
var ErrNoProcess = errors.New("no such process")

// ErrTooMany matches the error for a process with more than MaxFDs fds.
var ErrTooMany = errors.New("too many fds")

// MaxFDs bounds how many fd entries one process may have before Sockets
// gives up: the default RLIMIT_NOFILE hard limit (fs.nr_open).
const MaxFDs = 1 << 20

// Socket is what one TCP or UDP socket says of itself.
type Socket struct {
	// FD is the process's descriptor for the socket.
	FD int
	// Inode and UID are those of the socket's inode (fstat), the same the
	// kernel reports in sock_diag.
	Inode uint64
	UID   uint32
	// Family is AF_INET or AF_INET6; Protocol IPPROTO_TCP or IPPROTO_UDP.
	Family   uint16
	Protocol uint8
	// MPTCP is true for a Multipath TCP socket, whose Protocol says TCP.
	MPTCP bool
	// State is the kernel state (include/net/tcp_states.h): TCP_INFO's
	// tcpi_state for TCP; for UDP, as sock_diag says: TCP_ESTABLISHED (1)
	// when connected, TCP_CLOSE (7) when not.
	State uint8
	// Local is the bound address; Remote the peer, or the unspecified
	// address of the family and port 0 when not connected (as sock_diag).
	Local, Remote netip.AddrPort
	// IfIndex is the device the socket is bound to (SO_BINDTODEVICE), 0 if
	// none; Interface its name in the socket's own network namespace.
	IfIndex   uint32
	Interface string
	// V6Only is IPV6_V6ONLY, read for IPv6 sockets bound to the wildcard.
	V6Only bool
	// NetNS is the inode of the socket's network namespace, 0 when
	// SIOCGSKNS was refused (it needs CAP_NET_ADMIN over the namespace).
	NetNS uint64
}

// Kernel socket states (include/net/tcp_states.h); UDP sockets take the
// first two, as sock_diag reports them.
const (
	stateEstablished = 1
	stateClose       = 7
	stateListen      = 10
)

// Proc is one process, pinned by a pidfd: its pid cannot be reused while
// the Proc is open.
type Proc struct {
	pid   int
	pidfd int
	dbuf  []byte
	lbuf  [64]byte
	sbuf  [128]byte
	st    unix.Stat_t
	// netns maps a namespace's cookie (SO_NETNS_COOKIE, one getsockopt)
	// to its inode (SIOCGSKNS, fstat and close: three calls and a file),
	// so that the second socket of a namespace costs one call.
	netns map[uint64]uint64
}

// Open opens a pidfd for pid. The error matches ErrNoProcess when there is
// no such process (or pid is a thread, not a process), ErrRefused when the
// kernel has no pidfd_open.
func Open(pid int) (*Proc, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, fmt.Errorf("pidfd_open %d: %w", pid, classify(err))
	}
	return &Proc{pid: pid, pidfd: fd}, nil
}

// classify adds the package's sentinel to a kernel error.
func classify(err error) error {
	switch {
	case errors.Is(err, unix.EPERM), errors.Is(err, unix.EACCES), errors.Is(err, unix.ENOSYS):
		return fmt.Errorf("%w: %w", ErrRefused, err)
	case errors.Is(err, unix.ESRCH), errors.Is(err, unix.ENOENT), errors.Is(err, unix.EINVAL):
		return fmt.Errorf("%w: %w", ErrNoProcess, err)
	}
	return err
}

// PID returns the process id.
func (p *Proc) PID() int { return p.pid }

// PIDFD returns the pidfd, for NetNS. It stays the Proc's.
func (p *Proc) PIDFD() int { return p.pidfd }

// Alive reports whether the process still runs. Details read from
// /proc/PID before a true Alive are the pinned process's, not those of a
// new process that reused its pid.
func (p *Proc) Alive() bool {
	err := unix.PidfdSendSignal(p.pidfd, 0, nil, 0)
	return err == nil || errors.Is(err, unix.EPERM)
}

// Close closes the pidfd.
func (p *Proc) Close() error {
	if p.pidfd < 0 {
		return nil
	}
	err := unix.Close(p.pidfd)
	p.pidfd = -1
	return err
}

// Sockets appends to out the process's TCP and UDP sockets, IPv4 and IPv6,
// in fd order, and returns it. It reads procRoot/PID/fd, which must be the
// procfs of the pid namespace the pid belongs to, and asks each socket
// through a duplicate that it closes at once. Sockets of other families
// cost one readlink, a pidfd_getfd and one getsockopt each.
func (p *Proc) Sockets(procRoot string, out []Socket) ([]Socket, error) {
	dir := procRoot + "/" + strconv.Itoa(p.pid) + "/fd"
	dfd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return out, fmt.Errorf("opening %s: %w", dir, classify(err))
	}
	defer unix.Close(dfd)
	if p.dbuf == nil {
		p.dbuf = make([]byte, 16*1024)
	}
	var (
		fds  int
		ferr error
	)
	visit := func(name []byte) {
		if ferr != nil {
			return
		}
		fd, ok := parseFD(name)
		if !ok {
			return
		}
		if fds++; fds > MaxFDs {
			ferr = fmt.Errorf("reading %s: %w: more than %d", dir, ErrTooMany, MaxFDs)
			return
		}
		if !p.isSocket(dfd, name) {
			return
		}
		var s Socket
		ok, err := p.ask(fd, &s)
		if err != nil {
			ferr = err
			return
		}
		if ok {
			out = append(out, s)
		}
	}
	for ferr == nil {
		n, err := unix.Getdents(dfd, p.dbuf)
		if err != nil {
			return out, fmt.Errorf("reading %s: %w", dir, classify(err))
		}
		if n <= 0 {
			break
		}
		parseDirents(p.dbuf[:n], visit)
	}
	return out, ferr
}

// isSocket reads the link of fd entry name in the fd directory dfd.
func (p *Proc) isSocket(dfd int, name []byte) bool {
	var cname [16]byte
	if len(name) >= len(cname) {
		return false
	}
	copy(cname[:], name)
	r, _, e := unix.Syscall6(unix.SYS_READLINKAT, uintptr(dfd), uintptr(unsafe.Pointer(&cname[0])),
		uintptr(unsafe.Pointer(&p.lbuf[0])), uintptr(len(p.lbuf)), 0, 0)
	if e != 0 || int(r) <= 0 {
		return false // closed meanwhile
	}
	_, ok := procfs.ParseSocketLink(p.lbuf[:r])
	return ok
}

// ask duplicates the process's fd and fills s from the duplicate. It
// reports false for what is not a TCP or UDP socket of AF_INET or AF_INET6,
// and for an fd closed meanwhile.
func (p *Proc) ask(fd int, s *Socket) (bool, error) {
	dup, err := unix.PidfdGetfd(p.pidfd, fd, 0)
	if err != nil {
		if errors.Is(err, unix.EBADF) {
			return false, nil // closed since the readlink
		}
		return false, fmt.Errorf("pidfd_getfd %d of pid %d: %w", fd, p.pid, classify(err))
	}
	defer unix.Close(dup)
	return p.query(dup, fd, s), nil
}

// query asks the socket dup (a duplicate of the process's fd) about
// itself. The family is asked first, so that unix and netlink sockets,
// the bulk of most processes' sockets, cost one getsockopt.
func (p *Proc) query(dup, fd int, s *Socket) bool {
	dom, err := unix.GetsockoptInt(dup, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil || (dom != unix.AF_INET && dom != unix.AF_INET6) {
		return false
	}
	typ, err := unix.GetsockoptInt(dup, unix.SOL_SOCKET, unix.SO_TYPE)
	if err != nil {
		return false
	}
	proto, err := unix.GetsockoptInt(dup, unix.SOL_SOCKET, unix.SO_PROTOCOL)
	if err != nil {
		return false
	}
	mptcp := false
	switch {
	case typ == unix.SOCK_STREAM && proto == unix.IPPROTO_TCP:
	case typ == unix.SOCK_STREAM && proto == unix.IPPROTO_MPTCP:
		// Go's listeners are MPTCP by default. sock_diag's TCP dump
		// lists the socket's first subflow, with the socket's inode.
		proto, mptcp = unix.IPPROTO_TCP, true
	case typ == unix.SOCK_DGRAM && proto == unix.IPPROTO_UDP:
	default:
		return false // raw, ICMP, SCTP, UDP-Lite: not in sock_diag's TCP and UDP dumps
	}
	if unix.Fstat(dup, &p.st) != nil {
		return false
	}
	*s = Socket{FD: fd, Inode: p.st.Ino, UID: p.st.Uid, Family: uint16(dom), Protocol: uint8(proto), MPTCP: mptcp}
	fam, local, ok := p.name(dup, unix.SYS_GETSOCKNAME)
	if !ok || fam != s.Family {
		return false
	}
	s.Local = local
	if proto == unix.IPPROTO_TCP {
		st, ok := tcpState(dup)
		if !ok {
			return false
		}
		s.State = st
	}
	connected := false
	if s.State != stateListen { // a listener has no peer: save the call
		fam, remote, ok := p.peer(dup, dom)
		if connected = ok && fam == s.Family; connected {
			s.Remote = remote
		}
	}
	if !connected {
		if dom == unix.AF_INET {
			s.Remote = netip.AddrPortFrom(netip.IPv4Unspecified(), 0)
		} else {
			s.Remote = netip.AddrPortFrom(netip.IPv6Unspecified(), 0)
		}
	}
	if proto == unix.IPPROTO_UDP {
		s.State = stateClose
		if connected {
			s.State = stateEstablished
		}
	}
	if idx, err := unix.GetsockoptInt(dup, unix.SOL_SOCKET, unix.SO_BINDTOIFINDEX); err == nil && idx > 0 {
		s.IfIndex = uint32(idx)
		s.Interface, _ = unix.GetsockoptString(dup, unix.SOL_SOCKET, unix.SO_BINDTODEVICE)
	}
	if dom == unix.AF_INET6 && s.Local.Addr().IsUnspecified() {
		v, err := unix.GetsockoptInt(dup, unix.IPPROTO_IPV6, unix.IPV6_V6ONLY)
		s.V6Only = err == nil && v != 0
	}
	s.NetNS = p.netnsOf(dup)
	return true
}

// netnsOf returns the inode of the network namespace of socket fd, or 0
// when SIOCGSKNS is refused.
func (p *Proc) netnsOf(fd int) uint64 {
	cookie, cerr := unix.GetsockoptUint64(fd, unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
	if cerr == nil {
		if ino, ok := p.netns[cookie]; ok {
			return ino
		}
	}
	nsfd, err := unix.IoctlRetInt(fd, unix.SIOCGSKNS)
	if err != nil {
		return 0
	}
	defer unix.Close(nsfd)
	if unix.Fstat(nsfd, &p.st) != nil {
		return 0
	}
	if cerr == nil { // Linux 5.14 and later
		if p.netns == nil {
			p.netns = make(map[uint64]uint64, 1)
		}
		p.netns[cookie] = p.st.Ino
	}
	return p.st.Ino
}

// name runs getsockname or getpeername into the Proc's buffer.
func (p *Proc) name(fd int, trap uintptr) (uint16, netip.AddrPort, bool) {
	n := uint32(len(p.sbuf))
	_, _, e := unix.Syscall(trap, uintptr(fd), uintptr(unsafe.Pointer(&p.sbuf[0])), uintptr(unsafe.Pointer(&n)))
	if e != 0 {
		return 0, netip.AddrPort{}, false
	}
	return parseSockaddr(p.sbuf[:min(int(n), len(p.sbuf))])
}

// peer reads the peer's address with SO_PEERNAME rather than
// getpeername(2): the kernel then answers for a TCP socket that is still
// connecting (SYN-SENT), whose peer sock_diag reports, where getpeername
// says ENOTCONN. The length must be that of the family's sockaddr exactly.
func (p *Proc) peer(fd, family int) (uint16, netip.AddrPort, bool) {
	n := uint32(unix.SizeofSockaddrInet4)
	if family == unix.AF_INET6 {
		n = unix.SizeofSockaddrInet6
	}
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.SOL_SOCKET, unix.SO_PEERNAME,
		uintptr(unsafe.Pointer(&p.sbuf[0])), uintptr(unsafe.Pointer(&n)), 0)
	if e != 0 {
		return 0, netip.AddrPort{}, false
	}
	return parseSockaddr(p.sbuf[:min(int(n), len(p.sbuf))])
}

// tcpState reads tcpi_state, the first byte of struct tcp_info: the kernel
// copies as much of the struct as it is asked for.
func tcpState(fd int) (uint8, bool) {
	var b [8]byte
	n := uint32(1)
	_, _, e := unix.Syscall6(unix.SYS_GETSOCKOPT, uintptr(fd), unix.IPPROTO_TCP, unix.TCP_INFO,
		uintptr(unsafe.Pointer(&b[0])), uintptr(unsafe.Pointer(&n)), 0)
	if e != 0 || n < 1 {
		return 0, false
	}
	return b[0], true
}

// NetNS returns a new fd (O_CLOEXEC) of the network namespace of the
// socket that the process of pidfd holds as fd, and the namespace's inode.
// The fd is the caller's to close; it can be given to setns(2) to enter a
// namespace that only a socket leads to (no process in it, no mount).
func NetNS(pidfd, fd int) (nsfd int, inode uint64, err error) {
	dup, err := unix.PidfdGetfd(pidfd, fd, 0)
	if err != nil {
		return -1, 0, fmt.Errorf("pidfd_getfd %d: %w", fd, classify(err))
	}
	defer unix.Close(dup)
	nsfd, err = unix.IoctlRetInt(dup, unix.SIOCGSKNS)
	if err != nil {
		return -1, 0, fmt.Errorf("ioctl SIOCGSKNS on fd %d: %w", fd, classify(err))
	}
	var st unix.Stat_t
	if err := unix.Fstat(nsfd, &st); err != nil {
		unix.Close(nsfd)
		return -1, 0, fmt.Errorf("fstat of the namespace of fd %d: %w", fd, err)
	}
	return nsfd, st.Ino, nil
}

// NetNSOf is NetNS for pid's fd, through a pidfd of its own.
func NetNSOf(pid, fd int) (nsfd int, inode uint64, err error) {
	p, err := Open(pid)
	if err != nil {
		return -1, 0, err
	}
	defer p.Close()
	return NetNS(p.pidfd, fd)
}

// List returns the TCP and UDP sockets of pid: Open, Sockets and Close.
func List(procRoot string, pid int) ([]Socket, error) {
	p, err := Open(pid)
	if err != nil {
		return nil, err
	}
	defer p.Close()
	return p.Sockets(procRoot, nil)
}

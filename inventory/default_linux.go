package inventory

import (
	"context"
	"errors"
	"fmt"
	"golang.org/x/sys/unix"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"github.com/porteiro/porteiro/internal/procfs"
	"github.com/porteiro/porteiro/internal/procnet"
	"github.com/porteiro/porteiro/internal/sockdiag"
)

// DefaultSource returns a source that dumps sockets through sock_diag
// netlink and falls back to /proc/net when netlink is refused.
func DefaultSource(procRoot string) SocketSource {
	return &autoSource{nl: NewNamespacesSource(procRoot), proc: &ProcNetSource{ProcRoot: procRoot}}
}

// DefaultResolver returns the owner pipeline with the task-file iterator
// as its first source for the live system, and the /proc walk alone for any
// other procfs root (a fixture tree), which the kernel's iterator knows
// nothing of. PORTEIRO_OWNERS=procfs in the environment forces the walk, to
// compare the two.
func DefaultResolver(procRoot string) OwnerResolver {
	return &Resolver{ProcRoot: procRoot,
		Iterator: procRoot == "/proc" && os.Getenv("PORTEIRO_OWNERS") != "procfs"}
}

// NamespacesOf returns the source of every network namespace behind src,
// a source from DefaultSource, or nil for any other source.
func NamespacesOf(src SocketSource) *NamespacesSource {
	if a, ok := src.(*autoSource); ok {
		if n, ok := a.nl.(*NamespacesSource); ok {
			return n
		}
	}
	return nil
}

type autoSource struct {
	nl   SocketSource // netlink
	proc SocketSource // the /proc/net fallback
	last string
}

func (a *autoSource) Name() string { return a.last }

// useProcessNS implements processNSUser for the netlink source.
func (a *autoSource) useProcessNS(known func(pid int) (uint64, bool)) {
	if u, ok := a.nl.(processNSUser); ok {
		u.useProcessNS(known)
	}
}

func (a *autoSource) Sockets(ctx context.Context, q Query) ([]Socket, error) {
	socks, err := a.nl.Sockets(ctx, q)
	if err == nil {
		a.last = a.nl.Name()
		return socks, nil
	}
	if ctx.Err() != nil {
		return nil, err
	}
	socks, perr := a.proc.Sockets(ctx, q)
	if perr != nil {
		return nil, errors.Join(err, perr)
	}
	a.last = a.proc.Name()
	return socks, nil
}

// takePIDs implements pidLister for the netlink source, when it answered.
func (a *autoSource) takePIDs() []int {
	if l, ok := a.nl.(pidLister); ok && a.last == a.nl.Name() {
		return l.takePIDs()
	}
	return nil
}

// liveInodes asks the source that answered last.
func (a *autoSource) liveInodes(ctx context.Context, q Query, inodes map[uint64]struct{}) (map[uint64]struct{}, error) {
	src := a.nl
	if a.last == a.proc.Name() {
		src = a.proc
	}
	if c, ok := src.(inodeChecker); ok {
		return c.liveInodes(ctx, q, inodes)
	}
	return liveBySockets(ctx, src, q, inodes)
}

// notesAndNames forwards the namespaces of the netlink source, when it
// answered.
func (a *autoSource) notesAndNames() ([]string, map[uint64]NamespaceInfo) {
	if n, ok := a.nl.(namespaceNamer); ok && a.last == a.nl.Name() {
		return n.notesAndNames()
	}
	if a.last == a.proc.Name() {
		return []string{"sockets read from /proc/net: only porteiro's own network namespace is shown"}, nil
	}
	return nil, nil
}

// readForeign forwards to the netlink source, when it answered.
func (a *autoSource) readForeign(ctx context.Context, q Query, via map[uint64]Holder) []Socket {
	if fr, ok := a.nl.(foreignReader); ok && a.last == a.nl.Name() {
		return fr.readForeign(ctx, q, via)
	}
	return nil
}

// Close closes the netlink socket.
func (a *autoSource) Close() error {
	if c, ok := a.nl.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

// NetlinkSource lists sockets with sock_diag. It keeps its netlink socket
// open between scans.
type NetlinkSource struct {
	mu   sync.Mutex
	conn *sockdiag.Conn
	// msgs is the compact form of a dump, before Sockets are built, in
	// chunks of msgChunk, kept for the next scan of a long-lived source
	// when they are few. More are dropped: they would stay live through
	// the owner lookup of a one-shot scan, where the peak memory is.
	msgs [][]diagMsg
	// dial opens the socket; nil means in porteiro's own namespace.
	dial func() (*sockdiag.Conn, error)
	// foreign is true for another namespace than porteiro's, whose
	// interface indexes name that namespace's devices.
	foreign bool
}

func (n *NetlinkSource) open() error {
	if n.conn != nil {
		return nil
	}
	dial := n.dial
	if dial == nil {
		dial = sockdiag.Dial
	}
	c, err := dial()
	if err != nil {
		return err
	}
	n.conn = c
	return nil
}

// diagMsg is a sockdiag.Msg kept compact and free of pointers (addresses
// as bytes, the protocol as a flag): a buffer of 100,000 of them is half the
// size, and the garbage collector neither scans it nor runs write barriers
// when it grows.
type diagMsg struct {
	local, remote [16]byte
	lport, rport  uint16
	udp           bool
	family, state uint8
	v6only, known bool
	ifindex, uid  uint32
	inode         uint32
}

func compactMsg(p Proto, m *sockdiag.Msg) diagMsg {
	return diagMsg{local: m.Local.Addr().As16(), remote: m.Remote.Addr().As16(),
		lport: m.Local.Port(), rport: m.Remote.Port(), udp: p == UDP,
		family: m.Family, state: m.State, v6only: m.V6Only, known: m.V6OnlyKnown,
		ifindex: m.IfIndex, uid: m.UID, inode: m.Inode}
}

// expand gives back the protocol and the message (without the queue
// sizes, which a scan does not use).
func (d *diagMsg) expand() (Proto, sockdiag.Msg) {
	addr := func(b *[16]byte) netip.Addr {
		if d.family == sockdiag.AFInet {
			return netip.AddrFrom4([4]byte(b[12:16]))
		}
		return netip.AddrFrom16(*b)
	}
	p := TCP
	if d.udp {
		p = UDP
	}
	return p, sockdiag.Msg{Family: d.family, State: d.state,
		Local:   netip.AddrPortFrom(addr(&d.local), d.lport),
		Remote:  netip.AddrPortFrom(addr(&d.remote), d.rport),
		IfIndex: d.ifindex, UID: d.uid, Inode: d.inode, V6Only: d.v6only, V6OnlyKnown: d.known}
}

// Name implements SocketSource.
func (*NetlinkSource) Name() string { return "netlink" }

// Sockets implements SocketSource.
func (n *NetlinkSource) Sockets(ctx context.Context, q Query) ([]Socket, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.open(); err != nil {
		return nil, err
	}
	filter := portFilter(q)
	if q.Mask(TCP)&^(MaskTCPListen|MaskUDPListen) != 0 && !n.foreign {
		// A dump of connections too ("list --all") fills the Sockets as
		// the messages come, in room sized from the kernel's own count
		// of every socket: at 100,000 sockets, keeping the messages until
		// the end would hold both for a moment, 5 MB more at the peak.
		c := socketCount()
		out := make([]Socket, 0, c+c/64+64)
		err := n.dump(ctx, q, filter, func(p Proto, m sockdiag.Msg) {
			// Filled in place: copying a Socket of pointers, as
			// returning one by value and appending it would, costs
			// write barriers.
			out = append(out, Socket{})
			if !fillDiag(&out[len(out)-1], p, &m, n.foreign) {
				out = out[:len(out)-1]
			}
		})
		return out, err
	}
	// Listeners are a small part of what the kernel counts: collect the
	// small messages first, then build exactly as many Sockets as needed.
	// Growing a slice of large structs would copy them over and over on a
	// host with 100,000 listeners. The messages go in chunks, which are
	// never copied, and whose room is about what the dump fills: room
	// sized from the kernel's count of every socket would be written
	// over by the allocator, which clears memory it hands out again (a
	// listing's heap is all such memory, see internal/hugeheap).
	chunks, used := n.msgs, 0
	var cur []diagMsg
	next := func() {
		if used < len(chunks) {
			cur = chunks[used][:0]
		} else {
			cur = make([]diagMsg, 0, msgChunk)
			chunks = append(chunks, cur)
		}
		used++
	}
	next()
	err := n.dump(ctx, q, filter, func(p Proto, m sockdiag.Msg) {
		if len(cur) == cap(cur) {
			chunks[used-1] = cur
			next()
		}
		cur = append(cur, compactMsg(p, &m))
	})
	chunks[used-1] = cur
	if err != nil {
		return nil, err
	}
	total := 0
	for _, c := range chunks[:used] {
		total += len(c)
	}
	out := make([]Socket, 0, total)
	for _, c := range chunks[:used] {
		for i := range c {
			p, m := c[i].expand()
			out = append(out, Socket{})
			if !fillDiag(&out[len(out)-1], p, &m, n.foreign) {
				out = out[:len(out)-1]
			}
		}
	}
	if used*msgChunk <= keepMsgs {
		n.msgs = chunks
	} else {
		n.msgs = nil
	}
	return out, nil
}

// dump runs the dumps that q asks for, one per protocol and family, and
// gives each message to fn. A failed dump closes the connection. (The
// message goes by value: a pointer to it, through a func value, would be
// one allocation per socket.)
func (n *NetlinkSource) dump(ctx context.Context, q Query, filter []byte, fn func(Proto, sockdiag.Msg)) error {
	for _, p := range []Proto{TCP, UDP} {
		if !q.WantsProto(p) {
			continue
		}
		mask := q.Mask(p)
		for _, f := range []Family{IPv4, IPv6} {
			if !q.WantsFamily(f) {
				continue
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			err := n.conn.DumpFiltered(familyNum(f), protoNum(p), uint32(mask), filter, func(m sockdiag.Msg) {
				fn(p, m)
			})
			if err != nil {
				n.conn.Close()
				n.conn = nil
				return err
			}
		}
	}
	return nil
}

// keepMsgs is how many dumped messages a source keeps room for between
// scans (about 1 MiB).
const keepMsgs = 16 << 10

// msgChunk is how many dumped messages one chunk holds (26 KB).
const msgChunk = 512

// portFilter is the kernel's filter for q.LocalPorts, or nil.
func portFilter(q Query) []byte {
	if len(q.LocalPorts) == 0 {
		return nil
	}
	rs := make([]sockdiag.PortRange, len(q.LocalPorts))
	for i, r := range q.LocalPorts {
		rs[i] = sockdiag.PortRange{Lo: r[0], Hi: r[1]}
	}
	return sockdiag.LocalPortFilter(rs)
}

// liveInodes dumps the sockets of q again and returns which of inodes are
// among them, without building Sockets.
func (n *NetlinkSource) liveInodes(ctx context.Context, q Query, inodes map[uint64]struct{}) (map[uint64]struct{}, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if err := n.open(); err != nil {
		return nil, err
	}
	live := map[uint64]struct{}{}
	filter := portFilter(q)
	for _, p := range []Proto{TCP, UDP} {
		if !q.WantsProto(p) {
			continue
		}
		for _, f := range []Family{IPv4, IPv6} {
			if !q.WantsFamily(f) {
				continue
			}
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			err := n.conn.DumpFiltered(familyNum(f), protoNum(p), uint32(q.Mask(p)), filter, func(m sockdiag.Msg) {
				if _, ok := inodes[uint64(m.Inode)]; ok {
					live[uint64(m.Inode)] = struct{}{}
				}
			})
			if err != nil {
				n.conn.Close()
				n.conn = nil
				return nil, err
			}
		}
	}
	return live, nil
}

// Close closes the netlink socket. A later Sockets opens a new one.
func (n *NetlinkSource) Close() error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.conn == nil {
		return nil
	}
	err := n.conn.Close()
	n.conn = nil
	return err
}

func familyNum(f Family) uint8 {
	if f == IPv6 {
		return sockdiag.AFInet6
	}
	return sockdiag.AFInet
}

func protoNum(p Proto) uint8 {
	if p == UDP {
		return sockdiag.ProtoUDP
	}
	return sockdiag.ProtoTCP
}

// fillDiag fills the zero Socket so from a dumped message. It reports false
// for a socket that is not shown.
func fillDiag(so *Socket, p Proto, m *sockdiag.Msg, foreign bool) bool {
	fam := IPv4
	if m.Family == sockdiag.AFInet6 {
		fam = IPv6
	}
	setSocket(so, p, fam, m.State, m.Local, m.Remote, m.UID, uint64(m.Inode))
	if so.Proto == UDP && so.Local.Port == 0 {
		return false // not bound: nothing can reach it
	}
	if fam == IPv6 && so.Local.Address.IsUnspecified() {
		if m.V6OnlyKnown {
			so.DualStack = !m.V6Only
		} else {
			so.DualStack = !bindV6Only()
		}
	}
	if m.IfIndex != 0 {
		if foreign {
			// Another namespace's device: its index means nothing here.
			so.Interface = "if" + strconv.Itoa(int(m.IfIndex))
		} else {
			so.Interface = ifName(m.IfIndex)
		}
	}
	return true
}

func newSocket(p Proto, f Family, state uint8, local, remote netip.AddrPort, uid uint32, inode uint64) Socket {
	var so Socket
	setSocket(&so, p, f, state, local, remote, uid, inode)
	return so
}

// setSocket sets the fields of the zero Socket so that every source fills.
func setSocket(so *Socket, p Proto, f Family, state uint8, local, remote netip.AddrPort, uid uint32, inode uint64) {
	so.Proto = p
	so.Family = f
	so.State = StateFromKernel(state)
	so.Local = Endpoint{Address: local.Addr(), Port: local.Port()}
	so.Remote = Endpoint{Address: remote.Addr(), Port: remote.Port()}
	so.UID = uid
	so.Inode = inode
	switch p {
	case TCP:
		so.Listening = state == TCPListen
	case UDP:
		so.Listening = state == TCPClose && local.Port() != 0
	}
}

var ifCache sync.Map

func ifName(idx uint32) string {
	if v, ok := ifCache.Load(idx); ok {
		return v.(string)
	}
	name := "if" + strconv.Itoa(int(idx))
	if ifi, err := net.InterfaceByIndex(int(idx)); err == nil {
		name = ifi.Name
	}
	ifCache.Store(idx, name)
	return name
}

// bindV6Only reads the system default for IPV6_V6ONLY, used when the
// kernel did not say (the /proc/net fallback).
func bindV6Only() bool {
	b, err := os.ReadFile("/proc/sys/net/ipv6/bindv6only")
	return err == nil && len(b) > 0 && b[0] == '1'
}

// socketCount estimates the TCP and UDP sockets of this network namespace.
func socketCount() int {
	n := 0
	var buf [4096]byte // sockstat is a few hundred bytes
	for _, f := range []string{"/proc/net/sockstat", "/proc/net/sockstat6"} {
		fd, err := unix.Open(f, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		m, err := unix.Read(fd, buf[:])
		unix.Close(fd)
		if err == nil && m > 0 {
			n += procnet.CountSockets(buf[:m])
		}
	}
	return min(n, 1<<22)
}

// KernelSocketCount is the kernel's count of this network namespace's TCP
// and UDP sockets, TIME-WAIT included (/proc/net/sockstat and sockstat6):
// what a scan of every state will hold, before it runs.
func KernelSocketCount() int { return socketCount() }

// ProcNetSource lists sockets from /proc/net/{tcp,tcp6,udp,udp6} of the
// scanning process's network namespace, or of process PID's.
type ProcNetSource struct {
	ProcRoot string
	// PID, if set, reads ProcRoot/PID/net: that process's namespace.
	PID int
}

// Name implements SocketSource.
func (*ProcNetSource) Name() string { return "procfs" }

// Sockets implements SocketSource.
func (s *ProcNetSource) Sockets(ctx context.Context, q Query) ([]Socket, error) {
	var out []Socket
	for _, p := range []Proto{TCP, UDP} {
		if !q.WantsProto(p) {
			continue
		}
		for _, f := range []Family{IPv4, IPv6} {
			if !q.WantsFamily(f) {
				continue
			}
			name := string(p)
			if f == IPv6 {
				name += "6"
			}
			path := filepath.Join(s.ProcRoot, "net", name)
			if s.PID > 0 {
				path = filepath.Join(s.ProcRoot, strconv.Itoa(s.PID), "net", name)
			}
			fh, err := os.Open(path)
			if err != nil {
				if errors.Is(err, os.ErrNotExist) && f == IPv6 {
					continue // IPv6 disabled
				}
				return nil, fmt.Errorf("opening %s: %w", path, err)
			}
			err = procnet.Parse(fh, uint32(q.Mask(p)), func(e procnet.Entry) {
				so := newSocket(p, f, e.State, e.Local, e.Remote, e.UID, e.Inode)
				if p == UDP && so.Local.Port == 0 {
					return
				}
				if f == IPv6 && so.Local.Address.IsUnspecified() {
					so.DualStack = !bindV6Only()
				}
				out = append(out, so)
			})
			fh.Close()
			if err != nil {
				return nil, fmt.Errorf("parsing %s: %w", path, err)
			}
		}
	}
	return out, nil
}

// liveInodes reads the tables of q again and returns which of inodes are
// in them.
func (s *ProcNetSource) liveInodes(ctx context.Context, q Query, inodes map[uint64]struct{}) (map[uint64]struct{}, error) {
	return liveBySockets(ctx, s, q, inodes)
}

func selfNetNS(procRoot string) uint64 {
	v, _ := procfs.NetNS(procRoot, "self")
	return v
}

func processAlive(procRoot string, pid int, startTicks uint64) bool {
	t, ok := procfs.StartTicks(procRoot, pid)
	return ok && t == startTicks
}

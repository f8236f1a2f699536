package top

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"github.com/porteiro/porteiro/internal/procfs"
	"github.com/porteiro/porteiro/internal/procnet"
	"github.com/porteiro/porteiro/internal/sockdiag"
	"github.com/porteiro/porteiro/inventory"
)

// connStates are the TCP states whose sockets carry a connection's
// counters: established, and the closing states, so that the bytes of a
// connection being shut down still count until it leaves them.
const connStates = 1<<inventory.TCPEstablished | 1<<inventory.TCPFinWait1 | 1<<inventory.TCPFinWait2 |
	1<<inventory.TCPCloseWait | 1<<inventory.TCPLastAck | 1<<inventory.TCPClosing

// discoverEvery is how often the sampler looks for new network
// namespaces: finding them reads a link of every process, which would be
// a fifth of a refresh's cost if done every second.
const discoverEvery = 5 * time.Second

// Sampler takes samples of the host: the listeners of every network
// namespace with their owners, through the daemon's incremental scanner
// (owners are looked up only for sockets it has not seen, or every 30 s),
// and every TCP connection on a listening port with its byte counters,
// through sock_diag dumps with INET_DIAG_INFO in each namespace that has a
// TCP listener, over the netlink sockets the scanner keeps open there.
type Sampler struct {
	procRoot string
	src      inventory.SocketSource
	ns       *inventory.NamespacesSource // nil when src is another source
	sc       *inventory.Scanner
	conn     *sockdiag.Conn // in porteiro's own namespace
	netns    uint64
	conns    []Conn
	other    []Conn // the slice handed out with the previous sample
	ranges   map[uint64]*nsPorts
	buf      [4096]byte
	// dumped lists the namespaces whose connections the last sample
	// dumped, for tests.
	dumped []uint64
}

// tcpInUse reads how many IPv4 and IPv6 TCP sockets (listening and
// connected) namespace ns has, from /proc/PID/net/sockstat{,6} of member
// ("self" for porteiro's own). known is false when it cannot tell: no
// member, a member that left the namespace (or exited, its pid reused),
// a file that does not read.
func (s *Sampler) tcpInUse(member string, ns uint64) (v4, v6 int, known bool) {
	if member == "" {
		return 0, 0, false
	}
	dir := filepath.Join(s.procRoot, member)
	if member != "self" {
		if got, err := procfs.NetNS(s.procRoot, member); err != nil || got != ns {
			return 0, 0, false
		}
	}
	var ok4, ok6 bool
	if b, err := s.readSmall(filepath.Join(dir, "net/sockstat")); err == nil {
		v4, ok4 = procnet.InUse(b, "TCP")
	}
	if b, err := s.readSmall(filepath.Join(dir, "net/sockstat6")); err == nil {
		v6, ok6 = procnet.InUse(b, "TCP6")
	} else if errors.Is(err, fs.ErrNotExist) {
		v6, ok6 = 0, true // no IPv6 in this kernel
	}
	if member != "self" {
		// The member may have changed namespace while its files were
		// read: then the counts are another namespace's.
		if got, err := procfs.NetNS(s.procRoot, member); err != nil || got != ns {
			return 0, 0, false
		}
	}
	return v4, v6, ok4 && ok6
}

// readSmall reads a /proc file of at most 4 KiB (sockstat is a few lines)
// into the sampler's buffer.
func (s *Sampler) readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	n, err := io.ReadFull(f, s.buf[:])
	if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	return s.buf[:n], nil
}

// nsPorts are the ports of one namespace's TCP listeners, by family: an
// accepted connection has its listener's family (an IPv4 client of a
// dual-stack [::] listener is an IPv6 socket), so each family's dump asks
// for its own listeners' ports, and a family without listeners is not
// dumped at all.
type nsPorts struct {
	v4, v6 []sockdiag.PortRange
}

// NewSampler returns a sampler reading processes from procRoot ("" means
// /proc). noOwners skips the owner lookup.
func NewSampler(procRoot string, noOwners bool) *Sampler {
	if procRoot == "" {
		procRoot = "/proc"
	}
	src := inventory.DefaultSource(procRoot)
	ns := inventory.NamespacesOf(src)
	if ns != nil {
		ns.DiscoverEvery = discoverEvery
	}
	return &Sampler{procRoot: procRoot, src: src, ns: ns, ranges: map[uint64]*nsPorts{},
		sc: inventory.NewScanner(inventory.Options{ProcRoot: procRoot, Source: src, Incremental: true, NoOwners: noOwners})}
}

// Close releases the netlink sockets and the scanner.
func (s *Sampler) Close() error {
	err := s.sc.Close()
	if c, ok := s.src.(io.Closer); ok {
		c.Close()
	}
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
	return err
}

// Sample takes one sample. The Conns slice of a sample is reused two
// samples later: a caller keeps at most the last two.
func (s *Sampler) Sample(ctx context.Context) (Sample, error) {
	start := time.Now()
	snap, err := s.sc.Scan(ctx, inventory.Query{})
	if err != nil {
		return Sample{}, fmt.Errorf("scanning listeners: %w", err)
	}
	if s.netns == 0 {
		s.netns, _ = procfs.NetNS(s.procRoot, "self")
	}
	if s.conn == nil {
		c, err := sockdiag.Dial()
		if err != nil {
			return Sample{}, fmt.Errorf("listing connections: %w", err)
		}
		s.conn = c
	}
	// Only connections on a listening port can have come through a
	// listener: let the kernel skip the others (outgoing connections, the
	// client ends of local ones) before it fills in their tcp_info.
	for _, r := range s.ranges {
		r.v4, r.v6 = r.v4[:0], r.v6[:0]
	}
	for i := range snap.Sockets {
		so := &snap.Sockets[i]
		if so.Proto != inventory.TCP || !so.Listening {
			continue
		}
		r := s.ranges[so.NetNS]
		if r == nil {
			r = &nsPorts{}
			s.ranges[so.NetNS] = r
		}
		pr := sockdiag.PortRange{Lo: so.Local.Port, Hi: so.Local.Port}
		if so.Family == inventory.IPv6 {
			r.v6 = append(r.v6, pr)
		} else {
			r.v4 = append(r.v4, pr)
		}
	}
	for ns, r := range s.ranges {
		if len(r.v4)+len(r.v6) == 0 {
			delete(s.ranges, ns)
		}
	}
	conns := s.other[:0]
	s.dumped = s.dumped[:0]
	var counted []uint64
	// dump reads the connections of namespace ns through c. The kernel
	// walks its whole table of established sockets for each dump, of
	// every namespace, whatever the filter; so a family whose count of
	// TCP sockets in the namespace (sockstat, read through a member) is no
	// more than its listeners has no connection, and is not dumped: a host
	// of idle containers costs no walk each.
	dump := func(ns uint64, member string, c *sockdiag.Conn) error {
		r := s.ranges[ns]
		if r == nil {
			return nil // no TCP listener: no connection to look at
		}
		// Its connections are all in this sample: dumped, or none
		// (sockstat). porteirod's closed counters count there.
		counted = append(counted, ns)
		in4, in6, known := s.tcpInUse(member, ns)
		if !known || in4 > len(r.v4) || in6 > len(r.v6) {
			s.dumped = append(s.dumped, ns)
		}
		for _, f := range [2]struct {
			fam    uint8
			ranges []sockdiag.PortRange
			inuse  int
		}{{sockdiag.AFInet, r.v4, in4}, {sockdiag.AFInet6, r.v6, in6}} {
			if len(f.ranges) == 0 || known && f.inuse <= len(f.ranges) {
				continue
			}
			err := c.Connections(f.fam, connStates, sockdiag.LocalPortFilter(f.ranges), func(m sockdiag.Msg, ci sockdiag.ConnInfo) {
				conns = append(conns, Conn{NetNS: ns, Local: m.Local, Remote: m.Remote, State: m.State,
					Cookie: ci.Cookie, Inode: uint64(m.Inode), BytesIn: ci.BytesReceived, BytesOut: ci.BytesAcked})
			})
			if err != nil {
				return err
			}
		}
		return nil
	}
	// Rates divide by the time between connection dumps, so stamp the
	// sample with this one, not with the listener scan before it.
	at := time.Now()
	if err := dump(s.netns, "self", s.conn); err != nil {
		s.conn.Close()
		s.conn = nil
		return Sample{}, fmt.Errorf("listing connections: %w", err)
	}
	var notes []string
	if s.ns != nil {
		s.ns.ForEachOther(func(ns uint64, member int, c *sockdiag.Conn) error {
			if ns == s.netns {
				return nil
			}
			n := len(conns)
			m := ""
			if member > 0 {
				m = strconv.Itoa(member)
			}
			k := len(counted)
			if err := dump(ns, m, c); err != nil {
				// A namespace whose last member exited meanwhile: its
				// listeners go at the next scan.
				conns = conns[:n]
				counted = counted[:k]
				notes = append(notes, fmt.Sprintf("connections of network namespace %d not read: %v", ns, err))
			}
			return nil
		})
	}
	s.other, s.conns = s.conns, conns
	return Sample{Time: at, Snapshot: snap, Conns: conns, ScanTime: time.Since(start), Notes: notes, ConnNetNS: counted}, nil
}

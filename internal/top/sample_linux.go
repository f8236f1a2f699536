package top

import (
	"context"
	"fmt"
	"time"

	"github.com/porteiro/porteiro/internal/procfs"
	"github.com/porteiro/porteiro/internal/sockdiag"
	"github.com/porteiro/porteiro/inventory"
)

// connStates are the TCP states whose sockets carry a connection's
// counters: established, and the closing states, so that the bytes of a
// connection being shut down still count until it leaves them.
const connStates = 1<<inventory.TCPEstablished | 1<<inventory.TCPFinWait1 | 1<<inventory.TCPFinWait2 |
	1<<inventory.TCPCloseWait | 1<<inventory.TCPLastAck | 1<<inventory.TCPClosing

// Sampler takes samples of this network namespace: the listeners with
// their owners, through the daemon's incremental scanner (owners are looked
// up again only for sockets it has not seen, or every 30 s), and every TCP
// connection with its byte counters, through one sock_diag dump with
// INET_DIAG_INFO.
type Sampler struct {
	procRoot string
	sc       *inventory.Scanner
	conn     *sockdiag.Conn
	netns    uint64
	conns    []Conn
	other    []Conn // the slice handed out with the previous sample
	ranges   []sockdiag.PortRange
}

// NewSampler returns a sampler reading processes from procRoot ("" means
// /proc). noOwners skips the owner lookup.
func NewSampler(procRoot string, noOwners bool) *Sampler {
	if procRoot == "" {
		procRoot = "/proc"
	}
	return &Sampler{procRoot: procRoot,
		sc: inventory.NewScanner(inventory.Options{ProcRoot: procRoot, Incremental: true, NoOwners: noOwners})}
}

// Close releases the netlink socket.
func (s *Sampler) Close() error {
	if s.conn != nil {
		err := s.conn.Close()
		s.conn = nil
		return err
	}
	return nil
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
	s.ranges = s.ranges[:0]
	for i := range snap.Sockets {
		if so := &snap.Sockets[i]; so.Proto == inventory.TCP && so.Listening {
			s.ranges = append(s.ranges, sockdiag.PortRange{Lo: so.Local.Port, Hi: so.Local.Port})
		}
	}
	filter := sockdiag.LocalPortFilter(s.ranges)
	conns := s.other[:0]
	// Rates divide by the time between connection dumps, so stamp the
	// sample with this one, not with the listener scan before it.
	at := time.Now()
	for _, fam := range []uint8{sockdiag.AFInet, sockdiag.AFInet6} {
		if len(s.ranges) == 0 {
			break // no TCP listener: no connection to look at
		}
		err := s.conn.Connections(fam, connStates, filter, func(m sockdiag.Msg, ci sockdiag.ConnInfo) {
			conns = append(conns, Conn{NetNS: s.netns, Local: m.Local, Remote: m.Remote, State: m.State,
				Cookie: ci.Cookie, Inode: uint64(m.Inode), BytesIn: ci.BytesReceived, BytesOut: ci.BytesAcked})
		})
		if err != nil {
			s.conn.Close()
			s.conn = nil
			return Sample{}, fmt.Errorf("listing connections: %w", err)
		}
	}
	s.other, s.conns = s.conns, conns
	return Sample{Time: at, Snapshot: snap, Conns: conns, ScanTime: time.Since(start), ConnNetNS: []uint64{s.netns}}, nil
}

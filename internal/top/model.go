// Package top is the model behind "porteiro top": it turns samples of the
// host's listeners and connections into per-listener connection counts and
// rates, with no terminal and no kernel in sight, so that every rule (which
// connection came through which listener, what a counter going backwards
// means, how long a closed listener stays on screen) is tested on plain
// values. Sampler (sample_linux.go) takes the samples; the caller owns the
// loop.
package top

import (
	"cmp"
	"net/netip"
	"slices"
	"time"

	"github.com/porteiro/porteiro/internal/localapi"
	"github.com/porteiro/porteiro/inventory"
	"github.com/porteiro/porteiro/policy"
)

// Kernel TCP states a connection sample may hold.
const (
	stateEstablished = inventory.TCPEstablished
)

// Conn is one TCP connection as the kernel reported it at a sample.
type Conn struct {
	NetNS  uint64
	Local  netip.AddrPort
	Remote netip.AddrPort
	// State is the kernel's TCP state number.
	State uint8
	// Cookie identifies the socket for the whole boot (0 when unknown).
	Cookie uint64
	Inode  uint64
	// BytesIn is tcpi_bytes_received, BytesOut tcpi_bytes_acked: both
	// count payload only, and only grow during a connection's life.
	BytesIn  uint64
	BytesOut uint64
}

// Sample is what one refresh saw.
type Sample struct {
	Time time.Time
	// Snapshot holds the listeners, with their owners.
	Snapshot *inventory.Snapshot
	Conns    []Conn
	// ScanTime is how long taking the sample took.
	ScanTime time.Duration
	// Notes say what the sample could not read.
	Notes []string
	// Closed is porteirod's count of the connections that closed, read
	// just after Conns; nil when no daemon answered (closed.go).
	Closed *localapi.ClosedDocument
	// ConnNetNS lists the network namespaces whose connections Conns
	// holds: closed connections count only there. nil means all.
	ConnNetNS []uint64
}

// Options tunes a Model. The zero value works.
type Options struct {
	// NewFor is how long a new listener stays marked new; 0 means 5s.
	NewFor time.Duration
	// GoneFor is how long a closed listener stays on the list; 0 means 5s.
	GoneFor time.Duration
	// Policy, if set, marks the listeners that break it; PolicyFile is
	// its path, for the views.
	Policy     *policy.Policy
	PolicyFile string
}

// Model remembers what the previous samples saw. Feed it samples in time
// order with Update.
//
// The slices of a View (its Listeners and their Connections) are reused
// two Updates later: a caller keeps at most the last two views. At a
// refresh a second on a host with thousands of listeners, allocating them
// afresh made most of the garbage, and the collector's work.
type Model struct {
	opts    Options
	last    time.Time
	started bool
	conns   connMap
	rows    map[inventory.Key]*rowState
	// next is reused for the connection map of the following sample.
	next    connMap
	scratch []connWork
	gen     uint64
	// Buffers reused across Updates: the views' slices (two of each,
	// alternating), the listeners' work and the port index.
	lbuf [2][]Listener
	cbuf [2][]ConnRate
	flip int
	cur  []work
	idx  portIndex
	// marks is nil without a policy.
	marks  *policyMarks
	closed closedState
}

// work is one listener of the sample being taken.
type work struct {
	row                *rowState
	dIn, dOut, newConn uint64
	conns, n           int
	list               []ConnRate
}

type connWork struct {
	li        int32 // the listener's index in this sample, or -1
	isNew     bool
	dIn, dOut uint64
}

// connMap remembers each connection's counters between samples, by its
// socket cookie, which the kernel never reuses during a boot (so a new
// connection on the same 4-tuple is a new key), and by the 4-tuple when
// the cookie is unknown. A cookie is one word: its map hashes an eighth of
// the bytes of a 4-tuple key, which shows at thousands of connections a
// second.
type connMap struct {
	byCookie map[uint64]connState
	byTuple  map[connKey]connState
}

type connKey struct {
	netns         uint64
	local, remote netip.AddrPort
}

func (m *connMap) get(c *Conn) (connState, bool) {
	if c.Cookie != 0 {
		st, ok := m.byCookie[c.Cookie]
		return st, ok
	}
	st, ok := m.byTuple[connKey{netns: c.NetNS, local: c.Local, remote: c.Remote}]
	return st, ok
}

func (m *connMap) put(c *Conn, st connState, size int) {
	if c.Cookie != 0 {
		if m.byCookie == nil {
			m.byCookie = make(map[uint64]connState, size)
		}
		m.byCookie[c.Cookie] = st
		return
	}
	if m.byTuple == nil {
		m.byTuple = map[connKey]connState{}
	}
	m.byTuple[connKey{netns: c.NetNS, local: c.Local, remote: c.Remote}] = st
}

func (m *connMap) clear() {
	clear(m.byCookie)
	clear(m.byTuple)
}

type connState struct {
	cookie  uint64
	in, out uint64
	row     *rowState // the listener it came through, nil for none
}

type rowState struct {
	gen       uint64 // the Update that last saw the listener
	sock      inventory.Socket
	firstSeen time.Time // zero for the listeners of the first sample
	goneAt    time.Time // zero while the listener exists
	totalIn   uint64
	totalOut  uint64
	totalNew  uint64
}

// NewModel returns an empty model.
func NewModel(o Options) *Model {
	if o.NewFor == 0 {
		o.NewFor = 5 * time.Second
	}
	if o.GoneFor == 0 {
		o.GoneFor = 5 * time.Second
	}
	m := &Model{opts: o, rows: map[inventory.Key]*rowState{}}
	if o.Policy != nil {
		m.marks = &policyMarks{pol: o.Policy, file: o.PolicyFile}
	}
	return m
}

// Peer is the remote address with the most traffic through a listener.
type Peer struct {
	Address     netip.Addr `json:"address"`
	Connections int        `json:"connections"`
	InPerSec    float64    `json:"bytes_in_per_sec"`
	OutPerSec   float64    `json:"bytes_out_per_sec"`
}

// ConnRate is one connection of a listener, with its rates over the last
// interval.
type ConnRate struct {
	Local     netip.AddrPort
	Remote    netip.AddrPort
	State     inventory.State
	BytesIn   uint64
	BytesOut  uint64
	InPerSec  float64
	OutPerSec float64
	// New is true when the connection opened during the last interval.
	New bool
}

// Listener is one row: a listening socket and the traffic through it.
type Listener struct {
	Socket inventory.Socket
	// Conns counts the established connections accepted through it.
	Conns     int
	NewPerSec float64
	InPerSec  float64
	OutPerSec float64
	// TotalIn and TotalOut count every byte seen since the listener was
	// first seen, including those of connections that have closed.
	TotalIn  uint64
	TotalOut uint64
	TopPeer  *Peer
	// New is true for a few seconds after the listener appeared; Gone for a
	// few seconds after it closed (its rates are then 0).
	New  bool
	Gone bool
	// Violation says how the listener breaks the policy; nil when it does
	// not, or when there is no policy.
	Violation *Violation
	// Connections lists every connection, in no particular order (see
	// SortConnections).
	Connections []ConnRate
}

// Traffic is the listener's bytes per second, both ways.
func (l *Listener) Traffic() float64 { return l.InPerSec + l.OutPerSec }

// View is the result of one Update: what a screen or a batch line shows.
type View struct {
	Time time.Time
	// Interval is the time since the previous sample; 0 for the first,
	// which has no rates yet.
	Interval  time.Duration
	ScanTime  time.Duration
	Listeners []Listener
	// Totals over every listener.
	Conns     int
	NewPerSec float64
	InPerSec  float64
	OutPerSec float64
	// Other counts the connections that came through no listener this
	// sample saw: outgoing ones, and those of listeners that closed.
	Other int
	// Privileged is false when some owners could not be read.
	Privileged bool
	Notes      []string
	// Policy is nil when no policy is loaded.
	Policy *PolicyView
	// ClosedCounted is true when porteirod's counters of closed
	// connections are in the rates (see RateNote).
	ClosedCounted bool
}

// UndercountNote is said wherever rates are shown: connections are seen
// only at samples, so one that opens and closes between two samples is
// missed, and the bytes a connection moves after its last sample are lost.
const UndercountNote = "short connections that open and close between two samples may be undercounted (rates come from sampling sock_diag; no eBPF close events)"

// Update takes a sample and returns the view of it. Rates are the change
// since the previous sample, divided by the time between the two.
func (m *Model) Update(s Sample) *View {
	now := s.Time
	first := !m.started
	var dt float64
	v := &View{Time: now, ScanTime: s.ScanTime, Privileged: true}
	if !first {
		if d := now.Sub(m.last); d > 0 {
			v.Interval = d
			dt = d.Seconds()
		}
	}
	if s.Snapshot != nil {
		v.Privileged = s.Snapshot.Privileged
		v.Notes = append(v.Notes, s.Snapshot.Notes...)
	}
	v.Notes = append(v.Notes, s.Notes...)

	// The listeners of this sample, and an index to match connections.
	cur := m.cur[:0]
	m.gen++
	idx := &m.idx
	idx.reset()
	m.flip ^= 1
	v.Listeners = m.lbuf[m.flip][:0]
	if s.Snapshot != nil {
		// Sized up front: a host may have thousands of listeners.
		if n := len(s.Snapshot.Sockets) + len(m.rows)/8; cap(v.Listeners) < n {
			v.Listeners = make([]Listener, 0, n)
		}
		for i := range s.Snapshot.Sockets {
			so := &s.Snapshot.Sockets[i]
			if !so.Listening {
				continue
			}
			k := so.Key()
			r := m.rows[k]
			if r == nil {
				r = &rowState{}
				if !first {
					r.firstSeen = now
				}
				m.rows[k] = r
			} else if r.gen == m.gen {
				continue // the same socket twice in one sample
			}
			r.gen = m.gen
			r.sock = *so
			r.goneAt = time.Time{}
			cur = append(cur, work{row: r})
			if so.Proto == inventory.TCP {
				idx.add(so, len(cur)-1)
			}
		}
	}

	// Connections: the change of each counter since the last sample.
	next := m.next
	next.clear()
	// First pass: each connection's change and listener; second pass: the
	// per-listener lists, cut from one slice (thousands of connections
	// must not cost thousands of allocations).
	cw := m.scratch[:0]
	total := 0
	for i := range s.Conns {
		c := &s.Conns[i]
		st := connState{cookie: c.Cookie, in: c.BytesIn, out: c.BytesOut}
		var dIn, dOut uint64
		isNew := false
		prev, ok := m.conns.get(c)
		switch {
		case first:
			// The first sample is the baseline: bytes moved before it
			// are not this interval's.
		case ok && prev.cookie == c.Cookie && c.BytesIn >= prev.in && c.BytesOut >= prev.out:
			dIn, dOut = c.BytesIn-prev.in, c.BytesOut-prev.out
		default:
			// New since the last sample, or a new connection on the same
			// 4-tuple (another cookie, or counters that went backwards):
			// every byte it has moved is this interval's.
			dIn, dOut = c.BytesIn, c.BytesOut
			isNew = true
		}
		li := idx.match(c)
		if li >= 0 {
			st.row = cur[li].row
		}
		next.put(c, st, len(s.Conns))
		cw = append(cw, connWork{li: int32(li), dIn: dIn, dOut: dOut, isNew: isNew})
		if li < 0 {
			if c.State == stateEstablished {
				v.Other++
			}
			continue
		}
		w := &cur[li]
		w.dIn += dIn
		w.dOut += dOut
		if isNew {
			w.newConn++
		}
		if c.State == stateEstablished {
			w.conns++
		}
		w.n++
		total++
	}
	m.scratch = cw
	m.cur = cur
	arena := m.cbuf[m.flip]
	if cap(arena) < total {
		arena = make([]ConnRate, total, total+total/4)
	}
	arena = arena[:total]
	m.cbuf[m.flip] = arena
	off := 0
	for i := range cur {
		cur[i].list = arena[off : off : off+cur[i].n]
		off += cur[i].n
	}
	for i := range cw {
		if cw[i].li < 0 {
			continue
		}
		c := &s.Conns[i]
		w := &cur[cw[i].li]
		w.list = append(w.list, ConnRate{Local: c.Local, Remote: c.Remote, State: inventory.StateFromKernel(c.State),
			BytesIn: c.BytesIn, BytesOut: c.BytesOut, InPerSec: rate(cw[i].dIn, dt), OutPerSec: rate(cw[i].dOut, dt), New: cw[i].isNew})
	}
	// Connections that closed since the last sample drop out of the map:
	// what they moved up to their last sample is already in the
	// listeners' totals, and is never taken back. What they moved after
	// it, and connections that opened and closed in between, come from
	// porteirod's counters of closed connections, when it answered.
	cd := m.closedDeltas(&s, idx, &m.conns, &next, len(cur), func(i int) *rowState { return cur[i].row })
	v.ClosedCounted = closedAvailable(&s)
	m.conns, m.next = next, m.conns

	for i := range cur {
		w := &cur[i]
		if cd != nil {
			w.dIn += cd[i].in
			w.dOut += cd[i].out
			w.newConn += cd[i].born
		}
		r := w.row
		r.totalIn += w.dIn
		r.totalOut += w.dOut
		r.totalNew += w.newConn
		l := Listener{
			Socket:      r.sock,
			Conns:       w.conns,
			NewPerSec:   rate(w.newConn, dt),
			InPerSec:    rate(w.dIn, dt),
			OutPerSec:   rate(w.dOut, dt),
			TotalIn:     r.totalIn,
			TotalOut:    r.totalOut,
			New:         !r.firstSeen.IsZero() && now.Sub(r.firstSeen) < m.opts.NewFor,
			Connections: w.list,
		}
		l.TopPeer = topPeer(l.Connections)
		v.Listeners = append(v.Listeners, l)
		v.Conns += l.Conns
		v.NewPerSec += l.NewPerSec
		v.InPerSec += l.InPerSec
		v.OutPerSec += l.OutPerSec
	}

	if m.marks != nil && s.Snapshot != nil {
		byKey, pv := m.marks.check(s.Snapshot)
		p := *pv
		if len(byKey) > 0 {
			for i := range v.Listeners {
				if x := byKey[v.Listeners[i].Socket.ListenerKey()]; x != nil {
					v.Listeners[i].Violation = x
					p.Violations++
				}
			}
		}
		v.Policy = &p
	}

	// Listeners that closed stay a few seconds, greyed, with no traffic.
	for k, r := range m.rows {
		if r.gen == m.gen {
			continue
		}
		if r.goneAt.IsZero() {
			r.goneAt = now
		}
		if now.Sub(r.goneAt) >= m.opts.GoneFor {
			delete(m.rows, k)
			continue
		}
		v.Listeners = append(v.Listeners, Listener{Socket: r.sock, TotalIn: r.totalIn, TotalOut: r.totalOut, Gone: true})
	}
	SortListeners(v.Listeners, ColTraffic, false)
	m.lbuf[m.flip] = v.Listeners
	m.last = now
	m.started = true
	return v
}

// SortConnections orders connections busiest first, then by peer. Update
// leaves them in the kernel's order: only a details view needs them sorted.
func SortConnections(cs []ConnRate) {
	slices.SortFunc(cs, func(a, b ConnRate) int {
		if c := cmp.Compare(b.InPerSec+b.OutPerSec, a.InPerSec+a.OutPerSec); c != 0 {
			return c
		}
		if c := a.Remote.Addr().Compare(b.Remote.Addr()); c != 0 {
			return c
		}
		return cmp.Compare(a.Remote.Port(), b.Remote.Port())
	})
}

func rate(n uint64, dt float64) float64 {
	if dt <= 0 {
		return 0
	}
	return float64(n) / dt
}

// topPeer picks the remote address with the most bytes this interval, then
// the most connections, then the lowest address (so the choice is stable).
func topPeer(cs []ConnRate) *Peer {
	if len(cs) == 0 {
		return nil
	}
	by := map[netip.Addr]*Peer{}
	for i := range cs {
		a := cs[i].Remote.Addr().Unmap()
		p := by[a]
		if p == nil {
			p = &Peer{Address: a}
			by[a] = p
		}
		p.Connections++
		p.InPerSec += cs[i].InPerSec
		p.OutPerSec += cs[i].OutPerSec
	}
	var best *Peer
	for _, p := range by {
		if best == nil {
			best = p
			continue
		}
		if c := cmp.Compare(p.InPerSec+p.OutPerSec, best.InPerSec+best.OutPerSec); c > 0 ||
			c == 0 && (p.Connections > best.Connections ||
				p.Connections == best.Connections && p.Address.Less(best.Address)) {
			best = p
		}
	}
	return best
}

// portIndex finds the listener a connection came through: the same
// network namespace and local port, and the listener's address either the
// connection's local address or a wildcard of its family.
type portIndex struct {
	m map[portKey][]portEntry
}

type portKey struct {
	netns uint64
	port  uint16
}

type portEntry struct {
	addr      netip.Addr
	v6        bool // the listener's own family
	dualStack bool
	i         int
}

// reset empties the index, keeping the memory of the ports the last
// sample used; the others' (listeners that closed, namespaces gone) go.
func (p *portIndex) reset() {
	if p.m == nil {
		p.m = map[portKey][]portEntry{}
	}
	for k, es := range p.m {
		if len(es) == 0 {
			delete(p.m, k)
		} else {
			p.m[k] = es[:0]
		}
	}
}

func (p *portIndex) add(s *inventory.Socket, i int) {
	k := portKey{netns: s.NetNS, port: s.Local.Port}
	p.m[k] = append(p.m[k], portEntry{addr: s.Local.Address, v6: s.Family == inventory.IPv6, dualStack: s.DualStack, i: i})
}

// match returns the index of the listener c came through, or -1. The
// kernel hands a connection to the most specific bind: an exact address
// beats a wildcard. An accepted socket has its listener's family, so an
// IPv4 client of a dual-stack [::] listener shows as ::ffff:a.b.c.d.
func (p *portIndex) match(c *Conn) int {
	es := p.m[portKey{netns: c.NetNS, port: c.Local.Port()}]
	if len(es) == 0 {
		return -1
	}
	la := c.Local.Addr()
	v6 := la.Is6()
	mapped := la.Is4In6()
	best, bestRank := -1, 0
	for _, e := range es {
		rank := 0
		switch {
		case e.v6 == v6 && e.addr == la:
			rank = 4
		case e.v6 == v6 && e.addr.IsUnspecified() && (!mapped || e.dualStack):
			rank = 3
		// A v6 socket bound to ::ffff:a.b.c.d, or a v4 connection
		// reported against it: the same address in either form.
		case !e.addr.IsUnspecified() && e.addr.Unmap() == la.Unmap():
			rank = 2
		}
		if rank > bestRank {
			best, bestRank = e.i, rank
		}
	}
	return best
}

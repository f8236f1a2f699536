package top

import (
	"cmp"
	"slices"
	"strconv"
	"strings"

	"github.com/porteiro/porteiro/inventory"
)

// Column is a column of the top table, and a sort key.
type Column int

// The columns, in the order the table shows them. ColTraffic sorts by
// IN/s + OUT/s, the default.
const (
	ColTraffic Column = iota
	ColProto
	ColLocal
	ColExposure
	ColNetNS
	ColPID
	ColUser
	ColCommand
	ColConns
	ColNew
	ColIn
	ColOut
	ColTopPeer
	// ColPolicy is "!" on a listener that breaks the policy. It comes
	// last here, so that the sort keys before it keep their places; the
	// table shows it first.
	ColPolicy
	numColumns
)

// NumColumns is the number of columns, ColTraffic included: a row of
// cells indexed by Column has this length.
const NumColumns = int(numColumns)

var columnNames = [...]string{
	ColTraffic:  "TRAFFIC",
	ColProto:    "PROTO",
	ColLocal:    "LOCAL",
	ColExposure: "EXPOSURE",
	ColNetNS:    "NETNS",
	ColPID:      "PID",
	ColUser:     "USER",
	ColCommand:  "COMMAND",
	ColConns:    "CONNS",
	ColNew:      "NEW/s",
	ColIn:       "IN/s",
	ColOut:      "OUT/s",
	ColTopPeer:  "TOP PEER",
	ColPolicy:   "!",
}

// String is the column's header.
func (c Column) String() string {
	if c >= 0 && c < numColumns {
		return columnNames[c]
	}
	return "?"
}

// Next and Prev cycle through the sort keys.
func (c Column) Next() Column { return (c + 1) % numColumns }

// Prev is the sort key before c.
func (c Column) Prev() Column { return (c + numColumns - 1) % numColumns }

// numeric columns sort biggest first.
func (c Column) numeric() bool {
	switch c {
	case ColTraffic, ColConns, ColNew, ColIn, ColOut, ColPolicy:
		return true
	}
	return false
}

// SortListeners sorts ls by col: numeric columns biggest first, text
// columns A to Z; reverse flips that. Ties fall back to traffic, then
// connections, then protocol, local port, address and inode, so the order
// is total and stable between refreshes. Closed listeners sort last.
func SortListeners(ls []Listener, col Column, reverse bool) {
	// Sort indexes, then move each Listener once: a Listener is a few
	// hundred bytes, and a host may have thousands, most of them quiet.
	// Quiet listeners (no traffic, no connection) tie on every numeric
	// column, so their order is the local address's, which is the
	// scanner's order already: check it rather than sort it.
	cmpIdx := func(i, j int32) int { return compareListeners(&ls[i], &ls[j], col, reverse) }
	var busy, quiet, gone []int32
	fast := col.numeric() && !reverse
	var zero Listener
	for i := range ls {
		l := &ls[i]
		switch {
		case l.Gone:
			gone = append(gone, int32(i))
		case fast && l.Traffic() == 0 && l.Conns == 0 && compareBy(l, &zero, col) == 0:
			quiet = append(quiet, int32(i))
		default:
			busy = append(busy, int32(i))
		}
	}
	slices.SortFunc(busy, cmpIdx)
	if !slices.IsSortedFunc(quiet, cmpIdx) {
		slices.SortFunc(quiet, cmpIdx)
	}
	slices.SortFunc(gone, cmpIdx)
	permute(ls, slices.Concat(busy, quiet, gone))
}

// permute reorders ls so that position k receives the element at idx[k],
// in place, one cycle at a time; idx is consumed.
func permute(ls []Listener, idx []int32) {
	for i := range idx {
		if idx[i] < 0 {
			continue
		}
		if int(idx[i]) == i {
			idx[i] = -1
			continue
		}
		tmp := ls[i]
		j := i
		for {
			src := int(idx[j])
			idx[j] = -1
			if src == i {
				ls[j] = tmp
				break
			}
			ls[j] = ls[src]
			j = src
		}
	}
}

func compareListeners(a, b *Listener, col Column, reverse bool) int {
	if a.Gone != b.Gone {
		if a.Gone {
			return 1
		}
		return -1
	}
	c := compareBy(a, b, col)
	if col.numeric() {
		c = -c
	}
	if reverse {
		c = -c
	}
	if c != 0 {
		return c
	}
	if c := -cmp.Compare(a.Traffic(), b.Traffic()); c != 0 {
		return c
	}
	if c := -cmp.Compare(a.Conns, b.Conns); c != 0 {
		return c
	}
	return compareLocal(&a.Socket, &b.Socket)
}

func compareBy(a, b *Listener, col Column) int {
	switch col {
	case ColTraffic:
		return cmp.Compare(a.Traffic(), b.Traffic())
	case ColProto:
		return cmp.Compare(a.Socket.Proto, b.Socket.Proto)
	case ColLocal:
		return compareLocal(&a.Socket, &b.Socket)
	case ColExposure:
		return cmp.Compare(a.Socket.Exposure, b.Socket.Exposure)
	case ColNetNS:
		return cmp.Compare(a.Socket.NetNS, b.Socket.NetNS)
	case ColPID:
		return cmp.Compare(firstPID(&a.Socket), firstPID(&b.Socket))
	case ColUser:
		return strings.Compare(ownerField(&a.Socket, func(p *inventory.Process) string { return p.User }),
			ownerField(&b.Socket, func(p *inventory.Process) string { return p.User }))
	case ColCommand:
		return strings.Compare(ownerField(&a.Socket, (*inventory.Process).CommandLine),
			ownerField(&b.Socket, (*inventory.Process).CommandLine))
	case ColConns:
		return cmp.Compare(a.Conns, b.Conns)
	case ColNew:
		return cmp.Compare(a.NewPerSec, b.NewPerSec)
	case ColIn:
		return cmp.Compare(a.InPerSec, b.InPerSec)
	case ColOut:
		return cmp.Compare(a.OutPerSec, b.OutPerSec)
	case ColTopPeer:
		return comparePeer(a.TopPeer, b.TopPeer)
	case ColPolicy:
		return cmp.Compare(violates(a), violates(b))
	}
	return 0
}

// compareLocal orders as the scanner does: protocol, local port, address,
// inode.
func compareLocal(a, b *inventory.Socket) int {
	if c := cmp.Compare(a.Proto, b.Proto); c != 0 {
		return c
	}
	if c := cmp.Compare(a.Local.Port, b.Local.Port); c != 0 {
		return c
	}
	if c := a.Local.Address.Compare(b.Local.Address); c != 0 {
		return c
	}
	return cmp.Compare(a.Inode, b.Inode)
}

func comparePeer(a, b *Peer) int {
	switch {
	case a == nil && b == nil:
		return 0
	case a == nil:
		return 1
	case b == nil:
		return -1
	}
	return a.Address.Compare(b.Address)
}

func violates(l *Listener) int {
	if l.Violation != nil {
		return 1
	}
	return 0
}

func firstPID(s *inventory.Socket) int {
	if len(s.Processes) == 0 {
		return 1 << 30 // no owner sorts last
	}
	return s.Processes[0].PID
}

func ownerField(s *inventory.Socket, f func(*inventory.Process) string) string {
	if len(s.Processes) == 0 {
		return "\uffff"
	}
	return f(&s.Processes[0])
}

// Group is the listeners of one process, for the grouped view.
type Group struct {
	// Process is the first owner of the listeners; nil for listeners whose
	// owner could not be seen.
	Process   *inventory.Process
	Listeners []Listener
	Conns     int
	NewPerSec float64
	InPerSec  float64
	OutPerSec float64
	TopPeer   *Peer
}

// Traffic is the group's bytes per second, both ways.
func (g *Group) Traffic() float64 { return g.InPerSec + g.OutPerSec }

// Ports lists the group's listeners as "tcp/22,tcp/80,udp/53".
func (g *Group) Ports() string {
	var b strings.Builder
	for i := range g.Listeners {
		s := &g.Listeners[i].Socket
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(string(s.Proto))
		b.WriteByte('/')
		b.WriteString(strconv.Itoa(int(s.Local.Port)))
	}
	return b.String()
}

// GroupByProcess folds listeners into one row per process (its first
// owner, identified by pid and start time), in the order of ls's first
// rows: sort ls first. Listeners without an owner form one group.
func GroupByProcess(ls []Listener) []Group {
	var out []Group
	at := map[inventory.Identity]int{}
	noOwner := -1
	for i := range ls {
		l := &ls[i]
		var gi int
		if len(l.Socket.Processes) == 0 {
			if noOwner < 0 {
				noOwner = len(out)
				out = append(out, Group{})
			}
			gi = noOwner
		} else {
			p := &l.Socket.Processes[0]
			var ok bool
			if gi, ok = at[p.Identity()]; !ok {
				gi = len(out)
				at[p.Identity()] = gi
				out = append(out, Group{Process: p})
			}
		}
		g := &out[gi]
		g.Listeners = append(g.Listeners, *l)
		g.Conns += l.Conns
		g.NewPerSec += l.NewPerSec
		g.InPerSec += l.InPerSec
		g.OutPerSec += l.OutPerSec
		if tp := l.TopPeer; tp != nil && (g.TopPeer == nil || tp.InPerSec+tp.OutPerSec > g.TopPeer.InPerSec+g.TopPeer.OutPerSec) {
			g.TopPeer = tp
		}
	}
	return out
}

// Package load builds a synthetic socket load on the local host: many
// processes holding many loopback TCP and UDP sockets plus other fds, so that
// porteiro and its peers (ss, netstat, lsof, fuser) can be timed on the same
// state. bench/loadgen is its command-line front end.
//
// The load is planned first (this file, pure and testable) and then built by
// Start (load_linux.go). The loadgen process creates every socket itself and
// hands it to a tiny holder process (by default `sleep`) through inherited
// fds, so 2,000 holders cost little memory.
package load

import (
	"errors"
	"fmt"
	"math"
)

// Kind is the kind of one planned fd (or fd pair).
type Kind uint8

// Kinds of planned items. Pipe and UnixPair are two fds each.
const (
	TCPListen    Kind = iota // TCP listener on 127.x.y.z
	TCPListen6               // TCP listener on ::1
	TCPReusePort             // member of a SO_REUSEPORT group on 127.x.y.z
	TCPAcceptor              // listener held by loadgen, accepts the established pairs
	TCPWho                   // the listener the benchmark asks `who` about
	TCPClient                // client end of an established loopback connection
	TCPServer                // accepted end of an established loopback connection
	UDPBound                 // unconnected UDP socket on 127.x.y.z
	UDPBound6                // unconnected UDP socket on ::1
	UDPConnected             // connected UDP socket
	DevNull                  // /dev/null, read-only
	RegularFile              // a regular file in a temporary directory
	Pipe                     // both ends of a pipe
	UnixPair                 // both ends of an AF_UNIX socketpair
	numKinds
)

var kindNames = [...]string{
	TCPListen: "tcp_listen", TCPListen6: "tcp6_listen", TCPReusePort: "tcp_reuseport",
	TCPAcceptor: "tcp_acceptor", TCPWho: "tcp_who", TCPClient: "tcp_client", TCPServer: "tcp_server",
	UDPBound: "udp", UDPBound6: "udp6", UDPConnected: "udp_connected",
	DevNull: "devnull", RegularFile: "file", Pipe: "pipe", UnixPair: "unix_pair",
}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return fmt.Sprintf("kind%d", k)
}

// FDs is how many fds one item of this kind takes.
func (k Kind) FDs() int {
	if k == Pipe || k == UnixPair {
		return 2
	}
	return 1
}

// IsInet reports whether the kind is a TCP or UDP socket.
func (k Kind) IsInet() bool { return k <= UDPConnected }

// Parent is the owner index of the loadgen process itself.
const Parent = -1

// Item is one planned socket or other fd.
type Item struct {
	Kind Kind
	// Owners are the holder indexes that hold the item; Parent is loadgen.
	Owners []int32
	// Peer is the other end of a TCP pair, the first member of a
	// SO_REUSEPORT group, or the acceptor a client connects to; -1 if none.
	Peer int32
}

// Config sizes a load. Procs, Sockets and FDs are required; the fractions
// default to a mix that looks like a busy server.
type Config struct {
	Procs   int // holder processes
	Sockets int // TCP and UDP sockets in total (kernel sockets, not fds)
	FDs     int // other fds: /dev/null, files, pipes, unix socketpairs

	ListenFrac    float64 // share of Sockets that are TCP listeners; default 0.25
	UDPFrac       float64 // share of Sockets that are UDP; default 0.15
	IPv6Frac      float64 // share of listeners and UDP sockets on ::1; default 0.1
	SharedFrac    float64 // share of listeners and UDP sockets held by two processes; default 0.05
	ReusePortFrac float64 // share of listeners in SO_REUSEPORT groups of 4; default 0.05

	// PairsPerAcceptor bounds the connections to one acceptor, so that the
	// client ends find a free ephemeral port at once; default 4,000. The
	// kernel scans for a free port on connect, and that scan grows long once
	// a destination has used about half of ip_local_port_range.
	PairsPerAcceptor int
}

func (c *Config) defaults() {
	def := func(p *float64, v float64) {
		if *p == 0 {
			*p = v
		}
	}
	def(&c.ListenFrac, 0.25)
	def(&c.UDPFrac, 0.15)
	def(&c.IPv6Frac, 0.1)
	def(&c.SharedFrac, 0.05)
	def(&c.ReusePortFrac, 0.05)
	if c.PairsPerAcceptor <= 0 {
		c.PairsPerAcceptor = 4000
	}
}

// Preset returns a named size: small, medium (500 processes, 20,000
// sockets) or large (2,000 processes, 100,000 sockets).
func Preset(name string) (Config, error) {
	switch name {
	case "small":
		return Config{Procs: 50, Sockets: 2000, FDs: 500}, nil
	case "medium":
		return Config{Procs: 500, Sockets: 20000, FDs: 4000}, nil
	case "large":
		return Config{Procs: 2000, Sockets: 100000, FDs: 16000}, nil
	}
	return Config{}, fmt.Errorf("unknown preset %q (want small, medium or large)", name)
}

// Plan is a load laid out item by item.
type Plan struct {
	Config Config
	Items  []Item
	// Holds lists, per holder, the items it holds, in fd order.
	Holds [][]int32
	// Create lists, per holder, the items to create just before it starts;
	// CreateParent the ones created first. A TCPServer is created with its
	// client and is in no Create list.
	Create       [][]int32
	CreateParent []int32
	// Release lists, per holder, the items loadgen closes once it started.
	Release [][]int32
	// Count is the number of items of each kind.
	Count [numKinds]int
	// Sockets is the number of TCP and UDP sockets; Shared how many of them
	// have more than one holder process (counting loadgen).
	Sockets, Shared int
	// ReuseGroups counts the SO_REUSEPORT groups.
	ReuseGroups int
	// OtherFDs counts the fds that are not TCP/UDP sockets.
	OtherFDs int
	// MaxHolderFDs is the most fds one holder gets; ParentFDs the most fds
	// loadgen has open at once while building the load.
	MaxHolderFDs, ParentFDs int
}

// reuseGroup is the size of a SO_REUSEPORT group.
const reuseGroup = 4

// NewPlan lays out a load.
func NewPlan(c Config) (*Plan, error) {
	c.defaults()
	if c.Procs < 1 {
		return nil, errors.New("need at least 1 process")
	}
	if c.Sockets < 16 {
		return nil, errors.New("need at least 16 sockets")
	}
	if c.FDs < 0 {
		return nil, errors.New("other fds must be >= 0")
	}
	for _, f := range []float64{c.ListenFrac, c.UDPFrac, c.IPv6Frac, c.SharedFrac, c.ReusePortFrac} {
		if f < 0 || f > 1 {
			return nil, fmt.Errorf("fraction %v out of [0,1]", f)
		}
	}
	if c.ListenFrac+c.UDPFrac > 1 {
		return nil, fmt.Errorf("listen fraction %v + udp fraction %v exceed 1", c.ListenFrac, c.UDPFrac)
	}
	round := func(f float64) int { return int(math.Round(f)) }
	nListen := round(float64(c.Sockets) * c.ListenFrac)
	nUDP := round(float64(c.Sockets) * c.UDPFrac)
	nEst := c.Sockets - nListen - nUDP
	if nEst%2 == 1 {
		nEst--
		nListen++
	}
	pairs := nEst / 2
	acceptors := (pairs + c.PairsPerAcceptor - 1) / c.PairsPerAcceptor
	// Loadgen's own listeners come out of the listener budget.
	nListen -= acceptors + 1
	if nListen < 0 {
		nUDP += nListen
		nListen = 0
		if nUDP < 0 {
			return nil, fmt.Errorf("%d sockets are too few for %d pairs", c.Sockets, pairs)
		}
	}
	nReuse := 0
	if c.Procs >= reuseGroup {
		nReuse = round(float64(nListen)*c.ReusePortFrac) / reuseGroup * reuseGroup
	}
	nL6 := round(float64(nListen-nReuse) * c.IPv6Frac)
	nL4 := nListen - nReuse - nL6
	nUConn := nUDP / 4
	nU6 := round(float64(nUDP-nUConn) * c.IPv6Frac)
	nU4 := nUDP - nUConn - nU6

	p := &Plan{
		Config:  c,
		Holds:   make([][]int32, c.Procs),
		Create:  make([][]int32, c.Procs),
		Release: make([][]int32, c.Procs),
	}
	cum := cumulativeWeights(c.Procs)
	next := func(i int) int32 {
		if i+1 < c.Procs {
			return int32(i + 1)
		}
		return Parent
	}
	add := func(k Kind, peer int32, owners ...int32) int32 {
		p.Items = append(p.Items, Item{Kind: k, Owners: owners, Peer: peer})
		p.Count[k]++
		return int32(len(p.Items) - 1)
	}

	// Loadgen's own listeners. The `who` listener is also held by the
	// first two holders, so `who` has co-owners to report.
	whoOwners := []int32{Parent, 0}
	if c.Procs > 1 {
		whoOwners = append(whoOwners, 1)
	}
	add(TCPWho, -1, whoOwners...)
	acc := make([]int32, acceptors)
	for i := range acc {
		acc[i] = add(TCPAcceptor, -1, Parent)
	}

	nShared4 := round(float64(nL4) * c.SharedFrac)
	nSharedU := round(float64(nU4) * c.SharedFrac)
	pairIdx := 0
	// Every category is dealt to the holders by weight, holder by holder,
	// so that creation follows the start order.
	split := []struct {
		total int
		fn    func(i, j int)
	}{
		{nL4, func(i, j int) {
			if pick(j, nL4, nShared4) {
				add(TCPListen, -1, int32(i), next(i))
				return
			}
			add(TCPListen, -1, int32(i))
		}},
		{nL6, func(i, j int) { add(TCPListen6, -1, int32(i)) }},
		{nReuse / reuseGroup, func(i, j int) {
			first := int32(-1)
			owner := int32(i)
			for m := 0; m < reuseGroup; m++ {
				id := add(TCPReusePort, first, owner)
				if first < 0 {
					first = id
				}
				if owner >= 0 {
					owner = next(int(owner))
				}
			}
			p.ReuseGroups++
		}},
		{pairs, func(i, j int) {
			a := acc[pairIdx/c.PairsPerAcceptor]
			pairIdx++
			cl := add(TCPClient, a, int32(i))
			srv := next(i)
			if srv == Parent {
				srv = int32(i)
			}
			add(TCPServer, cl, srv)
		}},
		{nU4, func(i, j int) {
			if pick(j, nU4, nSharedU) {
				add(UDPBound, -1, int32(i), next(i))
				return
			}
			add(UDPBound, -1, int32(i))
		}},
		{nU6, func(i, j int) { add(UDPBound6, -1, int32(i)) }},
		{nUConn, func(i, j int) { add(UDPConnected, -1, int32(i)) }},
	}
	for _, s := range split {
		j := 0
		for i := 0; i < c.Procs; i++ {
			for n := share(s.total, cum, i); n > 0; n-- {
				s.fn(i, j)
				j++
			}
		}
	}
	// Other fds, in a fixed rotation of kinds.
	rot := []Kind{DevNull, RegularFile, Pipe, DevNull, UnixPair, RegularFile}
	for i := 0; i < c.Procs; i++ {
		left := share(c.FDs, cum, i)
		for r := i; left > 0; r++ {
			k := rot[r%len(rot)]
			if k.FDs() > left {
				k = DevNull
			}
			add(k, -1, int32(i))
			left -= k.FDs()
		}
	}
	p.index()
	return p, nil
}

// index fills Holds, Create, Release and the counters from Items.
func (p *Plan) index() {
	for id, it := range p.Items {
		first, last, parent := int32(1<<30), int32(-1), false
		for _, o := range it.Owners {
			if o == Parent {
				parent = true
				continue
			}
			p.Holds[o] = append(p.Holds[o], int32(id))
			first = min(first, o)
			last = max(last, o)
		}
		if it.Kind.IsInet() {
			p.Sockets++
			if len(it.Owners) > 1 {
				p.Shared++
			}
		} else {
			p.OtherFDs += it.Kind.FDs()
		}
		// A server end is created with its client and released after its
		// own (later) holder starts.
		if it.Kind != TCPServer {
			switch {
			case last < 0:
				p.CreateParent = append(p.CreateParent, int32(id))
			default:
				p.Create[first] = append(p.Create[first], int32(id))
			}
		}
		if !parent && last >= 0 {
			p.Release[last] = append(p.Release[last], int32(id))
		}
	}
	// Peak fds in loadgen: its own items plus what is open while holders
	// start one by one.
	open := 0
	for _, id := range p.CreateParent {
		open += p.Items[id].Kind.FDs()
	}
	peak := open
	for i := range p.Holds {
		for _, id := range p.Create[i] {
			open += p.Items[id].Kind.FDs()
			if p.Items[id].Kind == TCPClient {
				open++ // its server end
			}
		}
		peak = max(peak, open)
		for _, id := range p.Release[i] {
			open -= p.Items[id].Kind.FDs()
		}
		n := 0
		for _, id := range p.Holds[i] {
			n += p.Items[id].Kind.FDs()
		}
		p.MaxHolderFDs = max(p.MaxHolderFDs, n)
	}
	p.ParentFDs = peak
}

// pick reports whether the j-th of total items is one of the n spread evenly
// among them.
func pick(j, total, n int) bool {
	if n <= 0 {
		return false
	}
	stride := max(total/n, 1)
	return j%stride == 0 && j/stride < n
}

// cumulativeWeights gives every 50th holder ten times the share of the
// others, like the few big servers of a real host.
func cumulativeWeights(n int) []int {
	cum := make([]int, n+1)
	for i := 0; i < n; i++ {
		w := 1
		if n >= 50 && i%50 == 0 {
			w = 10
		}
		cum[i+1] = cum[i] + w
	}
	return cum
}

// share is holder i's part of total, by weight; the parts add up to total.
func share(total int, cum []int, i int) int {
	w := cum[len(cum)-1]
	return total*cum[i+1]/w - total*cum[i]/w
}

package inventory

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
	"time"
)

// Options configures a Scanner. The zero value scans the host through
// netlink (falling back to /proc/net) and resolves owners from /proc.
type Options struct {
	// ProcRoot is where procfs is mounted; "" means /proc.
	ProcRoot string
	// Source lists sockets; nil means the platform default.
	Source SocketSource
	// Resolver finds owners; nil means the /proc walker.
	Resolver OwnerResolver
	// NoOwners skips owner resolution entirely.
	NoOwners bool
	// Incremental reuses the owners of sockets seen in the previous scan and
	// walks /proc only when a socket is new, or after FullEvery.
	Incremental bool
	// FullEvery bounds how long cached owners are trusted; 0 means 30s.
	FullEvery time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Scanner takes snapshots. It is safe for use by one goroutine at a time;
// the mutex only guards against accidental concurrent use.
type Scanner struct {
	opts     Options
	mu       sync.Mutex
	netns    uint64
	cache    map[uint64]ownerEntry
	lastFull time.Time
	// Walks counts full owner walks, for tests and metrics.
	Walks int
}

type ownerEntry struct {
	procs  []Process
	reason Reason
}

// NewScanner returns a scanner with the given options.
func NewScanner(o Options) *Scanner {
	if o.ProcRoot == "" {
		o.ProcRoot = "/proc"
	}
	if o.FullEvery == 0 {
		o.FullEvery = 30 * time.Second
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Source == nil {
		o.Source = DefaultSource(o.ProcRoot)
	}
	if o.Resolver == nil {
		o.Resolver = DefaultResolver(o.ProcRoot)
	}
	return &Scanner{opts: o}
}

// Scan takes one snapshot of the sockets that q asks for.
func (s *Scanner) Scan(ctx context.Context, q Query) (*Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.netns == 0 {
		s.netns = selfNetNS(s.opts.ProcRoot)
	}
	now := s.opts.Now()
	socks, err := s.opts.Source.Sockets(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("listing sockets: %w", err)
	}
	socks = filterFamilies(socks, q)
	snap := &Snapshot{Time: now, Source: s.opts.Source.Name(), Sockets: socks, Privileged: true}
	for i := range socks {
		socks[i].NetNS = s.netns
		socks[i].Exposure = ExposureOf(socks[i].Local.Address)
	}
	if !s.opts.NoOwners {
		if err := s.attach(ctx, snap, now); err != nil {
			return nil, err
		}
	}
	sortSockets(snap.Sockets)
	return snap, nil
}

func filterFamilies(socks []Socket, q Query) []Socket {
	if len(q.Families) == 0 {
		return socks
	}
	out := socks[:0]
	for _, so := range socks {
		for _, f := range q.Families {
			if so.Covers(f) {
				out = append(out, so)
				break
			}
		}
	}
	return out
}

func (s *Scanner) attach(ctx context.Context, snap *Snapshot, now time.Time) error {
	socks := snap.Sockets
	if len(socks) == 0 {
		return nil
	}
	needWalk := !s.opts.Incremental || s.cache == nil || now.Sub(s.lastFull) >= s.opts.FullEvery
	if !needWalk {
		// Check each cached owner once, however many sockets it holds.
		checked := make(map[Identity]bool)
	outer:
		for i := range socks {
			e, ok := s.cache[socks[i].Inode]
			if !ok {
				needWalk = true
				break
			}
			for j := range e.procs {
				id := e.procs[j].Identity()
				alive, seen := checked[id]
				if !seen {
					alive = processAlive(s.opts.ProcRoot, id.PID, id.StartTicks)
					checked[id] = alive
				}
				if !alive {
					needWalk = true
					break outer
				}
			}
		}
	}
	if needWalk {
		want := make(map[uint64]struct{}, len(socks))
		for i := range socks {
			want[socks[i].Inode] = struct{}{}
		}
		own, err := s.opts.Resolver.Resolve(ctx, want)
		if err != nil {
			return fmt.Errorf("resolving socket owners: %w", err)
		}
		s.Walks++
		s.lastFull = now
		cache := make(map[uint64]ownerEntry, len(socks))
		arena := newOwnerArena(socks, own)
		for i := range socks {
			if _, dup := cache[socks[i].Inode]; dup && socks[i].Inode != 0 {
				continue
			}
			cache[socks[i].Inode] = buildOwners(socks[i].Inode, own, arena)
		}
		s.cache = cache
		if own.Denied > 0 {
			snap.Privileged = false
		}
	}
	var missing = map[Reason]int{}
	for i := range socks {
		e := s.cache[socks[i].Inode]
		socks[i].Processes = e.procs
		socks[i].UnattributedReason = e.reason
		if e.reason != ReasonNone {
			missing[e.reason]++
		}
	}
	if !needWalk {
		// Privilege is a property of the last walk.
		for _, e := range s.cache {
			if e.reason == ReasonNotPermitted {
				snap.Privileged = false
				break
			}
		}
	}
	for _, r := range []Reason{ReasonNotPermitted, ReasonNoProcess, ReasonExited, ReasonKernel} {
		if n := missing[r]; n > 0 {
			snap.Notes = append(snap.Notes, fmt.Sprintf("%d socket(s) without a process: %s", n, r.Hint()))
		}
	}
	return nil
}

// ownerArena holds every socket's Processes and FDs in two big slices, so
// that attaching owners to 100,000 sockets costs two allocations, not
// hundreds of thousands. Each socket gets a capped sub-slice.
type ownerArena struct {
	procs []Process
	fds   []int
}

func newOwnerArena(socks []Socket, own *Owners) *ownerArena {
	n := 0
	for i := range socks {
		n += len(own.Holders[socks[i].Inode])
	}
	return &ownerArena{procs: make([]Process, 0, n), fds: make([]int, 0, n)}
}

func buildOwners(inode uint64, own *Owners, a *ownerArena) ownerEntry {
	if inode == 0 {
		return ownerEntry{reason: ReasonKernel}
	}
	hs := own.Holders[inode]
	slices.SortFunc(hs, func(x, y Holder) int {
		if x.PID != y.PID {
			return cmp.Compare(x.PID, y.PID)
		}
		return cmp.Compare(x.FD, y.FD)
	})
	p0 := len(a.procs)
	exited := false
	for i := 0; i < len(hs); {
		j := i
		for j < len(hs) && hs[j].PID == hs[i].PID {
			j++
		}
		p, ok := own.Processes[hs[i].PID]
		if !ok {
			exited = true
			i = j
			continue
		}
		f0 := len(a.fds)
		for k := i; k < j; k++ {
			a.fds = append(a.fds, hs[k].FD)
		}
		cp := *p
		cp.FDs = a.fds[f0:len(a.fds):len(a.fds)]
		a.procs = append(a.procs, cp)
		i = j
	}
	e := ownerEntry{}
	if len(a.procs) > p0 {
		e.procs = a.procs[p0:len(a.procs):len(a.procs)]
	}
	if len(e.procs) == 0 {
		switch {
		case exited:
			e.reason = ReasonExited
		case own.Denied > 0:
			e.reason = ReasonNotPermitted
		default:
			e.reason = ReasonNoProcess
		}
	}
	return e
}

func sortSockets(socks []Socket) {
	slices.SortStableFunc(socks, func(a, b Socket) int {
		if a.Proto != b.Proto {
			return cmp.Compare(a.Proto, b.Proto)
		}
		if a.Local.Port != b.Local.Port {
			return cmp.Compare(a.Local.Port, b.Local.Port)
		}
		if c := a.Local.Address.Compare(b.Local.Address); c != 0 {
			return c
		}
		if a.Remote.Port != b.Remote.Port {
			return cmp.Compare(a.Remote.Port, b.Remote.Port)
		}
		if c := a.Remote.Address.Compare(b.Remote.Address); c != 0 {
			return c
		}
		return cmp.Compare(a.Inode, b.Inode)
	})
}

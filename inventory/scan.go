package inventory

import (
	"context"
	"fmt"
	"sort"
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
		for i := range socks {
			cache[socks[i].Inode] = buildOwners(socks[i].Inode, own)
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

func buildOwners(inode uint64, own *Owners) ownerEntry {
	if inode == 0 {
		return ownerEntry{reason: ReasonKernel}
	}
	hs := own.Holders[inode]
	var procs []Process
	exited := false
	for _, h := range hs {
		p, ok := own.Processes[h.PID]
		if !ok {
			exited = true
			continue
		}
		j := -1
		for k := range procs {
			if procs[k].PID == h.PID {
				j = k
				break
			}
		}
		if j < 0 {
			cp := *p
			cp.FDs = nil
			procs = append(procs, cp)
			j = len(procs) - 1
		}
		procs[j].FDs = append(procs[j].FDs, h.FD)
	}
	sort.Slice(procs, func(a, b int) bool { return procs[a].PID < procs[b].PID })
	for k := range procs {
		sort.Ints(procs[k].FDs)
	}
	e := ownerEntry{procs: procs}
	if len(procs) == 0 {
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
	sort.SliceStable(socks, func(i, j int) bool {
		a, b := &socks[i], &socks[j]
		if a.Proto != b.Proto {
			return a.Proto < b.Proto
		}
		if a.Local.Port != b.Local.Port {
			return a.Local.Port < b.Local.Port
		}
		if c := a.Local.Address.Compare(b.Local.Address); c != 0 {
			return c < 0
		}
		if a.Remote.Port != b.Remote.Port {
			return a.Remote.Port < b.Remote.Port
		}
		if c := a.Remote.Address.Compare(b.Remote.Address); c != 0 {
			return c < 0
		}
		return a.Inode < b.Inode
	})
}

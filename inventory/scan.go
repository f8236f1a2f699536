package inventory

import (
	"cmp"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net/netip"
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
	// Incremental reuses the owners of sockets seen in the previous scan:
	// it looks up only the owners of new sockets (and of those whose
	// cached owner exited), and walks every owner again after FullEvery.
	Incremental bool
	// FullEvery bounds how long cached owners are trusted; 0 means 30s.
	FullEvery time.Duration
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Brief has the default resolver read of each process only what the
	// plain table shows (procfs.ReadProcessFields): Exe, Unit, Container,
	// the start time, CPU and RSS stay empty. An incremental scanner needs
	// start times to know its cached owners, and ignores Brief.
	Brief bool
}

// Scanner takes snapshots. It is safe for use by one goroutine at a time;
// the mutex only guards against accidental concurrent use.
type Scanner struct {
	opts       Options
	mu         sync.Mutex
	netns      uint64
	cache      map[uint64]ownerEntry
	lastFull   time.Time
	via        string // Owners.Via of the last full resolution
	privileged bool   // the last full resolution saw every process
	closers    []io.Closer
	closed     bool
	// alive watches the cached owners; ids is its reused argument.
	alive aliveSet
	ids   map[Identity]bool
	// Walks counts full owner walks, and Lookups the incremental ones
	// (the owners of new sockets alone), for tests and metrics.
	Walks, Lookups int
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
	s := &Scanner{opts: o}
	// What the scanner opens, it closes; a Source or Resolver passed in is
	// the caller's.
	if o.Source == nil {
		s.opts.Source = DefaultSource(o.ProcRoot)
		if c, ok := s.opts.Source.(io.Closer); ok {
			s.closers = append(s.closers, c)
		}
	}
	if o.Resolver == nil {
		s.opts.Resolver = DefaultResolver(o.ProcRoot)
		if r, ok := s.opts.Resolver.(*Resolver); ok {
			r.Brief = o.Brief && !o.Incremental
		}
		if c, ok := s.opts.Resolver.(io.Closer); ok {
			s.closers = append(s.closers, c)
		}
	}
	return s
}

// ErrClosed is returned by Scan after Close.
var ErrClosed = errors.New("scanner closed")

// Close releases what the scanner holds open between scans: the netlink
// socket and the iterator's BPF program. It is safe to call more than once.
// A scanner that is never closed works; its descriptors go at exit.
func (s *Scanner) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	s.alive.close()
	var errs []error
	for _, c := range s.closers {
		errs = append(errs, c.Close())
	}
	return errors.Join(errs...)
}

// Scan takes one snapshot of the sockets that q asks for.
func (s *Scanner) Scan(ctx context.Context, q Query) (*Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if s.netns == 0 {
		s.netns = selfNetNS(s.opts.ProcRoot)
	}
	now := s.opts.Now()
	if pf, ok := s.opts.Resolver.(prefetcher); ok && !s.opts.NoOwners && !s.opts.Incremental {
		// A one-shot scan always resolves owners: start now, beside the
		// socket dump.
		pctx, cancel := context.WithCancel(ctx)
		defer cancel()
		if tw, ok := pf.(taskWanter); ok {
			tw.wantTasks(len(q.LocalPorts) == 0)
		}
		if sw, ok := pf.(stateWanter); ok {
			sw.wantStates(q.socketStates())
		}
		pf.Prefetch(pctx)
		// The task pass, when it runs, gives the sockets' source the
		// namespace of each single-threaded process.
		nk, ok1 := pf.(processNSKnower)
		nu, ok2 := s.opts.Source.(processNSUser)
		if ok1 && ok2 {
			if known := nk.processNS(); known != nil {
				nu.useProcessNS(known)
			}
		}
	}
	socks, err := s.opts.Source.Sockets(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("listing sockets: %w", err)
	}
	// The source's listing of /proc, if it made one, serves the owners'
	// walk of the processes the iterator did not report.
	if pl, ok := s.opts.Source.(pidLister); ok {
		pids := pl.takePIDs()
		if pu, ok := s.opts.Resolver.(pidUser); ok && pids != nil && !s.opts.NoOwners {
			pu.usePIDs(pids)
		}
	}
	socks = filterFamilies(socks, q)
	snap := &Snapshot{Time: now, Source: s.opts.Source.Name(), Sockets: socks, Privileged: true}
	var names map[uint64]NamespaceInfo
	if nn, ok := s.opts.Source.(namespaceNamer); ok {
		var notes []string
		notes, names = nn.notesAndNames()
		snap.Notes = append(snap.Notes, notes...)
	}
	for i := range socks {
		if socks[i].NetNS == 0 {
			socks[i].NetNS = s.netns
		}
		if ni, ok := names[socks[i].NetNS]; ok {
			socks[i].NetNSName = ni.Name
			socks[i].Container = ni.Container
		}
		socks[i].Exposure = ExposureOf(socks[i].Local.Address)
	}
	if q.Keep != nil {
		kept := socks[:0]
		for i := range socks {
			if q.Keep(&socks[i]) {
				kept = append(kept, socks[i])
			}
		}
		socks = kept
		snap.Sockets = socks
	}
	sorted := false
	if !s.opts.NoOwners {
		var err error
		if sorted, err = s.attach(ctx, snap, q, now); err != nil {
			return nil, err
		}
	}
	if !sorted {
		sortSockets(snap.Sockets)
	}
	return snap, nil
}

// prepare completes sockets read late (from namespaces only sockets led
// to) as Scan does the others, and keeps those q wants.
func (s *Scanner) prepare(snap *Snapshot, more []Socket, q Query) []Socket {
	more = filterFamilies(more, q)
	var names map[uint64]NamespaceInfo
	if nn, ok := s.opts.Source.(namespaceNamer); ok {
		var notes []string
		notes, names = nn.notesAndNames()
		// The source's notes may have grown.
		for _, n := range notes {
			if !slices.Contains(snap.Notes, n) {
				snap.Notes = append(snap.Notes, n)
			}
		}
	}
	kept := more[:0]
	for i := range more {
		if ni, ok := names[more[i].NetNS]; ok {
			more[i].NetNSName = ni.Name
			more[i].Container = ni.Container
		}
		more[i].Exposure = ExposureOf(more[i].Local.Address)
		if q.Keep == nil || q.Keep(&more[i]) {
			kept = append(kept, more[i])
		}
	}
	return kept
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

// attach finds the sockets' owners. It reports whether it also sorted the
// sockets, which it does while the resolver works.
func (s *Scanner) attach(ctx context.Context, snap *Snapshot, q Query, now time.Time) (sorted bool, err error) {
	socks := snap.Sockets
	if len(socks) == 0 {
		// Nothing to own, unless the owners lead to namespaces that
		// nothing else does ("orphan"): a source that reads namespaces
		// gets an owner pass anyway.
		if _, ok := s.opts.Source.(foreignReader); !ok {
			return false, nil
		}
	}
	needWalk := !s.opts.Incremental || s.cache == nil || now.Sub(s.lastFull) >= s.opts.FullEvery
	// fresh are the sockets whose owners the cache cannot give: sockets
	// not seen before, and those of a cached owner that exited (another
	// process may hold them now). Only they are looked up; the owners of
	// every other socket stay as they are.
	var fresh []int
	if !needWalk {
		// Check each cached owner once, however many sockets it holds.
		ids := s.ids
		if ids == nil {
			ids = map[Identity]bool{}
			s.ids = ids
		}
		clear(ids)
		for i := range socks {
			e := s.cache[socks[i].Inode]
			for j := range e.procs {
				ids[e.procs[j].Identity()] = true
			}
		}
		s.checkAlive(ids)
		for i := range socks {
			e, ok := s.cache[socks[i].Inode]
			if !ok {
				fresh = append(fresh, i)
				continue
			}
			for j := range e.procs {
				if !ids[e.procs[j].Identity()] {
					fresh = append(fresh, i)
					break
				}
			}
		}
	}
	if needWalk {
		own, err := s.resolve(ctx, snap, q, socks)
		socks = snap.Sockets
		if err != nil {
			return true, err
		}
		s.Walks++
		s.lastFull = now
		s.via = own.Via
		s.privileged = own.Denied == 0 && !own.Hidden
		arena := newOwnerArena(socks, own)
		snap.Privileged = s.privileged
		if !s.opts.Incremental {
			// A one-shot scan keeps no cache: attach owners directly,
			// which saves a map of every socket on a big host.
			return true, s.finish(snap, func(i int) ownerEntry { return buildOwners(socks[i].Inode, own, arena) })
		}
		cache := make(map[uint64]ownerEntry, len(socks))
		for i := range socks {
			if _, dup := cache[socks[i].Inode]; dup && socks[i].Inode != 0 {
				continue
			}
			cache[socks[i].Inode] = buildOwners(socks[i].Inode, own, arena)
		}
		s.cache = cache
		sorted = true
	} else {
		// Privilege is a property of the last walk.
		snap.Privileged = s.privileged
		if len(fresh) > 0 {
			// The incremental lookup: the owner pipeline runs for the
			// fresh sockets alone, so only their holders' details are
			// read. (Finding a holder still takes a pass over every
			// process's files, which the task-file iterator makes one
			// program run.)
			sub := make([]Socket, len(fresh))
			for k, i := range fresh {
				sub[k] = socks[i]
			}
			part := &Snapshot{Sockets: sub}
			own, err := s.resolve(ctx, part, q, sub)
			if err != nil {
				return false, err
			}
			sub = part.Sockets
			s.Lookups++
			// How owners are found may have changed (the iterator
			// dropped): the snapshot says so.
			s.via = own.Via
			arena := newOwnerArena(sub, own)
			for i := range sub {
				s.cache[sub[i].Inode] = buildOwners(sub[i].Inode, own, arena)
			}
			if own.Denied > 0 || own.Hidden {
				snap.Privileged = false
			}
			if more := sub[len(fresh):]; len(more) > 0 {
				// Sockets of namespaces that only these owners led to.
				for _, n := range part.Notes {
					if !slices.Contains(snap.Notes, n) {
						snap.Notes = append(snap.Notes, n)
					}
				}
				socks = append(socks, more...)
				snap.Sockets = socks
			}
		}
		// The cache keeps the sockets of the last full walk and those
		// looked up since: trim it when it has grown far past what is
		// open, which a host that churns sockets makes between walks.
		if len(s.cache) > 2*len(socks)+1024 {
			s.lastFull = time.Time{}
		}
	}
	return sorted, s.finish(snap, func(i int) ownerEntry { return s.cache[socks[i].Inode] })
}

// checkAlive sets ids[id] to false for the owners that are no longer
// running: through pidfds on the live /proc, else by their stat files.
func (s *Scanner) checkAlive(ids map[Identity]bool) {
	if s.opts.ProcRoot == "/proc" {
		s.alive.check(s.opts.ProcRoot, ids)
		return
	}
	for id := range ids {
		ids[id] = processAlive(s.opts.ProcRoot, id.PID, id.StartTicks)
	}
}

// resolve runs the owner pipeline for socks, which are snap's sockets or
// a part of them, and adds to snap the sockets of the namespaces that only
// their owners lead to (snap.Sockets then grows, sorted again).
func (s *Scanner) resolve(ctx context.Context, snap *Snapshot, q Query, socks []Socket) (*Owners, error) {
	want := make(map[uint64]struct{}, len(socks))
	for i := range socks {
		want[socks[i].Inode] = struct{}{}
	}
	if na, ok := s.opts.Resolver.(nsAware); ok {
		var known func(uint64) bool
		if nn, ok := s.opts.Source.(namespaceNamer); ok {
			if _, names := nn.notesAndNames(); names != nil {
				known = func(ns uint64) bool { _, ok := names[ns]; return ok }
			}
		}
		na.setKnownNS(known)
	}
	// The resolver waits on the kernel much of the time: sort the
	// sockets meanwhile. Owners are attached by inode, after both.
	done := make(chan struct{})
	go func() { sortSockets(socks); close(done) }()
	own, err := s.opts.Resolver.Resolve(ctx, want)
	if d, ok := s.opts.Resolver.(bufferDropper); ok && !s.opts.Incremental {
		// A one-shot scan reads the iterator once: its buffer (a few MB
		// on a big host) need not live while owners are attached.
		d.dropBuffers()
	}
	<-done
	if err == nil && len(own.Foreign) > 0 {
		if fr, ok := s.opts.Source.(foreignReader); ok {
			raw := fr.readForeign(ctx, q, own.Foreign)
			if more := s.prepare(snap, raw, q); len(more) > 0 {
				socks = append(snap.Sockets, more...)
				snap.Sockets = socks
				sortSockets(socks)
			}
		}
	}
	if err == nil {
		err = s.recheckOrphans(ctx, q, socks, own)
	}
	if err != nil {
		return nil, fmt.Errorf("resolving socket owners: %w", err)
	}
	return own, nil
}

// finish attaches each socket's owners and writes the notes.
func (s *Scanner) finish(snap *Snapshot, entry func(i int) ownerEntry) error {
	socks := snap.Sockets
	snap.Resolver = s.via
	var missing = map[Reason]int{}
	for i := range socks {
		e := entry(i)
		socks[i].Processes = e.procs
		socks[i].UnattributedReason = e.reason
		if e.reason != ReasonNone {
			missing[e.reason]++
		}
	}
	s.linkForwards(socks)
	for _, r := range []Reason{ReasonNotPermitted, ReasonNoProcess, ReasonExited, ReasonKernel} {
		if n := missing[r]; n > 0 {
			snap.Notes = append(snap.Notes, fmt.Sprintf("%d socket(s) without a process: %s", n, r.Hint()))
		}
	}
	return nil
}

// recheckOrphans looks again at the sockets for which own found no holder
// at all, which would be reported as held by no process in this PID
// namespace. A socket closed during the scan (its process exited, or
// closed it) is in the dump but in no fd table when the sources read them.
// A process whose leader has exited while its last threads still hold its
// files shows an empty fd directory (the walk; the iterator reports those
// threads itself). So: the sockets held by such threads, and those that
// are gone now, are marked vanished (the reason says the process exited).
// What is left is held by no process here.
//
// One case stays: with the iterator, which runs beside the dump, a
// process it has already passed can open a socket that the dump then
// lists; if it is still open at the check, it is reported without an
// owner. Finding it would take a second pass on every scan of a host with
// kernel sockets, so only a one-shot scan can see it; the daemon's scans
// resolve after the dump.
//
// It does nothing when some processes could not be seen (then the reason
// is not_permitted), and nothing when every socket has a holder. Otherwise
// it costs one dump, of the protocols and families of the orphans: of their
// listeners when the orphans are listeners, else of the states of q.
// maxOrphanPorts bounds the kernel filter of the orphans' recheck; more
// distinct ports than this and the recheck dumps everything.
const maxOrphanPorts = 64

func (s *Scanner) recheckOrphans(ctx context.Context, q Query, socks []Socket, own *Owners) error {
	if own.Denied > 0 || own.Hidden {
		return nil
	}
	orphans := map[uint64]struct{}{}
	// The dump below asks only for what the orphans can be found in: on a
	// host whose only orphans are listeners (kernel sockets), "list --all"
	// then dumps the listeners alone.
	narrow := Query{States: MaskTCPListen | MaskUDPListen, exactFamilies: true}
	protos := map[Proto]bool{}
	fams := map[Family]bool{}
	ports := map[uint16]bool{}
	for i := range socks {
		if ino := socks[i].Inode; ino != 0 && len(own.HoldersOf(ino)) == 0 {
			orphans[ino] = struct{}{}
			protos[socks[i].Proto] = true
			fams[socks[i].Family] = true
			ports[socks[i].Local.Port] = true
			if !socks[i].Listening {
				narrow.States = q.States
			}
		}
	}
	if len(orphans) == 0 {
		return nil
	}
	if len(protos) == 1 {
		for p := range protos {
			narrow.Protos = []Proto{p}
		}
	}
	if len(fams) == 1 {
		for f := range fams {
			narrow.Families = []Family{f}
		}
	}
	// A few orphans (a kernel listener, another PID namespace's) are
	// looked up by their ports, which the kernel filters: a host with one
	// such listener does not dump every listener twice.
	if len(ports) <= maxOrphanPorts {
		for p := range ports {
			narrow.LocalPorts = append(narrow.LocalPorts, [2]uint16{p, p})
		}
	}
	if x, ok := s.opts.Resolver.(exitingFinder); ok {
		held, err := x.exitingHolders(ctx, own, orphans)
		if err != nil {
			return err
		}
		for ino := range held {
			own.vanish(ino)
			delete(orphans, ino)
		}
	}
	if err := s.dropClosed(ctx, narrow, orphans, own); err != nil {
		return err
	}
	young, err := s.lookAgain(ctx, orphans, own)
	if err != nil || len(young) == 0 {
		return err
	}
	// What the second look did not find may have closed meanwhile.
	return s.dropClosed(ctx, narrow, young, own)
}

// lookAgain finds the holders of orphans that were opened while the
// owner pass ran beside the dump (own.fence), with a second pass; the old
// orphans (kernel sockets, other PID namespaces') cost nothing.
//
// It returns the young orphans still without a holder (they are also
// still in orphans).
func (s *Scanner) lookAgain(ctx context.Context, orphans map[uint64]struct{}, own *Owners) (map[uint64]struct{}, error) {
	sl, ok := s.opts.Resolver.(secondLooker)
	if !ok || own.fence == 0 {
		return nil, nil
	}
	young := map[uint64]struct{}{}
	for ino := range orphans {
		if newerThan(ino, own.fence) {
			young[ino] = struct{}{}
		}
	}
	if len(young) == 0 {
		return nil, nil
	}
	again, err := sl.secondLook(ctx, young)
	if err != nil {
		return nil, err
	}
	again.eachHolders(func(ino uint64, hs []Holder) {
		if len(hs) == 0 {
			return
		}
		own.setHolders(ino, hs)
		for _, h := range hs {
			if p, ok := again.Processes[h.PID]; ok {
				own.Processes[h.PID] = p
			}
		}
		delete(orphans, ino)
		delete(young, ino)
	})
	return young, nil
}

// dropClosed marks the sockets of orphans that no longer exist as
// vanished, and takes them out of orphans.
func (s *Scanner) dropClosed(ctx context.Context, q Query, orphans map[uint64]struct{}, own *Owners) error {
	if len(orphans) == 0 {
		return nil
	}
	live, err := s.liveInodes(ctx, q, orphans)
	if err != nil {
		return err
	}
	for ino := range orphans {
		if _, ok := live[ino]; !ok {
			own.vanish(ino)
			delete(orphans, ino)
		}
	}
	return nil
}

// vanish marks a socket whose holder went away during the scan.
func (own *Owners) vanish(ino uint64) {
	if own.vanished == nil {
		own.vanished = map[uint64]struct{}{}
	}
	own.vanished[ino] = struct{}{}
}

// liveInodes returns which of inodes the source still lists.
func (s *Scanner) liveInodes(ctx context.Context, q Query, inodes map[uint64]struct{}) (map[uint64]struct{}, error) {
	if c, ok := s.opts.Source.(inodeChecker); ok {
		return c.liveInodes(ctx, q, inodes)
	}
	return liveBySockets(ctx, s.opts.Source, q, inodes)
}

// liveBySockets lists the sockets of q again and returns which of inodes
// are among them.
func liveBySockets(ctx context.Context, src SocketSource, q Query, inodes map[uint64]struct{}) (map[uint64]struct{}, error) {
	socks, err := src.Sockets(ctx, q)
	if err != nil {
		return nil, fmt.Errorf("listing sockets again: %w", err)
	}
	live := map[uint64]struct{}{}
	for i := range socks {
		if _, ok := inodes[socks[i].Inode]; ok {
			live[socks[i].Inode] = struct{}{}
		}
	}
	return live, nil
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
		n += len(own.HoldersOf(socks[i].Inode))
	}
	return &ownerArena{procs: make([]Process, 0, n), fds: make([]int, 0, n)}
}

func buildOwners(inode uint64, own *Owners, a *ownerArena) ownerEntry {
	if inode == 0 {
		return ownerEntry{reason: ReasonKernel}
	}
	hs := own.HoldersOf(inode)
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
		a.procs = append(a.procs, Process{ProcessInfo: p, FDs: a.fds[f0:len(a.fds):len(a.fds)]})
		i = j
	}
	e := ownerEntry{}
	if len(a.procs) > p0 {
		e.procs = a.procs[p0:len(a.procs):len(a.procs)]
	}
	if len(e.procs) == 0 {
		_, vanished := own.vanished[inode]
		switch {
		case exited || vanished:
			e.reason = ReasonExited
		case own.Denied > 0 || own.Hidden:
			e.reason = ReasonNotPermitted
		default:
			e.reason = ReasonNoProcess
		}
	}
	return e
}

// sortKey is what sockets are ordered by: protocol, local port, local
// address, remote port, remote address, inode, packed big-endian into
// words, so that comparing two keys is a few integer compares. Sorting
// these and then permuting the large Socket values once is far cheaper
// than sorting the sockets themselves (it shows at 100,000 sockets).
type sortKey struct {
	w   [6]uint64
	idx int32
}

func makeSortKey(s *Socket, idx int) sortKey {
	var k sortKey
	var b [48]byte
	b[0] = protoRank(s.Proto)
	binary.BigEndian.PutUint16(b[1:], s.Local.Port)
	putAddr(b[3:20], s.Local.Address)
	binary.BigEndian.PutUint16(b[20:], s.Remote.Port)
	putAddr(b[22:39], s.Remote.Address)
	binary.BigEndian.PutUint64(b[40:], s.Inode)
	for i := range k.w {
		k.w[i] = binary.BigEndian.Uint64(b[8*i:])
	}
	k.idx = int32(idx)
	return k
}

// protoRank orders protocols by name, as a string compare would.
func protoRank(p Proto) byte {
	switch p {
	case TCP:
		return 1
	case UDP:
		return 2
	}
	return 3
}

// putAddr writes a 17-byte form of a that orders as netip.Addr.Compare
// does for addresses without a zone: the invalid address, then IPv4, then
// IPv6, each by its bytes.
func putAddr(b []byte, a netip.Addr) {
	switch {
	case a.Is4():
		b[0] = 1
		v := a.As4()
		copy(b[1:], v[:])
	case a.Is6():
		b[0] = 2
		v := a.As16()
		copy(b[1:], v[:])
	}
}

func compareSortKeys(a, b sortKey) int {
	for i := range a.w {
		if a.w[i] != b.w[i] {
			if a.w[i] < b.w[i] {
				return -1
			}
			return 1
		}
	}
	return cmp.Compare(a.idx, b.idx)
}

func sortSockets(socks []Socket) {
	keys := make([]sortKey, len(socks))
	for i := range socks {
		keys[i] = makeSortKey(&socks[i], i)
	}
	slices.SortFunc(keys, compareSortKeys)
	// Apply the permutation in place, one cycle at a time: position i
	// must receive the socket now at keys[i].idx.
	for i := range keys {
		if keys[i].idx < 0 {
			continue
		}
		if int(keys[i].idx) == i {
			keys[i].idx = -1
			continue
		}
		tmp := socks[i]
		j := i
		for {
			src := int(keys[j].idx)
			keys[j].idx = -1
			if src == i {
				socks[j] = tmp
				break
			}
			socks[j] = socks[src]
			j = src
		}
	}
}

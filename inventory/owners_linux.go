package inventory

import (
	"cmp"
	"context"
	"errors"
	"golang.org/x/sys/unix"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/porteiro/porteiro/internal/procfs"
	"github.com/porteiro/porteiro/internal/taskfd"
	"github.com/porteiro/porteiro/internal/taskstats"
)

// userHZ is the unit of /proc/PID/stat times. The kernel exports USER_HZ,
// which is 100 on every Linux architecture.
const userHZ = 100

// Resolver is porteiro's one owner-resolution pipeline. Its input is
// (pid, fd, inode) records, from two sources: the kernel's task-file
// iterator (a BPF program that lists every open file of every process in
// one pass, with the inode of each socket), then the /proc/PID/fd walk of
// the processes the iterator did not report (all of them without the
// iterator). Records of wanted sockets go to one details stage, which reads
// each holder's /proc/PID files as soon as its first record arrives, while
// the sources go on.
//
// Without CAP_BPF and CAP_PERFMON, or on a kernel without BTF, the iterator
// is not used and the walk does all the work.
type Resolver struct {
	// ProcRoot is where procfs is mounted.
	ProcRoot string
	// Workers bounds the parallelism of the walk and of the details stage;
	// 0 means two per CPU.
	Workers int
	// Iterator enables the task-file iterator. Leave it off for a procfs
	// root other than the live /proc: the kernel knows nothing of a
	// fixture tree.
	Iterator bool
	// Brief reads of each process only what the plain table shows (name,
	// user, command line, start time): no executable path, unit or
	// container.
	Brief bool

	setup     sync.Once
	ready     atomic.Bool // setup has run
	procSetup sync.Once   // initProc
	btime     int64
	hidden    bool  // hidepid hides other users' processes from us
	pids      []int // a listing of /proc for the next Resolve (usePIDs)

	it    *taskfd.Iterator
	itErr error // why the iterator is not in use
	// states are the socket states the next pass wants (wantStates);
	// zero means all.
	states StateMask
	buf    []byte
	pre    *iterPass
	closed bool

	// The task iterator, for Brief details (tasks.go): loaded by the
	// first pass that wants it, under taskMu, and its current pass.
	taskMu   sync.Mutex
	tasks    *taskfd.Tasks
	tasksErr error
	tpass    *taskPass
	// taskDetails says the scan wants a task pass (wantTasks).
	taskDetails bool
	// noTasks keeps the task iterator off (tests compare with /proc);
	// fromTasks counts the processes described from its passes.
	noTasks   bool
	fromTasks atomic.Int64

	// known, if set, says which network namespaces the socket source
	// read: a socket the iterator finds in another one leads to a
	// namespace that nothing else names.
	known func(netns uint64) bool

	// hide, if set, drops the iterator's records of the pids it returns
	// true for (fault injection: tests use it to stand for processes the
	// iterator cannot see).
	hide func(pid int) bool
}

// ProcResolver is a Resolver whose Iterator is off: the /proc walk alone.
type ProcResolver = Resolver

// NewIterResolver returns a Resolver over the live kernel and procRoot that
// uses the task-file iterator when it can.
func NewIterResolver(procRoot string) *Resolver {
	return &Resolver{ProcRoot: procRoot, Iterator: true}
}

// errClosed says why a closed Resolver does not use the iterator.
var errClosed = errors.New("resolver closed")

// errNoIterator ends a prefetched pass when there is no iterator.
var errNoIterator = errors.New("no task-file iterator")

// init does the work of the first scan that later ones reuse: the
// iterator program, and (initProc) the boot time and whether hidepid
// hides processes.
func (r *Resolver) init() {
	r.setup.Do(func() {
		switch {
		case r.closed:
			r.itErr = errClosed
		case r.Iterator:
			r.it, r.itErr = taskfd.OpenStates(uint32(r.states))
		}
		r.ready.Store(true)
	})
}

// initProc reads what describing processes needs, once. A prefetch does
// not wait for it: the iterator's pass, what a scan waits for last,
// starts as soon as the program is loaded.
func (r *Resolver) initProc() {
	r.procSetup.Do(func() {
		r.btime, _ = procfs.BootTime(r.ProcRoot)
		r.hidden = readProcState(r.ProcRoot).hides
	})
}

// usePIDs implements pidUser.
func (r *Resolver) usePIDs(pids []int) { r.pids = pids }

// Err says why the iterator is not in use, or is nil.
func (r *Resolver) Err() error {
	if !r.Iterator {
		return nil
	}
	return r.itErr
}

// Close releases the iterator program. It is safe to call twice; a Resolver
// that is closed walks /proc.
func (r *Resolver) Close() error {
	r.finishPass()
	r.closed = true
	if r.it != nil {
		r.it.Close()
		r.it = nil
	}
	r.closeTasks()
	r.itErr = errClosed
	return nil
}

// Resolve implements OwnerResolver.
func (r *Resolver) Resolve(ctx context.Context, want map[uint64]struct{}) (*Owners, error) {
	r.init()
	r.initProc()
	if ip := r.pre; r.it == nil && ip != nil {
		// A prefetch that found no iterator started the walk.
		r.pre = nil
		ip.wait()
		if ip.walk != nil {
			if own := r.fromWalk(ctx, ip, want); own != nil {
				return own, ctx.Err()
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			// The prefetch's own context ended: walk now.
		}
	}
	var (
		p     *ownerPass
		seen  map[int]struct{}
		fence uint64
	)
	for attempt := 0; r.it != nil; attempt++ {
		ip := r.pre
		r.pre = nil
		if ip == nil {
			if r.Prefetch(ctx); r.pre == nil {
				break
			}
			ip, r.pre = r.pre, nil
		}
		p = r.newPass(ctx, want)
		// Nearly every wanted socket has one holder: room for that
		// saves growing the iterator's records by copying.
		p.sinks[0].recs = make([]rec, 0, len(want))
		var err error
		seen, err = r.fromIterator(ctx, ip, p)
		ip.mu.Lock()
		fence = ip.fence
		ip.mu.Unlock()
		if err == nil {
			break
		}
		p.abandon()
		p, seen = nil, nil
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if attempt == 0 && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
			continue // a prefetch whose own context ended: run a new pass
		}
		// A failed pass (a kernel that changed under us) is not retried.
		r.it.Close()
		r.it, r.itErr = nil, err
	}
	via := "taskfd"
	if p == nil {
		p, via = r.newPass(ctx, want), "procfs"
	}
	// Walk the processes the iterator did not report, which have no open
	// file or which it cannot see (then the walk finds their sockets, or
	// counts them as denied). Kernel threads and zombies make up most of
	// them, and their fd directories are empty.
	w := &procfs.Walker{Root: r.ProcRoot, Workers: r.Workers, Emit: p.emit}
	if seen != nil {
		// A listing of /proc from this scan, if the source made one. A
		// process it lacks was born since: the iterator, which visits
		// pids in increasing order and ran on, saw it; or its sockets
		// are younger than the pass and get a second look
		// (Scanner.lookAgain).
		w.PIDs, r.pids = r.pids, nil
		tp := p.details.tasks
		w.Skip = func(pid int) bool {
			_, ok := seen[pid]
			return ok || tp.noFiles(pid)
		}
	}
	res, err := w.Walk(ctx, want)
	if err != nil {
		p.abandon()
		return nil, err
	}
	own := p.finish()
	own.Via = via
	if via == "taskfd" {
		own.fence = fence
	}
	own.Scanned = len(seen) + res.Scanned
	own.Denied = res.Denied
	own.Hidden = r.hidden
	if seen == nil {
		own.noFiles = res.NoFiles
	}
	r.findHidden(own)
	return own, ctx.Err()
}

// findHidden looks at the holders the kernel named (the iterator reads
// the kernel's file tables, not /proc) whose details /proc did not give.
// One that exited meanwhile is gone for pidfd_open too. One that the
// kernel still runs is hidden from this /proc (a mount over /proc/PID, a
// filtered readdir): it is kept, marked hidden, with its pid, and its
// name and user from taskstats when the kernel answers.
func (r *Resolver) findHidden(own *Owners) {
	own.eachHolders(func(_ uint64, hs []Holder) {
		for _, h := range hs {
			if _, ok := own.Processes[h.PID]; ok {
				continue
			}
			if own.Processes == nil {
				own.Processes = map[int]*ProcessInfo{}
			}
			if kernelHasPID(h.PID) && !procShows(r.ProcRoot, h.PID) {
				p := &ProcessInfo{PID: h.PID, Name: "?", Hidden: true}
				// The kernel's own account of the process (taskstats,
				// not /proc) gives its name and user.
				if t, err := taskstats.Lookup(h.PID); err == nil && t.PID == h.PID {
					p.Name, p.UID, p.User = t.Comm, t.UID, UserName(t.UID)
				}
				own.Processes[h.PID] = p
			}
		}
	})
}

// kernelHasPID reports whether the kernel runs process pid (pidfd_open
// fails with ESRCH once it has exited).
func kernelHasPID(pid int) bool {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return false
	}
	unix.Close(fd)
	return true
}

// procShows reports whether /proc shows pid as itself: its stat file
// names the same pid.
func procShows(root string, pid int) bool {
	b, err := os.ReadFile(filepath.Join(root, strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	st, err := procfs.ParseStat(b)
	return err == nil && st.PID == pid
}

// wantStates implements stateWanter.
func (r *Resolver) wantStates(m StateMask) { r.states = m }

// setKnownNS implements nsAware.
func (r *Resolver) setKnownNS(known func(uint64) bool) { r.known = known }

// secondLook runs the owner pipeline again, for sockets that the first
// pass may have missed because they were opened while it ran.
func (r *Resolver) secondLook(ctx context.Context, inodes map[uint64]struct{}) (*Owners, error) {
	r.finishPass()
	return r.Resolve(ctx, inodes)
}

// exitingHolders finds inodes held by the threads of processes whose
// leader has already exited, among the processes the walk of own found
// without files. (The iterator reports such threads' files itself.)
func (r *Resolver) exitingHolders(ctx context.Context, own *Owners, inodes map[uint64]struct{}) (map[uint64]int, error) {
	if len(own.noFiles) == 0 {
		return nil, nil
	}
	return procfs.ExitingHolders(ctx, r.ProcRoot, own.noFiles, inodes)
}

// ownerPass is one run of the pipeline: the records of wanted sockets, one
// sink per goroutine that produces them (so no lock is taken per record),
// and the details stage.
type ownerPass struct {
	wanted  *inodeSet // the wanted inodes, for add's test of every record
	sinks   []sink    // the iterator's, then one per walk worker
	details *detailStage
	// foreign holds, for each network namespace that only sockets led
	// to, one (pid, fd) of a socket in it; their records are in sink 0.
	foreign map[uint64]Holder
}

// rec is one (pid, fd) holding a wanted inode.
type rec struct {
	inode uint64
	pid   int32
	fd    int32
}

type sink struct {
	recs    []rec
	lastPID int
}

func (r *Resolver) newPass(ctx context.Context, want map[uint64]struct{}) *ownerPass {
	n := (&procfs.Walker{Workers: r.Workers}).NumWorkers()
	p := &ownerPass{wanted: newInodeSet(want), sinks: make([]sink, 1+n), details: r.startDetails(ctx, n, r.tpass)}
	for i := range p.sinks {
		p.sinks[i].lastPID = -1
	}
	return p
}

// add takes one record into sink k; only wanted sockets are kept, and the
// first record of each process sends it to the details stage.
func (p *ownerPass) add(k, pid, fd int, inode uint64) {
	if !p.wanted.has(inode) {
		return
	}
	s := &p.sinks[k]
	s.recs = append(s.recs, rec{inode: inode, pid: int32(pid), fd: int32(fd)})
	if pid != s.lastPID {
		s.lastPID = pid
		p.details.add(pid)
	}
}

// addForeign keeps the record of a socket in a namespace the source did
// not read, whatever the wanted set: the scanner reads that namespace
// next, and its sockets need their holders.
func (p *ownerPass) addForeign(pid, fd int, inode, netns uint64) {
	if p.foreign == nil {
		p.foreign = map[uint64]Holder{}
	}
	if _, ok := p.foreign[netns]; !ok {
		p.foreign[netns] = Holder{PID: pid, FD: fd}
	}
	s := &p.sinks[0]
	s.recs = append(s.recs, rec{inode: inode, pid: int32(pid), fd: int32(fd)})
	if pid != s.lastPID {
		s.lastPID = pid
		p.details.add(pid)
	}
}

// emit is procfs.Walker.Emit: worker w's records go to sink 1+w.
func (p *ownerPass) emit(w, pid, fd int, inode uint64) { p.add(1+w, pid, fd, inode) }

// finish waits for the details and gathers the records.
func (p *ownerPass) finish() *Owners {
	procs := p.details.wait()
	// Every record in one array, ordered by socket, process and fd: each
	// socket's holders are then a slice of one allocation, already in the
	// order buildOwners wants, rather than a slice grown per socket.
	n, full := 0, 0
	for i, s := range p.sinks {
		n += len(s.recs)
		if len(s.recs) > 0 {
			full = i
		}
	}
	var all []rec
	if n == len(p.sinks[full].recs) {
		all = p.sinks[full].recs // one sink has them all: the iterator's, usually
	} else {
		all = make([]rec, 0, n)
		for _, s := range p.sinks {
			all = append(all, s.recs...)
		}
	}
	slices.SortFunc(all, func(a, b rec) int {
		if a.inode != b.inode {
			return cmp.Compare(a.inode, b.inode)
		}
		if a.pid != b.pid {
			return cmp.Compare(a.pid, b.pid)
		}
		return cmp.Compare(a.fd, b.fd)
	})
	// The index: the records' inodes and holders, side by side. It
	// replaces a map of every socket, which at 100,000 sockets is the
	// largest thing a scan builds after the sockets themselves.
	hs := make([]Holder, len(all))
	inodes := make([]uint64, len(all))
	for i, r := range all {
		hs[i], inodes[i] = Holder{PID: int(r.pid), FD: int(r.fd)}, r.inode
	}
	return &Owners{index: hs, inodes: inodes, pos: newInodeIndex(inodes), Processes: procs, Foreign: p.foreign}
}

// abandon stops the details stage of a pass whose records are dropped.
func (p *ownerPass) abandon() { p.details.wait() }

// iterPass is one run of the iterator, in the background.
type iterPass struct {
	mu     sync.Mutex
	cond   *sync.Cond
	chunks [][]byte // batches of records, in order
	done   bool
	buf    []byte
	err    error
	fence  uint64 // inodeFence() when the pass started
	// walk is the /proc walk started instead, when there is no
	// iterator, with the fence of its start.
	walk   *procfs.Pass
	wfence uint64
}

// Prefetch starts a pass of the iterator, for the next Resolve to use. A
// pass that Resolve does not collect stops when ctx is cancelled.
//
// The first Prefetch also loads the iterator program (Resolver.init), in
// the background too: loading and verifying it takes as long as the socket
// dump that a one-shot scan runs meanwhile.
func (r *Resolver) Prefetch(ctx context.Context) {
	r.finishPass()
	p := &iterPass{}
	p.cond = sync.NewCond(&p.mu)
	r.pre = p
	if r.ready.Load() && r.it != nil && !r.it.Covers(uint32(r.states)) {
		// The program leaves out sockets in states this scan wants: one
		// that keeps every socket, for this scan and the next.
		r.it.Close()
		r.it, r.itErr = taskfd.Open()
	}
	if r.ready.Load() && r.it == nil {
		p.startWalk(ctx, r)
		return
	}
	// The task pass runs beside: namespace discovery, at the start of
	// the dump, waits for it.
	r.startTasks(ctx)
	buf := r.buf
	go func() {
		r.init()
		it := r.it
		if it == nil {
			p.startWalk(ctx, r)
			return
		}
		fence := inodeFence()
		p.mu.Lock()
		p.fence = fence
		p.mu.Unlock()
		b, err := it.ReadFunc(ctx, buf, func(c []byte) {
			p.mu.Lock()
			p.chunks = append(p.chunks, c)
			p.mu.Unlock()
			p.cond.Signal()
		})
		p.mu.Lock()
		p.buf, p.err, p.done = b, err, true
		p.mu.Unlock()
		p.cond.Signal()
	}()
}

// startWalk ends a pass that found no iterator: the /proc walk starts
// instead, beside the dump, keeping the records of every socket until
// Resolve knows which it wants (procfs.Walker.Start).
func (p *iterPass) startWalk(ctx context.Context, r *Resolver) {
	fence := inodeFence()
	w := (&procfs.Walker{Root: r.ProcRoot, Workers: r.Workers}).Start(ctx)
	p.mu.Lock()
	p.walk, p.wfence = w, fence
	p.err, p.done = errNoIterator, true
	p.mu.Unlock()
	p.cond.Broadcast()
}

// wait waits for the pass to end.
func (p *iterPass) wait() {
	p.mu.Lock()
	for !p.done {
		p.cond.Wait()
	}
	p.mu.Unlock()
}

// finishPass waits for a pass nobody collected, so two never share the
// iterator, and lets a walk nobody collected run to its end.
func (r *Resolver) finishPass() {
	if p := r.pre; p != nil {
		r.pre = nil
		p.wait()
		if p.walk != nil {
			p.walk.Each(func(int, int, uint64) {})
		}
	}
}

// fromWalk collects a walk that Prefetch started: its records are filtered
// by want as they are taken. It returns nil when the walk failed, and the
// caller walks again.
func (r *Resolver) fromWalk(ctx context.Context, ip *iterPass, want map[uint64]struct{}) *Owners {
	p := r.newPass(ctx, want)
	res, err := ip.walk.Each(func(pid, fd int, inode uint64) { p.add(0, pid, fd, inode) })
	if err != nil {
		p.abandon()
		return nil
	}
	own := p.finish()
	own.Via = "procfs"
	own.fence = ip.wfence
	own.Scanned, own.Denied, own.noFiles = res.Scanned, res.Denied, res.NoFiles
	own.Hidden = r.hidden
	r.findHidden(own)
	return own
}

// next returns the next batch of records, or nil when the pass is over.
func (p *iterPass) next(k int) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k >= len(p.chunks) && !p.done {
		p.cond.Wait()
	}
	if k < len(p.chunks) {
		return p.chunks[k]
	}
	return nil
}

// bufferDropper is a resolver that keeps buffers between scans.
type bufferDropper interface{ dropBuffers() }

// dropBuffers lets the iterator's buffer go: a scanner that scans once has
// no use for it.
func (r *Resolver) dropBuffers() { r.buf = nil }

// fromIterator feeds the records of iterator pass ip into sink 0 of p as
// they arrive, and returns every process the iterator reported.
func (r *Resolver) fromIterator(ctx context.Context, ip *iterPass, p *ownerPass) (map[int]struct{}, error) {
	seen := make(map[int]struct{}, 256)
	lastPID := -1
	for k := 0; ; k++ {
		b := ip.next(k)
		if b == nil {
			break
		}
		taskfd.ParseRecords(b, func(pid, fd uint32, inode uint64, netns uint32) {
			pi := int(pid)
			if r.hide != nil && r.hide(pi) {
				return
			}
			if pi != lastPID {
				seen[pi] = struct{}{}
				lastPID = pi
			}
			if netns != 0 && inode != 0 && r.known != nil && !r.known(uint64(netns)) {
				p.addForeign(pi, int(fd), inode, uint64(netns))
				return
			}
			p.add(0, pi, int(fd), inode)
		})
	}
	ip.mu.Lock()
	buf, err := ip.buf, ip.err
	ip.mu.Unlock()
	if err != nil {
		return nil, err
	}
	r.buf = buf
	return seen, ctx.Err()
}

// detailStage reads the details of processes on its workers, as their pids
// come in from any source.
type detailStage struct {
	r     *Resolver
	now   time.Time
	pids  chan int
	mu    sync.Mutex
	seen  map[int]struct{}
	found [][]*ProcessInfo
	wg    sync.WaitGroup
	once  sync.Once
	// tasks, if set, gives the details of the processes it saw.
	tasks *taskPass
}

func (r *Resolver) startDetails(ctx context.Context, n int, tp *taskPass) *detailStage {
	d := &detailStage{r: r, now: time.Now(), pids: make(chan int, 1024),
		seen: map[int]struct{}{}, found: make([][]*ProcessInfo, n), tasks: tp}
	for w := range n {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			var buf []byte
			for pid := range d.pids {
				if ctx.Err() != nil {
					continue // drain
				}
				if p := d.process(pid, &buf); p != nil {
					d.found[w] = append(d.found[w], p)
				}
			}
		}()
	}
	return d
}

// add queues pid, once. It is safe for concurrent use.
func (d *detailStage) add(pid int) {
	d.mu.Lock()
	_, dup := d.seen[pid]
	d.seen[pid] = struct{}{}
	d.mu.Unlock()
	if !dup {
		d.pids <- pid
	}
}

// wait returns the details read; a process that exited is missing.
func (d *detailStage) wait() map[int]*ProcessInfo {
	d.once.Do(func() { close(d.pids) })
	d.wg.Wait()
	out := make(map[int]*ProcessInfo, len(d.seen))
	for _, ps := range d.found {
		for _, p := range ps {
			out[p.PID] = p
		}
	}
	return out
}

// process reads the details of pid, or returns nil if it exited.
func (r *Resolver) process(pid int, now time.Time, buf *[]byte) *ProcessInfo {
	info, err := procfs.ReadProcessFields(r.ProcRoot, pid, buf, r.Brief)
	if err != nil {
		return nil // exited between its records and now
	}
	return r.fromInfo(pid, info, now)
}

// fromInfo is the ProcessInfo of what procfs read of pid (or what the task
// iterator gave in its form).
func (r *Resolver) fromInfo(pid int, info *procfs.Info, now time.Time) *ProcessInfo {
	st := info.Stat
	p := &ProcessInfo{
		PID:        pid,
		PPID:       st.PPID,
		Name:       st.Comm,
		Exe:        info.Exe,
		ExeDeleted: info.ExeDeleted,
		Cmdline:    info.Cmdline,
		UID:        info.UID,
		StartTicks: st.StartTicks,
		Unit:       info.Cgroup.Unit,
		Container:  info.Cgroup.Container,
		State:      st.State,
		RSSBytes:   uint64(max(st.RSSPages, 0)) * uint64(os.Getpagesize()),
	}
	if info.UIDKnown {
		p.User = UserName(info.UID)
	}
	if r.btime > 0 {
		start := time.Unix(r.btime, 0).Add(time.Duration(st.StartTicks) * time.Second / userHZ)
		p.StartTime = start
		if el := now.Sub(start).Seconds(); el > 0 {
			p.CPUPercent = float64(st.UTime+st.STime) / userHZ / el * 100
		}
	}
	return p
}

// Process reads the details of one process, as a scan would give them,
// or returns nil when it is gone. The daemon uses it to complete what the
// kernel said of a listener's owner at listen() or bind().
func (r *Resolver) Process(pid int) *ProcessInfo {
	r.initProc()
	var buf []byte
	return r.process(pid, time.Now(), &buf)
}

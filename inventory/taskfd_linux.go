package inventory

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/porteiro/porteiro/internal/procfs"
	"github.com/porteiro/porteiro/internal/taskfd"
)

// IterResolver finds socket owners with the kernel's task-file iterator (a
// BPF program that lists every open file of every process in one pass,
// with the inode of each socket), and walks /proc only for the processes
// the iterator did not report. Without CAP_BPF and CAP_PERFMON, or on a
// kernel without BTF, it is the /proc walk.
//
// The iterator runs on one CPU in the kernel, so the rest of the scan works
// beside it: Prefetch starts it while the sockets are still being dumped,
// and the details of each process are read as soon as its records arrive.
type IterResolver struct {
	Proc *ProcResolver

	once sync.Once
	it   *taskfd.Iterator
	err  error // why the iterator is not in use
	buf  []byte
	pre  *iterPass

	// hide, if set, drops the iterator's records of the pids it returns
	// true for (fault injection: tests use it to stand for processes the
	// iterator cannot see).
	hide func(pid int) bool
}

// iterPass is one run of the iterator, in the background.
type iterPass struct {
	mu     sync.Mutex
	cond   *sync.Cond
	chunks [][]byte // batches of records, in order
	done   bool
	buf    []byte
	err    error
}

// NewIterResolver returns an IterResolver over the live kernel and procRoot.
func NewIterResolver(procRoot string) *IterResolver {
	return &IterResolver{Proc: &ProcResolver{ProcRoot: procRoot}}
}

// Err says why the iterator is not in use, or is nil.
func (r *IterResolver) Err() error { return r.err }

// Close releases the iterator program.
func (r *IterResolver) Close() error {
	r.finishPass()
	if r.it != nil {
		r.it.Close()
		r.it = nil
	}
	return nil
}

// Prefetch starts a pass of the iterator, for the next Resolve to use. A
// pass that Resolve does not collect stops when ctx is cancelled.
func (r *IterResolver) Prefetch(ctx context.Context) {
	r.once.Do(func() { r.it, r.err = taskfd.Open() })
	r.finishPass()
	if r.it == nil {
		return
	}
	p := &iterPass{}
	p.cond = sync.NewCond(&p.mu)
	r.pre = p
	it, buf := r.it, r.buf
	go func() {
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

// finishPass waits for a pass nobody collected, so two never share the
// iterator.
func (r *IterResolver) finishPass() {
	if p := r.pre; p != nil {
		r.pre = nil
		p.mu.Lock()
		for !p.done {
			p.cond.Wait()
		}
		p.mu.Unlock()
	}
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

// Resolve implements OwnerResolver.
func (r *IterResolver) Resolve(ctx context.Context, want map[uint64]struct{}) (*Owners, error) {
	var (
		c   *collected
		err error
	)
	for attempt := 0; ; attempt++ {
		p := r.pre
		r.pre = nil
		if p == nil {
			if r.Prefetch(ctx); r.pre == nil {
				return r.Proc.Resolve(ctx, want)
			}
			p, r.pre = r.pre, nil
		}
		c, err = r.collect(ctx, p, want)
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if attempt == 0 && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
			continue // a prefetch whose own context ended: run a new pass
		}
		// A failed pass (a kernel that changed under us) is not retried.
		r.it.Close()
		r.it, r.err = nil, err
		return r.Proc.Resolve(ctx, want)
	}
	own := &Owners{Holders: c.holders, Processes: c.procs, Scanned: len(c.seen), Via: "taskfd"}

	// Walk the processes the iterator did not report, which have no open
	// file or which it cannot see (then the walk finds their sockets, or
	// counts them as denied). Kernel threads and zombies make up most of
	// them, and their fd directories are empty.
	w := &procfs.Walker{Root: r.Proc.ProcRoot, Workers: r.Proc.Workers,
		Skip: func(pid int) bool { _, ok := c.seen[pid]; return ok }}
	res, err := w.Walk(ctx, want)
	if err != nil {
		return nil, err
	}
	if len(res.Holders) > 0 {
		more := r.Proc.startDetails(ctx)
		for ino, hs := range res.Holders {
			c.holders[ino] = append(c.holders[ino], hs...)
			for _, h := range hs {
				more.add(h.PID)
			}
		}
		for pid, p := range more.wait() {
			c.procs[pid] = p
		}
	}
	own.Scanned += res.Scanned
	own.Denied = res.Denied
	return own, ctx.Err()
}

// collected is what one pass of the iterator found.
type collected struct {
	holders map[uint64][]Holder
	procs   map[int]*Process
	seen    map[int]struct{} // every process the iterator reported
}

// collect reads pass p's records as they arrive, and the details of each
// process that holds a wanted socket as soon as it shows up.
func (r *IterResolver) collect(ctx context.Context, p *iterPass, want map[uint64]struct{}) (*collected, error) {
	c := &collected{
		holders: make(map[uint64][]Holder, len(want)),
		seen:    make(map[int]struct{}, 256),
	}
	pool := r.Proc.startDetails(ctx)
	lastPID, lastMatched := -1, -1
	for k := 0; ; k++ {
		b := p.next(k)
		if b == nil {
			break
		}
		taskfd.ParseRecords(b, func(pid, fd uint32, inode uint64) {
			pi := int(pid)
			if r.hide != nil && r.hide(pi) {
				return
			}
			if pi != lastPID {
				c.seen[pi] = struct{}{}
				lastPID = pi
			}
			if _, ok := want[inode]; !ok || inode == 0 {
				return
			}
			c.holders[inode] = append(c.holders[inode], Holder{PID: pi, FD: int(fd)})
			if pi != lastMatched {
				lastMatched = pi
				pool.add(pi)
			}
		})
	}
	c.procs = pool.wait()
	p.mu.Lock()
	buf, err := p.buf, p.err
	p.mu.Unlock()
	if err != nil {
		return nil, err
	}
	r.buf = buf
	return c, ctx.Err()
}

// detailPool reads the details of processes on two workers per CPU, as
// their pids come in.
type detailPool struct {
	r     *ProcResolver
	ctx   context.Context
	now   time.Time
	pids  chan int
	seen  map[int]struct{}
	found [][]*Process
	wg    sync.WaitGroup
}

func (r *ProcResolver) startDetails(ctx context.Context) *detailPool {
	r.once.Do(func() {
		r.btime, _ = procfs.BootTime(r.ProcRoot)
	})
	n := (&procfs.Walker{Workers: r.Workers}).NumWorkers()
	d := &detailPool{r: r, ctx: ctx, now: time.Now(), pids: make(chan int, 1024),
		seen: map[int]struct{}{}, found: make([][]*Process, n)}
	for w := range n {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			var buf []byte
			for pid := range d.pids {
				if ctx.Err() != nil {
					continue // drain
				}
				if p := r.process(pid, d.now, &buf); p != nil {
					d.found[w] = append(d.found[w], p)
				}
			}
		}()
	}
	return d
}

// add queues pid, once.
func (d *detailPool) add(pid int) {
	if _, ok := d.seen[pid]; ok {
		return
	}
	d.seen[pid] = struct{}{}
	d.pids <- pid
}

// wait returns the details read; a process that exited is missing.
func (d *detailPool) wait() map[int]*Process {
	close(d.pids)
	d.wg.Wait()
	out := make(map[int]*Process, len(d.seen))
	for _, ps := range d.found {
		for _, p := range ps {
			out[p.PID] = p
		}
	}
	return out
}

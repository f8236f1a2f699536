package inventory

import (
	"context"
	"sync"
	"time"

	"github.com/porteiro/porteiro/internal/procfs"
	"github.com/porteiro/porteiro/internal/taskfd"
)

// IterResolver finds socket owners with the kernel's task-file iterator (a
// BPF program that lists every socket fd of every process in one pass), and
// walks /proc only for the sockets the iterator did not attribute. Without
// CAP_BPF and CAP_PERFMON, or on a kernel without BTF, it is the /proc walk.
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
	p := r.pre
	if p == nil {
		r.Prefetch(ctx)
		if p = r.pre; p == nil {
			return r.Proc.Resolve(ctx, want)
		}
	}
	r.pre = nil

	holders := make(map[uint64][]Holder, len(want))
	seen := make(map[int]struct{}, 256) // every process the iterator saw with a socket
	pool := r.Proc.startDetails(ctx)
	lastPID, lastMatched := -1, -1
	for k := 0; ; k++ {
		c := p.next(k)
		if c == nil {
			break
		}
		taskfd.ParseRecords(c, func(pid, fd uint32, inode uint64) {
			pi := int(pid)
			if pi != lastPID {
				seen[pi] = struct{}{}
				lastPID = pi
			}
			if _, ok := want[inode]; !ok {
				return
			}
			holders[inode] = append(holders[inode], Holder{PID: pi, FD: int(fd)})
			if pi != lastMatched {
				lastMatched = pi
				pool.add(pi)
			}
		})
	}
	procs := pool.wait()
	p.mu.Lock()
	b, err := p.buf, p.err
	p.mu.Unlock()
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		// A failed pass (a kernel that changed under us) is not retried.
		r.it.Close()
		r.it, r.err = nil, err
		return r.Proc.Resolve(ctx, want)
	}
	r.buf = b
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	own := &Owners{Holders: holders, Processes: procs, Scanned: len(seen), Via: "taskfd"}

	// A socket the iterator did not attribute may belong to a process it
	// cannot see; walking the others says whether one is there or denied.
	var missing map[uint64]struct{}
	for ino := range want {
		if _, ok := holders[ino]; !ok && ino != 0 {
			if missing == nil {
				missing = map[uint64]struct{}{}
			}
			missing[ino] = struct{}{}
		}
	}
	if missing == nil {
		return own, nil
	}
	w := &procfs.Walker{Root: r.Proc.ProcRoot, Workers: r.Proc.Workers,
		Skip: func(pid int) bool { _, ok := seen[pid]; return ok }}
	res, err := w.Walk(ctx, missing)
	if err != nil {
		return nil, err
	}
	more := r.Proc.startDetails(ctx)
	for ino, hs := range res.Holders {
		holders[ino] = hs
		for _, h := range hs {
			if _, ok := procs[h.PID]; !ok {
				more.add(h.PID)
			}
		}
	}
	for pid, p := range more.wait() {
		procs[pid] = p
	}
	own.Scanned += res.Scanned
	own.Denied = res.Denied
	return own, nil
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

package inventory

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/porteiro/porteiro/internal/procfs"
	"github.com/porteiro/porteiro/internal/taskfd"
)

// IterResolver finds socket owners with the kernel's task-file iterator (a
// BPF program that lists every socket fd of every process in one pass), and
// walks /proc only for the sockets the iterator did not attribute. Without
// CAP_BPF and CAP_PERFMON, or on a kernel without BTF, it is the /proc walk.
type IterResolver struct {
	Proc *ProcResolver

	once sync.Once
	it   *taskfd.Iterator
	err  error // why the iterator is not in use
	buf  []byte
}

// NewIterResolver returns an IterResolver over the live kernel and procRoot.
func NewIterResolver(procRoot string) *IterResolver {
	return &IterResolver{Proc: &ProcResolver{ProcRoot: procRoot}}
}

// Err says why the iterator is not in use, or is nil.
func (r *IterResolver) Err() error { return r.err }

// Close releases the iterator program.
func (r *IterResolver) Close() error {
	if r.it != nil {
		r.it.Close()
		r.it = nil
	}
	return nil
}

// Resolve implements OwnerResolver.
func (r *IterResolver) Resolve(ctx context.Context, want map[uint64]struct{}) (*Owners, error) {
	r.once.Do(func() { r.it, r.err = taskfd.Open() })
	if r.it == nil {
		return r.Proc.Resolve(ctx, want)
	}
	b, err := r.it.Read(ctx, r.buf)
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

	holders := make(map[uint64][]Holder, len(want))
	seen := make(map[int]struct{}, 256) // every process the iterator saw with a socket
	var matched []int
	lastPID, lastMatched := -1, -1
	err = taskfd.ParseRecords(b, func(pid, fd uint32, inode uint64) {
		p := int(pid)
		if p != lastPID {
			seen[p] = struct{}{}
			lastPID = p
		}
		if _, ok := want[inode]; !ok {
			return
		}
		holders[inode] = append(holders[inode], Holder{PID: p, FD: int(fd)})
		if p != lastMatched {
			lastMatched = p
			matched = append(matched, p)
		}
	})
	if err != nil {
		return nil, err
	}
	own := &Owners{
		Holders:   holders,
		Processes: r.Proc.details(ctx, dedup(matched)),
		Scanned:   len(seen),
		Via:       "taskfd",
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}

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
	var more []int
	for ino, hs := range res.Holders {
		holders[ino] = hs
		for _, h := range hs {
			more = append(more, h.PID)
		}
	}
	for pid, p := range r.Proc.details(ctx, dedup(more)) {
		own.Processes[pid] = p
	}
	own.Scanned += res.Scanned
	own.Denied = res.Denied
	return own, nil
}

// dedup drops repeated pids (the iterator reports a process once per
// group of fds, so repeats are rare).
func dedup(pids []int) []int {
	seen := make(map[int]struct{}, len(pids))
	out := pids[:0]
	for _, p := range pids {
		if _, ok := seen[p]; !ok {
			seen[p] = struct{}{}
			out = append(out, p)
		}
	}
	return out
}

// details reads the processes' details on two workers per CPU. A process
// that exited meanwhile is left out.
func (r *ProcResolver) details(ctx context.Context, pids []int) map[int]*Process {
	r.once.Do(func() {
		r.btime, _ = procfs.BootTime(r.ProcRoot)
	})
	out := make(map[int]*Process, len(pids))
	if len(pids) == 0 {
		return out
	}
	workers := min((&procfs.Walker{Workers: r.Workers}).NumWorkers(), len(pids))
	now := time.Now()
	found := make([][]*Process, workers)
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var buf []byte
			for ctx.Err() == nil {
				k := int(next.Add(1) - 1)
				if k >= len(pids) {
					return
				}
				if p := r.process(pids[k], now, &buf); p != nil {
					found[w] = append(found[w], p)
				}
			}
		}()
	}
	wg.Wait()
	for _, ps := range found {
		for _, p := range ps {
			out[p.PID] = p
		}
	}
	return out
}

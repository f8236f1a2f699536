package procfs

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// WalkResult is what one walk over /proc/*/fd found.
type WalkResult struct {
	// Holders maps each wanted inode to every (pid, fd) that holds it.
	Holders map[uint64][]Holder
	// Scanned counts processes whose fd directory was read.
	Scanned int
	// Denied counts processes whose fd directory could not be opened (EACCES).
	Denied int
	// NoFiles lists the processes whose fd directory was empty: kernel
	// threads, and processes that are exiting (see ExitingHolders).
	NoFiles []int
}

// Walker finds the processes that hold socket inodes by reading every
// /proc/PID/fd. It is built for speed: directories are read with getdents
// into reused buffers, links with readlinkat on names that are already
// NUL-terminated in those buffers, so the loop allocates nothing per fd.
type Walker struct {
	// Root is the procfs mount point, "/proc" on a normal host.
	Root string
	// Workers is the number of goroutines; 0 means two per CPU.
	Workers int

	// Emit, if set, receives every (pid, fd, inode) of a wanted socket from
	// worker w (0 <= w < NumWorkers()) as soon as the worker has read that
	// process's fd directory, so the caller can read the process's details
	// while the walk goes on. The records then go to Emit only: the
	// result's Holders is empty.
	Emit func(w, pid, fd int, inode uint64)

	// Skip, if set, leaves out the pids it returns true for.
	Skip func(pid int) bool

	// PIDs, if set, are the processes to walk, from a listing of Root the
	// caller made moments before, instead of a new one.
	PIDs []int

	// visit, if set, is called for every pid the walk opens (tests use it
	// to prove that cancellation stops the walk).
	visit func(pid int)
}

// NumWorkers returns how many goroutines Walk uses at most: by default two
// per CPU, because workers often wait on the kernel's locks of the
// directories they read, and a spare one keeps each core busy meanwhile.
func (w *Walker) NumWorkers() int {
	if w.Workers > 0 {
		return w.Workers
	}
	return runtime.GOMAXPROCS(0) * 2
}

type found struct {
	inode uint64
	pid   int32
	fd    int32
}

const direntNameOff = 19 // offsetof(struct linux_dirent64, d_name)

// Walk reads every process's fd directory and returns the holders of the
// inodes in want. Processes that vanish mid-walk are skipped silently.
func (w *Walker) Walk(ctx context.Context, want map[uint64]struct{}) (*WalkResult, error) {
	return w.run(ctx, want, false, nil, nil)
}

// run is Walk; with all set it keeps every socket, whatever want, and with
// pub set, each worker hands it the records of every process as soon as it
// has read them (Start). With more set, one worker starts, and the others
// when more is closed.
func (w *Walker) run(ctx context.Context, want map[uint64]struct{}, all bool, pub func([]found), more <-chan struct{}) (*WalkResult, error) {
	rootfd, err := unix.Open(w.Root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", w.Root, err)
	}
	defer unix.Close(rootfd)
	var pids []int32
	if w.PIDs != nil {
		pids = make([]int32, 0, len(w.PIDs))
		for _, p := range w.PIDs {
			pids = append(pids, int32(p))
		}
	} else if pids, err = listPIDs(rootfd); err != nil {
		return nil, fmt.Errorf("reading %s: %w", w.Root, err)
	}
	workers := w.NumWorkers()
	if workers > len(pids) {
		workers = max(1, len(pids))
	}
	var (
		next    atomic.Int64
		scanned atomic.Int64
		denied  atomic.Int64
		wg      sync.WaitGroup
		parts   = make([][]found, workers)
		empty   = make([][]int, workers)
		// first is closed when worker 0 is done: the others, still
		// waiting for more, have nothing left to do.
		first     = make(chan struct{})
		firstOnce sync.Once
	)
	for i := 0; i < workers; i++ {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			if i == 0 {
				defer firstOnce.Do(func() { close(first) })
			} else if more != nil {
				select {
				case <-more:
				case <-first:
				case <-ctx.Done():
				}
			}
			var (
				dbuf  = make([]byte, direntBufSize)
				lbuf  = make([]byte, 64)
				pbuf  = make([]byte, 0, 32)
				local []found
			)
			for {
				if ctx.Err() != nil {
					return
				}
				k := int(next.Add(1) - 1)
				if k >= len(pids) {
					break
				}
				pid := pids[k]
				if w.Skip != nil && w.Skip(int(pid)) {
					continue
				}
				if w.visit != nil {
					w.visit(int(pid))
				}
				pbuf = strconv.AppendInt(pbuf[:0], int64(pid), 10)
				pbuf = append(pbuf, "/fd\x00"...)
				fdfd, err := openatRaw(rootfd, pbuf)
				if err != nil {
					if err == unix.EACCES || err == unix.EPERM {
						denied.Add(1)
					}
					continue // ENOENT, ESRCH: the process is gone
				}
				scanned.Add(1)
				if pub != nil && cap(local)-len(local) < 64 {
					// A new chunk rather than a bigger copy: the
					// records handed over stay where they are, and
					// growing by copies would touch twice the memory.
					local = make([]found, 0, 512)
				}
				before := len(local)
				var n int
				local, n = scanFDs(fdfd, pid, want, all, dbuf, lbuf, local)
				unix.Close(fdfd)
				if n == 0 {
					empty[i] = append(empty[i], int(pid))
				}
				switch {
				case pub != nil && len(local) > before:
					// The records stay where they are: this worker
					// only appends after them, so the reader can use
					// them while the walk goes on.
					pub(local[before:len(local):len(local)])
				case w.Emit != nil:
					for _, f := range local[before:] {
						w.Emit(i, int(f.pid), int(f.fd), f.inode)
					}
					local = local[:before]
				}
			}
			parts[i] = local
		}(i)
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res := &WalkResult{
		Scanned: int(scanned.Load()),
		Denied:  int(denied.Load()),
	}
	for _, e := range empty {
		res.NoFiles = append(res.NoFiles, e...)
	}
	if pub != nil || w.Emit != nil {
		return res, nil // the records went out as the walk found them
	}
	res.Holders = make(map[uint64][]Holder, len(want))
	for _, p := range parts {
		for _, f := range p {
			res.Holders[f.inode] = append(res.Holders[f.inode], Holder{PID: int(f.pid), FD: int(f.fd)})
		}
	}
	return res, nil
}

// Pass is a walk started before its caller knows which sockets it wants:
// beside the socket dump, so that the two share the machine's cores
// instead of running one after the other. It keeps every socket's (pid,
// fd, inode), and hands them over as the walk goes on.
type Pass struct {
	mu      sync.Mutex
	cond    *sync.Cond
	batches [][]found // each worker's records of one process
	done    bool
	res     *WalkResult
	err     error
	more    chan struct{}
	once    sync.Once
}

// Start begins a walk of every process in the background, for every
// socket inode; Each collects it. Until Each is called, one worker walks,
// which leaves the other cores to the caller (the socket dump); then the
// others join. Emit is not used. The walk stops early when ctx is
// cancelled; a Pass that nobody collects walks to its end on one worker.
func (w *Walker) Start(ctx context.Context) *Pass {
	p := &Pass{more: make(chan struct{})}
	p.cond = sync.NewCond(&p.mu)
	go func() {
		res, err := w.run(ctx, nil, true, func(b []found) {
			p.mu.Lock()
			p.batches = append(p.batches, b)
			p.mu.Unlock()
			p.cond.Signal()
		}, p.more)
		p.mu.Lock()
		p.res, p.err, p.done = res, err, true
		p.mu.Unlock()
		p.cond.Signal()
	}()
	return p
}

// Each calls fn, on the caller's goroutine, for every (pid, fd, inode) of
// a socket that the walk found, as soon as the worker that read the
// process hands it over, and returns the walk's result when it is over
// (its Holders is empty: the records went to fn). The records of one
// process come together. Each may be called once.
func (p *Pass) Each(fn func(pid, fd int, inode uint64)) (*WalkResult, error) {
	p.once.Do(func() { close(p.more) })
	for k := 0; ; k++ {
		p.mu.Lock()
		for k >= len(p.batches) && !p.done {
			p.cond.Wait()
		}
		if k >= len(p.batches) {
			res, err := p.res, p.err
			p.batches = nil
			p.mu.Unlock()
			return res, err
		}
		b := p.batches[k]
		p.mu.Unlock()
		for _, f := range b {
			fn(int(f.pid), int(f.fd), f.inode)
		}
	}
}

// scanFDs reads one fd directory and appends the fds that link to a wanted
// socket inode (to any socket with all). It also returns how many fds the
// directory held.
func scanFDs(dirfd int, pid int32, want map[uint64]struct{}, all bool, dbuf, lbuf []byte, out []found) ([]found, int) {
	fds := 0
	for {
		// Until getdents returns 0: a batch with room left does not
		// prove the end, as getdents also returns early when a signal
		// is pending (a profiler's SIGPROF).
		n, err := unix.Getdents(dirfd, dbuf)
		if err != nil || n <= 0 {
			return out, fds
		}
		b := dbuf[:n]
		for len(b) >= direntNameOff {
			reclen := int(binary.NativeEndian.Uint16(b[16:18]))
			if reclen < direntNameOff || reclen > len(b) {
				return out, fds
			}
			name := b[direntNameOff:reclen]
			b = b[reclen:]
			if len(name) == 0 || name[0] < '0' || name[0] > '9' {
				continue // ".", ".."
			}
			fds++
			// readlink, not stat: stat would follow the link into the
			// file's own filesystem (a hung NFS server, a dead FUSE
			// daemon), where readlink only prints the kernel's name.
			ln, err := readlinkatRaw(dirfd, &name[0], lbuf)
			if err != nil || ln <= 0 {
				continue
			}
			inode, ok := ParseSocketLink(lbuf[:ln])
			if !ok {
				continue
			}
			if !all {
				if _, ok := want[inode]; !ok {
					continue
				}
			}
			fd := 0
			for _, c := range name {
				if c < '0' || c > '9' {
					break
				}
				fd = fd*10 + int(c-'0')
			}
			out = append(out, found{inode: inode, pid: pid, fd: int32(fd)})
		}
	}
}

// direntBufSize is the getdents buffer of each worker: 8 KiB holds about
// 256 fds, more than most processes have (a bigger one costs page faults,
// which are dear in a virtual machine, for every run).
const direntBufSize = 8 << 10

// listPIDs returns the numeric entries of the procfs root.
func listPIDs(rootfd int) ([]int32, error) {
	buf := make([]byte, direntBufSize)
	var pids []int32
	for {
		n, err := unix.Getdents(rootfd, buf)
		if err != nil {
			return nil, err
		}
		if n <= 0 {
			return pids, nil
		}
		b := buf[:n]
		for len(b) >= direntNameOff {
			reclen := int(binary.NativeEndian.Uint16(b[16:18]))
			if reclen < direntNameOff || reclen > len(b) {
				break
			}
			name := b[direntNameOff:reclen]
			b = b[reclen:]
			pid, ok := atoiName(name)
			if ok {
				pids = append(pids, pid)
			}
		}
	}
}

// atoiName parses a NUL-terminated all-digit name.
func atoiName(name []byte) (int32, bool) {
	var v int64
	n := 0
	for _, c := range name {
		if c == 0 {
			break
		}
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
		if v > 1<<31-1 {
			return 0, false
		}
		n++
	}
	return int32(v), n > 0
}

// openatRaw opens a NUL-terminated relative path without allocating.
func openatRaw(dirfd int, path []byte) (int, error) {
	r, _, e := unix.Syscall6(unix.SYS_OPENAT, uintptr(dirfd), uintptr(unsafe.Pointer(&path[0])),
		uintptr(unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC), 0, 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// readlinkatRaw reads a link whose NUL-terminated name starts at name.
//
// It is a raw syscall, which does not tell Go's scheduler that the thread
// is in the kernel: one readlink of /proc/PID/fd/N never sleeps for long
// (it takes spinlocks and RCU, and reads no filesystem but procfs), and
// the scheduler's bookkeeping on either side of each of the walk's tens of
// thousands of calls cost about a tenth of its CPU time.
func readlinkatRaw(dirfd int, name *byte, buf []byte) (int, error) {
	r, _, e := unix.RawSyscall6(unix.SYS_READLINKAT, uintptr(dirfd), uintptr(unsafe.Pointer(name)),
		uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)), 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(r), nil
}

// ErrExited means the process went away while porteiro read it.
var ErrExited = errors.New("process exited")

// ExitingHolders finds wanted inodes held by processes that are exiting:
// their thread-group leader is already a zombie, and shows an empty fd
// directory, while other threads, not yet gone, still share the files. It
// looks at the processes in pids (a walk's NoFiles) and returns each inode
// found with the pid of its process.
func ExitingHolders(ctx context.Context, root string, pids []int, want map[uint64]struct{}) (map[uint64]int, error) {
	rootfd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", root, err)
	}
	defer unix.Close(rootfd)
	out := map[uint64]int{}
	var (
		sbuf = make([]byte, 0, 1024)
		dbuf = make([]byte, direntBufSize)
		lbuf = make([]byte, 64)
	)
	for _, pid := range pids {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		dir := strconv.Itoa(pid)
		b, err := readFileAt(rootfd, dir+"/stat", &sbuf)
		if err != nil {
			continue
		}
		if st, err := ParseStat(b); err != nil || st.State != "Z" {
			continue
		}
		taskfd, err := unix.Openat(rootfd, dir+"/task", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			continue
		}
		tids, err := listPIDs(taskfd)
		unix.Close(taskfd)
		if err != nil {
			continue
		}
		for _, tid := range tids {
			if int(tid) == pid {
				continue
			}
			fdfd, err := unix.Openat(rootfd, dir+"/task/"+strconv.Itoa(int(tid))+"/fd", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				continue
			}
			fs, _ := scanFDs(fdfd, int32(pid), want, false, dbuf, lbuf, nil)
			for _, f := range fs {
				out[f.inode] = pid
			}
			unix.Close(fdfd)
		}
	}
	return out, nil
}

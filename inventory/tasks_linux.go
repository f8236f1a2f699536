package inventory

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/porteiro/porteiro/internal/procfs"
	"github.com/porteiro/porteiro/internal/taskfd"
)

// When a one-shot scan lists every port, the details of each owner come
// in part from one pass of the task iterator (taskfd.Tasks): the user and
// the command line always, and for the plain table (Options.Brief) the
// name, parent, state and start time too, so that the table reads nothing
// of the process from /proc. Otherwise /proc/PID/status and
// /proc/PID/cmdline would be read for each owner: six system calls, and
// status is the costliest file of the directory to produce. The pass runs
// beside the task-file pass and the socket dump; the details stage takes
// what it needs from it, and reads /proc as before for a process the pass
// did not see (started since), for a kernel thread (whose /proc name is
// longer than its comm), for a command line the pass could not copy
// whole, and for a process whose /proc directory has something mounted
// over it (hidden: findHidden must still see that /proc does not show
// it).

// taskPass is one run of the task iterator, in the background.
type taskPass struct {
	done  chan struct{}
	byPID map[int]*taskEntry
	err   error
	// proc is porteiro's mount table's word on /proc, read after the
	// pass: a process whose directory something is mounted over is
	// hidden from /proc, and is described from /proc, which says so.
	proc procState

	// What /proc said of the first process of each executable and of
	// each set of cgroups, for the others: /proc/PID/exe and
	// /proc/PID/cgroup are the same for every process of one key
	// (taskfd.Task), and reading them was two thirds of describing a
	// process. A process that execs or moves between the pass and the
	// read of its files gives what it has then, as it would alone.
	mu      sync.Mutex
	exes    map[[2]uint64]exeInfo
	cgroups map[uint64]procfs.Cgroup
}

type exeInfo struct {
	path    string
	deleted bool
}

// taskEntry is what the task iterator said of one process.
type taskEntry struct {
	ppid     int
	uid      uint32
	state    byte
	start    uint64 // clock ticks since boot
	kthread  bool
	noFiles  bool // a kernel thread or an exiting process: no fd table
	comm     string
	cmd      []byte // the command line's bytes, when complete
	complete bool
	exe      [2]uint64 // the executable's key, or zeros
	css      uint64    // the cgroups' key, or 0
	netns    uint32    // its network namespace's inode, or 0
	threads  uint32
	// stats says cpu and rss are known: the CPU time in clock ticks, as
	// /proc/PID/stat's utime + stime (for a process of one thread; the
	// others' threads are not summed), and the resident pages.
	stats    bool
	cpu, rss uint64
}

// startTasks starts a task pass for a scan that wants one (wantTasks)
// from a resolver that uses the kernel's iterators; r.tpass is nil
// otherwise.
func (r *Resolver) startTasks(ctx context.Context) {
	r.tpass = nil
	if !r.taskDetails || !r.Iterator || r.closed || r.noTasks {
		return
	}
	tp := &taskPass{done: make(chan struct{})}
	r.tpass = tp
	go func() {
		defer close(tp.done)
		r.taskMu.Lock()
		defer r.taskMu.Unlock()
		if r.tasks == nil && r.tasksErr == nil {
			r.tasks, r.tasksErr = taskfd.OpenTasks()
		}
		if r.tasks == nil {
			tp.err = r.tasksErr
			return
		}
		b, err := r.tasks.Read(ctx, nil)
		if err != nil {
			tp.err = err
			if ctx.Err() == nil {
				// Not a cancelled pass: a program that reads wrong.
				r.tasks.Close()
				r.tasks, r.tasksErr = nil, err
			}
			return
		}
		// b is this pass's alone: the entries keep their command lines
		// as slices of it.
		byPID := make(map[int]*taskEntry, len(b)/(taskfd.TaskHeaderSize+32))
		stats := r.tasks.Stats()
		err = taskfd.ParseTasks(b, func(k *taskfd.Task) {
			e := &taskEntry{ppid: int(k.PPID), uid: k.UID, state: k.StateLetter(), start: k.StartTicks(),
				kthread: k.Kthread(), noFiles: k.Kthread() || k.ExitState != 0, comm: string(k.Comm),
				exe: [2]uint64{k.ExeMnt, k.ExeDentry}, css: k.CSSSet, netns: k.NetNS, threads: k.Threads,
				stats: stats && k.Threads == 1, cpu: (k.Runtime + k.ExitedRuntime) / (1e9 / userHZ), rss: k.RSSPages}
			if e.complete = k.CmdlineComplete(); e.complete {
				e.cmd = k.Cmdline
			}
			byPID[int(k.PID)] = e
		})
		if err != nil {
			tp.err = err
			return
		}
		tp.proc = readProcState(r.ProcRoot)
		tp.byPID = byPID
	}()
}

// processNS implements processNSKnower: the network namespace of a
// single-threaded process the current task pass saw. (A process of
// several threads may have them in several namespaces, which discovery
// reads from /proc.)
func (r *Resolver) processNS() func(pid int) (uint64, bool) {
	tp := r.tpass
	if tp == nil {
		return nil
	}
	return func(pid int) (uint64, bool) {
		e := tp.wait()[pid]
		if e == nil || e.threads != 1 || e.netns == 0 {
			return 0, false
		}
		return uint64(e.netns), true
	}
}

// wantTasks implements taskWanter: a one-shot scan of every port (a
// listing) describes many processes, and the task pass pays for itself;
// a scan of some ports describes a few, which /proc gives sooner.
func (r *Resolver) wantTasks(on bool) { r.taskDetails = on }

// wait returns the pass's entries, or nil when it failed.
func (tp *taskPass) wait() map[int]*taskEntry {
	if tp == nil {
		return nil
	}
	<-tp.done
	return tp.byPID
}

// closeTasks releases the task iterator, after any pass that runs.
func (r *Resolver) closeTasks() {
	if tp := r.tpass; tp != nil {
		<-tp.done
	}
	r.taskMu.Lock()
	defer r.taskMu.Unlock()
	if r.tasks != nil {
		r.tasks.Close()
		r.tasks = nil
	}
	r.tasksErr = errClosed
}

// process gives the details of pid: from the task pass when it can, from
// /proc otherwise.
func (d *detailStage) process(pid int, buf *[]byte) *ProcessInfo {
	if e := d.tasks.wait()[pid]; e != nil && !e.kthread {
		if mount, known := d.tasks.proc.mountedOver(d.r.ProcRoot, pid); known && !mount {
			if p, ok := d.r.processFromTask(d.tasks, pid, e, d.now, buf); ok {
				d.r.fromTasks.Add(1)
				return p
			}
		}
	}
	return d.r.process(pid, d.now, buf)
}

// processFromTask builds what process gives from e: in Brief mode all of
// it, the command line from /proc only when the pass could not copy it
// whole; otherwise the user and command line, with the rest (stat, the
// executable, the cgroup) from /proc, whose start time must be the one
// the pass saw (else the pid is another process's now). It returns nil,
// true for a process that exited since, and false when /proc must be
// asked for everything.
func (r *Resolver) processFromTask(tp *taskPass, pid int, e *taskEntry, now time.Time, buf *[]byte) (*ProcessInfo, bool) {
	var info *procfs.Info
	if r.Brief {
		info = &procfs.Info{Stat: procfs.Stat{PID: pid, Comm: e.comm, State: string(e.state), PPID: e.ppid,
			StartTicks: e.start}}
	} else {
		var st procfs.Stat
		if e.stats {
			// What /proc/PID/stat would give of it: the pass read the
			// same kernel counters.
			st = procfs.Stat{PID: pid, Comm: e.comm, State: string(e.state), PPID: e.ppid,
				StartTicks: e.start, UTime: e.cpu, RSSPages: int64(e.rss)}
		} else {
			var err error
			st, err = procfs.ReadStat(r.ProcRoot, pid, buf)
			switch {
			case errors.Is(err, procfs.ErrExited):
				return nil, true
			case err != nil || st.StartTicks != e.start:
				return nil, false
			}
		}
		info = &procfs.Info{Stat: st}
		exe := tp.exe(r.ProcRoot, pid, e.exe)
		info.Exe, info.ExeDeleted = exe.path, exe.deleted
		info.Cgroup = tp.cgroup(r.ProcRoot, pid, e.css, buf)
	}
	info.UID, info.UIDKnown = e.uid, true
	if e.complete {
		info.Cmdline = procfs.ParseCmdline(e.cmd)
	} else {
		cmd, err := procfs.ReadCmdline(r.ProcRoot, pid, buf)
		switch {
		case errors.Is(err, procfs.ErrExited):
			return nil, true
		case err != nil:
			return nil, false
		}
		info.Cmdline = cmd
	}
	return r.fromInfo(pid, info, now), true
}

// exe is /proc/PID/exe for a process whose executable has key k, read
// once per key.
func (tp *taskPass) exe(root string, pid int, k [2]uint64) exeInfo {
	return onceByKey(&tp.mu, &tp.exes, k, func() (x exeInfo, err error) {
		x.path, x.deleted, err = procfs.ReadExe(root, pid)
		return x, err
	})
}

// cgroup is what /proc/PID/cgroup says for a process whose cgroups have
// key k, read once per key.
func (tp *taskPass) cgroup(root string, pid int, k uint64, buf *[]byte) procfs.Cgroup {
	return onceByKey(&tp.mu, &tp.cgroups, k, func() (procfs.Cgroup, error) {
		return procfs.ReadCgroup(root, pid, buf)
	})
}

// onceByKey returns (*m)[k], or what read gives, kept in *m under mu when
// read succeeds and k is known (not zero). Two callers may read the same
// key at once; either result is kept.
func onceByKey[K comparable, V any](mu *sync.Mutex, m *map[K]V, k K, read func() (V, error)) V {
	mu.Lock()
	v, ok := (*m)[k]
	mu.Unlock()
	if ok {
		return v
	}
	v, err := read()
	var zero K
	if err == nil && k != zero {
		mu.Lock()
		if *m == nil {
			*m = map[K]V{}
		}
		(*m)[k] = v
		mu.Unlock()
	}
	return v
}

// noFiles reports whether the task pass saw pid as a process without an
// fd table (a kernel thread, or one that is exiting), which the /proc walk
// need not visit.
func (tp *taskPass) noFiles(pid int) bool {
	e := tp.wait()[pid]
	return e != nil && e.noFiles
}

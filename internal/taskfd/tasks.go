package taskfd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	insn "github.com/porteiro/porteiro/internal/bpfinsn"
)

// The task iterator (bpf_iter__task, Linux 5.8; its program sleepable,
// 5.18) gives, in one pass over the processes, what "porteiro list" shows
// of each owner and would otherwise read from /proc/PID/status and
// /proc/PID/cmdline: three opens, three reads and three closes per process,
// the largest part of a listing's time after the kernel's own work. The
// program writes one record per process (thread-group leader):
//
//	struct {
//		u32 pid;            // as the reader's PID namespace numbers it
//		u32 ppid;           // likewise; 0 when the parent is outside it
//		u32 uid;            // the real uid, cred->uid
//		u32 flags;          // task->flags (PF_KTHREAD)
//		u32 state;          // task->__state
//		u32 exit_state;     // task->exit_state
//		u64 start_boottime; // ns since boot, as /proc/PID/stat's starttime
//		u32 netns;          // inode of the task's network namespace, or 0
//		u32 cmdlen;         // bytes of command line that follow
//		u64 args;           // mm->arg_end - mm->arg_start, 0 without mm
//		char comm[16];
//		u64 exe_mnt;        // mm->exe_file->f_path: which executable,
//		u64 exe_dentry;     //   as opaque kernel addresses, 0 without
//		u64 css_set;        // task->cgroups: which cgroups, likewise
//		u32 threads;        // task->signal->nr_threads
//		u32 pad;
//		u64 runtime;        // task->se.sum_exec_runtime, ns
//		u64 exited_runtime; // task->signal->sum_sched_runtime, ns
//		u64 rss;            // mm's resident pages: file, anon and shmem
//		char cmdline[cmdlen];
//	}
//
// in the kernel's byte order. runtime, exited_runtime and rss are 0 where
// the kernel's types do not have them (TaskLayout.HasStats): /proc/PID/stat
// gives them then. The command line is copied from the
// process's memory (bpf_copy_from_user_task), at most TaskCmdMax bytes;
// when the record holds less than the whole argument area, or an area that
// does not end in NUL (a process that rewrote its arguments, which /proc
// completes from the environment), the reader asks /proc instead
// (Task.CmdlineComplete).

// TaskHeaderSize is the size of a task record before its command line.
const TaskHeaderSize = 120

// TaskCmdMax is the most of a command line the program copies.
const TaskCmdMax = 8192

// PFKthread is task->flags' bit of a kernel thread (include/linux/sched.h).
const PFKthread = 0x00200000

// Offsets in a task record, and stack slots below the frame pointer.
const (
	taskPID    = 0
	taskPPID   = 4
	taskUID    = 8
	taskFlags  = 12
	taskState  = 16
	taskExit   = 20
	taskStart  = 24
	taskNetNS  = 32
	taskCmdLen = 36
	taskArgs   = 40
	taskComm   = 48
	taskExeMnt = 64
	taskExeDen = 72
	taskCSSSet = 80
	taskThread = 88
	taskRun    = 96
	taskSigRun = 104
	taskRSS    = 112

	taskRecord  = -TaskHeaderSize // the record's start
	taskSlotPtr = taskRecord - 8  // a pointer being followed
	taskSlotVal = taskRecord - 16 // a value read through it
	taskSlotEnd = taskRecord - 24 // mm->arg_end
	taskSlotLen = taskRecord - 32 // the length to copy, kept across calls
	taskSlotSeq = taskRecord - 40 // ctx->meta->seq
	taskSlotKey = taskRecord - 48 // the map key, 0
	taskSlotTmp = taskRecord - 56 // a counter read, to add
)

// TaskInstructions builds the task iterator program for layout l, a
// reader whose PID namespace is at least level deep (see Instructions),
// and the array map bufMap: one element of TaskCmdMax bytes that the
// command line is copied into.
//
// The program follows pointers with bpf_probe_read_kernel rather than
// typed loads. A typed load of a pointer makes the verifier look its type
// up by name in the kernel's whole BTF, once per load and per path it
// explores: with the dozen pointers here, loading took 20 ms, more than
// everything the program saves. A helper call costs about 50 ns at run
// time, and this program runs once per process, not once per file. Only
// the task itself, which bpf_copy_from_user_task needs trusted, and the
// seq_file come typed.
func TaskInstructions(l Layout, level int, bufMap int) (insn.Instructions, error) {
	tl := l.Task
	if !tl.Has {
		return nil, fmt.Errorf("%w: no task iterator types", ErrLayout)
	}
	if level < 0 || level > MaxLevel {
		return nil, fmt.Errorf("pid namespace level %d out of range", level)
	}
	if int(l.PidNumbers)+MaxLevel*int(l.UpidSize)+int(l.UpidNr) > math.MaxInt32 {
		return nil, errors.New("pid namespace level too deep for this layout")
	}
	const (
		r0, r1, r2, r3, r4, r5, r6, r7, r8, r9, fp = insn.R0, insn.R1, insn.R2, insn.R3, insn.R4, insn.R5, insn.R6, insn.R7, insn.R8, insn.R9, insn.RFP
		dw, w                                      = insn.DWord, insn.Word
	)
	rec := func(off int16) int16 { return taskRecord + off }
	b := &builder{p: make(insn.Instructions, 0, 256)}
	// pidNr stores at dst the number of the struct pid in taskSlotPtr
	// as the reader's namespace (depth r9) sees it, or jumps to fail
	// when that pid is not in it (a shallower level).
	pidNr := func(dst int16, fail string) {
		b.ldx(r3, fp, taskSlotPtr, dw)
		b.jmp(insn.JEq, r3, 0, fail)
		b.read(taskSlotVal, 4, r3, true, l.PidLevel)
		b.ldx(r1, fp, taskSlotVal, w)
		b.jmpReg(insn.JLT, r1, r9, fail)
		// numbers[r9].nr
		b.ldx(r3, fp, taskSlotPtr, dw)
		b.mov(r1, r9)
		b.imm(insn.Mul, r1, int32(l.UpidSize))
		b.reg(insn.Add, r3, r1)
		b.imm(insn.Add, r3, int32(l.PidNumbers)+int32(l.UpidNr))
		b.mov(r1, fp)
		b.imm(insn.Add, r1, int32(dst))
		b.imm(insn.Mov, r2, 4)
		b.call(insn.FnProbeReadKernel)
	}
	// notNull jumps to label when the pointer in taskSlotPtr is null,
	// and leaves it in r3 otherwise.
	notNull := func(label string) {
		b.ldx(r3, fp, taskSlotPtr, dw)
		b.jmp(insn.JEq, r3, 0, label)
	}

	b.mov(r6, r1) // r6 = ctx
	b.ldx(r7, r6, tl.CtxTask, dw)
	b.jmp(insn.JEq, r7, 0, "exit") // the final call has no task
	// Processes only: a thread's pid differs from its tgid.
	b.ldx(r1, r7, tl.Pid, w)
	b.ldx(r2, r7, tl.Tgid, w)
	b.jmpReg(insn.JNE, r1, r2, "exit")
	b.ldx(r1, r6, tl.CtxMeta, dw)
	b.ldx(r1, r1, l.MetaSeq, dw)
	b.stx(fp, taskSlotSeq, r1, dw)
	b.imm(insn.Mov, r1, 0)
	for off := int16(0); off < TaskHeaderSize; off += 8 {
		b.stx(fp, rec(off), r1, dw)
	}
	for _, slot := range []int16{taskSlotPtr, taskSlotVal, taskSlotEnd, taskSlotTmp} {
		b.stx(fp, slot, r1, dw)
	}
	// r9 = the depth of the reader's PID namespace:
	// current->thread_pid->level.
	b.call(insn.FnGetCurrentTask)
	b.mov(r8, r0)
	b.read(taskSlotPtr, 8, r8, false, l.TaskThreadPid)
	notNull("exit")
	b.read(taskSlotVal, 4, r3, true, l.PidLevel)
	b.ldx(r9, fp, taskSlotVal, w)
	b.jmp(insn.JGT, r9, MaxLevel, "exit")
	b.jmp(insn.JLT, r9, int32(level), "exit")
	// The process's pid.
	b.read(taskSlotPtr, 8, r7, false, l.TaskThreadPid)
	pidNr(rec(taskPID), "exit")
	// The parent's: real_parent->group_leader->thread_pid, 0 when the
	// parent lives outside the reader's namespace, as /proc says.
	b.read(taskSlotPtr, 8, r7, false, tl.RealParent)
	b.follow(l.TaskGroupLeader, "ppid_done")
	b.follow(l.TaskThreadPid, "ppid_done")
	pidNr(rec(taskPPID), "ppid_done")
	// The real uid: cred->uid.
	b.at("ppid_done")
	b.read(taskSlotPtr, 8, r7, false, tl.Cred)
	notNull("uid_done")
	b.read(rec(taskUID), 4, r3, true, tl.CredUID)
	b.at("uid_done")
	for _, f := range []struct {
		off, dst int16
		size     insn.Size
	}{{tl.Flags, taskFlags, w}, {tl.State, taskState, w}, {tl.ExitState, taskExit, w}, {tl.StartBoottime, taskStart, dw}} {
		b.ldx(r2, r7, f.off, f.size)
		b.stx(fp, rec(f.dst), r2, f.size)
	}
	b.read(rec(taskComm), commLen, r7, false, tl.Comm)
	b.read(rec(taskCSSSet), 8, r7, false, tl.Cgroups)
	if tl.HasStats {
		b.read(rec(taskRun), 8, r7, false, tl.ExecRuntime)
	}
	// The number of threads: task->signal->nr_threads, and the CPU time
	// of the threads that exited.
	b.read(taskSlotPtr, 8, r7, false, tl.Signal)
	notNull("threads_done")
	b.read(rec(taskThread), 4, r3, true, tl.NrThreads)
	if tl.HasStats {
		b.read(rec(taskSigRun), 8, r3, true, tl.SchedRuntime)
	}
	b.at("threads_done")
	// The network namespace: nsproxy->net_ns->ns.inum (no nsproxy once
	// the process is exiting).
	b.read(taskSlotPtr, 8, r7, false, tl.NSProxy)
	b.follow(tl.NSProxyNet, "netns_done")
	notNull("netns_done")
	b.read(rec(taskNetNS), 4, r3, true, tl.NetInum)
	// The command line: mm->arg_start .. mm->arg_end. A kernel thread
	// has no mm.
	b.at("netns_done")
	b.read(taskSlotPtr, 8, r7, false, tl.MM)
	notNull("write_header")
	b.read(taskSlotVal, 8, r3, true, tl.ArgStart)
	b.read(taskSlotEnd, 8, r3, true, tl.ArgEnd)
	if tl.HasStats {
		// Resident pages, as /proc/PID/stat counts them: the mm's file,
		// anon and shmem counters (MM_FILEPAGES 0, MM_ANONPAGES 1,
		// MM_SHMEMPAGES 3), each taken as 0 when its approximate value
		// is below 0 (or absurd).
		for _, i := range []int16{0, 1, 3} {
			skip := fmt.Sprintf("rss_%d_done", i)
			b.read(taskSlotTmp, 8, r3, true, tl.RSSStat+i*tl.CounterSize+tl.CounterCount)
			b.ldx(r1, fp, taskSlotTmp, dw)
			b.jmp(insn.JGT, r1, math.MaxInt32, skip)
			b.ldx(r2, fp, rec(taskRSS), dw)
			b.reg(insn.Add, r2, r1)
			b.stx(fp, rec(taskRSS), r2, dw)
			b.at(skip)
		}
	}
	// The executable: mm->exe_file->f_path.mnt and .dentry.
	b.follow(tl.ExeFile, "exe_done")
	notNull("exe_done")
	b.read(rec(taskExeMnt), 8, r3, true, tl.FilePath+tl.PathMnt)
	b.read(rec(taskExeDen), 8, r3, true, tl.FilePath+tl.PathDentry)
	b.at("exe_done")
	b.ldx(r8, fp, taskSlotVal, dw)
	b.ldx(r2, fp, taskSlotEnd, dw)
	b.jmpReg(insn.JLE, r2, r8, "write_header")
	b.reg(insn.Sub, r2, r8)
	b.stx(fp, rec(taskArgs), r2, dw)
	b.jmp(insn.JLE, r2, TaskCmdMax, "len_ok")
	b.imm(insn.Mov, r2, TaskCmdMax)
	b.at("len_ok")
	b.stx(fp, taskSlotLen, r2, dw)
	// The buffer: element 0 of bufMap.
	b.imm(insn.Mov, r1, 0)
	b.stx(fp, taskSlotKey, r1, w)
	b.p = append(b.p, insn.LoadMapPtr(r1, bufMap))
	b.mov(r2, fp)
	b.imm(insn.Add, r2, taskSlotKey)
	b.call(insn.FnMapLookupElem)
	b.jmp(insn.JEq, r0, 0, "write_header")
	b.mov(r9, r0)
	// bpf_copy_from_user_task(buf, len, arg_start, task, 0)
	b.mov(r1, r9)
	b.ldx(r2, fp, taskSlotLen, dw)
	b.jmp(insn.JGT, r2, TaskCmdMax, "write_header")
	b.mov(r3, r8)
	b.mov(r4, r7)
	b.imm(insn.Mov, r5, 0)
	b.call(insn.FnCopyFromUserTask)
	b.jmp(insn.JNE, r0, 0, "write_header") // unreadable: cmdlen stays 0
	b.ldx(r2, fp, taskSlotLen, dw)
	b.stx(fp, rec(taskCmdLen), r2, w)
	// The header, then the command line.
	b.writeHeader()
	b.jmp(insn.JNE, r0, 0, "exit")
	b.ldx(r1, fp, taskSlotSeq, dw)
	b.mov(r2, r9)
	b.ldx(r3, fp, taskSlotLen, dw)
	b.jmp(insn.JGT, r3, TaskCmdMax, "exit")
	b.jmp(insn.JEq, r3, 0, "exit")
	b.call(insn.FnSeqWrite)
	b.jmp(insn.Ja, r0, 0, "exit")
	// A record without a command line.
	b.at("write_header")
	b.writeHeader()
	b.at("exit")
	b.imm(insn.Mov, r0, 0)
	b.p = append(b.p, insn.Return())
	return b.p, nil
}

// builder appends a program's instructions. Its methods take plain values
// and are not inlined: the constructors, inlined at each of a few hundred
// instructions, made the task program's builder the largest function of
// the client (e2e/binaries_test.go keeps its size).
type builder struct {
	p     insn.Instructions
	label string // the symbol of the next instruction
}

//go:noinline
func (b *builder) add(ins insn.Instruction) {
	if b.label != "" {
		ins = ins.WithSymbol(b.label)
		b.label = ""
	}
	b.p = append(b.p, ins)
}

// at names the next instruction.
func (b *builder) at(label string) { b.label = label }

//go:noinline
func (b *builder) ldx(dst, src insn.Register, off int16, size insn.Size) {
	b.add(insn.LoadMem(dst, src, off, size))
}

//go:noinline
func (b *builder) stx(dst insn.Register, off int16, src insn.Register, size insn.Size) {
	b.add(insn.StoreMem(dst, off, src, size))
}

//go:noinline
func (b *builder) mov(dst, src insn.Register) { b.add(insn.Mov.Reg(dst, src)) }

//go:noinline
func (b *builder) imm(op insn.ALUOp, dst insn.Register, v int32) { b.add(op.Imm(dst, v)) }

//go:noinline
func (b *builder) reg(op insn.ALUOp, dst, src insn.Register) { b.add(op.Reg(dst, src)) }

//go:noinline
func (b *builder) jmp(op insn.JumpOp, dst insn.Register, v int32, label string) {
	if op == insn.Ja {
		b.add(insn.Ja.Label(label))
		return
	}
	b.add(op.Imm(dst, v, label))
}

//go:noinline
func (b *builder) jmpReg(op insn.JumpOp, dst, src insn.Register, label string) {
	b.add(op.Reg(dst, src, label))
}

//go:noinline
func (b *builder) call(fn insn.BuiltinFunc) { b.add(fn.Call()) }

// read copies size bytes at base+off (base a callee-saved register or,
// with fromSlot, the pointer in slot taskSlotPtr) to stack slot dst, with
// bpf_probe_read_kernel.
func (b *builder) read(dst int16, size int32, base insn.Register, fromSlot bool, off int16) {
	if fromSlot {
		b.ldx(insn.R3, insn.RFP, taskSlotPtr, insn.DWord)
	} else {
		b.mov(insn.R3, base)
	}
	b.imm(insn.Add, insn.R3, int32(off))
	b.mov(insn.R1, insn.RFP)
	b.imm(insn.Add, insn.R1, int32(dst))
	b.imm(insn.Mov, insn.R2, size)
	b.call(insn.FnProbeReadKernel)
}

// follow replaces the pointer in taskSlotPtr by the one at off in what
// it points to, jumping to fail if it is null.
func (b *builder) follow(off int16, fail string) {
	b.ldx(insn.R3, insn.RFP, taskSlotPtr, insn.DWord)
	b.jmp(insn.JEq, insn.R3, 0, fail)
	b.read(taskSlotPtr, 8, insn.R3, true, off)
}

// writeHeader writes the record's header: bpf_seq_write(seq, record,
// TaskHeaderSize).
func (b *builder) writeHeader() {
	b.ldx(insn.R1, insn.RFP, taskSlotSeq, insn.DWord)
	b.mov(insn.R2, insn.RFP)
	b.imm(insn.Add, insn.R2, taskRecord)
	b.imm(insn.Mov, insn.R3, TaskHeaderSize)
	b.call(insn.FnSeqWrite)
}

// Task is one process as the task iterator reports it.
type Task struct {
	PID, PPID     uint32
	UID           uint32
	Flags         uint32
	State         uint32 // task->__state
	ExitState     uint32
	StartBoottime uint64 // nanoseconds since boot
	NetNS         uint32
	Args          uint64 // the size of the process's argument area
	Comm          []byte // up to its first NUL
	Cmdline       []byte // what was copied of the argument area
	// ExeMnt and ExeDentry say which executable the process runs (the
	// mount and directory entry of /proc/PID/exe), and CSSSet which
	// cgroups it is in (/proc/PID/cgroup): opaque kernel addresses,
	// equal for processes of equal executables or cgroups, 0 when not
	// known.
	ExeMnt, ExeDentry, CSSSet uint64
	// Threads is the number of threads of the process.
	Threads uint32
	// Runtime is the CPU time of the leader thread, ExitedRuntime that
	// of the threads that exited, in ns; RSSPages the resident pages. All
	// 0 without TaskLayout.HasStats.
	Runtime, ExitedRuntime, RSSPages uint64
}

// Kthread reports whether t is a kernel thread.
func (t *Task) Kthread() bool { return t.Flags&PFKthread != 0 }

// CmdlineComplete reports whether Cmdline is what /proc/PID/cmdline
// gives: the whole argument area, ending in NUL (or empty).
func (t *Task) CmdlineComplete() bool {
	n := uint64(len(t.Cmdline))
	return n == t.Args && (n == 0 || t.Cmdline[n-1] == 0)
}

// userHZ is the kernel's USER_HZ, the unit of /proc/PID/stat's times.
const userHZ = 100

// StartTicks is the start time as /proc/PID/stat's field 22 gives it.
func (t *Task) StartTicks() uint64 { return t.StartBoottime / (1e9 / userHZ) }

// The kernel's task state bits (include/linux/sched.h), stable since
// Linux 4.14, and the letters /proc shows for them (fs/proc/array.c).
const (
	taskReport      = 0x7f   // TASK_REPORT: the bits /proc shows
	taskIdle        = 0x402  // TASK_UNINTERRUPTIBLE | TASK_NOLOAD
	taskRTLockWait  = 0x1000 // TASK_RTLOCK_WAIT, shown as D
	taskReportIdle  = 0x80   // TASK_REPORT_IDLE
	taskUninterrupt = 0x2
	stateLetters    = "RSDTtXZPI"
)

// StateLetter is the letter /proc/PID/stat and status show for the state.
func (t *Task) StateLetter() byte {
	s := (t.State | t.ExitState) & taskReport
	if t.State&taskIdle == taskIdle {
		s = taskReportIdle
	}
	if t.State&taskRTLockWait != 0 {
		s = taskUninterrupt
	}
	i := 0 // fls(s): the index of the highest bit set, from 1
	for s != 0 {
		i++
		s >>= 1
	}
	if i >= len(stateLetters) {
		return '?'
	}
	return stateLetters[i]
}

// ParseTasks calls fn for every record in b, which holds what the task
// program wrote. The Task and its slices point into b and are valid only
// during the call. Output that does not split into whole records is an
// error, and then fn is not called at all.
func ParseTasks(b []byte, fn func(*Task)) error {
	o := binary.NativeEndian
	for r := b; len(r) > 0; {
		if len(r) < TaskHeaderSize {
			return fmt.Errorf("task iterator output ends inside a record (%d bytes left)", len(r))
		}
		n := o.Uint32(r[taskCmdLen:])
		if n > TaskCmdMax || uint64(len(r)-TaskHeaderSize) < uint64(n) {
			return fmt.Errorf("task record with a command line of %d bytes, %d left", n, len(r)-TaskHeaderSize)
		}
		r = r[TaskHeaderSize+int(n):]
	}
	var t Task
	for len(b) > 0 {
		n := o.Uint32(b[taskCmdLen:])
		t = Task{
			PID: o.Uint32(b[taskPID:]), PPID: o.Uint32(b[taskPPID:]), UID: o.Uint32(b[taskUID:]),
			Flags: o.Uint32(b[taskFlags:]), State: o.Uint32(b[taskState:]), ExitState: o.Uint32(b[taskExit:]),
			StartBoottime: o.Uint64(b[taskStart:]), NetNS: o.Uint32(b[taskNetNS:]), Args: o.Uint64(b[taskArgs:]),
			ExeMnt: o.Uint64(b[taskExeMnt:]), ExeDentry: o.Uint64(b[taskExeDen:]), CSSSet: o.Uint64(b[taskCSSSet:]),
			Threads: o.Uint32(b[taskThread:]),
			Runtime: o.Uint64(b[taskRun:]), ExitedRuntime: o.Uint64(b[taskSigRun:]), RSSPages: o.Uint64(b[taskRSS:]),
		}
		comm := b[taskComm : taskComm+commLen]
		if i := bytes.IndexByte(comm, 0); i >= 0 {
			comm = comm[:i]
		}
		t.Comm = comm
		t.Cmdline = b[TaskHeaderSize : TaskHeaderSize+int(n)]
		fn(&t)
		b = b[TaskHeaderSize+int(n):]
	}
	return nil
}

// TaskProgram is TaskInstructions encoded for bpf(BPF_PROG_LOAD).
func TaskProgram(l Layout, level int, bufMap int) ([]byte, error) {
	insns, err := TaskInstructions(l, level, bufMap)
	if err != nil {
		return nil, err
	}
	return encode(insns, "task iterator")
}

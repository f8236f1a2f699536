package taskfd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/cilium/ebpf/asm"
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
//		char cmdline[cmdlen];
//	}
//
// in the kernel's byte order. The command line is copied from the
// process's memory (bpf_copy_from_user_task), at most TaskCmdMax bytes;
// when the record holds less than the whole argument area, or an area that
// does not end in NUL (a process that rewrote its arguments, which /proc
// completes from the environment), the reader asks /proc instead
// (Task.CmdlineComplete).

// TaskHeaderSize is the size of a task record before its command line.
const TaskHeaderSize = 88

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

	taskRecord  = -TaskHeaderSize // the record's start
	taskSlotPtr = taskRecord - 8  // a pointer being followed
	taskSlotVal = taskRecord - 16 // a value read through it
	taskSlotEnd = taskRecord - 24 // mm->arg_end
	taskSlotLen = taskRecord - 32 // the length to copy, kept across calls
	taskSlotSeq = taskRecord - 40 // ctx->meta->seq
	taskSlotKey = taskRecord - 48 // the map key, 0
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
func TaskInstructions(l Layout, level int, bufMap int) (asm.Instructions, error) {
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
	rec := func(off int16) int16 { return taskRecord + off }
	// read copies size bytes at base+off (base a callee-saved register
	// or, with fromSlot, the pointer in slot taskSlotPtr) to stack slot dst.
	read := func(dst int16, size int32, base asm.Register, fromSlot bool, off int16) asm.Instructions {
		var ins asm.Instructions
		if fromSlot {
			ins = append(ins, asm.LoadMem(asm.R3, asm.RFP, taskSlotPtr, asm.DWord))
		} else {
			ins = append(ins, asm.Mov.Reg(asm.R3, base))
		}
		return append(ins,
			asm.Add.Imm(asm.R3, int32(off)),
			asm.Mov.Reg(asm.R1, asm.RFP),
			asm.Add.Imm(asm.R1, int32(dst)),
			asm.Mov.Imm(asm.R2, size),
			asm.FnProbeReadKernel.Call(),
		)
	}
	// follow replaces the pointer in taskSlotPtr by the one at off in
	// what it points to, jumping to fail if it is null.
	follow := func(off int16, fail string) asm.Instructions {
		return append(asm.Instructions{
			asm.LoadMem(asm.R3, asm.RFP, taskSlotPtr, asm.DWord),
			asm.JEq.Imm(asm.R3, 0, fail)},
			read(taskSlotPtr, 8, asm.R3, true, off)...)
	}
	// pidNr stores at dst the number of the struct pid in taskSlotPtr
	// as the reader's namespace (depth r9) sees it, or jumps to fail
	// when that pid is not in it (a shallower level).
	pidNr := func(dst int16, fail string) asm.Instructions {
		ins := asm.Instructions{
			asm.LoadMem(asm.R3, asm.RFP, taskSlotPtr, asm.DWord),
			asm.JEq.Imm(asm.R3, 0, fail),
		}
		ins = append(ins, read(taskSlotVal, 4, asm.R3, true, l.PidLevel)...)
		ins = append(ins,
			asm.LoadMem(asm.R1, asm.RFP, taskSlotVal, asm.Word),
			asm.JLT.Reg(asm.R1, asm.R9, fail),
			// numbers[r9].nr
			asm.LoadMem(asm.R3, asm.RFP, taskSlotPtr, asm.DWord),
			asm.Mov.Reg(asm.R1, asm.R9),
			asm.Mul.Imm(asm.R1, int32(l.UpidSize)),
			asm.Add.Reg(asm.R3, asm.R1),
			asm.Add.Imm(asm.R3, int32(l.PidNumbers)+int32(l.UpidNr)),
			asm.Mov.Reg(asm.R1, asm.RFP),
			asm.Add.Imm(asm.R1, int32(dst)),
			asm.Mov.Imm(asm.R2, 4),
			asm.FnProbeReadKernel.Call(),
		)
		return ins
	}
	p := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1), // r6 = ctx
		asm.LoadMem(asm.R7, asm.R6, tl.CtxTask, asm.DWord),
		asm.JEq.Imm(asm.R7, 0, "exit"), // the final call has no task
		// Processes only: a thread's pid differs from its tgid.
		asm.LoadMem(asm.R1, asm.R7, tl.Pid, asm.Word),
		asm.LoadMem(asm.R2, asm.R7, tl.Tgid, asm.Word),
		asm.JNE.Reg(asm.R1, asm.R2, "exit"),
		asm.LoadMem(asm.R1, asm.R6, tl.CtxMeta, asm.DWord),
		asm.LoadMem(asm.R1, asm.R1, l.MetaSeq, asm.DWord),
		asm.StoreMem(asm.RFP, taskSlotSeq, asm.R1, asm.DWord),
		asm.Mov.Imm(asm.R1, 0),
	}
	for off := int16(0); off < TaskHeaderSize; off += 8 {
		p = append(p, asm.StoreMem(asm.RFP, rec(off), asm.R1, asm.DWord))
	}
	p = append(p,
		asm.StoreMem(asm.RFP, taskSlotPtr, asm.R1, asm.DWord),
		asm.StoreMem(asm.RFP, taskSlotVal, asm.R1, asm.DWord),
		asm.StoreMem(asm.RFP, taskSlotEnd, asm.R1, asm.DWord),
		// r9 = the depth of the reader's PID namespace:
		// current->thread_pid->level.
		asm.FnGetCurrentTask.Call(),
		asm.Mov.Reg(asm.R8, asm.R0),
	)
	p = append(p, read(taskSlotPtr, 8, asm.R8, false, l.TaskThreadPid)...)
	p = append(p, asm.LoadMem(asm.R3, asm.RFP, taskSlotPtr, asm.DWord), asm.JEq.Imm(asm.R3, 0, "exit"))
	p = append(p, read(taskSlotVal, 4, asm.R3, true, l.PidLevel)...)
	p = append(p,
		asm.LoadMem(asm.R9, asm.RFP, taskSlotVal, asm.Word),
		asm.JGT.Imm(asm.R9, MaxLevel, "exit"),
		asm.JLT.Imm(asm.R9, int32(level), "exit"),
	)
	// The process's pid.
	p = append(p, read(taskSlotPtr, 8, asm.R7, false, l.TaskThreadPid)...)
	p = append(p, pidNr(rec(taskPID), "exit")...)
	// The parent's: real_parent->group_leader->thread_pid, 0 when the
	// parent lives outside the reader's namespace, as /proc says.
	p = append(p, read(taskSlotPtr, 8, asm.R7, false, tl.RealParent)...)
	p = append(p, follow(l.TaskGroupLeader, "ppid_done")...)
	p = append(p, follow(l.TaskThreadPid, "ppid_done")...)
	p = append(p, pidNr(rec(taskPPID), "ppid_done")...)
	// The real uid: cred->uid.
	p = append(p, labelled("ppid_done", read(taskSlotPtr, 8, asm.R7, false, tl.Cred))...)
	p = append(p, asm.LoadMem(asm.R3, asm.RFP, taskSlotPtr, asm.DWord), asm.JEq.Imm(asm.R3, 0, "uid_done"))
	p = append(p, read(rec(taskUID), 4, asm.R3, true, tl.CredUID)...)
	p = append(p,
		asm.LoadMem(asm.R2, asm.R7, tl.Flags, asm.Word).WithSymbol("uid_done"),
		asm.StoreMem(asm.RFP, rec(taskFlags), asm.R2, asm.Word),
		asm.LoadMem(asm.R2, asm.R7, tl.State, asm.Word),
		asm.StoreMem(asm.RFP, rec(taskState), asm.R2, asm.Word),
		asm.LoadMem(asm.R2, asm.R7, tl.ExitState, asm.Word),
		asm.StoreMem(asm.RFP, rec(taskExit), asm.R2, asm.Word),
		asm.LoadMem(asm.R2, asm.R7, tl.StartBoottime, asm.DWord),
		asm.StoreMem(asm.RFP, rec(taskStart), asm.R2, asm.DWord),
	)
	p = append(p, read(rec(taskComm), commLen, asm.R7, false, tl.Comm)...)
	p = append(p, read(rec(taskCSSSet), 8, asm.R7, false, tl.Cgroups)...)
	// The network namespace: nsproxy->net_ns->ns.inum (no nsproxy once
	// the process is exiting).
	p = append(p, read(taskSlotPtr, 8, asm.R7, false, tl.NSProxy)...)
	p = append(p, follow(tl.NSProxyNet, "netns_done")...)
	p = append(p, asm.LoadMem(asm.R3, asm.RFP, taskSlotPtr, asm.DWord), asm.JEq.Imm(asm.R3, 0, "netns_done"))
	p = append(p, read(rec(taskNetNS), 4, asm.R3, true, tl.NetInum)...)
	// The command line: mm->arg_start .. mm->arg_end. A kernel thread
	// has no mm.
	p = append(p, labelled("netns_done", read(taskSlotPtr, 8, asm.R7, false, tl.MM))...)
	p = append(p, asm.LoadMem(asm.R3, asm.RFP, taskSlotPtr, asm.DWord), asm.JEq.Imm(asm.R3, 0, "write_header"))
	p = append(p, read(taskSlotVal, 8, asm.R3, true, tl.ArgStart)...)
	p = append(p, read(taskSlotEnd, 8, asm.R3, true, tl.ArgEnd)...)
	// The executable: mm->exe_file->f_path.mnt and .dentry.
	p = append(p, follow(tl.ExeFile, "exe_done")...)
	p = append(p, asm.LoadMem(asm.R3, asm.RFP, taskSlotPtr, asm.DWord), asm.JEq.Imm(asm.R3, 0, "exe_done"))
	p = append(p, read(rec(taskExeMnt), 8, asm.R3, true, tl.FilePath+tl.PathMnt)...)
	p = append(p, read(rec(taskExeDen), 8, asm.R3, true, tl.FilePath+tl.PathDentry)...)
	p = append(p,
		asm.LoadMem(asm.R8, asm.RFP, taskSlotVal, asm.DWord).WithSymbol("exe_done"),
		asm.LoadMem(asm.R2, asm.RFP, taskSlotEnd, asm.DWord),
		asm.JLE.Reg(asm.R2, asm.R8, "write_header"),
		asm.Sub.Reg(asm.R2, asm.R8),
		asm.StoreMem(asm.RFP, rec(taskArgs), asm.R2, asm.DWord),
		asm.JLE.Imm(asm.R2, TaskCmdMax, "len_ok"),
		asm.Mov.Imm(asm.R2, TaskCmdMax),
		asm.StoreMem(asm.RFP, taskSlotLen, asm.R2, asm.DWord).WithSymbol("len_ok"),
		// The buffer: element 0 of bufMap.
		asm.StoreImm(asm.RFP, taskSlotKey, 0, asm.Word),
		asm.LoadMapPtr(asm.R1, bufMap),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, taskSlotKey),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "write_header"),
		asm.Mov.Reg(asm.R9, asm.R0),
		// bpf_copy_from_user_task(buf, len, arg_start, task, 0)
		asm.Mov.Reg(asm.R1, asm.R9),
		asm.LoadMem(asm.R2, asm.RFP, taskSlotLen, asm.DWord),
		asm.JGT.Imm(asm.R2, TaskCmdMax, "write_header"),
		asm.Mov.Reg(asm.R3, asm.R8),
		asm.Mov.Reg(asm.R4, asm.R7),
		asm.Mov.Imm(asm.R5, 0),
		asm.FnCopyFromUserTask.Call(),
		asm.JNE.Imm(asm.R0, 0, "write_header"), // unreadable: cmdlen stays 0
		asm.LoadMem(asm.R2, asm.RFP, taskSlotLen, asm.DWord),
		asm.StoreMem(asm.RFP, rec(taskCmdLen), asm.R2, asm.Word),
		// The header, then the command line.
		asm.LoadMem(asm.R1, asm.RFP, taskSlotSeq, asm.DWord),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, taskRecord),
		asm.Mov.Imm(asm.R3, TaskHeaderSize),
		asm.FnSeqWrite.Call(),
		asm.JNE.Imm(asm.R0, 0, "exit"),
		asm.LoadMem(asm.R1, asm.RFP, taskSlotSeq, asm.DWord),
		asm.Mov.Reg(asm.R2, asm.R9),
		asm.LoadMem(asm.R3, asm.RFP, taskSlotLen, asm.DWord),
		asm.JGT.Imm(asm.R3, TaskCmdMax, "exit"),
		asm.JEq.Imm(asm.R3, 0, "exit"),
		asm.FnSeqWrite.Call(),
		asm.Ja.Label("exit"),
		// A record without a command line.
		asm.LoadMem(asm.R1, asm.RFP, taskSlotSeq, asm.DWord).WithSymbol("write_header"),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, taskRecord),
		asm.Mov.Imm(asm.R3, TaskHeaderSize),
		asm.FnSeqWrite.Call(),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("exit"),
		asm.Return(),
	)
	return p, nil
}

// labelled puts label on the first of ins.
func labelled(label string, ins asm.Instructions) asm.Instructions {
	ins[0] = ins[0].WithSymbol(label)
	return ins
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
	var b bytes.Buffer
	b.Grow(int(insns.Size()))
	if err := insns.Marshal(&b, hostOrder()); err != nil {
		return nil, fmt.Errorf("assembling the task iterator: %w", err)
	}
	return b.Bytes(), nil
}

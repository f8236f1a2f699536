package taskfd

import (
	"encoding/binary"
	"fmt"

	insn "github.com/porteiro/porteiro/internal/bpfinsn"
)

// DepthSize is what the depth program writes: the depth of the reader's
// PID namespace, a u32 in the kernel's byte order.
const DepthSize = 4

// DepthInstructions builds the depth program: a task iterator that writes,
// for each task it visits, current->thread_pid->level: the depth
// of porteiro's PID namespace (0 for the initial one). /proc cannot say it:
// the NSpid line of /proc/self/status starts at the namespace /proc was
// mounted from. Knowing it, the task-file program is built for that depth
// (ExactInstructions), which the verifier takes a tenth of the time to
// load.
func DepthInstructions(l Layout) (insn.Instructions, error) {
	tl := l.Task
	if !tl.Has {
		return nil, fmt.Errorf("%w: no task iterator types", ErrLayout)
	}
	const (
		r0, r1, r2, r3, r6, r7, r8, fp = insn.R0, insn.R1, insn.R2, insn.R3, insn.R6, insn.R7, insn.R8, insn.RFP
		dw                             = insn.DWord
		slot                           = taskSlotVal
	)
	b := &builder{p: make(insn.Instructions, 0, 32)}
	b.mov(r6, r1) // r6 = ctx
	b.ldx(r7, r6, tl.CtxTask, dw)
	b.jmp(insn.JEq, r7, 0, "exit") // the final call has no task
	// current->thread_pid->level, read as the task program reads: a
	// typed load from the current task makes the verifier search the
	// kernel's BTF by name, which takes longer than the rest.
	b.call(insn.FnGetCurrentTask)
	b.mov(r8, r0)
	b.read(taskSlotPtr, 8, r8, false, l.TaskThreadPid)
	b.ldx(r3, fp, taskSlotPtr, dw)
	b.jmp(insn.JEq, r3, 0, "exit")
	b.read(slot, DepthSize, r3, true, l.PidLevel)
	b.ldx(r1, r6, tl.CtxMeta, dw)
	b.ldx(r1, r1, l.MetaSeq, dw)
	b.mov(r2, fp)
	b.imm(insn.Add, r2, slot)
	b.imm(insn.Mov, r3, DepthSize)
	b.call(insn.FnSeqWrite)
	b.at("exit")
	b.imm(insn.Mov, r0, 0)
	b.p = append(b.p, insn.Return())
	return b.p, nil
}

// DepthProgram is DepthInstructions encoded for bpf(BPF_PROG_LOAD).
func DepthProgram(l Layout) ([]byte, error) {
	insns, err := DepthInstructions(l)
	if err != nil {
		return nil, err
	}
	return encode(insns, "depth program")
}

// ParseDepth reads what the depth program wrote: the same depth once per
// task visited (one, when the link names the reading thread), within what
// the task-file program can read.
func ParseDepth(b []byte) (int, error) {
	if len(b) == 0 || len(b)%DepthSize != 0 {
		return 0, fmt.Errorf("depth program wrote %d bytes, want a multiple of %d", len(b), DepthSize)
	}
	d := binary.NativeEndian.Uint32(b)
	for i := DepthSize; i < len(b); i += DepthSize {
		if binary.NativeEndian.Uint32(b[i:]) != d {
			return 0, fmt.Errorf("depth program wrote two depths, %d and %d", d, binary.NativeEndian.Uint32(b[i:]))
		}
	}
	if d > MaxLevel {
		return 0, fmt.Errorf("pid namespace depth %d is beyond %d", d, MaxLevel)
	}
	return int(d), nil
}

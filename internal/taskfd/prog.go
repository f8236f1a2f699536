package taskfd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
)

// eBPF opcodes, from include/uapi/linux/bpf.h and bpf_common.h.
const (
	clsLDX   = 0x01
	clsSTX   = 0x03
	clsJMP   = 0x05
	clsALU64 = 0x07

	sizeW   = 0x00
	sizeH   = 0x08
	sizeDW  = 0x18
	modeMem = 0x60

	srcK = 0x00
	srcX = 0x08

	aluAdd = 0x00
	aluAnd = 0x50
	aluMov = 0xb0

	jmpJA   = 0x00
	jmpJEQ  = 0x10
	jmpJNE  = 0x50
	jmpCall = 0x80
	jmpExit = 0x90

	fnSeqWrite          = 127 // BPF_FUNC_seq_write
	fnGetCurrentTaskBTF = 158 // BPF_FUNC_get_current_task_btf

	sIFMT   = 0o170000
	sIFSOCK = 0o140000
)

// Registers.
const (
	r0, r1, r2, r3 = 0, 1, 2, 3
	r6, r7, r8     = 6, 7, 8
	r10            = 10 // the frame pointer
)

// RecordSize is the size of one record the program writes:
// struct { u32 pid; u32 fd; u64 inode; } in the kernel's byte order, one
// per open file, with inode 0 for a file that is not a socket.
const RecordSize = 16

// MaxLevel is the deepest PID namespace the program can be built for
// (the kernel's own limit is 32).
const MaxLevel = 32

type insn struct {
	code     uint8
	dst, src uint8
	off      int16
	imm      int32
}

func ldx(size uint8, dst, src uint8, off int16) insn {
	return insn{code: clsLDX | modeMem | size, dst: dst, src: src, off: off}
}

func stx(size uint8, dst uint8, off int16, src uint8) insn {
	return insn{code: clsSTX | modeMem | size, dst: dst, src: src, off: off}
}

func alu64K(op uint8, dst uint8, imm int32) insn {
	return insn{code: clsALU64 | op | srcK, dst: dst, imm: imm}
}

func movX(dst, src uint8) insn { return insn{code: clsALU64 | aluMov | srcX, dst: dst, src: src} }

// jmpTo is a conditional jump to a label, fixed up by Program.
func jmpTo(op uint8, dst uint8, imm int32, label int16) insn {
	return insn{code: clsJMP | op | srcK, dst: dst, imm: imm, off: label}
}

// jmpK is a conditional jump to label exit, fixed up by Program.
func jmpK(op uint8, dst uint8, imm int32) insn {
	return insn{code: clsJMP | op | srcK, dst: dst, imm: imm, off: labelExit}
}

// ja is an unconditional jump to a label, fixed up by Program.
func ja(label int16) insn { return insn{code: clsJMP | jmpJA, off: label} }

func call(fn int32) insn { return insn{code: clsJMP | jmpCall, imm: fn} }

// Jump targets, fixed up by Program.
const (
	labelExit    = -0x7fff
	labelStore   = -0x7ffe
	labelNoInode = -0x7ffd
)

// Program assembles the iterator program for layout l. The program runs
// once per open file of every process and writes one record for each: the
// socket's inode number for a socket, 0 for any other file (so the reader
// learns which processes it saw, sockets or not), with the process's pid as the reader's PID namespace numbers it,
// the number /proc shows there.
//
// level is the least depth the reader's PID namespace can have (0 for the
// initial one): the number of pids on the NSpid line of /proc/self/status,
// minus one. It is only a lower bound, as that line starts at the namespace
// /proc was mounted from, which in a container is the reader's own. So the
// program reads the actual depth from the reading task (the level of its
// struct pid) and picks, among levels level to MaxLevel, the entry of the
// process's pid.numbers for that depth.
func Program(l Layout, level int) ([]byte, error) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		return nil, errors.New("big-endian hosts are not supported")
	}
	if level < 0 || level > MaxLevel {
		return nil, fmt.Errorf("pid namespace level %d out of range", level)
	}
	// nr is the offset of numbers[lv].nr in struct pid.
	nr := func(lv int) int { return int(l.PidNumbers) + lv*int(l.UpidSize) + int(l.UpidNr) }
	if nr(level) > 1<<15-1 {
		return nil, errors.New("pid namespace level too deep for this layout")
	}
	p := []insn{
		movX(r6, r1), // r6 = ctx
		ldx(sizeDW, r7, r6, l.CtxTask),
		jmpK(jmpJEQ, r7, 0), // the final call has no task
		ldx(sizeDW, r8, r6, l.CtxFile),
		jmpK(jmpJEQ, r8, 0),
		alu64K(aluMov, r2, 0), // inode 0: not a socket
		ldx(sizeDW, r8, r8, l.FileInode),
		jmpTo(jmpJEQ, r8, 0, labelNoInode),
		ldx(sizeH, r3, r8, l.InodeMode),
		alu64K(aluAnd, r3, sIFMT),
		jmpTo(jmpJNE, r3, sIFSOCK, labelNoInode),
		ldx(sizeDW, r2, r8, l.InodeIno),
		// noInode:
		stx(sizeDW, r10, -8, r2), // record.inode
		ldx(sizeW, r2, r6, l.CtxFD),
		stx(sizeW, r10, -12, r2), // record.fd
		// The process's struct pid: task->group_leader->thread_pid.
		ldx(sizeDW, r7, r7, l.TaskGroupLeader),
		jmpK(jmpJEQ, r7, 0),
		ldx(sizeDW, r7, r7, l.TaskThreadPid),
		jmpK(jmpJEQ, r7, 0),
		// The depth of the reader's PID namespace: the level of the
		// reading task's pid.
		call(fnGetCurrentTaskBTF),
		ldx(sizeDW, r0, r0, l.TaskThreadPid),
		jmpK(jmpJEQ, r0, 0),
		ldx(sizeW, r0, r0, l.PidLevel),
	}
	// The pid, numbers[depth].nr: one load per depth the reader may be at.
	for lv := level; lv <= MaxLevel && nr(lv) <= 1<<15-1; lv++ {
		p = append(p,
			insn{code: clsJMP | jmpJNE | srcK, dst: r0, imm: int32(lv), off: 2},
			ldx(sizeW, r2, r7, int16(nr(lv))),
			ja(labelStore))
	}
	p = append(p,
		ja(labelExit), // deeper than the program can read
		// store:
		stx(sizeW, r10, -16, r2), // record.pid
		// bpf_seq_write(ctx->meta->seq, &record, 16)
		ldx(sizeDW, r1, r6, l.CtxMeta),
		ldx(sizeDW, r1, r1, l.MetaSeq),
		movX(r2, r10),
		alu64K(aluAdd, r2, -RecordSize),
		alu64K(aluMov, r3, RecordSize),
		call(fnSeqWrite),
		// exit:
		alu64K(aluMov, r0, 0),
		insn{code: clsJMP | jmpExit},
	)
	exit, store := len(p)-2, len(p)-9
	noInode := slices.IndexFunc(p, func(in insn) bool { return in.code == clsSTX|modeMem|sizeDW && in.off == -8 })
	out := make([]byte, 0, 8*len(p))
	for i, in := range p {
		switch in.off {
		case labelExit:
			in.off = int16(exit - i - 1)
		case labelNoInode:
			in.off = int16(noInode - i - 1)
		case labelStore:
			in.off = int16(store - i - 1)
		}
		out = append(out, in.code, in.dst&0xf|in.src<<4)
		out = binary.LittleEndian.AppendUint16(out, uint16(in.off))
		out = binary.LittleEndian.AppendUint32(out, uint32(in.imm))
	}
	return out, nil
}

// ParseRecords calls fn for every record in b, which holds what the program
// wrote. A trailing partial record is an error.
func ParseRecords(b []byte, fn func(pid, fd uint32, inode uint64)) error {
	if len(b)%RecordSize != 0 {
		return fmt.Errorf("iterator output of %d bytes is not a whole number of records", len(b))
	}
	for ; len(b) >= RecordSize; b = b[RecordSize:] {
		fn(binary.NativeEndian.Uint32(b), binary.NativeEndian.Uint32(b[4:]), binary.NativeEndian.Uint64(b[8:]))
	}
	return nil
}

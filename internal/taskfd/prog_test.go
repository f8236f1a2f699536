package taskfd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/cilium/ebpf/asm"
)

// testLayout has a different value in every field, so that a field used in
// the wrong place shows.
var testLayout = Layout{
	AttachID:        4242,
	CtxMeta:         0,
	CtxTask:         8,
	CtxFD:           16,
	CtxFile:         24,
	MetaSeq:         40,
	FileInode:       32,
	InodeMode:       2,
	InodeIno:        64,
	TaskGroupLeader: 1328,
	TaskThreadPid:   1368,
	PidLevel:        12,
	PidNumbers:      144,
	UpidSize:        24,
	UpidNr:          4,
}

// decode reads a program with cilium/ebpf's decoder, independent of the
// assembler in prog.go.
func decode(t *testing.T, code []byte) []asm.Instruction {
	t.Helper()
	if len(code)%asm.InstructionSize != 0 {
		t.Fatalf("program of %d bytes is not a whole number of instructions", len(code))
	}
	var insns []asm.Instruction
	r := bytes.NewReader(code)
	for {
		var ins asm.Instruction
		err := ins.Unmarshal(r, binary.LittleEndian, "linux")
		if errors.Is(err, io.EOF) {
			return insns
		}
		if err != nil {
			t.Fatalf("instruction %d: %v", len(insns), err)
		}
		insns = append(insns, ins)
	}
}

func littleEndianHost(t *testing.T) {
	if binary.NativeEndian.Uint16([]byte{1, 0}) != 1 {
		t.Skip("Program supports little-endian hosts only")
	}
}

func isLoad(ins asm.Instruction, size asm.Size) bool {
	return ins.OpCode.Class() == asm.LdXClass && ins.OpCode.Mode() == asm.MemMode && ins.OpCode.Size() == size
}

func isJump(ins asm.Instruction, op asm.JumpOp) bool {
	return ins.OpCode.Class() == asm.JumpClass && ins.OpCode.JumpOp() == op
}

func isCondJump(ins asm.Instruction) bool {
	if !ins.OpCode.Class().IsJump() {
		return false
	}
	switch ins.OpCode.JumpOp() {
	case asm.Call, asm.Exit, asm.Ja:
		return false
	}
	return true
}

// pidOffset is where numbers[level].nr is in struct pid.
func pidOffset(l Layout, level int) int {
	return int(l.PidNumbers) + level*int(l.UpidSize) + int(l.UpidNr)
}

// TestProgramShape checks the decoded program instruction by instruction.
func TestProgramShape(t *testing.T) {
	littleEndianHost(t)
	l := testLayout
	for _, level := range []int{0, 1, 3, MaxLevel} {
		code, err := Program(l, level)
		if err != nil {
			t.Fatalf("Program(level %d): %v", level, err)
		}
		insns := decode(t, code)
		if testing.Verbose() && level == 3 {
			t.Logf("level %d:\n%v", level, asm.Instructions(insns))
		}
		// 23 instructions up to the reader's depth, 3 per depth the
		// reader may be at, a jump past the last, 9 to write the record.
		depths := MaxLevel - level + 1
		if want := 23 + 3*depths + 1 + 9; len(insns) != want {
			t.Errorf("level %d: %d instructions, want %d", level, len(insns), want)
		}
		last := len(insns) - 1
		exit := last - 1 // r0 = 0
		storeAt := last - 8

		// r6 = r1: the context is kept in r6.
		if first := insns[0]; first.OpCode != asm.Mov.Op(asm.RegSource) || first.Dst != asm.R6 || first.Src != asm.R1 {
			t.Errorf("first instruction is %v, want r6 = r1", first)
		}
		// It ends with r0 = 0; exit.
		if !isJump(insns[last], asm.Exit) {
			t.Errorf("last instruction is %v, want exit", insns[last])
		}
		if ins := insns[exit]; ins.OpCode != asm.Mov.Op(asm.ImmSource) || ins.Dst != asm.R0 || ins.Constant != 0 {
			t.Errorf("instruction before exit is %v, want r0 = 0", ins)
		}

		// The checks before the pid lookup jump to r0 = 0 (the final
		// call without a task, null pointers), except the two that find a
		// file that is not a socket (no inode, or not S_IFSOCK): they skip
		// to storing inode 0, which r2 holds from "r2 = 0" on.
		dispatch := 23 // the first depth test
		noInode := slices.IndexFunc(insns, func(ins asm.Instruction) bool {
			return ins.OpCode.Class() == asm.StXClass && ins.Offset == -8
		})
		if ins := insns[noInode-7]; ins.OpCode != asm.Mov.Op(asm.ImmSource) || ins.Dst != asm.R2 || ins.Constant != 0 {
			t.Errorf("level %d: instruction %d is %v, want r2 = 0", level, noInode-7, ins)
		}
		checks, toNoInode := 0, 0
		for i, ins := range insns[:dispatch] {
			if !isCondJump(ins) {
				continue
			}
			checks++
			target := i + 1 + int(ins.Offset)
			if i > noInode-7 && i < noInode {
				toNoInode++
				if target != noInode {
					t.Errorf("level %d: check %d (%v) jumps to %d, want %d (store inode 0)", level, i, ins, target, noInode)
				}
				continue
			}
			if target != exit {
				t.Errorf("level %d: check %d (%v) jumps to %d, want %d (r0 = 0)", level, i, ins, target, exit)
			}
		}
		if toNoInode != 2 {
			t.Errorf("level %d: %d checks jump to store inode 0, want 2", level, toNoInode)
		}
		if checks != 7 {
			t.Errorf("level %d: %d checks, want 7", level, checks)
		}
		sock := slices.IndexFunc(insns, func(ins asm.Instruction) bool {
			return isCondJump(ins) && ins.OpCode.JumpOp() == asm.JNE
		})
		if sock < 1 || insns[sock].Constant != sIFSOCK || insns[sock].Dst != asm.R3 ||
			insns[sock-1].OpCode != asm.And.Op(asm.ImmSource) || insns[sock-1].Constant != sIFMT {
			t.Errorf("level %d: no (mode & S_IFMT) != S_IFSOCK check", level)
		}

		// The reader's depth: current->thread_pid->level, in r0.
		if ins := insns[dispatch-4]; !ins.IsBuiltinCall() || asm.BuiltinFunc(ins.Constant) != asm.FnGetCurrentTaskBtf || ins.Constant != 158 {
			t.Errorf("level %d: instruction %d is %v, want a call of bpf_get_current_task_btf (158)", level, dispatch-4, ins)
		}
		if ins := insns[dispatch-3]; !isLoad(ins, asm.DWord) || ins.Dst != asm.R0 || ins.Src != asm.R0 || ins.Offset != l.TaskThreadPid {
			t.Errorf("level %d: %v, want r0 = current->thread_pid", level, ins)
		}
		if ins := insns[dispatch-1]; !isLoad(ins, asm.Word) || ins.Dst != asm.R0 || ins.Src != asm.R0 || ins.Offset != l.PidLevel {
			t.Errorf("level %d: %v, want r0 = current->thread_pid->level", level, ins)
		}

		// Then, for each depth from level up: if r0 != depth go to the
		// next test; r2 = numbers[depth].nr; go to store.
		for d := range depths {
			i := dispatch + 3*d
			test, load, jump := insns[i], insns[i+1], insns[i+2]
			if !isJump(test, asm.JNE) || test.Dst != asm.R0 || test.Constant != int64(level+d) || i+1+int(test.Offset) != i+3 {
				t.Errorf("level %d: instruction %d is %v, want if r0 != %d goto %d", level, i, test, level+d, i+3)
			}
			if !isLoad(load, asm.Word) || load.Dst != asm.R2 || load.Src != asm.R7 || int(load.Offset) != pidOffset(l, level+d) {
				t.Errorf("level %d: instruction %d is %v, want r2 = *(u32 *)(r7 + %d)", level, i+1, load, pidOffset(l, level+d))
			}
			if !isJump(jump, asm.Ja) || i+3+int(jump.Offset) != storeAt {
				t.Errorf("level %d: instruction %d is %v, want goto %d (store)", level, i+2, jump, storeAt)
			}
		}
		// The load for the least depth is numbers[level].nr.
		if got := int(insns[dispatch+1].Offset); got != pidOffset(l, level) {
			t.Errorf("level %d: first pid load at %d, want %d", level, got, pidOffset(l, level))
		}
		past := dispatch + 3*depths
		if ins := insns[past]; !isJump(ins, asm.Ja) || past+1+int(ins.Offset) != exit {
			t.Errorf("level %d: instruction %d is %v, want goto %d (r0 = 0)", level, past, ins, exit)
		}

		// Every load of the program, in order, with its offset.
		type load struct {
			dst, src asm.Register
			size     asm.Size
			off      int16
		}
		var loads []load
		for _, ins := range insns {
			if ins.OpCode.Class() == asm.LdXClass {
				if ins.OpCode.Mode() != asm.MemMode {
					t.Errorf("level %d: load %v is not a memory load", level, ins)
				}
				loads = append(loads, load{ins.Dst, ins.Src, ins.OpCode.Size(), ins.Offset})
			}
		}
		want := []load{
			{asm.R7, asm.R6, asm.DWord, l.CtxTask},
			{asm.R8, asm.R6, asm.DWord, l.CtxFile},
			{asm.R8, asm.R8, asm.DWord, l.FileInode},
			{asm.R3, asm.R8, asm.Half, l.InodeMode},
			{asm.R2, asm.R8, asm.DWord, l.InodeIno},
			{asm.R2, asm.R6, asm.Word, l.CtxFD},
			{asm.R7, asm.R7, asm.DWord, l.TaskGroupLeader},
			{asm.R7, asm.R7, asm.DWord, l.TaskThreadPid},
			{asm.R0, asm.R0, asm.DWord, l.TaskThreadPid},
			{asm.R0, asm.R0, asm.Word, l.PidLevel},
		}
		for d := range depths {
			want = append(want, load{asm.R2, asm.R7, asm.Word, int16(pidOffset(l, level+d))})
		}
		want = append(want, load{asm.R1, asm.R6, asm.DWord, l.CtxMeta}, load{asm.R1, asm.R1, asm.DWord, l.MetaSeq})
		if !slices.Equal(loads, want) {
			t.Errorf("level %d: loads\n got %v\nwant %v", level, loads, want)
		}

		// The record, as ParseRecords reads it: pid at 0, fd at 4, inode
		// at 8, 16 bytes below the frame pointer.
		type store struct {
			size asm.Size
			off  int16
		}
		var stores []store
		for _, ins := range insns {
			if ins.OpCode.Class() == asm.StXClass || ins.OpCode.Class() == asm.StClass {
				if ins.Dst != asm.R10 || ins.Src != asm.R2 {
					t.Errorf("level %d: store %v is not r2 to the stack", level, ins)
				}
				stores = append(stores, store{ins.OpCode.Size(), ins.Offset})
			}
		}
		if want := []store{{asm.DWord, -8}, {asm.Word, -12}, {asm.Word, -16}}; !slices.Equal(stores, want) {
			t.Errorf("level %d: stores %v, want %v", level, stores, want)
		}

		// bpf_seq_write(seq, r10 - 16, 16), then r0 = 0; exit.
		call := last - 2
		if ins := insns[call]; !ins.IsBuiltinCall() || asm.BuiltinFunc(ins.Constant) != asm.FnSeqWrite || ins.Constant != 127 {
			t.Errorf("level %d: instruction %d is %v, want a call of bpf_seq_write (127)", level, call, ins)
		}
		args := insns[call-3 : call]
		if args[0].OpCode != asm.Mov.Op(asm.RegSource) || args[0].Dst != asm.R2 || args[0].Src != asm.R10 ||
			args[1].OpCode != asm.Add.Op(asm.ImmSource) || args[1].Dst != asm.R2 || args[1].Constant != -RecordSize ||
			args[2].OpCode != asm.Mov.Op(asm.ImmSource) || args[2].Dst != asm.R3 || args[2].Constant != RecordSize {
			t.Errorf("level %d: call arguments are %v, want r2 = r10; r2 += -16; r3 = 16", level, asm.Instructions(args))
		}
		calls := 0
		for _, ins := range insns {
			if ins.OpCode.JumpOp() == asm.Call && ins.OpCode.Class().IsJump() {
				calls++
			}
		}
		if calls != 2 {
			t.Errorf("level %d: %d calls, want 2", level, calls)
		}

		// Nothing the verifier would refuse: a register beyond r10, a
		// write to r10, a jump out of the program.
		for i, ins := range insns {
			if ins.Dst > asm.R10 || ins.Src > asm.R10 {
				t.Errorf("level %d: instruction %d uses a register beyond r10: %v", level, i, ins)
			}
			if ins.OpCode.Class().IsALU() && ins.Dst == asm.R10 {
				t.Errorf("level %d: instruction %d writes r10: %v", level, i, ins)
			}
			if ins.OpCode.Class() == asm.ALUClass {
				t.Errorf("level %d: instruction %d is a 32-bit ALU operation: %v", level, i, ins)
			}
			if ins.OpCode.Class().IsJump() && ins.OpCode.JumpOp() != asm.Call && ins.OpCode.JumpOp() != asm.Exit {
				if target := i + 1 + int(ins.Offset); target <= i || target > last {
					t.Errorf("level %d: instruction %d jumps to %d", level, i, target)
				}
			}
		}
	}
}

// kernel is fake kernel memory for runProgram: the objects the program
// reads, at made-up addresses, each a byte slice.
type kernel struct {
	objs map[uint64][]byte
}

func (k *kernel) obj(addr uint64, size int) []byte {
	if k.objs == nil {
		k.objs = map[uint64][]byte{}
	}
	k.objs[addr] = make([]byte, size)
	return k.objs[addr]
}

// at returns the n bytes at addr, or nil if no object holds them.
func (k *kernel) at(addr uint64, n int) []byte {
	for base, b := range k.objs {
		if addr >= base && addr+uint64(n) <= base+uint64(len(b)) {
			return b[addr-base : addr-base+uint64(n)]
		}
	}
	return nil
}

// runProgram interprets insns, the little of eBPF the program uses, with
// r1 = ctx and current the address of the reading task, and returns what it
// passed to bpf_seq_write. A load from memory that is not there fails the
// test: the program must check for null before it follows a pointer.
func runProgram(t *testing.T, insns []asm.Instruction, k *kernel, ctx, current uint64) []byte {
	t.Helper()
	const stackTop = 0x7fff0000
	stack := k.obj(stackTop-512, 512)
	clear(stack)
	var r [11]uint64
	r[1], r[10] = ctx, stackTop
	var out []byte
	for pc, steps := 0, 0; ; pc, steps = pc+1, steps+1 {
		if pc < 0 || pc >= len(insns) || steps > 10000 {
			t.Fatalf("pc %d after %d steps", pc, steps)
		}
		ins := insns[pc]
		op := ins.OpCode
		switch {
		case op.Class() == asm.ALU64Class:
			src := uint64(ins.Constant)
			if op.Source() == asm.RegSource {
				src = r[ins.Src]
			}
			switch op.ALUOp() {
			case asm.Mov:
				r[ins.Dst] = src
			case asm.Add:
				r[ins.Dst] += src
			case asm.And:
				r[ins.Dst] &= src
			default:
				t.Fatalf("instruction %d: unexpected %v", pc, ins)
			}
		case op.Class() == asm.LdXClass:
			n := op.Size().Sizeof()
			b := k.at(r[ins.Src]+uint64(int64(ins.Offset)), n)
			if b == nil {
				t.Fatalf("instruction %d (%v): load from %#x, no memory there", pc, ins, r[ins.Src]+uint64(int64(ins.Offset)))
			}
			r[ins.Dst] = binary.LittleEndian.Uint64(append(slices.Clone(b), make([]byte, 8-n)...))
		case op.Class() == asm.StXClass:
			n := op.Size().Sizeof()
			b := k.at(r[ins.Dst]+uint64(int64(ins.Offset)), n)
			if b == nil {
				t.Fatalf("instruction %d (%v): store to %#x, no memory there", pc, ins, r[ins.Dst]+uint64(int64(ins.Offset)))
			}
			copy(b, binary.LittleEndian.AppendUint64(nil, r[ins.Src])[:n])
		case op.Class() == asm.JumpClass:
			jump := false
			switch op.JumpOp() {
			case asm.Exit:
				if r[0] != 0 {
					t.Errorf("returns %d", r[0])
				}
				return out
			case asm.Call:
				switch asm.BuiltinFunc(ins.Constant) {
				case asm.FnGetCurrentTaskBtf:
					r[0] = current
				case asm.FnSeqWrite:
					if r[1] != 0x5e9 {
						t.Errorf("bpf_seq_write to %#x, not the seq_file", r[1])
					}
					b := k.at(r[2], int(r[3]))
					if b == nil {
						t.Fatalf("bpf_seq_write of %d bytes at %#x, no memory there", r[3], r[2])
					}
					out = append(out, b...)
					r[0] = 0
				default:
					t.Fatalf("instruction %d: unexpected call %v", pc, ins)
				}
				r[1], r[2], r[3], r[4], r[5] = 0xdead, 0xdead, 0xdead, 0xdead, 0xdead
			case asm.Ja:
				jump = true
			case asm.JEq:
				jump = r[ins.Dst] == uint64(ins.Constant)
			case asm.JNE:
				jump = r[ins.Dst] != uint64(ins.Constant)
			default:
				t.Fatalf("instruction %d: unexpected %v", pc, ins)
			}
			if jump {
				pc += int(ins.Offset)
			}
		default:
			t.Fatalf("instruction %d: unexpected %v", pc, ins)
		}
	}
}

// TestProgramRun runs the program on fake kernel objects: it writes the
// record of a socket, with the pid numbered for the reader's depth, and
// a record with inode 0 for any other file, and nothing when a pointer it
// follows is missing.
func TestProgramRun(t *testing.T) {
	littleEndianHost(t)
	l := testLayout
	u64 := func(b []byte, off int16, v uint64) { binary.LittleEndian.PutUint64(b[off:], v) }
	u32 := func(b []byte, off int16, v uint32) { binary.LittleEndian.PutUint32(b[off:], v) }
	u16 := func(b []byte, off int16, v uint16) { binary.LittleEndian.PutUint16(b[off:], v) }

	const (
		ctxA, metaA, seqA             = 0x1000, 0x2000, 0x5e9
		taskA, leaderA, fileA, inodeA = 0x10000, 0x20000, 0x30000, 0x40000
		pidA, currentA, curPidA       = 0x50000, 0x60000, 0x70000
	)
	pidSize := pidOffset(l, MaxLevel) + 4
	type world struct {
		readerLevel uint32 // current->thread_pid->level
		mode        uint16
		noTask      bool
		noInode     bool
		noPid       bool
		noReaderPid bool
	}
	build := func(w world) (*kernel, uint64) {
		k := &kernel{}
		ctx := k.obj(ctxA, 32)
		meta := k.obj(metaA, 64)
		u64(meta, l.MetaSeq, seqA)
		u64(ctx, l.CtxMeta, metaA)
		if !w.noTask {
			u64(ctx, l.CtxTask, taskA)
		}
		u32(ctx, l.CtxFD, 7)
		u64(ctx, l.CtxFile, fileA)
		task := k.obj(taskA, 2048)
		u64(task, l.TaskGroupLeader, leaderA)
		u64(task, l.TaskThreadPid, 0xbad) // a thread's own pid: not used
		leader := k.obj(leaderA, 2048)
		if !w.noPid {
			u64(leader, l.TaskGroupLeader, leaderA)
			u64(leader, l.TaskThreadPid, pidA)
		}
		file := k.obj(fileA, 64)
		if !w.noInode {
			u64(file, l.FileInode, inodeA)
		}
		inode := k.obj(inodeA, 128)
		u16(inode, l.InodeMode, w.mode)
		u64(inode, l.InodeIno, 1<<40|12345)
		pid := k.obj(pidA, pidSize)
		for lv := range MaxLevel + 1 {
			u32(pid, int16(pidOffset(l, lv)), uint32(1000+lv))
		}
		current := k.obj(currentA, 2048)
		if !w.noReaderPid {
			u64(current, l.TaskThreadPid, curPidA)
		}
		curPid := k.obj(curPidA, pidSize)
		u32(curPid, l.PidLevel, w.readerLevel)
		return k, ctxA
	}
	record := func(pid uint32) []byte {
		b := binary.NativeEndian.AppendUint32(nil, pid)
		b = binary.NativeEndian.AppendUint32(b, 7)
		return binary.NativeEndian.AppendUint64(b, 1<<40|12345)
	}
	// A file that is not a socket is reported too, with inode 0.
	other := func(pid uint32) []byte {
		b := binary.NativeEndian.AppendUint32(nil, pid)
		b = binary.NativeEndian.AppendUint32(b, 7)
		return binary.NativeEndian.AppendUint64(b, 0)
	}
	const sock = sIFSOCK | 0o777

	for _, level := range []int{0, 1, 3} {
		code, err := Program(l, level)
		if err != nil {
			t.Fatal(err)
		}
		insns := decode(t, code)
		tests := []struct {
			name string
			w    world
			want []byte
		}{
			{"regular file", world{readerLevel: uint32(level), mode: 0o100644}, other(uint32(1000 + level))},
			{"directory", world{readerLevel: uint32(level), mode: 0o040755}, other(uint32(1000 + level))},
			{"fifo", world{readerLevel: uint32(level), mode: 0o010600}, other(uint32(1000 + level))},
			{"socket with S_IFMT bits set elsewhere", world{readerLevel: uint32(level), mode: 0o170000}, other(uint32(1000 + level))},
			{"final call without a task", world{readerLevel: uint32(level), mode: sock, noTask: true}, nil},
			{"file without an inode", world{readerLevel: uint32(level), mode: sock, noInode: true}, other(uint32(1000 + level))},
			{"task without a pid", world{readerLevel: uint32(level), mode: sock, noPid: true}, nil},
			{"reader without a pid", world{readerLevel: uint32(level), mode: sock, noReaderPid: true}, nil},
			{"reader shallower than level", world{readerLevel: uint32(level) - 1, mode: sock}, nil},
			{"reader deeper than MaxLevel", world{readerLevel: MaxLevel + 1, mode: sock}, nil},
		}
		for d := level; d <= MaxLevel; d++ {
			tests = append(tests, struct {
				name string
				w    world
				want []byte
			}{fmt.Sprintf("socket, reader at depth %d", d), world{readerLevel: uint32(d), mode: sock}, record(uint32(1000 + d))})
		}
		for _, tc := range tests {
			t.Run(fmt.Sprintf("level %d: %s", level, tc.name), func(t *testing.T) {
				k, ctx := build(tc.w)
				got := runProgram(t, insns, k, ctx, currentA)
				if !bytes.Equal(got, tc.want) {
					t.Errorf("wrote % x, want % x", got, tc.want)
				}
			})
		}
	}
}

func TestProgramLevels(t *testing.T) {
	littleEndianHost(t)
	// numbers[2].nr ends exactly at the largest int16 offset.
	edge := Layout{PidNumbers: 1<<15 - 1 - 4 - 2*256, UpidSize: 256, UpidNr: 4}
	tests := []struct {
		name   string
		l      Layout
		level  int
		depths int // how many depths the program handles
		errMsg string
	}{
		{"level 0", testLayout, 0, MaxLevel + 1, ""},
		{"level 1", testLayout, 1, MaxLevel, ""},
		{"max level", testLayout, MaxLevel, 1, ""},
		{"negative level", testLayout, -1, 0, "out of range"},
		{"above max level", testLayout, MaxLevel + 1, 0, "out of range"},
		{"offset 32767", edge, 2, 1, ""},
		{"deeper levels cut at 32767", edge, 0, 3, ""},
		{"offset over int16", edge, 3, 0, "too deep"},
		{"offset far over int16", Layout{PidNumbers: 30000, UpidSize: 256, UpidNr: 4}, MaxLevel, 0, "too deep"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, err := Program(tc.l, tc.level)
			if tc.errMsg != "" {
				if err == nil {
					t.Fatalf("Program accepted level %d", tc.level)
				}
				if !strings.Contains(err.Error(), tc.errMsg) {
					t.Errorf("error %q does not contain %q", err, tc.errMsg)
				}
				if code != nil {
					t.Errorf("Program returned code with an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var offs []int
			for _, ins := range decode(t, code) {
				if isLoad(ins, asm.Word) && ins.Src == asm.R7 {
					offs = append(offs, int(ins.Offset))
				}
			}
			var want []int
			for d := range tc.depths {
				want = append(want, pidOffset(tc.l, tc.level+d))
			}
			if !slices.Equal(offs, want) {
				t.Errorf("pid loads at %v, want %v", offs, want)
			}
		})
	}
}

func TestParseRecords(t *testing.T) {
	rec := func(pid, fd uint32, inode uint64) []byte {
		b := binary.NativeEndian.AppendUint32(nil, pid)
		b = binary.NativeEndian.AppendUint32(b, fd)
		return binary.NativeEndian.AppendUint64(b, inode)
	}
	type record struct {
		pid, fd uint32
		inode   uint64
	}
	tests := []struct {
		name string
		in   []byte
		want []record
		err  bool
	}{
		{name: "nil"},
		{name: "empty", in: []byte{}},
		{name: "one", in: rec(1, 3, 12345), want: []record{{1, 3, 12345}}},
		{
			name: "two",
			in:   append(rec(4194304, 0, 1<<63|7), rec(2, 1<<31, 0)...),
			want: []record{{4194304, 0, 1<<63 | 7}, {2, 1 << 31, 0}},
		},
		{name: "partial", in: rec(1, 3, 12345)[:15], err: true},
		{name: "one and a partial", in: append(rec(1, 3, 12345), 0), err: true},
		{name: "two and a partial", in: append(append(rec(1, 3, 4), rec(5, 6, 7)...), make([]byte, 8)...), err: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []record
			err := ParseRecords(tc.in, func(pid, fd uint32, inode uint64) {
				got = append(got, record{pid, fd, inode})
			})
			if tc.err {
				if err == nil {
					t.Fatal("ParseRecords accepted a partial record")
				}
				// A damaged buffer is refused whole: nothing is
				// handed over before the error.
				if len(got) != 0 {
					t.Errorf("ParseRecords handed over %v before failing", got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

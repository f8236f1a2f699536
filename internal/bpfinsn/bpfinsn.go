// Package bpfinsn encodes eBPF instructions: the few the client's
// iterator programs use (internal/taskfd), with jumps to labels.
//
// The client builds its programs at run time, for the running kernel's
// layout, and needs no more of an assembler than this. cilium/ebpf's asm
// package, which porteirod uses, brings the rest of that library into the
// client (its ELF, BTF and compression packages, and their package
// initialisation at every start): 250 KB of a size-budgeted program and
// over a millisecond of each run. The tests decode what this package
// writes with cilium/ebpf's asm and check that both agree.
package bpfinsn

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// Register is a BPF register.
type Register uint8

// The registers: R0 holds results, R1 to R5 arguments, R6 to R9 survive
// calls, and RFP is the read-only frame pointer.
const (
	R0 Register = iota
	R1
	R2
	R3
	R4
	R5
	R6
	R7
	R8
	R9
	RFP
)

// Size is the width of a load or store (the opcode's size bits).
type Size uint8

// The sizes of a memory access.
const (
	Word  Size = 0x00
	Half  Size = 0x08
	Byte  Size = 0x10
	DWord Size = 0x18
)

// ALUOp is a 64-bit arithmetic operation (the opcode's operation bits).
type ALUOp uint8

// The arithmetic operations used.
const (
	Add ALUOp = 0x00
	Sub ALUOp = 0x10
	Mul ALUOp = 0x20
	And ALUOp = 0x50
	Mov ALUOp = 0xb0
)

// JumpOp is a jump (the opcode's operation bits), unsigned where it
// compares.
type JumpOp uint8

// The jumps used.
const (
	Ja  JumpOp = 0x00
	JEq JumpOp = 0x10
	JGT JumpOp = 0x20
	JNE JumpOp = 0x50
	JLT JumpOp = 0xa0
	JLE JumpOp = 0xb0
)

// BuiltinFunc is a kernel helper, by its number in include/uapi/linux/bpf.h.
type BuiltinFunc int32

// The helpers used.
const (
	FnMapLookupElem     BuiltinFunc = 1
	FnGetCurrentTask    BuiltinFunc = 35
	FnProbeReadKernel   BuiltinFunc = 113
	FnSeqWrite          BuiltinFunc = 127
	FnGetCurrentTaskBtf BuiltinFunc = 158
	FnSockFromFile      BuiltinFunc = 162
	FnCopyFromUserTask  BuiltinFunc = 191
)

// Instruction classes and fields of the opcode.
const (
	classLD    = 0x00
	classLDX   = 0x01
	classSTX   = 0x03
	classJMP   = 0x05
	classALU64 = 0x07
	modeIMM    = 0x00
	modeMEM    = 0x60
	sourceReg  = 0x08
	opCall     = 0x80
	opExit     = 0x90
	// pseudoMapFD marks a 64-bit immediate load of a map's fd.
	pseudoMapFD = 1
)

// InstructionSize is the size of one encoded instruction; a 64-bit
// immediate load takes two.
const InstructionSize = 8

// Instruction is one instruction, with its label and the label it jumps
// to, if any.
type Instruction struct {
	OpCode   uint8
	Dst, Src Register
	Offset   int16
	Constant int64
	symbol   string // this instruction's label
	ref      string // the label a jump goes to
}

// WithSymbol returns ins labelled name: jumps to name land on it.
func (ins Instruction) WithSymbol(name string) Instruction {
	ins.symbol = name
	return ins
}

// wide reports whether ins takes two slots (a 64-bit immediate load).
func (ins Instruction) wide() bool { return ins.OpCode == classLD|modeIMM|uint8(DWord) }

// LoadMem is dst = *(size *)(src + off).
func LoadMem(dst, src Register, off int16, size Size) Instruction {
	return Instruction{OpCode: classLDX | modeMEM | uint8(size), Dst: dst, Src: src, Offset: off}
}

// StoreMem is *(size *)(dst + off) = src.
func StoreMem(dst Register, off int16, src Register, size Size) Instruction {
	return Instruction{OpCode: classSTX | modeMEM | uint8(size), Dst: dst, Src: src, Offset: off}
}

// LoadMapPtr loads the map whose fd is fd into dst.
func LoadMapPtr(dst Register, fd int) Instruction {
	return Instruction{OpCode: classLD | modeIMM | uint8(DWord), Dst: dst, Src: pseudoMapFD, Constant: int64(fd)}
}

// Imm is dst op= v, in 64 bits.
func (op ALUOp) Imm(dst Register, v int32) Instruction {
	return Instruction{OpCode: classALU64 | uint8(op), Dst: dst, Constant: int64(v)}
}

// Reg is dst op= src, in 64 bits.
func (op ALUOp) Reg(dst, src Register) Instruction {
	return Instruction{OpCode: classALU64 | uint8(op) | sourceReg, Dst: dst, Src: src}
}

// Imm jumps to label when dst op v holds.
func (op JumpOp) Imm(dst Register, v int32, label string) Instruction {
	return Instruction{OpCode: classJMP | uint8(op), Dst: dst, Constant: int64(v), ref: label}
}

// Reg jumps to label when dst op src holds.
func (op JumpOp) Reg(dst, src Register, label string) Instruction {
	return Instruction{OpCode: classJMP | uint8(op) | sourceReg, Dst: dst, Src: src, ref: label}
}

// Label jumps to label (Ja only).
func (op JumpOp) Label(label string) Instruction {
	return Instruction{OpCode: classJMP | uint8(op), ref: label}
}

// Call calls the helper fn.
func (fn BuiltinFunc) Call() Instruction {
	return Instruction{OpCode: classJMP | opCall, Constant: int64(fn)}
}

// Return ends the program, returning R0.
func Return() Instruction { return Instruction{OpCode: classJMP | opExit} }

// Instructions is a program.
type Instructions []Instruction

// Size is the encoded size of the program.
func (p Instructions) Size() int {
	n := 0
	for _, ins := range p {
		n += InstructionSize
		if ins.wide() {
			n += InstructionSize
		}
	}
	return n
}

// Marshal encodes the program in byte order bo, with each jump's offset
// to its label. A label that is missing or defined twice, or a jump too
// far for 16 bits, is an error.
func (p Instructions) Marshal(bo binary.ByteOrder) ([]byte, error) {
	slots := make(map[string]int, 16)
	slot := 0
	for _, ins := range p {
		if ins.symbol != "" {
			if _, dup := slots[ins.symbol]; dup {
				return nil, fmt.Errorf("label %q defined twice", ins.symbol)
			}
			slots[ins.symbol] = slot
		}
		slot++
		if ins.wide() {
			slot++
		}
	}
	out := make([]byte, 0, slot*InstructionSize)
	slot = 0
	for i, ins := range p {
		off := ins.Offset
		if ins.ref != "" {
			to, ok := slots[ins.ref]
			if !ok {
				return nil, fmt.Errorf("instruction %d jumps to %q, which no instruction is", i, ins.ref)
			}
			d := to - slot - 1
			if d < math.MinInt16 || d > math.MaxInt16 {
				return nil, fmt.Errorf("instruction %d: jump of %d to %q is too far", i, d, ins.ref)
			}
			off = int16(d)
		}
		regs := uint8(ins.Dst&0xf) | uint8(ins.Src&0xf)<<4
		if bo.Uint16([]byte{1, 0}) != 1 { // big-endian: dst in the high nibble
			regs = uint8(ins.Dst&0xf)<<4 | uint8(ins.Src&0xf)
		}
		var b [2 * InstructionSize]byte
		b[0], b[1] = ins.OpCode, regs
		bo.PutUint16(b[2:], uint16(off))
		n := InstructionSize
		if ins.wide() {
			bo.PutUint32(b[4:], uint32(ins.Constant))
			bo.PutUint32(b[12:], uint32(ins.Constant>>32))
			n = 2 * InstructionSize
		} else {
			if ins.Constant < math.MinInt32 || ins.Constant > math.MaxInt32 {
				return nil, errors.New("32-bit immediate out of range")
			}
			bo.PutUint32(b[4:], uint32(int32(ins.Constant)))
		}
		out = append(out, b[:n]...)
		slot += n / InstructionSize
	}
	return out, nil
}

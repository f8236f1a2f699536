package bpfinsn

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"

	"github.com/cilium/ebpf/asm"
)

// TestMarshalMatchesCilium encodes one program with this package and the
// same with cilium/ebpf's asm, and checks that the bytes are the same, in
// both byte orders: every constructor, every register, both kinds of
// jump, forward and backward, across a 64-bit immediate load.
func TestMarshalMatchesCilium(t *testing.T) {
	ours := Instructions{
		Mov.Reg(R6, R1),
		LoadMem(R7, R6, 8, DWord),
		JEq.Imm(R7, 0, "exit"),
		LoadMem(R3, R7, -2, Half),
		LoadMem(R4, R7, 1, Byte),
		LoadMem(R5, R7, 32767, Word),
		StoreMem(RFP, -8, R3, DWord),
		StoreMem(RFP, -12, R4, Word),
		And.Imm(R3, 0o170000),
		Add.Imm(R2, -24),
		Sub.Reg(R2, R8),
		Mul.Imm(R1, 24),
		Add.Reg(R3, R1),
		Mov.Imm(R9, -1),
		JNE.Imm(R3, 0o140000, "exit").WithSymbol("back"),
		JGT.Imm(R9, 32, "exit"),
		JLT.Reg(R9, R8, "exit"),
		JLE.Reg(R2, R8, "exit"),
		LoadMapPtr(R1, 7),
		FnMapLookupElem.Call(),
		FnGetCurrentTask.Call(),
		FnProbeReadKernel.Call(),
		FnSeqWrite.Call(),
		FnGetCurrentTaskBtf.Call(),
		FnSockFromFile.Call(),
		FnCopyFromUserTask.Call(),
		JEq.Reg(R0, R7, "back"),
		Ja.Label("exit"),
		Mov.Imm(R0, 0).WithSymbol("exit"),
		Return(),
	}
	theirs := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R7, asm.R6, 8, asm.DWord),
		asm.JEq.Imm(asm.R7, 0, "exit"),
		asm.LoadMem(asm.R3, asm.R7, -2, asm.Half),
		asm.LoadMem(asm.R4, asm.R7, 1, asm.Byte),
		asm.LoadMem(asm.R5, asm.R7, 32767, asm.Word),
		asm.StoreMem(asm.RFP, -8, asm.R3, asm.DWord),
		asm.StoreMem(asm.RFP, -12, asm.R4, asm.Word),
		asm.And.Imm(asm.R3, 0o170000),
		asm.Add.Imm(asm.R2, -24),
		asm.Sub.Reg(asm.R2, asm.R8),
		asm.Mul.Imm(asm.R1, 24),
		asm.Add.Reg(asm.R3, asm.R1),
		asm.Mov.Imm(asm.R9, -1),
		asm.JNE.Imm(asm.R3, 0o140000, "exit").WithSymbol("back"),
		asm.JGT.Imm(asm.R9, 32, "exit"),
		asm.JLT.Reg(asm.R9, asm.R8, "exit"),
		asm.JLE.Reg(asm.R2, asm.R8, "exit"),
		asm.LoadMapPtr(asm.R1, 7),
		asm.FnMapLookupElem.Call(),
		asm.FnGetCurrentTask.Call(),
		asm.FnProbeReadKernel.Call(),
		asm.FnSeqWrite.Call(),
		asm.FnGetCurrentTaskBtf.Call(),
		asm.FnSockFromFile.Call(),
		asm.FnCopyFromUserTask.Call(),
		asm.JEq.Reg(asm.R0, asm.R7, "back"),
		asm.Ja.Label("exit"),
		asm.Mov.Imm(asm.R0, 0).WithSymbol("exit"),
		asm.Return(),
	}
	for _, bo := range []binary.ByteOrder{binary.LittleEndian, binary.BigEndian} {
		got, err := ours.Marshal(bo)
		if err != nil {
			t.Fatal(err)
		}
		var want bytes.Buffer
		if err := theirs.Marshal(&want, bo); err != nil {
			t.Fatal(err)
		}
		if len(got) != ours.Size() {
			t.Errorf("%v: %d bytes, Size says %d", bo, len(got), ours.Size())
		}
		for i := 0; i < max(len(got), want.Len()); i += InstructionSize {
			g, w := chunk(got, i), chunk(want.Bytes(), i)
			if !bytes.Equal(g, w) {
				t.Errorf("%v: slot %d: % x, cilium/ebpf writes % x", bo, i/InstructionSize, g, w)
			}
		}
	}
}

func chunk(b []byte, i int) []byte {
	if i >= len(b) {
		return nil
	}
	return b[i:min(i+InstructionSize, len(b))]
}

func TestMarshalErrors(t *testing.T) {
	far := Instructions{Ja.Label("end")}
	for range 40000 {
		far = append(far, Mov.Imm(R0, 0))
	}
	far = append(far, Return().WithSymbol("end"))
	for _, tc := range []struct {
		name string
		p    Instructions
		msg  string
	}{
		{"missing label", Instructions{JEq.Imm(R1, 0, "nowhere"), Return()}, `"nowhere", which no instruction is`},
		{"label twice", Instructions{Mov.Imm(R0, 0).WithSymbol("a"), Return().WithSymbol("a")}, `"a" defined twice`},
		{"jump too far", far, "too far"},
	} {
		if _, err := tc.p.Marshal(binary.LittleEndian); err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v, want an error with %q", tc.name, err, tc.msg)
		}
	}
}

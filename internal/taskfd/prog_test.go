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
	HasNetNS:        true,
	SocketSk:        24,
	SockNet:         48,
	NetInum:         180,
	SockFamily:      20,
	SockState:       30,
	SocketState:     4,
}

// decode reads back the bytes Program gives the kernel, where every jump
// is an offset.
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

// pidOffset is where numbers[level].nr is in struct pid.
func pidOffset(l Layout, level int) int {
	return int(l.PidNumbers) + level*int(l.UpidSize) + int(l.UpidNr)
}

// kernel is fake kernel memory for runProgram: the objects the program
// reads, at made-up addresses, each a byte slice.
type kernel struct {
	objs map[uint64][]byte
	// sockFromFile is what bpf_sock_from_file returns.
	sockFromFile uint64
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
		case op.Class() == asm.StClass:
			n := op.Size().Sizeof()
			b := k.at(r[ins.Dst]+uint64(int64(ins.Offset)), n)
			if b == nil {
				t.Fatalf("instruction %d (%v): store to %#x, no memory there", pc, ins, r[ins.Dst]+uint64(int64(ins.Offset)))
			}
			copy(b, binary.LittleEndian.AppendUint64(nil, uint64(ins.Constant))[:n])
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
				case asm.FnGetCurrentTaskBtf, asm.FnGetCurrentTask:
					r[0] = current
				case asm.FnProbeReadKernel:
					dst, src := k.at(r[1], int(r[2])), k.at(r[3], int(r[2]))
					if dst == nil {
						t.Fatalf("bpf_probe_read_kernel of %d bytes to %#x, no memory there", r[2], r[1])
					}
					r[0] = 0
					if src == nil {
						clear(dst)         // the helper zeroes what it could not read
						r[0] = ^uint64(13) // -EFAULT
					} else {
						copy(dst, src)
					}
				case asm.FnSockFromFile:
					if r[1] != fileA {
						t.Errorf("bpf_sock_from_file(%#x), not the file", r[1])
					}
					r[0] = k.sockFromFile
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
			case asm.JGT:
				jump = r[ins.Dst] > uint64(ins.Constant)
			case asm.JNE:
				jump = r[ins.Dst] != uint64(ins.Constant)
				if op.Source() == asm.RegSource {
					jump = r[ins.Dst] != r[ins.Src]
				}
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

// world is what the fake kernel holds for one run of the program.
type world struct {
	readerLevel uint32 // current->thread_pid->level
	mode        uint16
	noTask      bool
	noInode     bool
	noPid       bool
	noReaderPid bool
	notSockFile bool // bpf_sock_from_file returns null
	noSk        bool // socket.sk is null
	noNet       bool // sk's net is null
	family      uint16
	state       uint8
	sockState   uint32 // the struct socket's: 0 (SS_FREE) unless set
}

// Addresses of the fake kernel's objects.
const (
	ctxA, metaA, seqA             = 0x1000, 0x2000, 0x5e9
	taskA, leaderA, fileA, inodeA = 0x10000, 0x20000, 0x30000, 0x40000
	pidA, currentA, curPidA       = 0x50000, 0x60000, 0x70000
	socketA, sockA, netA          = 0x80000, 0x90000, 0xa0000
	// The file the program is run on: fd 7, socket inode 1<<40|12345, held
	// by a process whose pid at depth d is 1000+d.
	testFD    = 7
	testInode = 1<<40 | 12345
	testNetNS = 4026532999
)

// build lays out w in a fake kernel for layout l.
func build(l Layout, w world) *kernel {
	u64 := func(b []byte, off int16, v uint64) { binary.LittleEndian.PutUint64(b[off:], v) }
	u32 := func(b []byte, off int16, v uint32) { binary.LittleEndian.PutUint32(b[off:], v) }
	u16 := func(b []byte, off int16, v uint16) { binary.LittleEndian.PutUint16(b[off:], v) }
	pidSize := max(pidOffset(l, MaxLevel)+4, int(l.PidLevel)+4)
	k := &kernel{}
	ctx := k.obj(ctxA, 32)
	meta := k.obj(metaA, 64)
	u64(meta, l.MetaSeq, seqA)
	u64(ctx, l.CtxMeta, metaA)
	if !w.noTask {
		u64(ctx, l.CtxTask, taskA)
	}
	u32(ctx, l.CtxFD, testFD)
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
	u64(inode, l.InodeIno, testInode)
	pid := k.obj(pidA, pidSize)
	for lv := range MaxLevel + 1 {
		if off := pidOffset(l, lv); off+4 <= pidSize && off <= 1<<15-1 {
			u32(pid, int16(off), uint32(1000+lv))
		}
	}
	current := k.obj(currentA, 2048)
	if !w.noReaderPid {
		u64(current, l.TaskThreadPid, curPidA)
	}
	curPid := k.obj(curPidA, pidSize)
	u32(curPid, l.PidLevel, w.readerLevel)
	if !w.notSockFile && w.mode&sIFMT == sIFSOCK {
		k.sockFromFile = socketA
	}
	socket := k.obj(socketA, 64)
	u32(socket, l.SocketState, w.sockState)
	if !w.noSk {
		u64(socket, l.SocketSk, sockA)
	}
	sock := k.obj(sockA, 1024)
	if !w.noNet {
		u64(sock, l.SockNet, netA)
	}
	u16(sock, l.SockFamily, w.family)
	sock[l.SockState] = w.state
	net := k.obj(netA, 1024)
	u32(net, l.NetInum, testNetNS)
	return k
}

// rec is a record as the program writes it, with no network namespace.
func rec(pid, fd uint32, inode uint64) []byte { return recNS(pid, fd, inode, 0) }

// recNS is a record with a network namespace.
func recNS(pid, fd uint32, inode uint64, netns uint32) []byte {
	b := binary.NativeEndian.AppendUint32(nil, pid)
	b = binary.NativeEndian.AppendUint32(b, fd)
	b = binary.NativeEndian.AppendUint64(b, inode)
	b = binary.NativeEndian.AppendUint32(b, netns)
	return binary.NativeEndian.AppendUint32(b, 0)
}

// TestProgramRun runs the program on fake kernel objects: it writes the
// record of a socket, with the pid numbered for the reader's depth, and
// a record with inode 0 for any other file, and nothing when a pointer it
// follows is missing.
func TestProgramRun(t *testing.T) {
	littleEndianHost(t)
	l := testLayout
	const sock = sIFSOCK | 0o777
	for _, level := range []int{0, 1, 3} {
		code, err := Program(l, level)
		if err != nil {
			t.Fatal(err)
		}
		insns := decode(t, code)
		other := rec(uint32(1000+level), testFD, 0) // not a socket: inode 0
		tests := []struct {
			name string
			w    world
			want []byte
		}{
			{"regular file", world{readerLevel: uint32(level), mode: 0o100644}, other},
			{"directory", world{readerLevel: uint32(level), mode: 0o040755}, other},
			{"fifo", world{readerLevel: uint32(level), mode: 0o010600}, other},
			{"socket with S_IFMT bits set elsewhere", world{readerLevel: uint32(level), mode: 0o170000}, other},
			{"final call without a task", world{readerLevel: uint32(level), mode: sock, noTask: true}, nil},
			{"file without an inode", world{readerLevel: uint32(level), mode: sock, noInode: true}, other},
			{"task without a pid", world{readerLevel: uint32(level), mode: sock, noPid: true}, nil},
			{"reader without a pid", world{readerLevel: uint32(level), mode: sock, noReaderPid: true}, nil},
			{"reader shallower than level", world{readerLevel: uint32(level) - 1, mode: sock}, nil},
			{"reader deeper than MaxLevel", world{readerLevel: MaxLevel + 1, mode: sock}, nil},
			{"socket that bpf_sock_from_file does not give", world{readerLevel: uint32(level), mode: sock, notSockFile: true}, other},
			{"socket without sk", world{readerLevel: uint32(level), mode: sock, noSk: true}, rec(uint32(1000+level), testFD, testInode)},
			{"sock without net", world{readerLevel: uint32(level), mode: sock, noNet: true}, rec(uint32(1000+level), testFD, testInode)},
		}
		for d := level; d <= MaxLevel; d++ {
			tests = append(tests, struct {
				name string
				w    world
				want []byte
			}{fmt.Sprintf("socket, reader at depth %d", d), world{readerLevel: uint32(d), mode: sock}, recNS(uint32(1000+d), testFD, testInode, testNetNS)})
		}
		for _, tc := range tests {
			t.Run(fmt.Sprintf("level %d: %s", level, tc.name), func(t *testing.T) {
				got := runProgram(t, insns, build(l, tc.w), ctxA, currentA)
				if !bytes.Equal(got, tc.want) {
					t.Errorf("wrote % x, want % x", got, tc.want)
				}
			})
		}
	}
}

// TestProgramLevels runs the program with the reader at every depth, on
// layouts where struct pid's numbers[] reaches past the largest offset a
// load can take: the depths the program can read report the pid of that
// depth, the deeper ones report nothing, and a level it cannot read at all
// is refused.
func TestProgramLevels(t *testing.T) {
	littleEndianHost(t)
	// numbers[2].nr ends exactly at the largest int16 offset.
	edge := testLayout
	edge.PidNumbers, edge.UpidSize, edge.UpidNr = 1<<15-1-4-2*256, 256, 4
	far := testLayout
	far.PidNumbers, far.UpidSize, far.UpidNr = 30000, 256, 4
	tests := []struct {
		name   string
		l      Layout
		level  int
		depths int // how many depths, from level on, the program reads
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
		{"offset far over int16", far, MaxLevel, 0, "too deep"},
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
			insns := decode(t, code)
			for d := 0; d <= MaxLevel+1; d++ {
				var want []byte
				if d >= tc.level && d < tc.level+tc.depths {
					want = recNS(uint32(1000+d), testFD, testInode, testNetNS)
				}
				got := runProgram(t, insns, build(tc.l, world{readerLevel: uint32(d), mode: sIFSOCK}), ctxA, currentA)
				if !bytes.Equal(got, want) {
					t.Errorf("reader at depth %d: wrote % x, want % x", d, got, want)
				}
			}
		})
	}
}

func TestParseRecords(t *testing.T) {
	type record struct {
		pid, fd uint32
		inode   uint64
		netns   uint32
	}
	tests := []struct {
		name string
		in   []byte
		want []record
		err  bool
	}{
		{name: "nil"},
		{name: "empty", in: []byte{}},
		{name: "one", in: recNS(1, 3, 12345, 4026531840), want: []record{{1, 3, 12345, 4026531840}}},
		{
			name: "two",
			in:   append(rec(4194304, 0, 1<<63|7), recNS(2, 1<<31, 0, 1<<32-1)...),
			want: []record{{4194304, 0, 1<<63 | 7, 0}, {2, 1 << 31, 0, 1<<32 - 1}},
		},
		{name: "partial", in: rec(1, 3, 12345)[:RecordSize-1], err: true},
		{name: "one and a partial", in: append(rec(1, 3, 12345), 0), err: true},
		{name: "two and a partial", in: append(append(rec(1, 3, 4), rec(5, 6, 7)...), make([]byte, 8)...), err: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var got []record
			err := ParseRecords(tc.in, func(pid, fd uint32, inode uint64, netns uint32) {
				got = append(got, record{pid, fd, inode, netns})
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

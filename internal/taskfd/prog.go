package taskfd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	insn "github.com/porteiro/porteiro/internal/bpfinsn"
)

// The file type bits of inode->i_mode, from include/uapi/linux/stat.h.
const (
	sIFMT   = 0o170000
	sIFSOCK = 0o140000
)

// RecordSize is the size of one record the program writes:
// struct { u32 pid; u32 fd; u64 inode; u32 netns; u32 pad; } in the
// kernel's byte order, one per open file, with inode 0 for a file that is
// not a socket, and netns the inode of the socket's network namespace (0
// when not a socket, or when the layout has no NetNS fields).
const RecordSize = 24

// MaxLevel is the deepest PID namespace the program can be built for
// (the kernel's own limit is 32).
const MaxLevel = 32

// Jump labels of the program.
const (
	labelExit  = "exit"
	labelStore = "store" // the record is complete but for fd and pid
	labelPID   = "pid"   // the pid is in r2
	labelInet  = "inet"  // an IPv4 or IPv6 socket: its state decides
	labelInode = "inode" // a socket kept: its inode and namespace
)

// Stack slots of the record, below the frame pointer.
const (
	slotPID   = -24
	slotFD    = -20
	slotInode = -16
	slotNetNS = -8
	slotPad   = -4
)

// Instructions builds the iterator program for layout l. The program runs
// once per open file of every process and writes one record for each: the
// socket's inode number for a socket, 0 for any other file (so the reader
// learns which processes it saw, sockets or not), with the process's pid as
// the reader's PID namespace numbers it, the number /proc shows there.
//
// level is the least depth the reader's PID namespace can have (0 for the
// initial one): the number of pids on the NSpid line of /proc/self/status,
// minus one. It is only a lower bound, as that line starts at the namespace
// /proc was mounted from, which in a container is the reader's own. So the
// program reads the actual depth from the reading task (the level of its
// struct pid) and picks, among levels level to MaxLevel, the entry of the
// process's pid.numbers for that depth.
func Instructions(l Layout, level int) (insn.Instructions, error) {
	return instructions(l, level, false, 0)
}

// ExactInstructions builds the iterator program for a reader whose PID
// namespace is exactly depth deep (readerDepth): it reads the entry of
// that depth directly. Instructions, which must find the reader's depth
// for every file, makes the verifier explore one path per depth it may
// be at, and takes ten times as long to load.
//
// states, when not zero, is a set of socket states (bit n for the
// kernel's state n, as sock_diag takes them, see SocketStates): the
// program writes no record for an IPv4 or IPv6 socket in another state.
// When they are only the states of listeners, it also leaves out the
// sockets of any family that are connected or connecting (struct
// socket's state): the files of TCP connections and of connected Unix
// sockets, most of a host's, then cost no load from their sock.
func ExactInstructions(l Layout, depth int, states uint32) (insn.Instructions, error) {
	return instructions(l, depth, true, states)
}

// SocketStates returns the states a program built for l with states
// leaves in: all of them (0) when l cannot tell a socket's state.
func SocketStates(l Layout, states uint32) uint32 {
	if !l.NetNS() || states&allStates == allStates {
		return 0
	}
	return states & allStates
}

// allStates has a bit for each state a socket can be in (TCP_ESTABLISHED
// is 1, TCP_NEW_SYN_RECV 12).
const allStates = 0x1ffe

// The states of a listener (TCP LISTEN, and CLOSE: an unconnected UDP
// socket), and the state of a socket (struct socket) not connected.
const (
	tcpListen     = 10
	tcpClose      = 7
	ssUnconnected = 1
)

// The address families whose sockets a program with states filters.
const (
	afInet  = 2
	afInet6 = 10
)

func instructions(l Layout, level int, exact bool, states uint32) (insn.Instructions, error) {
	if level < 0 || level > MaxLevel {
		return nil, fmt.Errorf("pid namespace level %d out of range", level)
	}
	// nr is the offset of numbers[lv].nr in struct pid.
	nr := func(lv int) int { return int(l.PidNumbers) + lv*int(l.UpidSize) + int(l.UpidNr) }
	if nr(level) > math.MaxInt16 {
		return nil, errors.New("pid namespace level too deep for this layout")
	}
	states = SocketStates(l, states)
	const (
		r0, r1, r2, r3, r4, r6, r7, r8, r9, fp = insn.R0, insn.R1, insn.R2, insn.R3, insn.R4, insn.R6, insn.R7, insn.R8, insn.R9, insn.RFP
		dw, w                                  = insn.DWord, insn.Word
	)
	b := &builder{p: make(insn.Instructions, 0, 128)}
	b.mov(r6, r1) // r6 = ctx
	b.ldx(r7, r6, l.CtxTask, dw)
	b.jmp(insn.JEq, r7, 0, labelExit) // the final call has no task
	b.ldx(r8, r6, l.CtxFile, dw)
	b.jmp(insn.JEq, r8, 0, labelExit)
	b.imm(insn.Mov, r1, 0)
	b.stx(fp, slotNetNS, r1, w)
	b.stx(fp, slotPad, r1, w)
	b.stx(fp, slotInode, r1, dw) // inode 0: not a socket
	if l.NetNS() {
		// bpf_sock_from_file tells a socket by its file operations, with
		// no load from the inode, which for the other files would be one
		// more cache miss each. The helper and the loads are typed (BTF),
		// so the kernel checks every pointer.
		b.mov(r9, r8) // kept across the call
		b.mov(r1, r8)
		b.call(insn.FnSockFromFile)
		b.jmp(insn.JEq, r0, 0, labelStore)
		if states&^(1<<tcpListen|1<<tcpClose) == 0 && states != 0 {
			// Only listeners wanted: a connected or connecting socket
			// (a TCP connection, a connected Unix socket) is left out
			// by the socket's own state, with no load from its sock.
			// A UDP socket stays unconnected there when connected.
			b.ldx(r3, r0, l.SocketState, w)
			b.jmp(insn.JGT, r3, ssUnconnected, labelExit)
		}
		b.ldx(r4, r0, l.SocketSk, dw) // r4 = sk, maybe null
		if states != 0 {
			// An IPv4 or IPv6 socket in a state the reader does not
			// want: no record, and no load from its inode.
			b.jmp(insn.JEq, r4, 0, labelInode)
			b.ldx(r3, r4, l.SockFamily, insn.Half)
			b.jmp(insn.JEq, r3, afInet, labelInet)
			b.jmp(insn.JNE, r3, afInet6, labelInode)
			b.at(labelInet)
			b.ldx(r3, r4, l.SockState, insn.Byte)
			for st := range 32 {
				if states&(1<<st) != 0 {
					b.jmp(insn.JEq, r3, int32(st), labelInode)
				}
			}
			b.jmp(insn.Ja, r0, 0, labelExit)
		}
		b.at(labelInode)
		b.ldx(r8, r9, l.FileInode, dw)
		b.jmp(insn.JEq, r8, 0, labelStore)
		b.ldx(r2, r8, l.InodeIno, dw)
		b.stx(fp, slotInode, r2, dw) // record.inode
		// The socket's network namespace:
		// sk->__sk_common.skc_net.net->ns.inum; a null pointer leaves it 0.
		b.jmp(insn.JEq, r4, 0, labelStore)
		b.ldx(r4, r4, l.SockNet, dw)
		b.jmp(insn.JEq, r4, 0, labelStore)
		b.ldx(r4, r4, l.NetInum, w)
		b.stx(fp, slotNetNS, r4, w)
	} else {
		// Without bpf_sock_from_file: a socket by its inode's mode.
		b.ldx(r8, r8, l.FileInode, dw)
		b.jmp(insn.JEq, r8, 0, labelStore)
		b.ldx(r3, r8, l.InodeMode, insn.Half)
		b.imm(insn.And, r3, sIFMT)
		b.jmp(insn.JNE, r3, sIFSOCK, labelStore)
		b.ldx(r2, r8, l.InodeIno, dw)
		b.stx(fp, slotInode, r2, dw) // record.inode
	}
	b.at(labelStore)
	b.ldx(r2, r6, l.CtxFD, w)
	b.stx(fp, slotFD, r2, w) // record.fd
	// The process's struct pid: task->group_leader->thread_pid.
	b.ldx(r7, r7, l.TaskGroupLeader, dw)
	b.jmp(insn.JEq, r7, 0, labelExit)
	b.ldx(r7, r7, l.TaskThreadPid, dw)
	b.jmp(insn.JEq, r7, 0, labelExit)
	if exact {
		b.ldx(r2, r7, int16(nr(level)), w)
	} else {
		// The depth of the reader's PID namespace: the level of the reading
		// task's pid.
		b.call(insn.FnGetCurrentTaskBtf)
		b.ldx(r0, r0, l.TaskThreadPid, dw)
		b.jmp(insn.JEq, r0, 0, labelExit)
		b.ldx(r0, r0, l.PidLevel, w)
		// The pid, numbers[depth].nr: one load per depth the reader may be at.
		for lv := level; lv <= MaxLevel && nr(lv) <= math.MaxInt16; lv++ {
			next := fmt.Sprintf("depth_%d", lv+1)
			b.at(fmt.Sprintf("depth_%d", lv))
			b.jmp(insn.JNE, r0, int32(lv), next)
			b.ldx(r2, r7, int16(nr(lv)), w)
			b.jmp(insn.Ja, r0, 0, labelPID)
			if lv+1 > MaxLevel || nr(lv+1) > math.MaxInt16 {
				// Deeper than the program can read: write nothing.
				b.at(next)
				b.jmp(insn.Ja, r0, 0, labelExit)
			}
		}
	}
	b.at(labelPID)
	b.stx(fp, slotPID, r2, w) // record.pid
	// bpf_seq_write(ctx->meta->seq, &record, RecordSize)
	b.ldx(r1, r6, l.CtxMeta, dw)
	b.ldx(r1, r1, l.MetaSeq, dw)
	b.mov(r2, fp)
	b.imm(insn.Add, r2, -RecordSize)
	b.imm(insn.Mov, r3, RecordSize)
	b.call(insn.FnSeqWrite)
	b.at(labelExit)
	b.imm(insn.Mov, r0, 0)
	b.p = append(b.p, insn.Return())
	return b.p, nil
}

// Program is Instructions encoded for bpf(BPF_PROG_LOAD), in the host's
// byte order.
func Program(l Layout, level int) ([]byte, error) {
	insns, err := Instructions(l, level)
	if err != nil {
		return nil, err
	}
	return encode(insns, "task-file iterator")
}

// ExactProgram is ExactInstructions encoded for bpf(BPF_PROG_LOAD).
func ExactProgram(l Layout, depth int, states uint32) ([]byte, error) {
	insns, err := ExactInstructions(l, depth, states)
	if err != nil {
		return nil, err
	}
	return encode(insns, "task-file iterator")
}

// encode assembles insns in the host's byte order.
func encode(insns insn.Instructions, what string) ([]byte, error) {
	b, err := insns.Marshal(binary.NativeEndian)
	if err != nil {
		return nil, fmt.Errorf("assembling the %s: %w", what, err)
	}
	return b, nil
}

// ParseRecords calls fn for every record in b, which holds what the program
// wrote. A trailing partial record is an error.
func ParseRecords(b []byte, fn func(pid, fd uint32, inode uint64, netns uint32)) error {
	if len(b)%RecordSize != 0 {
		return fmt.Errorf("iterator output of %d bytes is not a whole number of records", len(b))
	}
	for ; len(b) >= RecordSize; b = b[RecordSize:] {
		fn(binary.NativeEndian.Uint32(b), binary.NativeEndian.Uint32(b[4:]), binary.NativeEndian.Uint64(b[8:]), binary.NativeEndian.Uint32(b[16:]))
	}
	return nil
}

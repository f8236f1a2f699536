package taskfd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"

	"github.com/cilium/ebpf/asm"
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
	labelExit    = "exit"
	labelStore   = "store"
	labelNoInode = "no_inode"
	labelNSDone  = "ns_done"
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
func Instructions(l Layout, level int) (asm.Instructions, error) {
	if level < 0 || level > MaxLevel {
		return nil, fmt.Errorf("pid namespace level %d out of range", level)
	}
	// nr is the offset of numbers[lv].nr in struct pid.
	nr := func(lv int) int { return int(l.PidNumbers) + lv*int(l.UpidSize) + int(l.UpidNr) }
	if nr(level) > math.MaxInt16 {
		return nil, errors.New("pid namespace level too deep for this layout")
	}
	p := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1), // r6 = ctx
		asm.LoadMem(asm.R7, asm.R6, l.CtxTask, asm.DWord),
		asm.JEq.Imm(asm.R7, 0, labelExit), // the final call has no task
		asm.LoadMem(asm.R8, asm.R6, l.CtxFile, asm.DWord),
		asm.JEq.Imm(asm.R8, 0, labelExit),
		asm.Mov.Reg(asm.R9, asm.R8), // r9 = the file, for bpf_sock_from_file
		asm.StoreImm(asm.RFP, slotNetNS, 0, asm.Word),
		asm.StoreImm(asm.RFP, slotPad, 0, asm.Word),
		asm.Mov.Imm(asm.R2, 0), // inode 0: not a socket
		asm.LoadMem(asm.R8, asm.R8, l.FileInode, asm.DWord),
		asm.JEq.Imm(asm.R8, 0, labelNoInode),
		asm.LoadMem(asm.R3, asm.R8, l.InodeMode, asm.Half),
		asm.And.Imm(asm.R3, sIFMT),
		asm.JNE.Imm(asm.R3, sIFSOCK, labelNoInode),
		asm.LoadMem(asm.R2, asm.R8, l.InodeIno, asm.DWord),
	}
	if l.NetNS() {
		// The socket's network namespace:
		// bpf_sock_from_file(file)->sk->__sk_common.skc_net.net->ns.inum.
		// The helper and the loads are typed (BTF), so the kernel checks
		// every pointer; a null one leaves the netns 0.
		p = append(p,
			asm.StoreMem(asm.RFP, slotInode, asm.R2, asm.DWord), // kept across the call
			asm.Mov.Reg(asm.R1, asm.R9),
			asm.FnSockFromFile.Call(),
			asm.JEq.Imm(asm.R0, 0, labelNSDone),
			asm.LoadMem(asm.R0, asm.R0, l.SocketSk, asm.DWord),
			asm.JEq.Imm(asm.R0, 0, labelNSDone),
			asm.LoadMem(asm.R0, asm.R0, l.SockNet, asm.DWord),
			asm.JEq.Imm(asm.R0, 0, labelNSDone),
			asm.LoadMem(asm.R0, asm.R0, l.NetInum, asm.Word),
			asm.StoreMem(asm.RFP, slotNetNS, asm.R0, asm.Word),
			asm.LoadMem(asm.R2, asm.RFP, slotInode, asm.DWord).WithSymbol(labelNSDone),
		)
	}
	p = append(p,
		asm.StoreMem(asm.RFP, slotInode, asm.R2, asm.DWord).WithSymbol(labelNoInode), // record.inode
		asm.LoadMem(asm.R2, asm.R6, l.CtxFD, asm.Word),
		asm.StoreMem(asm.RFP, slotFD, asm.R2, asm.Word), // record.fd
		// The process's struct pid: task->group_leader->thread_pid.
		asm.LoadMem(asm.R7, asm.R7, l.TaskGroupLeader, asm.DWord),
		asm.JEq.Imm(asm.R7, 0, labelExit),
		asm.LoadMem(asm.R7, asm.R7, l.TaskThreadPid, asm.DWord),
		asm.JEq.Imm(asm.R7, 0, labelExit),
		// The depth of the reader's PID namespace: the level of the
		// reading task's pid.
		asm.FnGetCurrentTaskBtf.Call(),
		asm.LoadMem(asm.R0, asm.R0, l.TaskThreadPid, asm.DWord),
		asm.JEq.Imm(asm.R0, 0, labelExit),
		asm.LoadMem(asm.R0, asm.R0, l.PidLevel, asm.Word),
	)
	// The pid, numbers[depth].nr: one load per depth the reader may be at.
	for lv := level; lv <= MaxLevel && nr(lv) <= math.MaxInt16; lv++ {
		next := fmt.Sprintf("depth_%d", lv+1)
		p = append(p,
			asm.JNE.Imm(asm.R0, int32(lv), next).WithSymbol(fmt.Sprintf("depth_%d", lv)),
			asm.LoadMem(asm.R2, asm.R7, int16(nr(lv)), asm.Word),
			asm.Ja.Label(labelStore))
		if lv+1 > MaxLevel || nr(lv+1) > math.MaxInt16 {
			// Deeper than the program can read: write nothing.
			p = append(p, asm.Ja.Label(labelExit).WithSymbol(next))
		}
	}
	p = append(p,
		asm.StoreMem(asm.RFP, slotPID, asm.R2, asm.Word).WithSymbol(labelStore), // record.pid
		// bpf_seq_write(ctx->meta->seq, &record, 16)
		asm.LoadMem(asm.R1, asm.R6, l.CtxMeta, asm.DWord),
		asm.LoadMem(asm.R1, asm.R1, l.MetaSeq, asm.DWord),
		asm.Mov.Reg(asm.R2, asm.RFP),
		asm.Add.Imm(asm.R2, -RecordSize),
		asm.Mov.Imm(asm.R3, RecordSize),
		asm.FnSeqWrite.Call(),
		asm.Mov.Imm(asm.R0, 0).WithSymbol(labelExit),
		asm.Return(),
	)
	return p, nil
}

// Program is Instructions encoded for bpf(BPF_PROG_LOAD), in the host's
// byte order.
func Program(l Layout, level int) ([]byte, error) {
	insns, err := Instructions(l, level)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	b.Grow(int(insns.Size()))
	if err := insns.Marshal(&b, hostOrder()); err != nil {
		return nil, fmt.Errorf("assembling the task-file iterator: %w", err)
	}
	return b.Bytes(), nil
}

// hostOrder is the host's byte order as one of the two values the
// assembler knows (it refuses binary.NativeEndian).
func hostOrder() binary.ByteOrder {
	if binary.NativeEndian.Uint16([]byte{1, 0}) == 1 {
		return binary.LittleEndian
	}
	return binary.BigEndian
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

// Package taskfd lists every open file of every process in one pass, with
// the inode of each socket, through a BPF iterator over the kernel's task
// files (bpf_iter__task_file; the program needs Linux 5.11 or later). It is
// the fast owner resolver: where the /proc walk pays two path lookups per
// fd (getdents and readlinkat, about 2 µs), the iterator pays one program
// run (about 0.5 µs), and the 128,000 fds of a 2,000-process host with
// 100,000 sockets are read in about 60 ms on one core.
//
// The program, about 130 instructions, is built in Go with cilium/ebpf's
// asm package (symbolic jump labels), so there is no compiler or object
// file. What it reads (file->f_inode->i_ino, the task's pid) lives at
// offsets that change between kernels, so they come from the running
// kernel's BTF (/sys/kernel/btf/vmlinux), read here by a small reader of
// the few types needed: cilium's full BTF parser takes about 75 ms, this
// one a few, which is most of the iterator's time to open; as root, the
// result is kept in /run for the next runs (cache.go). The program is
// loaded with a raw bpf(2) call. The BTF reader, the program builder and
// the record decoder are pure and run anywhere; only iter_linux.go and
// cache_linux.go make system calls.
// It needs CAP_BPF and CAP_PERFMON (or root); callers fall back to the /proc
// walk when it is refused.
package taskfd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
)

// BTF kinds, from include/uapi/linux/btf.h.
const (
	kindInt      = 1
	kindPtr      = 2
	kindArray    = 3
	kindStruct   = 4
	kindUnion    = 5
	kindEnum     = 6
	kindFwd      = 7
	kindTypedef  = 8
	kindVolatile = 9
	kindConst    = 10
	kindRestrict = 11
	kindFunc     = 12
	kindFuncProt = 13
	kindVar      = 14
	kindDatasec  = 15
	kindFloat    = 16
	kindDeclTag  = 17
	kindTypeTag  = 18
	kindEnum64   = 19
)

const btfMagic = 0xeb9f

// ErrLayout means the kernel's BTF lacks a type or field the iterator
// program needs, or has it in a shape the program cannot read.
var ErrLayout = errors.New("unexpected kernel type layout")

// Layout is where the fields the iterator program reads live in the running
// kernel, in bytes, and the BTF id of the iterator it attaches to.
type Layout struct {
	// AttachID is the BTF id of the function bpf_iter_task_file.
	AttachID uint32

	// The iterator context, struct bpf_iter__task_file.
	CtxMeta, CtxTask, CtxFD, CtxFile int16
	// MetaSeq is bpf_iter_meta.seq, the seq_file the program writes to.
	MetaSeq int16

	FileInode       int16 // file.f_inode
	InodeMode       int16 // inode.i_mode (2 bytes)
	InodeIno        int16 // inode.i_ino (8 bytes)
	TaskGroupLeader int16 // task_struct.group_leader
	TaskThreadPid   int16 // task_struct.thread_pid
	PidLevel        int16 // pid.level (4 bytes), the depth of its namespace
	PidNumbers      int16 // pid.numbers, an array of struct upid
	UpidSize        int16 // sizeof(struct upid)
	UpidNr          int16 // upid.nr (4 bytes)

	// HasNetNS says the fields below are known: the program then reads
	// each socket's network namespace.
	HasNetNS    bool
	SocketSk    int16 // socket.sk
	SockNet     int16 // sock.__sk_common.skc_net.net
	NetInum     int16 // net.ns.inum (4 bytes)
	SockFamily  int16 // sock.__sk_common.skc_family (2 bytes)
	SockState   int16 // sock.__sk_common.skc_state (1 byte)
	SocketState int16 // socket.state (enum socket_state, 4 bytes)

	// Task is what the task iterator program reads (tasks.go); a kernel
	// whose types differ still gets the task-file iterator.
	Task TaskLayout
}

// TaskLayout is where the fields the task iterator program reads live.
type TaskLayout struct {
	// Has says the fields below are known.
	Has bool
	// AttachID is the BTF id of the function bpf_iter_task.
	AttachID uint32
	// The iterator context, struct bpf_iter__task.
	CtxMeta, CtxTask int16

	Pid, Tgid     int16 // task_struct.pid and .tgid (4 bytes each)
	Flags         int16 // task_struct.flags (4 bytes)
	State         int16 // task_struct.__state (4 bytes)
	ExitState     int16 // task_struct.exit_state (4 bytes)
	Comm          int16 // task_struct.comm (char[16])
	RealParent    int16 // task_struct.real_parent
	Cred          int16 // task_struct.cred
	CredUID       int16 // cred.uid.val (4 bytes)
	StartBoottime int16 // task_struct.start_boottime (8 bytes)
	MM            int16 // task_struct.mm
	ArgStart      int16 // mm_struct.arg_start (8 bytes)
	ArgEnd        int16 // mm_struct.arg_end (8 bytes)
	NSProxy       int16 // task_struct.nsproxy
	NSProxyNet    int16 // nsproxy.net_ns
	NetInum       int16 // net.ns.inum (4 bytes)
	Cgroups       int16 // task_struct.cgroups, the css_set
	ExeFile       int16 // mm_struct.exe_file
	FilePath      int16 // file.f_path (a struct path)
	PathMnt       int16 // path.mnt
	PathDentry    int16 // path.dentry
	Signal        int16 // task_struct.signal
	NrThreads     int16 // signal_struct.nr_threads (4 bytes)

	// HasStats says the fields below are known: the program then reads
	// what /proc/PID/stat gives of CPU time and resident memory.
	HasStats     bool
	ExecRuntime  int16 // task_struct.se.sum_exec_runtime (8 bytes, ns)
	SchedRuntime int16 // signal_struct.sum_sched_runtime (8 bytes, ns): exited threads'
	RSSStat      int16 // mm_struct.rss_stat, an array of struct percpu_counter (Linux 6.2)
	CounterSize  int16 // sizeof(struct percpu_counter)
	CounterCount int16 // percpu_counter.count (8 bytes)
}

// NetNS reports whether the program built for l reads the network
// namespace of sockets.
func (l Layout) NetNS() bool { return l.HasNetNS }

// btf is a decoded BTF blob: the offset of every type's record, by id.
type btf struct {
	order binary.ByteOrder
	types []byte
	strs  []byte
	offs  []uint32 // offs[id] is where type id starts in types; id 0 is void
}

// ParseLayout reads a kernel BTF blob, such as /sys/kernel/btf/vmlinux, and
// returns the layout the iterator program needs.
func ParseLayout(b []byte) (Layout, error) {
	var l Layout
	t, names, err := parseBTF(b)
	if err != nil {
		return l, err
	}
	id, ok := names[nameFuncIter]
	if !ok {
		return l, fmt.Errorf("%w: no function bpf_iter_task_file (kernel older than 5.8?)", ErrLayout)
	}
	l.AttachID = id

	type field struct {
		dst    *int16
		strct  string
		member string
		kind   int    // kind after typedefs and qualifiers
		size   uint32 // for kindInt; 0 means any
	}
	fields := []field{
		{&l.CtxMeta, "bpf_iter__task_file", "meta", kindPtr, 0},
		{&l.CtxTask, "bpf_iter__task_file", "task", kindPtr, 0},
		{&l.CtxFD, "bpf_iter__task_file", "fd", kindInt, 4},
		{&l.CtxFile, "bpf_iter__task_file", "file", kindPtr, 0},
		{&l.MetaSeq, "bpf_iter_meta", "seq", kindPtr, 0},
		{&l.FileInode, "file", "f_inode", kindPtr, 0},
		{&l.InodeMode, "inode", "i_mode", kindInt, 2},
		{&l.InodeIno, "inode", "i_ino", kindInt, 8},
		{&l.TaskGroupLeader, "task_struct", "group_leader", kindPtr, 0},
		{&l.TaskThreadPid, "task_struct", "thread_pid", kindPtr, 0},
		{&l.PidLevel, "pid", "level", kindInt, 4},
		{&l.UpidNr, "upid", "nr", kindInt, 4},
	}
	for _, f := range fields {
		sid, ok := names[f.strct]
		if !ok {
			return l, fmt.Errorf("%w: no struct %s", ErrLayout, f.strct)
		}
		off, tid, err := t.member(sid, f.member)
		if err != nil {
			return l, fmt.Errorf("%w: %s.%s: %v", ErrLayout, f.strct, f.member, err)
		}
		kind, size, err := t.resolve(tid)
		if err != nil {
			return l, fmt.Errorf("%w: %s.%s: %v", ErrLayout, f.strct, f.member, err)
		}
		if kind != f.kind || (f.size != 0 && size != f.size) {
			return l, fmt.Errorf("%w: %s.%s has kind %d size %d", ErrLayout, f.strct, f.member, kind, size)
		}
		if off > 1<<15-1 {
			return l, fmt.Errorf("%w: %s.%s at offset %d", ErrLayout, f.strct, f.member, off)
		}
		*f.dst = int16(off)
	}

	// pid.numbers is struct upid numbers[], the pid as seen from each
	// namespace level.
	pid, ok := names["pid"]
	if !ok {
		return l, fmt.Errorf("%w: no struct pid", ErrLayout)
	}
	off, tid, err := t.member(pid, "numbers")
	if err != nil {
		return l, fmt.Errorf("%w: pid.numbers: %v", ErrLayout, err)
	}
	elem, err := t.arrayElem(tid)
	if err != nil {
		return l, fmt.Errorf("%w: pid.numbers: %v", ErrLayout, err)
	}
	kind, size, err := t.resolve(elem)
	if err != nil || kind != kindStruct || size == 0 || size > 256 || off > 1<<14 {
		return l, fmt.Errorf("%w: pid.numbers is not an array of struct upid", ErrLayout)
	}
	l.PidNumbers = int16(off)
	l.UpidSize = int16(size)
	// The network namespace of sockets is a bonus: a kernel whose types
	// differ still gets the rest.
	l.HasNetNS = netnsLayout(t, names, &l)
	l.Task = taskLayout(t, names)
	return l, nil
}

// path returns the offset of a member reached by steps: pairs of a struct
// name (empty: the type of the previous member) and a member name, whose
// offsets add up. The last member must be of kind want (and size wantSize
// unless 0).
func (t *btf) path(names map[string]uint32, want int, wantSize uint32, steps ...string) (int16, bool) {
	var total uint64
	var tid uint32
	for i := 0; i+1 < len(steps); i += 2 {
		id := tid
		if steps[i] != "" {
			var found bool
			if id, found = names[steps[i]]; !found {
				return 0, false
			}
		}
		off, mt, err := t.member(id, steps[i+1])
		if err != nil {
			return 0, false
		}
		total += off
		tid = mt
		if i+2 < len(steps) {
			k, _, err := t.resolve(tid)
			if err != nil || k != kindStruct {
				return 0, false
			}
			tid = t.skipQualifiers(tid)
		}
	}
	k, size, err := t.resolve(tid)
	if err != nil || k != want || (wantSize != 0 && size != wantSize) || total > 1<<15-1 {
		return 0, false
	}
	return int16(total), true
}

// netnsLayout finds in l socket.sk, sock.__sk_common.skc_net.net,
// net.ns.inum, the family and state of a sock and the state of a socket,
// and reports whether it found them all.
func netnsLayout(t *btf, names map[string]uint32, l *Layout) bool {
	var ok [6]bool
	l.SocketSk, ok[0] = t.path(names, kindPtr, 0, "socket", "sk")
	l.SockNet, ok[1] = t.path(names, kindPtr, 0, "sock", "__sk_common", "", "skc_net", "", "net")
	l.NetInum, ok[2] = t.path(names, kindInt, 4, "net", "ns", "", "inum")
	l.SockFamily, ok[3] = t.path(names, kindInt, 2, "sock", "__sk_common", "", "skc_family")
	l.SockState, ok[4] = t.path(names, kindInt, 1, "sock", "__sk_common", "", "skc_state")
	l.SocketState, ok[5] = t.path(names, kindEnum, 4, "socket", "state")
	return ok == [6]bool{true, true, true, true, true, true}
}

// taskLayout finds what the task iterator program reads; Has is false
// when any of it is missing or of another shape.
func taskLayout(t *btf, names map[string]uint32) TaskLayout {
	var l TaskLayout
	id, ok := names[nameFuncTaskIter]
	if !ok {
		return l
	}
	l.AttachID = id
	fields := []struct {
		dst   *int16
		want  int
		size  uint32
		steps []string
	}{
		{&l.CtxMeta, kindPtr, 0, []string{"bpf_iter__task", "meta"}},
		{&l.CtxTask, kindPtr, 0, []string{"bpf_iter__task", "task"}},
		{&l.Pid, kindInt, 4, []string{"task_struct", "pid"}},
		{&l.Tgid, kindInt, 4, []string{"task_struct", "tgid"}},
		{&l.Flags, kindInt, 4, []string{"task_struct", "flags"}},
		{&l.State, kindInt, 4, []string{"task_struct", "__state"}},
		{&l.ExitState, kindInt, 4, []string{"task_struct", "exit_state"}},
		{&l.RealParent, kindPtr, 0, []string{"task_struct", "real_parent"}},
		{&l.Cred, kindPtr, 0, []string{"task_struct", "cred"}},
		{&l.CredUID, kindInt, 4, []string{"cred", "uid", "", "val"}},
		{&l.StartBoottime, kindInt, 8, []string{"task_struct", "start_boottime"}},
		{&l.MM, kindPtr, 0, []string{"task_struct", "mm"}},
		{&l.ArgStart, kindInt, 8, []string{"mm_struct", "arg_start"}},
		{&l.ArgEnd, kindInt, 8, []string{"mm_struct", "arg_end"}},
		{&l.NSProxy, kindPtr, 0, []string{"task_struct", "nsproxy"}},
		{&l.NSProxyNet, kindPtr, 0, []string{"nsproxy", "net_ns"}},
		{&l.Cgroups, kindPtr, 0, []string{"task_struct", "cgroups"}},
		{&l.ExeFile, kindPtr, 0, []string{"mm_struct", "exe_file"}},
		{&l.PathMnt, kindPtr, 0, []string{"path", "mnt"}},
		{&l.PathDentry, kindPtr, 0, []string{"path", "dentry"}},
		{&l.Signal, kindPtr, 0, []string{"task_struct", "signal"}},
		{&l.NrThreads, kindInt, 4, []string{"signal_struct", "nr_threads"}},
		{&l.NetInum, kindInt, 4, []string{"net", "ns", "", "inum"}},
	}
	for _, f := range fields {
		if *f.dst, ok = t.path(names, f.want, f.size, f.steps...); !ok {
			return TaskLayout{}
		}
	}
	// file.f_path is a struct path, in an anonymous union on recent
	// kernels.
	fid, ok := names["file"]
	if !ok {
		return TaskLayout{}
	}
	foff, ftid, err := t.member(fid, "f_path")
	if k, _, kerr := t.resolve(ftid); err != nil || kerr != nil || k != kindStruct || foff > 1<<15-1 {
		return TaskLayout{}
	}
	l.FilePath = int16(foff)
	// comm is char[16].
	tid, ok := names["task_struct"]
	if !ok {
		return TaskLayout{}
	}
	off, mt, err := t.member(tid, "comm")
	if err != nil || off > 1<<15-1 || !t.isCharArray(mt, commLen) {
		return TaskLayout{}
	}
	l.Comm = int16(off)
	l.Has = true
	statsLayout(t, names, &l)
	return l
}

// statsLayout finds in l what the task program reads of CPU time and
// resident memory, and sets HasStats when it found it all (rss_stat is
// an array of percpu counters from Linux 6.2; an older kernel's /proc is
// read instead).
func statsLayout(t *btf, names map[string]uint32, l *TaskLayout) {
	var ok [4]bool
	l.ExecRuntime, ok[0] = t.path(names, kindInt, 8, "task_struct", "se", "", "sum_exec_runtime")
	l.SchedRuntime, ok[1] = t.path(names, kindInt, 8, "signal_struct", "sum_sched_runtime")
	l.CounterCount, ok[2] = t.path(names, kindInt, 8, "percpu_counter", "count")
	mm, found := names["mm_struct"]
	if !found {
		return
	}
	off, tid, err := t.member(mm, "rss_stat")
	if err != nil || off > 1<<14 {
		return
	}
	elem, err := t.arrayElem(tid)
	if err != nil {
		return
	}
	pc, found := names["percpu_counter"]
	if !found || t.skipQualifiers(elem) != pc {
		return
	}
	kind, size, err := t.resolve(elem)
	if err != nil || kind != kindStruct || size == 0 || size > 256 {
		return
	}
	l.RSSStat, l.CounterSize, ok[3] = int16(off), int16(size), true
	l.HasStats = ok == [4]bool{true, true, true, true}
}

// commLen is the size of task_struct.comm (TASK_COMM_LEN).
const commLen = 16

// isCharArray reports whether type id is an array of n one-byte ints.
func (t *btf) isCharArray(id uint32, n uint32) bool {
	kind, _, _, _, rest, err := t.typ(t.skipQualifiers(id))
	if err != nil || kind != kindArray || len(rest) < 12 {
		return false
	}
	k, size, err := t.resolve(t.order.Uint32(rest))
	return err == nil && k == kindInt && size == 1 && t.order.Uint32(rest[8:]) == n
}

const (
	nameFuncIter     = "func bpf_iter_task_file"
	nameFuncTaskIter = "func bpf_iter_task"
)

// parseBTF checks the header, indexes every type, and returns the ids of
// the named types ParseLayout needs (structs by name, the function as
// nameFuncIter).
func parseBTF(b []byte) (*btf, map[string]uint32, error) {
	if len(b) < 24 {
		return nil, nil, fmt.Errorf("btf: header too short (%d bytes)", len(b))
	}
	var order binary.ByteOrder
	switch {
	case binary.LittleEndian.Uint16(b) == btfMagic:
		order = binary.LittleEndian
	case binary.BigEndian.Uint16(b) == btfMagic:
		order = binary.BigEndian
	default:
		return nil, nil, errors.New("btf: bad magic")
	}
	hdrLen := uint64(order.Uint32(b[4:]))
	typeOff, typeLen := uint64(order.Uint32(b[8:])), uint64(order.Uint32(b[12:]))
	strOff, strLen := uint64(order.Uint32(b[16:])), uint64(order.Uint32(b[20:]))
	n := uint64(len(b))
	if hdrLen < 24 || hdrLen+typeOff+typeLen > n || hdrLen+strOff+strLen > n {
		return nil, nil, errors.New("btf: sections out of bounds")
	}
	t := &btf{
		order: order,
		types: b[hdrLen+typeOff : hdrLen+typeOff+typeLen],
		strs:  b[hdrLen+strOff : hdrLen+strOff+strLen],
		offs:  make([]uint32, 1, typeLen/16+1),
	}
	names := map[string]uint32{}
	for p := 0; p < len(t.types); {
		if len(t.types)-p < 12 {
			return nil, nil, errors.New("btf: truncated type")
		}
		info := order.Uint32(t.types[p+4:])
		kind, vlen := int(info>>24&0x1f), int(info&0xffff)
		var extra int
		switch kind {
		case kindInt, kindVar, kindDeclTag:
			extra = 4
		case kindPtr, kindFwd, kindTypedef, kindVolatile, kindConst, kindRestrict,
			kindFunc, kindFloat, kindTypeTag:
		case kindArray:
			extra = 12
		case kindStruct, kindUnion, kindDatasec, kindEnum64:
			extra = 12 * vlen
		case kindEnum, kindFuncProt:
			extra = 8 * vlen
		default:
			return nil, nil, fmt.Errorf("btf: unknown kind %d at type %d", kind, len(t.offs))
		}
		if len(t.types)-p-12 < extra {
			return nil, nil, errors.New("btf: truncated type")
		}
		id := uint32(len(t.offs))
		t.offs = append(t.offs, uint32(p))
		if kind == kindStruct || kind == kindFunc {
			name := t.name(order.Uint32(t.types[p:]))
			if kind == kindFunc {
				switch string(name) {
				case "bpf_iter_task_file":
					names[nameFuncIter] = id
				case "bpf_iter_task":
					names[nameFuncTaskIter] = id
				}
			} else {
				switch string(name) {
				case "bpf_iter__task_file", "bpf_iter_meta", "file", "inode", "task_struct", "pid", "upid",
					"socket", "sock", "net", "bpf_iter__task", "cred", "mm_struct", "nsproxy", "path", "signal_struct",
					"percpu_counter":
					if _, dup := names[string(name)]; !dup {
						names[string(name)] = id
					}
				}
			}
		}
		p += 12 + extra
	}
	return t, names, nil
}

// name returns the NUL-terminated string at off, or nil.
func (t *btf) name(off uint32) []byte {
	if uint64(off) >= uint64(len(t.strs)) {
		return nil
	}
	s := t.strs[off:]
	if i := bytes.IndexByte(s, 0); i >= 0 {
		return s[:i]
	}
	return nil
}

// typ returns the kind, vlen, kind_flag and size/type word of type id, and
// the bytes that follow its header.
func (t *btf) typ(id uint32) (kind, vlen int, kflag bool, sizeType uint32, rest []byte, err error) {
	if id == 0 || uint64(id) >= uint64(len(t.offs)) {
		return 0, 0, false, 0, nil, fmt.Errorf("type id %d out of range", id)
	}
	p := t.offs[id]
	info := t.order.Uint32(t.types[p+4:])
	return int(info >> 24 & 0x1f), int(info & 0xffff), info>>31 == 1,
		t.order.Uint32(t.types[p+8:]), t.types[p+12:], nil
}

// member finds the named member of struct or union id, looking into
// anonymous structs and unions too, and returns its byte offset and type id.
func (t *btf) member(id uint32, name string) (uint64, uint32, error) {
	return t.memberAt(id, name, 0, map[uint32]int{})
}

// memberAt is member for a struct or union nested depth anonymous levels
// down. searched holds the anonymous types already searched in
// vain, with the shallowest depth they were searched from: one met again as
// deep or deeper holds nothing new. Without it, broken BTF whose anonymous
// types contain themselves, or each other many times over, would take
// exponential time.
func (t *btf) memberAt(id uint32, name string, depth int, searched map[uint32]int) (uint64, uint32, error) {
	if depth > 8 {
		return 0, 0, errors.New("anonymous members nested too deep")
	}
	kind, vlen, kflag, _, rest, err := t.typ(id)
	if err != nil {
		return 0, 0, err
	}
	if kind != kindStruct && kind != kindUnion {
		return 0, 0, fmt.Errorf("type %d is not a struct or union", id)
	}
	searched[id] = depth
	for i := 0; i < vlen; i++ {
		m := rest[12*i:]
		mname, mtype, moff := t.order.Uint32(m), t.order.Uint32(m[4:]), t.order.Uint32(m[8:])
		bitOff := moff
		if kflag {
			if moff>>24 != 0 {
				if mname != 0 && string(t.name(mname)) == name {
					return 0, 0, errors.New("is a bitfield")
				}
				continue
			}
			bitOff = moff & 0xffffff
		}
		if mname == 0 {
			k, _, err := t.resolve(mtype)
			if err != nil || (k != kindStruct && k != kindUnion) {
				continue
			}
			anon := t.skipQualifiers(mtype)
			if d, ok := searched[anon]; ok && d <= depth+1 {
				continue
			}
			inner, tid, err := t.memberAt(anon, name, depth+1, searched)
			if err == nil {
				if bitOff%8 != 0 {
					return 0, 0, errors.New("not byte-aligned")
				}
				return uint64(bitOff/8) + inner, tid, nil
			}
			continue
		}
		if string(t.name(mname)) != name {
			continue
		}
		if bitOff%8 != 0 {
			return 0, 0, errors.New("not byte-aligned")
		}
		return uint64(bitOff / 8), mtype, nil
	}
	return 0, 0, errors.New("no such member")
}

// skipQualifiers follows typedefs, const, volatile, restrict and type tags.
func (t *btf) skipQualifiers(id uint32) uint32 {
	for range 32 {
		kind, _, _, next, _, err := t.typ(id)
		if err != nil {
			return id
		}
		switch kind {
		case kindTypedef, kindVolatile, kindConst, kindRestrict, kindTypeTag:
			id = next
		default:
			return id
		}
	}
	return id
}

// resolve returns the kind and byte size of type id after qualifiers. The
// size of a pointer is reported as 0.
func (t *btf) resolve(id uint32) (int, uint32, error) {
	kind, _, _, size, rest, err := t.typ(t.skipQualifiers(id))
	if err != nil {
		return 0, 0, err
	}
	switch kind {
	case kindInt:
		// In a struct without kind_flag, a bitfield's width is in its int
		// type: fewer bits than the size, or an offset within it.
		if enc := t.order.Uint32(rest); enc&0xff != size*8 || enc>>16&0xff != 0 {
			return 0, 0, errors.New("is a bitfield")
		}
		return kind, size, nil
	case kindStruct, kindUnion, kindEnum, kindEnum64, kindFloat:
		return kind, size, nil
	}
	return kind, 0, nil
}

// arrayElem returns the element type of array id.
func (t *btf) arrayElem(id uint32) (uint32, error) {
	kind, _, _, _, rest, err := t.typ(t.skipQualifiers(id))
	if err != nil {
		return 0, err
	}
	if kind != kindArray {
		return 0, errors.New("not an array")
	}
	return t.order.Uint32(rest), nil
}

package taskfd

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"
)

// A small BTF encoder, to build the blobs ParseLayout is tested on. Types
// are described first and encoded at the end, in either byte order, so a
// test can change a described type before encoding. A type reference (a
// member's, a pointer's target...) is either a type id (uint32) or the name
// of a type added under that name (string), which allows references to
// types added later.

type btfMember struct {
	name    string
	typ     any    // uint32 id or string name
	bitOff  uint32 // offset in bits
	bitSize uint32 // bitfield size; nonzero makes the owner use kind_flag
}

type btfParam struct {
	name string
	typ  any
}

type btfEnumVal struct {
	name string
	val  int32
}

type btfType struct {
	name  string
	kind  int
	kflag bool   // set by the encoder for structs with bitfields
	size  uint32 // INT, STRUCT, UNION, ENUM
	ref   any    // PTR, TYPEDEF, CONST, VOLATILE, FUNC, FUNC_PROTO's return

	intEnc uint32 // INT: the encoding word; 0 means bits = 8*size, unsigned

	arrElem, arrIndex any // ARRAY
	arrLen            uint32

	members []btfMember  // STRUCT, UNION
	params  []btfParam   // FUNC_PROTO
	enums   []btfEnumVal // ENUM
	linkage int          // FUNC: BTF_FUNC_STATIC 0, GLOBAL 1

	raw []byte // if set, the whole record, encoded as is (for broken types)
}

type btfBuilder struct {
	types []*btfType // types[i] has id i+1

	// Header fields, overridable by tests.
	hdrLen uint32 // 24 if zero
}

func (b *btfBuilder) add(t *btfType) uint32 {
	b.types = append(b.types, t)
	return uint32(len(b.types))
}

func (b *btfBuilder) Int(name string, size uint32, signed bool) uint32 {
	enc := size * 8
	if signed {
		enc |= 1 << 24
	}
	return b.add(&btfType{name: name, kind: kindInt, size: size, intEnc: enc})
}

func (b *btfBuilder) Ptr(to any) uint32 { return b.add(&btfType{kind: kindPtr, ref: to}) }

func (b *btfBuilder) Typedef(name string, to any) uint32 {
	return b.add(&btfType{name: name, kind: kindTypedef, ref: to})
}

func (b *btfBuilder) Const(to any) uint32 { return b.add(&btfType{kind: kindConst, ref: to}) }

func (b *btfBuilder) Volatile(to any) uint32 { return b.add(&btfType{kind: kindVolatile, ref: to}) }

func (b *btfBuilder) Array(elem, index any, n uint32) uint32 {
	return b.add(&btfType{kind: kindArray, arrElem: elem, arrIndex: index, arrLen: n})
}

func (b *btfBuilder) Struct(name string, size uint32, ms ...btfMember) uint32 {
	return b.add(&btfType{name: name, kind: kindStruct, size: size, members: ms})
}

func (b *btfBuilder) Union(name string, size uint32, ms ...btfMember) uint32 {
	return b.add(&btfType{name: name, kind: kindUnion, size: size, members: ms})
}

func (b *btfBuilder) FuncProto(ret any, ps ...btfParam) uint32 {
	return b.add(&btfType{kind: kindFuncProt, ref: ret, params: ps})
}

func (b *btfBuilder) Func(name string, proto any) uint32 {
	return b.add(&btfType{name: name, kind: kindFunc, ref: proto, linkage: 1})
}

func (b *btfBuilder) Enum(name string, size uint32, vs ...btfEnumVal) uint32 {
	return b.add(&btfType{name: name, kind: kindEnum, size: size, enums: vs})
}

// Raw adds a record encoded as is: a type the encoder cannot describe.
func (b *btfBuilder) Raw(rec []byte) uint32 { return b.add(&btfType{raw: rec}) }

// byName returns the first type called name.
func (b *btfBuilder) byName(name string) (*btfType, uint32) {
	for i, t := range b.types {
		if t.name == name && t.raw == nil {
			return t, uint32(i + 1)
		}
	}
	panic("btf builder: no type " + name)
}

// member returns member name of struct or union owner (a name or id),
// looking into anonymous members.
func (b *btfBuilder) member(owner any, name string) *btfMember {
	var t *btfType
	switch o := owner.(type) {
	case string:
		t, _ = b.byName(o)
	case uint32:
		t = b.types[o-1]
	}
	for i := range t.members {
		m := &t.members[i]
		if m.name == name {
			return m
		}
		if m.name == "" {
			if id, ok := m.typ.(uint32); ok && b.types[id-1].members != nil {
				if found := b.member(id, name); found != nil {
					return found
				}
			}
		}
	}
	return nil
}

// mustMember is member, failing the test when there is no such member.
func (b *btfBuilder) mustMember(t testing.TB, owner any, name string) *btfMember {
	t.Helper()
	m := b.member(owner, name)
	if m == nil {
		t.Fatalf("btf builder: no member %v.%s", owner, name)
	}
	return m
}

// pin replaces references by name with type ids, so that types can be
// renamed afterwards without breaking the references to them.
func (b *btfBuilder) pin() {
	pin := func(r *any) {
		if name, ok := (*r).(string); ok {
			_, *r = b.byName(name)
		}
	}
	for _, t := range b.types {
		pin(&t.ref)
		pin(&t.arrElem)
		pin(&t.arrIndex)
		for i := range t.members {
			pin(&t.members[i].typ)
		}
		for i := range t.params {
			pin(&t.params[i].typ)
		}
	}
}

// encode returns the BTF blob in byte order o.
func (b *btfBuilder) encode(o binary.AppendByteOrder) []byte {
	strs := []byte{0}
	strOff := map[string]uint32{"": 0}
	str := func(s string) uint32 {
		if off, ok := strOff[s]; ok {
			return off
		}
		off := uint32(len(strs))
		strs = append(append(strs, s...), 0)
		strOff[s] = off
		return off
	}
	ref := func(r any) uint32 {
		switch r := r.(type) {
		case nil:
			return 0
		case uint32:
			return r
		case string:
			_, id := b.byName(r)
			return id
		}
		panic(fmt.Sprintf("btf builder: bad type reference %T", r))
	}
	var types []byte
	u32 := func(v uint32) { types = o.AppendUint32(types, v) }
	for _, t := range b.types {
		if t.raw != nil {
			types = append(types, t.raw...)
			continue
		}
		var vlen int
		kflag := t.kflag
		sizeType := t.size
		switch t.kind {
		case kindStruct, kindUnion:
			vlen = len(t.members)
			for _, m := range t.members {
				kflag = kflag || m.bitSize != 0
			}
		case kindEnum:
			vlen = len(t.enums)
		case kindFuncProt:
			vlen = len(t.params)
			sizeType = ref(t.ref)
		case kindFunc:
			vlen = t.linkage
			sizeType = ref(t.ref)
		case kindPtr, kindTypedef, kindConst, kindVolatile:
			sizeType = ref(t.ref)
		}
		info := uint32(vlen) | uint32(t.kind)<<24
		if kflag {
			info |= 1 << 31
		}
		u32(str(t.name))
		u32(info)
		u32(sizeType)
		switch t.kind {
		case kindInt:
			u32(t.intEnc)
		case kindArray:
			u32(ref(t.arrElem))
			u32(ref(t.arrIndex))
			u32(t.arrLen)
		case kindStruct, kindUnion:
			for _, m := range t.members {
				u32(str(m.name))
				u32(ref(m.typ))
				if kflag {
					u32(m.bitSize<<24 | m.bitOff)
				} else {
					u32(m.bitOff)
				}
			}
		case kindEnum:
			for _, e := range t.enums {
				u32(str(e.name))
				u32(uint32(e.val))
			}
		case kindFuncProt:
			for _, p := range t.params {
				u32(str(p.name))
				u32(ref(p.typ))
			}
		}
	}
	hdrLen := b.hdrLen
	if hdrLen == 0 {
		hdrLen = 24
	}
	out := o.AppendUint16(nil, btfMagic)
	out = append(out, 1, 0) // version, flags
	out = o.AppendUint32(out, hdrLen)
	out = o.AppendUint32(out, 0)                  // type_off
	out = o.AppendUint32(out, uint32(len(types))) // type_len
	out = o.AppendUint32(out, uint32(len(types))) // str_off
	out = o.AppendUint32(out, uint32(len(strs)))  // str_len
	for len(out) < int(hdrLen) {
		out = append(out, 0)
	}
	out = append(out, types...)
	return append(out, strs...)
}

// le is encode in little-endian order.
func (b *btfBuilder) le() []byte { return b.encode(binary.LittleEndian) }

// Where the kernel-like blob puts things, in bytes.
const (
	kGroupLeaderAnon = 1000 // task_struct: anonymous struct holding group_leader
	kGroupLeaderIn   = 8    // its anonymous union, inside that struct
	kThreadPid       = 1208 // task_struct.thread_pid
	kFileInode       = 32   // file.f_inode
	kInodeMode       = 0    // inode.i_mode
	kInodeIno        = 64   // inode.i_ino
	kPidNumbers      = 96   // pid.numbers
)

// kernelLike builds a blob shaped like a real kernel's BTF: the iterator
// context wraps its pointers in anonymous unions (the kernel's __bpf_md_ptr,
// which pads each to 64 bits with an unnamed bitfield), task_struct reaches
// group_leader through an anonymous struct and union, pointers hide behind
// typedefs and qualifiers, and pid.numbers is a flexible array of struct
// upid.
func kernelLike() *btfBuilder {
	b := &btfBuilder{}
	intT := b.Int("int", 4, true)
	uint := b.Int("unsigned int", 4, false)
	ushort := b.Int("unsigned short", 2, false)
	ulong := b.Int("long unsigned int", 8, false)
	u64 := b.Typedef("u64", ulong)
	u32 := b.Typedef("u32", uint)
	umode := b.Typedef("umode_t", ushort)
	b.Enum("pid_type", 4, btfEnumVal{"PIDTYPE_PID", 0}, btfEnumVal{"PIDTYPE_TGID", 1}, btfEnumVal{"PIDTYPE_MAX", 4})

	// __bpf_md_ptr(type, name): union { type name; __u64 :64; }
	mdPtr := func(name string, to any) uint32 {
		return b.Union("", 8,
			btfMember{name: name, typ: b.Ptr(to)},
			btfMember{typ: u64, bitSize: 64})
	}
	b.Struct("seq_file", 120)
	metaSeq := mdPtr("seq", "seq_file")
	b.Struct("bpf_iter_meta", 24,
		btfMember{typ: metaSeq},
		btfMember{name: "session_id", typ: u64, bitOff: 64},
		btfMember{name: "seq_num", typ: u64, bitOff: 128})
	ctxMeta := mdPtr("meta", "bpf_iter_meta")
	ctxTask := mdPtr("task", "task_struct")
	ctxFile := mdPtr("file", "file")
	b.Struct("bpf_iter__task_file", 32,
		btfMember{typ: ctxMeta},
		btfMember{typ: ctxTask, bitOff: 64},
		btfMember{name: "fd", typ: u32, bitOff: 128},
		btfMember{typ: ctxFile, bitOff: 192})

	inodeP := b.Typedef("inode_p", b.Ptr("inode"))
	b.Struct("file", 256,
		btfMember{name: "f_count", typ: ulong},
		btfMember{name: "f_mode", typ: uint, bitOff: 64},
		btfMember{name: "f_inode", typ: b.Const(inodeP), bitOff: 8 * kFileInode})
	b.Struct("inode", 600,
		btfMember{name: "i_mode", typ: umode, bitOff: 8 * kInodeMode},
		btfMember{name: "i_opflags", typ: ushort, bitOff: 16},
		btfMember{name: "i_flags", typ: uint, bitOff: 32, bitSize: 3},
		btfMember{name: "i_ino", typ: b.Volatile(ulong), bitOff: 8 * kInodeIno})

	taskPtr := b.Ptr("task_struct")
	leaderUnion := b.Union("", 8,
		btfMember{name: "group_leader", typ: b.Const(taskPtr)},
		btfMember{name: "real_parent", typ: taskPtr})
	leaderStruct := b.Struct("", 16,
		btfMember{name: "exit_state", typ: intT},
		btfMember{typ: leaderUnion, bitOff: 8 * kGroupLeaderIn})
	b.Struct("task_struct", 4096,
		btfMember{name: "state", typ: b.Volatile(uint)},
		btfMember{name: "pid", typ: intT, bitOff: 32},
		btfMember{typ: leaderStruct, bitOff: 8 * kGroupLeaderAnon},
		btfMember{name: "thread_pid", typ: b.Ptr("pid"), bitOff: 8 * kThreadPid},
		btfMember{name: "pid_links", typ: "pid_type", bitOff: 8 * 1216})

	b.Struct("pid_namespace", 136)
	b.Struct("upid", 16,
		btfMember{name: "nr", typ: intT},
		btfMember{name: "ns", typ: b.Ptr("pid_namespace"), bitOff: 64})
	b.Struct("pid", 112,
		btfMember{name: "count", typ: intT},
		btfMember{name: "level", typ: uint, bitOff: 32},
		btfMember{name: "numbers", typ: b.Array("upid", intT, 0), bitOff: 8 * kPidNumbers})

	proto := b.FuncProto(intT,
		btfParam{"meta", b.Ptr("bpf_iter_meta")},
		btfParam{"task", taskPtr},
		btfParam{"fd", u32},
		btfParam{"file", b.Ptr("file")})
	b.Func("bpf_iter_task", proto) // a near miss
	b.Func("bpf_iter_task_file", proto)
	b.pin()
	return b
}

// kernelLikeLayout is what ParseLayout must find in kernelLike().
func kernelLikeLayout(b *btfBuilder) Layout {
	_, fn := b.byName("bpf_iter_task_file")
	return Layout{
		AttachID:        fn,
		CtxMeta:         0,
		CtxTask:         8,
		CtxFD:           16,
		CtxFile:         24,
		MetaSeq:         0,
		FileInode:       kFileInode,
		InodeMode:       kInodeMode,
		InodeIno:        kInodeIno,
		TaskGroupLeader: kGroupLeaderAnon + kGroupLeaderIn,
		TaskThreadPid:   kThreadPid,
		PidLevel:        4,
		PidNumbers:      kPidNumbers,
		UpidSize:        16,
		UpidNr:          0,
	}
}

// parseWithin runs ParseLayout and fails the test if it takes more than a
// few seconds, so that a loop in the parser fails rather than hangs.
func parseWithin(t *testing.T, blob []byte) (Layout, error) {
	t.Helper()
	type result struct {
		l   Layout
		err error
	}
	done := make(chan result, 1)
	go func() {
		l, err := ParseLayout(blob)
		done <- result{l, err}
	}()
	select {
	case r := <-done:
		return r.l, r.err
	case <-time.After(10 * time.Second):
		t.Fatalf("ParseLayout did not return within 10s")
		return Layout{}, nil
	}
}

func TestParseLayoutValid(t *testing.T) {
	tests := []struct {
		name   string
		mod    func(t *testing.T, b *btfBuilder)
		expect func(l *Layout)
	}{
		{name: "kernel-like"},
		{
			// The iterator context's seq is not the first member, and the
			// anonymous union sits inside another anonymous struct.
			name: "nested offsets",
			mod: func(t *testing.T, b *btfBuilder) {
				meta, _ := b.byName("bpf_iter_meta")
				seqUnion := meta.members[0].typ
				inner := b.Struct("", 16,
					btfMember{name: "pad", typ: "u64"},
					btfMember{typ: seqUnion, bitOff: 64})
				meta.members[0] = btfMember{typ: inner, bitOff: 64}
				meta.members[1].bitOff = 0
			},
			expect: func(l *Layout) { l.MetaSeq = 16 },
		},
		{
			name: "upid is 32 bytes with nr at 8",
			mod: func(t *testing.T, b *btfBuilder) {
				upid, _ := b.byName("upid")
				upid.size = 32
				upid.members[0].bitOff = 64
				upid.members[1].bitOff = 128
			},
			expect: func(l *Layout) { l.UpidSize, l.UpidNr = 32, 8 },
		},
		{
			name: "numbers behind a typedef and const",
			mod: func(t *testing.T, b *btfBuilder) {
				m := b.mustMember(t, "pid", "numbers")
				m.typ = b.Const(b.Typedef("upids", m.typ))
			},
		},
		{
			name: "duplicate struct name: the first wins",
			mod: func(t *testing.T, b *btfBuilder) {
				b.Struct("inode", 8, btfMember{name: "i_mode", typ: "unsigned int"})
			},
		},
		{
			name: "offset limits",
			mod: func(t *testing.T, b *btfBuilder) {
				b.mustMember(t, "inode", "i_ino").bitOff = 8 * (1<<15 - 8)
				b.mustMember(t, "pid", "numbers").bitOff = 8 * (1 << 14)
			},
			expect: func(l *Layout) { l.InodeIno, l.PidNumbers = 1<<15-8, 1<<14 },
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := kernelLike()
			if tc.mod != nil {
				tc.mod(t, b)
			}
			want := kernelLikeLayout(b)
			if tc.expect != nil {
				tc.expect(&want)
			}
			got, err := parseWithin(t, b.le())
			if err != nil {
				t.Fatalf("ParseLayout: %v", err)
			}
			if got != want {
				t.Errorf("ParseLayout:\n got %+v\nwant %+v", got, want)
			}
		})
	}
}

func TestParseLayoutBigEndian(t *testing.T) {
	b := kernelLike()
	le, err := ParseLayout(b.encode(binary.LittleEndian))
	if err != nil {
		t.Fatal(err)
	}
	be, err := ParseLayout(b.encode(binary.BigEndian))
	if err != nil {
		t.Fatal(err)
	}
	if le != be || le != kernelLikeLayout(b) {
		t.Errorf("little-endian %+v\n   big-endian %+v\n         want %+v", le, be, kernelLikeLayout(b))
	}
}

// rawType encodes one type record by hand.
func rawType(o binary.AppendByteOrder, name uint32, kind, vlen int, kflag bool, sizeType uint32, extra ...uint32) []byte {
	info := uint32(vlen) | uint32(kind)<<24
	if kflag {
		info |= 1 << 31
	}
	b := o.AppendUint32(nil, name)
	b = o.AppendUint32(b, info)
	b = o.AppendUint32(b, sizeType)
	for _, e := range extra {
		b = o.AppendUint32(b, e)
	}
	return b
}

func TestParseLayoutErrors(t *testing.T) {
	le := binary.LittleEndian
	// hdr writes a header word into an encoded blob.
	hdr := func(blob []byte, off int, v uint32) []byte {
		le.PutUint32(blob[off:], v)
		return blob
	}
	typeLen := func(blob []byte) uint32 { return le.Uint32(blob[12:]) }

	tests := []struct {
		name   string
		mod    func(t *testing.T, b *btfBuilder) // changes the description
		blob   func(blob []byte) []byte          // then the bytes
		layout bool                              // the error must be ErrLayout
		msg    string                            // and contain this
	}{
		{
			name: "missing FUNC",
			mod: func(t *testing.T, b *btfBuilder) {
				t0, _ := b.byName("bpf_iter_task_file")
				t0.name = "bpf_iter_task_vma"
			},
			layout: true, msg: "no function bpf_iter_task_file",
		},
		{
			name: "FUNC name is a struct",
			mod: func(t *testing.T, b *btfBuilder) {
				t0, _ := b.byName("bpf_iter_task_file")
				t0.name = "x"
				b.Struct("bpf_iter_task_file", 0)
			},
			layout: true, msg: "no function bpf_iter_task_file",
		},
		{
			name:   "missing struct",
			mod:    func(t *testing.T, b *btfBuilder) { t0, _ := b.byName("upid"); t0.name = "upid_" },
			layout: true, msg: "no struct upid",
		},
		{
			name:   "missing struct pid",
			mod:    func(t *testing.T, b *btfBuilder) { t0, _ := b.byName("pid"); t0.name = "pid_" },
			layout: true, msg: "no struct pid",
		},
		{
			name:   "struct is a union",
			mod:    func(t *testing.T, b *btfBuilder) { t0, _ := b.byName("inode"); t0.kind = kindUnion },
			layout: true, msg: "no struct inode",
		},
		{
			name:   "missing member",
			mod:    func(t *testing.T, b *btfBuilder) { b.mustMember(t, "inode", "i_ino").name = "i_ino_" },
			layout: true, msg: "inode.i_ino: no such member",
		},
		{
			name:   "missing member in anonymous union",
			mod:    func(t *testing.T, b *btfBuilder) { b.mustMember(t, "task_struct", "group_leader").name = "leader" },
			layout: true, msg: "task_struct.group_leader: no such member",
		},
		{
			name:   "missing pid.level",
			mod:    func(t *testing.T, b *btfBuilder) { b.mustMember(t, "pid", "level").name = "depth" },
			layout: true, msg: "pid.level: no such member",
		},
		{
			name:   "missing pid.numbers",
			mod:    func(t *testing.T, b *btfBuilder) { b.mustMember(t, "pid", "numbers").name = "nums" },
			layout: true, msg: "pid.numbers: no such member",
		},
		{
			name:   "member is a bitfield",
			mod:    func(t *testing.T, b *btfBuilder) { b.mustMember(t, "inode", "i_mode").bitSize = 16 },
			layout: true, msg: "inode.i_mode: is a bitfield",
		},
		{
			name:   "member is a bitfield in an anonymous union",
			mod:    func(t *testing.T, b *btfBuilder) { b.mustMember(t, "bpf_iter__task_file", "task").bitSize = 64 },
			layout: true, msg: "bpf_iter__task_file.task",
		},
		{
			// Without kind_flag, a bitfield's size is in its int type.
			name: "member is a bitfield without kind_flag",
			mod: func(t *testing.T, b *btfBuilder) {
				b.mustMember(t, "bpf_iter__task_file", "fd").typ = b.add(&btfType{
					name: "unsigned int", kind: kindInt, size: 4, intEnc: 12})
			},
			layout: true, msg: "bpf_iter__task_file.fd",
		},
		{
			name:   "member not byte-aligned",
			mod:    func(t *testing.T, b *btfBuilder) { b.mustMember(t, "file", "f_inode").bitOff = 8*kFileInode + 4 },
			layout: true, msg: "file.f_inode: not byte-aligned",
		},
		{
			name: "anonymous member not byte-aligned",
			mod: func(t *testing.T, b *btfBuilder) {
				t0, _ := b.byName("task_struct")
				t0.members[2].bitOff++
			},
			layout: true, msg: "task_struct.group_leader: not byte-aligned",
		},
		{
			name: "wrong size: i_mode 4 bytes",
			mod: func(t *testing.T, b *btfBuilder) {
				t0, _ := b.byName("umode_t")
				t0.ref = "unsigned int"
			},
			layout: true, msg: "inode.i_mode has kind 1 size 4",
		},
		{
			name:   "wrong size: i_ino 4 bytes",
			mod:    func(t *testing.T, b *btfBuilder) { b.mustMember(t, "inode", "i_ino").typ = "unsigned int" },
			layout: true, msg: "inode.i_ino has kind 1 size 4",
		},
		{
			name:   "wrong kind: f_inode not a pointer",
			mod:    func(t *testing.T, b *btfBuilder) { b.mustMember(t, "file", "f_inode").typ = "long unsigned int" },
			layout: true, msg: "file.f_inode has kind 1",
		},
		{
			name:   "wrong kind: fd is an enum",
			mod:    func(t *testing.T, b *btfBuilder) { b.mustMember(t, "bpf_iter__task_file", "fd").typ = "pid_type" },
			layout: true, msg: "bpf_iter__task_file.fd has kind 6",
		},
		{
			name:   "pid.numbers not an array",
			mod:    func(t *testing.T, b *btfBuilder) { b.mustMember(t, "pid", "numbers").typ = "upid" },
			layout: true, msg: "pid.numbers: not an array",
		},
		{
			name:   "pid.numbers an array of int",
			mod:    func(t *testing.T, b *btfBuilder) { b.mustMember(t, "pid", "numbers").typ = b.Array("int", "int", 1) },
			layout: true, msg: "pid.numbers is not an array of struct upid",
		},
		{
			name:   "pid.numbers too far",
			mod:    func(t *testing.T, b *btfBuilder) { b.mustMember(t, "pid", "numbers").bitOff = 8 * (1<<14 + 8) },
			layout: true, msg: "pid.numbers is not an array of struct upid",
		},
		{
			name:   "upid too big",
			mod:    func(t *testing.T, b *btfBuilder) { t0, _ := b.byName("upid"); t0.size = 257 },
			layout: true, msg: "pid.numbers is not an array of struct upid",
		},
		{
			name:   "member offset over int16",
			mod:    func(t *testing.T, b *btfBuilder) { b.mustMember(t, "inode", "i_ino").bitOff = 8 * (1 << 15) },
			layout: true, msg: "inode.i_ino at offset 32768",
		},
		{
			// Nine levels of anonymous structs whose offsets add up to
			// 2^32 + 8 bytes: the sum must not wrap around to 8.
			name: "anonymous offsets add up past 4 GiB",
			mod: func(t *testing.T, b *btfBuilder) {
				const far = 0xfffffff8 // bits: 0x1fffffff bytes
				inner := b.Struct("", 24, btfMember{name: "f_inode", typ: "inode_p", bitOff: 8 * 16})
				for range 7 {
					inner = b.Struct("", 24, btfMember{typ: inner, bitOff: far})
				}
				file, _ := b.byName("file")
				file.members = []btfMember{{typ: inner, bitOff: far}}
			},
			layout: true, msg: "file.f_inode at offset 4294967304",
		},
		{
			name:   "truncated header",
			blob:   func(blob []byte) []byte { return blob[:23] },
			layout: false, msg: "header too short",
		},
		{
			name:   "empty",
			blob:   func([]byte) []byte { return nil },
			layout: false, msg: "header too short",
		},
		{
			name:   "bad magic",
			blob:   func(blob []byte) []byte { blob[0], blob[1] = 0x9f, 0x9f; return blob },
			layout: false, msg: "bad magic",
		},
		{
			name:   "header length below 24",
			blob:   func(blob []byte) []byte { return hdr(blob, 4, 20) },
			layout: false, msg: "out of bounds",
		},
		{
			name:   "type section out of bounds",
			blob:   func(blob []byte) []byte { return hdr(blob, 12, typeLen(blob)+uint32(len(blob))) },
			layout: false, msg: "out of bounds",
		},
		{
			name:   "string section out of bounds",
			blob:   func(blob []byte) []byte { return hdr(blob, 16, uint32(len(blob))) },
			layout: false, msg: "out of bounds",
		},
		{
			name:   "sections past 4 GiB",
			blob:   func(blob []byte) []byte { return hdr(hdr(blob, 8, 0xffffffff), 12, 0xffffffff) },
			layout: false, msg: "out of bounds",
		},
		{
			name:   "file cut short",
			blob:   func(blob []byte) []byte { return blob[:len(blob)-1] },
			layout: false, msg: "out of bounds",
		},
		{
			name:   "truncated type",
			blob:   func(blob []byte) []byte { return hdr(blob, 12, typeLen(blob)-4) },
			layout: false, msg: "truncated type",
		},
		{
			name:   "truncated type header",
			mod:    func(t *testing.T, b *btfBuilder) { b.Raw(make([]byte, 8)) },
			layout: false, msg: "truncated type",
		},
		{
			name: "truncated struct members",
			mod: func(t *testing.T, b *btfBuilder) {
				b.Raw(rawType(le, 0, kindStruct, 3, false, 8, 0, 1, 0))
			},
			layout: false, msg: "truncated type",
		},
		{
			name:   "unknown kind",
			mod:    func(t *testing.T, b *btfBuilder) { b.Raw(rawType(le, 0, 25, 0, false, 0)) },
			layout: false, msg: "unknown kind 25",
		},
		{
			name:   "type id out of range in a member reference",
			mod:    func(t *testing.T, b *btfBuilder) { b.mustMember(t, "file", "f_inode").typ = uint32(9999) },
			layout: true, msg: "type id 9999 out of range",
		},
		{
			name:   "void member",
			mod:    func(t *testing.T, b *btfBuilder) { b.mustMember(t, "file", "f_inode").typ = uint32(0) },
			layout: true, msg: "type id 0 out of range",
		},
		{
			name: "array element out of range",
			mod: func(t *testing.T, b *btfBuilder) {
				b.mustMember(t, "pid", "numbers").typ = b.Array(uint32(9999), "int", 0)
			},
			layout: true, msg: "pid.numbers",
		},
		{
			name: "typedef loop",
			mod: func(t *testing.T, b *btfBuilder) {
				t0, _ := b.byName("umode_t")
				t0.ref = "umode_t"
			},
			layout: true, msg: "inode.i_mode has kind 8",
		},
		{
			name: "typedef loop through const and volatile",
			mod: func(t *testing.T, b *btfBuilder) {
				t0, _ := b.byName("inode_p")
				t0.ref = b.Volatile(b.Const("inode_p"))
			},
			layout: true, msg: "file.f_inode has kind",
		},
		{
			name: "typedef loop as an anonymous member",
			mod: func(t *testing.T, b *btfBuilder) {
				loop := b.Typedef("loop", "loop")
				task, _ := b.byName("task_struct")
				task.members = append([]btfMember{{typ: loop}}, task.members...)
				b.mustMember(t, "task_struct", "group_leader").name = "leader"
			},
			layout: true, msg: "task_struct.group_leader: no such member",
		},
		{
			name: "typedef loop as pid.numbers",
			mod: func(t *testing.T, b *btfBuilder) {
				b.mustMember(t, "pid", "numbers").typ = b.Typedef("loop", "loop")
			},
			layout: true, msg: "pid.numbers: not an array",
		},
		{
			name: "anonymous struct contains itself",
			mod: func(t *testing.T, b *btfBuilder) {
				// Invalid C, but the parser must not go round forever:
				// every anonymous member is the struct itself.
				task, id := b.byName("task_struct")
				task.members = nil
				for range 200 {
					task.members = append(task.members, btfMember{typ: id})
				}
			},
			layout: true, msg: "task_struct.group_leader",
		},
		{
			name: "anonymous structs nested too deep",
			mod: func(t *testing.T, b *btfBuilder) {
				inner := b.Struct("", 8, btfMember{name: "f_inode", typ: "inode_p"})
				for range 9 {
					inner = b.Struct("", 8, btfMember{typ: inner})
				}
				file, _ := b.byName("file")
				file.members = []btfMember{{typ: inner}}
			},
			layout: true, msg: "file.f_inode",
		},
		{
			// Each anonymous level offers the next one many times over;
			// searching every path would take 40^8 steps.
			name: "anonymous structs shared many times",
			mod: func(t *testing.T, b *btfBuilder) {
				inner := b.Struct("", 8, btfMember{name: "x", typ: "int"})
				for range 8 {
					var ms []btfMember
					for range 40 {
						ms = append(ms, btfMember{typ: inner})
					}
					inner = b.Struct("", 8, ms...)
				}
				file, _ := b.byName("file")
				file.members = []btfMember{{typ: inner}}
			},
			layout: true, msg: "file.f_inode: no such member",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := kernelLike()
			if tc.mod != nil {
				tc.mod(t, b)
			}
			blob := b.le()
			if tc.blob != nil {
				blob = tc.blob(blob)
			}
			l, err := parseWithin(t, blob)
			if err == nil {
				t.Fatalf("ParseLayout succeeded: %+v", l)
			}
			if got := errors.Is(err, ErrLayout); got != tc.layout {
				t.Errorf("errors.Is(%q, ErrLayout) = %v, want %v", err, got, tc.layout)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not contain %q", err, tc.msg)
			}
			if l != (Layout{}) && !tc.layout {
				t.Errorf("a malformed blob gave a partial layout %+v", l)
			}
		})
	}
}

// The header's length may exceed 24 bytes (newer fields), and the sections
// may come in any order.
func TestParseLayoutHeaderVariants(t *testing.T) {
	b := kernelLike()
	want := kernelLikeLayout(b)

	b.hdrLen = 32
	long := b.le()
	if l, err := ParseLayout(long); err != nil || l != want {
		t.Errorf("32-byte header: %+v, %v", l, err)
	}

	// Strings first, then types.
	b.hdrLen = 0
	blob := b.le()
	le := binary.LittleEndian
	typeLen, strLen := le.Uint32(blob[12:]), le.Uint32(blob[20:])
	types, strs := blob[24:24+typeLen], blob[24+typeLen:]
	swapped := append(append(append([]byte{}, blob[:24]...), strs...), types...)
	le.PutUint32(swapped[8:], strLen) // type_off
	le.PutUint32(swapped[16:], 0)     // str_off
	if l, err := ParseLayout(swapped); err != nil || l != want {
		t.Errorf("strings before types: %+v, %v", l, err)
	}
}

package taskfd

import (
	"os"
	"reflect"
	"testing"

	cbtf "github.com/cilium/ebpf/btf"
)

// TestParseLayoutKernel checks ParseLayout on the running kernel's BTF
// against an independent reader of BTF, cilium/ebpf's.
func TestParseLayoutKernel(t *testing.T) {
	raw, err := os.ReadFile(VmlinuxBTF)
	if err != nil {
		t.Skipf("no kernel BTF: %v", err)
	}
	got, err := ParseLayout(raw)
	if err != nil {
		t.Fatalf("ParseLayout(%s): %v", VmlinuxBTF, err)
	}
	spec, err := cbtf.LoadSpec(VmlinuxBTF)
	if err != nil {
		t.Fatalf("cilium/ebpf: loading %s: %v", VmlinuxBTF, err)
	}

	// findStruct returns the struct called name with the lowest id, as the
	// kernel's BTF may hold more than one type of a name.
	findStruct := func(name string) *cbtf.Struct {
		t.Helper()
		types, err := spec.AnyTypesByName(name)
		if err != nil {
			t.Fatalf("cilium/ebpf: %s: %v", name, err)
		}
		var best *cbtf.Struct
		var bestID cbtf.TypeID
		for _, typ := range types {
			s, ok := typ.(*cbtf.Struct)
			if !ok {
				continue
			}
			id, err := spec.TypeID(s)
			if err != nil {
				t.Fatal(err)
			}
			if best == nil || id < bestID {
				best, bestID = s, id
			}
		}
		if best == nil {
			t.Fatalf("cilium/ebpf: no struct %s", name)
		}
		return best
	}
	// find looks for member name in ms and in anonymous structs and
	// unions among them, and returns its offset in bits and its type.
	var find func(ms []cbtf.Member, name string) (cbtf.Bits, cbtf.Type, bool)
	find = func(ms []cbtf.Member, name string) (cbtf.Bits, cbtf.Type, bool) {
		for _, m := range ms {
			if m.Name == name {
				if m.BitfieldSize != 0 {
					t.Fatalf("cilium/ebpf: %s is a bitfield", name)
				}
				return m.Offset, m.Type, true
			}
			if m.Name != "" {
				continue
			}
			var inner []cbtf.Member
			switch a := cbtf.UnderlyingType(m.Type).(type) {
			case *cbtf.Struct:
				inner = a.Members
			case *cbtf.Union:
				inner = a.Members
			}
			if off, typ, ok := find(inner, name); ok {
				return m.Offset + off, typ, true
			}
		}
		return 0, nil, false
	}
	// member returns the byte offset of strct.name and checks its type.
	member := func(strct, name string, check func(cbtf.Type) bool) int16 {
		t.Helper()
		off, typ, ok := find(findStruct(strct).Members, name)
		if !ok {
			t.Fatalf("cilium/ebpf: no member %s.%s", strct, name)
		}
		if off%8 != 0 {
			t.Fatalf("cilium/ebpf: %s.%s at bit %d", strct, name, off)
		}
		if !check(cbtf.UnderlyingType(typ)) {
			t.Errorf("cilium/ebpf: %s.%s has type %v", strct, name, typ)
		}
		return int16(off / 8)
	}
	ptr := func(typ cbtf.Type) bool { _, ok := typ.(*cbtf.Pointer); return ok }
	intOf := func(size uint32) func(cbtf.Type) bool {
		return func(typ cbtf.Type) bool {
			i, ok := typ.(*cbtf.Int)
			return ok && i.Size == size
		}
	}

	var want Layout
	fn, err := spec.AnyTypeByName("bpf_iter_task_file")
	if err != nil {
		t.Fatalf("cilium/ebpf: bpf_iter_task_file: %v", err)
	}
	if _, ok := fn.(*cbtf.Func); !ok {
		t.Fatalf("cilium/ebpf: bpf_iter_task_file is a %T", fn)
	}
	id, err := spec.TypeID(fn)
	if err != nil {
		t.Fatal(err)
	}
	want.AttachID = uint32(id)
	want.CtxMeta = member("bpf_iter__task_file", "meta", ptr)
	want.CtxTask = member("bpf_iter__task_file", "task", ptr)
	want.CtxFD = member("bpf_iter__task_file", "fd", intOf(4))
	want.CtxFile = member("bpf_iter__task_file", "file", ptr)
	want.MetaSeq = member("bpf_iter_meta", "seq", ptr)
	want.FileInode = member("file", "f_inode", ptr)
	want.InodeMode = member("inode", "i_mode", intOf(2))
	want.InodeIno = member("inode", "i_ino", intOf(8))
	want.TaskGroupLeader = member("task_struct", "group_leader", ptr)
	want.TaskThreadPid = member("task_struct", "thread_pid", ptr)
	want.PidLevel = member("pid", "level", intOf(4))
	var upid *cbtf.Struct
	want.PidNumbers = member("pid", "numbers", func(typ cbtf.Type) bool {
		a, ok := typ.(*cbtf.Array)
		if !ok {
			return false
		}
		upid, ok = cbtf.UnderlyingType(a.Type).(*cbtf.Struct)
		return ok && upid.Name == "upid"
	})
	if upid == nil {
		t.FailNow()
	}
	want.UpidSize = int16(upid.Size)
	want.UpidNr = member("upid", "nr", intOf(4))
	isStruct := func(typ cbtf.Type) bool { _, ok := typ.(*cbtf.Struct); return ok }
	want.HasNetNS = true
	want.SocketSk = member("socket", "sk", ptr)
	// possible_net_t is a struct whose one member, net, is at offset 0.
	want.SockNet = member("sock", "__sk_common", isStruct) + member("sock_common", "skc_net", isStruct)
	want.NetInum = member("net", "ns", isStruct) + member("ns_common", "inum", intOf(4))

	// Every field of Layout is compared: a field added later must be
	// added here too.
	if n := reflect.TypeFor[Layout]().NumField(); n != 19 {
		t.Fatalf("Layout has %d fields; this test knows 19", n)
	}
	if got != want {
		t.Errorf("ParseLayout:\n got %+v\nwant %+v", got, want)
	}
	t.Logf("kernel layout: %+v", got)
}

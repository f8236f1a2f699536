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
	// arrayOf checks an array of struct name, and gives the struct's size.
	arrayOf := func(name string, size *int16) func(cbtf.Type) bool {
		return func(typ cbtf.Type) bool {
			a, ok := typ.(*cbtf.Array)
			if !ok {
				return false
			}
			s, ok := cbtf.UnderlyingType(a.Type).(*cbtf.Struct)
			if ok && s.Name == name {
				*size = int16(s.Size)
			}
			return ok && s.Name == name
		}
	}
	want.PidNumbers = member("pid", "numbers", arrayOf("upid", &want.UpidSize))
	want.UpidNr = member("upid", "nr", intOf(4))
	isStruct := func(typ cbtf.Type) bool { _, ok := typ.(*cbtf.Struct); return ok }
	want.HasNetNS = true
	want.SocketSk = member("socket", "sk", ptr)
	// possible_net_t is a struct whose one member, net, is at offset 0.
	want.SockNet = member("sock", "__sk_common", isStruct) + member("sock_common", "skc_net", isStruct)
	want.NetInum = member("net", "ns", isStruct) + member("ns_common", "inum", intOf(4))
	want.SockFamily = member("sock", "__sk_common", isStruct) + member("sock_common", "skc_family", intOf(2))
	want.SocketState = member("socket", "state", func(typ cbtf.Type) bool {
		e, ok := typ.(*cbtf.Enum)
		return ok && e.Size == 4
	})
	// skc_state is volatile.
	want.SockState = member("sock", "__sk_common", isStruct) + member("sock_common", "skc_state", func(typ cbtf.Type) bool {
		return intOf(1)(cbtf.UnderlyingType(typ))
	})

	// The task iterator's.
	var tfn *cbtf.Func // a struct of that name is the open-coded iterator
	tfns, err := spec.AnyTypesByName("bpf_iter_task")
	if err != nil {
		t.Fatalf("cilium/ebpf: bpf_iter_task: %v", err)
	}
	for _, typ := range tfns {
		if f, ok := typ.(*cbtf.Func); ok {
			tfn = f
		}
	}
	if tfn == nil {
		t.Fatal("cilium/ebpf: no function bpf_iter_task")
	}
	tid, err := spec.TypeID(tfn)
	if err != nil {
		t.Fatal(err)
	}
	tl := &want.Task
	tl.Has, tl.AttachID = true, uint32(tid)
	tl.CtxMeta = member("bpf_iter__task", "meta", ptr)
	tl.CtxTask = member("bpf_iter__task", "task", ptr)
	tl.Pid = member("task_struct", "pid", intOf(4))
	tl.Tgid = member("task_struct", "tgid", intOf(4))
	tl.Flags = member("task_struct", "flags", intOf(4))
	tl.State = member("task_struct", "__state", intOf(4))
	tl.ExitState = member("task_struct", "exit_state", intOf(4))
	tl.Comm = member("task_struct", "comm", func(typ cbtf.Type) bool {
		a, ok := typ.(*cbtf.Array)
		return ok && a.Nelems == 16
	})
	tl.RealParent = member("task_struct", "real_parent", ptr)
	tl.Cred = member("task_struct", "cred", ptr)
	// kuid_t is a struct whose one member, val, is at offset 0.
	tl.CredUID = member("cred", "uid", func(typ cbtf.Type) bool {
		s, ok := typ.(*cbtf.Struct)
		return ok && len(s.Members) == 1 && s.Members[0].Name == "val" && s.Members[0].Offset == 0
	})
	tl.StartBoottime = member("task_struct", "start_boottime", intOf(8))
	tl.MM = member("task_struct", "mm", ptr)
	tl.ArgStart = member("mm_struct", "arg_start", intOf(8))
	tl.ArgEnd = member("mm_struct", "arg_end", intOf(8))
	tl.NSProxy = member("task_struct", "nsproxy", ptr)
	tl.NSProxyNet = member("nsproxy", "net_ns", ptr)
	tl.NetInum = want.NetInum
	tl.Cgroups = member("task_struct", "cgroups", ptr)
	tl.ExeFile = member("mm_struct", "exe_file", ptr)
	tl.FilePath = member("file", "f_path", isStruct)
	tl.PathMnt = member("path", "mnt", ptr)
	tl.PathDentry = member("path", "dentry", ptr)
	tl.Signal = member("task_struct", "signal", ptr)
	tl.NrThreads = member("signal_struct", "nr_threads", intOf(4))
	tl.HasStats = true
	tl.ExecRuntime = member("task_struct", "se", isStruct) + member("sched_entity", "sum_exec_runtime", intOf(8))
	tl.SchedRuntime = member("signal_struct", "sum_sched_runtime", intOf(8))
	tl.CounterCount = member("percpu_counter", "count", intOf(8))
	tl.RSSStat = member("mm_struct", "rss_stat", arrayOf("percpu_counter", &tl.CounterSize))

	// Every field of Layout is compared: a field added later must be
	// added here too.
	if n := reflect.TypeFor[Layout]().NumField(); n != 23 {
		t.Fatalf("Layout has %d fields; this test knows 23", n)
	}
	if n := reflect.TypeFor[TaskLayout]().NumField(); n != 33 {
		t.Fatalf("TaskLayout has %d fields; this test knows 33", n)
	}
	if got != want {
		t.Errorf("ParseLayout:\n got %+v\nwant %+v", got, want)
	}
	t.Logf("kernel layout: %+v", got)
}

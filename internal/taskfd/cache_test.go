package taskfd

import (
	"bytes"
	"encoding/binary"
	"testing"
)

func testKey() cacheKey {
	k := cacheKey{BTFSize: 5_600_123, BTFMtime: 1_764_580_000_123_456_789}
	copy(k.BootID[:], "7875ec5a-0f0c-4da0-98e3-59fb12345678")
	return k
}

func cacheLayout() Layout {
	return Layout{AttachID: 53211, CtxMeta: 0, CtxTask: 8, CtxFD: 16, CtxFile: 24, MetaSeq: 0,
		FileInode: 32, InodeMode: 0, InodeIno: 64, TaskGroupLeader: 1480, TaskThreadPid: 1512,
		PidLevel: 4, PidNumbers: 96, UpidSize: 16, UpidNr: 0, HasNetNS: true, SocketSk: 24, SockNet: 48, NetInum: 232,
		SockFamily: 16, SockState: 18, SocketState: 0,
		Task: TaskLayout{Has: true, AttachID: 53209, CtxMeta: 0, CtxTask: 8, Pid: 1432, Tgid: 1436, Flags: 44,
			State: 24, ExitState: 1388, Comm: 2032, RealParent: 1448, Cred: 2016, CredUID: 8,
			StartBoottime: 1712, MM: 1136, ArgStart: 488, ArgEnd: 496, NSProxy: 2112, NSProxyNet: 48, NetInum: 232,
			Cgroups: 2408, ExeFile: 1320, FilePath: 64, PathMnt: 0, PathDentry: 8, Signal: 2120, NrThreads: 20,
			HasStats: true, ExecRuntime: 232, SchedRuntime: 672, RSSStat: 968, CounterSize: 40, CounterCount: 8}}
}

func TestLayoutCacheRoundTrip(t *testing.T) {
	for _, l := range []Layout{cacheLayout(), func() Layout {
		l := cacheLayout()
		l.HasNetNS, l.SocketSk, l.SockNet, l.NetInum, l.SockFamily, l.SockState, l.SocketState = false, 0, 0, 0, 0, 0, 0
		return l
	}()} {
		b := encodeCache(testKey(), l)
		if len(b) != cacheSize {
			t.Fatalf("record of %d bytes, want %d", len(b), cacheSize)
		}
		got, err := decodeCache(b, testKey())
		if err != nil || got != l {
			t.Fatalf("decode: %+v, %v; want %+v", got, err, l)
		}
	}
}

// A record is used only for the kernel it was written for, whole, and
// with offsets ParseLayout could have given.
func TestLayoutCacheRejects(t *testing.T) {
	good := encodeCache(testKey(), cacheLayout())
	otherBoot, otherSize, otherTime := testKey(), testKey(), testKey()
	otherBoot.BootID[0] = 'x'
	otherSize.BTFSize++
	otherTime.BTFMtime++
	for name, k := range map[string]cacheKey{"another boot": otherBoot, "another BTF size": otherSize, "another BTF time": otherTime} {
		if _, err := decodeCache(good, k); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	bad := func(name string, edit func(l *Layout)) {
		l := cacheLayout()
		edit(&l)
		if _, err := decodeCache(encodeCache(testKey(), l), testKey()); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	bad("negative offset", func(l *Layout) { l.InodeIno = -8 })
	bad("no attach id", func(l *Layout) { l.AttachID = 0 })
	bad("zero upid size", func(l *Layout) { l.UpidSize = 0 })
	bad("huge upid size", func(l *Layout) { l.UpidSize = 4096 })
	bad("negative task offset", func(l *Layout) { l.Task.ArgEnd = -8 })
	bad("task without attach id", func(l *Layout) { l.Task.AttachID = 0 })
	bad("task offsets without Has", func(l *Layout) { l.Task.Has = false })
	for name, b := range map[string][]byte{
		"empty":       nil,
		"truncated":   good[:len(good)-1],
		"longer":      append(bytes.Clone(good), 0),
		"bad magic":   append([]byte("porteiro taskfX\x00"), good[16:]...),
		"bad version": func() []byte { b := bytes.Clone(good); b[16]++; return b }(),
		"bool not 0 or 1": func() []byte {
			b := bytes.Clone(good)
			b[hasNetNSAt()] = 2
			return b
		}(),
		"task bool not 0 or 1": func() []byte {
			b := bytes.Clone(good)
			b[cacheSize-binary.Size(TaskLayout{})] = 2 // Task.Has, its first byte
			return b
		}(),
	} {
		if _, err := decodeCache(b, testKey()); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// hasNetNSAt is where Layout.HasNetNS is in a record: before the last
// six int16s of Layout and its TaskLayout.
func hasNetNSAt() int { return cacheSize - binary.Size(TaskLayout{}) - 13 }

// FuzzDecodeCache: any bytes are refused or give a layout whose record is
// those very bytes.
func FuzzDecodeCache(f *testing.F) {
	f.Add(encodeCache(testKey(), cacheLayout()))
	f.Add([]byte("porteiro taskfd\x00"))
	f.Fuzz(func(t *testing.T, b []byte) {
		l, err := decodeCache(b, testKey())
		if err != nil {
			return
		}
		if again := encodeCache(testKey(), l); !bytes.Equal(again, b) {
			t.Fatalf("accepted %x, which encodes back as %x", b, again)
		}
	})
}

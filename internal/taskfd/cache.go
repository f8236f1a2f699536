package taskfd

import (
	"bytes"
	"encoding/binary"
	"errors"
)

// The layout cache. Reading the kernel's BTF (5 MB, mapped and walked)
// is most of the time the iterator takes to open: about 8 ms of a
// 140 ms "porteiro list", on every run, for a result that changes only
// with the kernel. So the layout is kept in a small file (cachePath), keyed
// by what identifies the running kernel's BTF: the boot (a kernel is only
// replaced by a reboot) and the size and time of /sys/kernel/btf/vmlinux.
//
// The file is trusted only if it is root's, a regular file, and writable
// by nobody else; it is written only by root, in /run (a tmpfs that root
// alone writes and a reboot empties). Even so, a layout read from it is
// checked by the iterator's first pass, as a parsed one is: the probe
// socket must come back under porteiro's pid, or the iterator is dropped
// and the file removed (Iterator.check).

// cacheMagic starts the file; cacheVersion changes with Layout.
const (
	cacheMagic   = "porteiro taskfd\x00"
	cacheVersion = 7
)

// cacheKey identifies the running kernel's BTF.
type cacheKey struct {
	BootID   [36]byte // /proc/sys/kernel/random/boot_id, without its newline
	BTFSize  int64
	BTFMtime int64 // nanoseconds
}

// cacheRecord is the file: fixed size, native byte order (the file never
// leaves the machine). Layout's fields are all of fixed size.
type cacheRecord struct {
	Magic   [16]byte
	Version uint32
	Key     cacheKey
	Layout  Layout
}

// cacheSize is the size of the file.
var cacheSize = binary.Size(cacheRecord{})

func encodeCache(k cacheKey, l Layout) []byte {
	r := cacheRecord{Version: cacheVersion, Key: k, Layout: l}
	copy(r.Magic[:], cacheMagic)
	var b bytes.Buffer
	binary.Write(&b, binary.NativeEndian, &r) // a fixed-size struct: cannot fail
	return b.Bytes()
}

var errCacheMiss = errors.New("no usable layout cache")

// decodeCache returns the layout in b if b is a cache record for key k
// whose offsets are ones ParseLayout could have given.
func decodeCache(b []byte, k cacheKey) (Layout, error) {
	var r cacheRecord
	if len(b) != cacheSize || binary.Read(bytes.NewReader(b), binary.NativeEndian, &r) != nil {
		return Layout{}, errCacheMiss
	}
	if string(r.Magic[:]) != cacheMagic || r.Version != cacheVersion || r.Key != k {
		return Layout{}, errCacheMiss
	}
	l := r.Layout
	for _, o := range []int16{l.CtxMeta, l.CtxTask, l.CtxFD, l.CtxFile, l.MetaSeq, l.FileInode, l.InodeMode,
		l.InodeIno, l.TaskGroupLeader, l.TaskThreadPid, l.PidLevel, l.PidNumbers, l.UpidNr, l.SocketSk,
		l.SockNet, l.NetInum, l.SockFamily, l.SockState, l.SocketState} {
		if o < 0 {
			return Layout{}, errCacheMiss
		}
	}
	if tl := l.Task; tl.Has {
		for _, o := range []int16{tl.CtxMeta, tl.CtxTask, tl.Pid, tl.Tgid, tl.Flags, tl.State, tl.ExitState,
			tl.Comm, tl.RealParent, tl.Cred, tl.CredUID, tl.StartBoottime, tl.MM, tl.ArgStart, tl.ArgEnd,
			tl.NSProxy, tl.NSProxyNet, tl.NetInum, tl.Cgroups, tl.ExeFile, tl.FilePath, tl.PathMnt, tl.PathDentry, tl.Signal, tl.NrThreads} {
			if o < 0 {
				return Layout{}, errCacheMiss
			}
		}
		if tl.AttachID == 0 {
			return Layout{}, errCacheMiss
		}
		if tl.HasStats && (tl.ExecRuntime < 0 || tl.SchedRuntime < 0 || tl.RSSStat < 0 || tl.CounterSize <= 0 || tl.CounterCount < 0) {
			return Layout{}, errCacheMiss
		}
	} else if tl != (TaskLayout{}) {
		return Layout{}, errCacheMiss
	}
	if l.AttachID == 0 || l.UpidSize <= 0 || l.UpidSize > 256 || l.PidNumbers > 1<<14 {
		return Layout{}, errCacheMiss
	}
	// Only the bytes encodeCache writes: binary.Read takes any non-zero
	// byte as true, which would write back as 1.
	if !bytes.Equal(encodeCache(k, l), b) {
		return Layout{}, errCacheMiss
	}
	return l, nil
}

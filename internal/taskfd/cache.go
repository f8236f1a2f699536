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
	cacheVersion = 1
)

// cacheKey identifies the running kernel's BTF.
type cacheKey struct {
	BootID   [36]byte // /proc/sys/kernel/random/boot_id, without its newline
	BTFSize  int64
	BTFMtime int64 // nanoseconds
}

// cacheRecord is the file: fixed size, native byte order (the file never
// leaves the machine).
type cacheRecord struct {
	Magic   [16]byte
	Version uint32
	Key     cacheKey

	AttachID                                  uint32
	CtxMeta, CtxTask, CtxFD, CtxFile, MetaSeq int16
	FileInode, InodeMode, InodeIno            int16
	TaskGroupLeader, TaskThreadPid            int16
	PidLevel, PidNumbers, UpidSize, UpidNr    int16
	HasNetNS                                  uint8
	SocketSk, SockNet, NetInum                int16
}

// cacheSize is the size of the file.
var cacheSize = binary.Size(cacheRecord{})

func encodeCache(k cacheKey, l Layout) []byte {
	r := cacheRecord{Version: cacheVersion, Key: k, AttachID: l.AttachID,
		CtxMeta: l.CtxMeta, CtxTask: l.CtxTask, CtxFD: l.CtxFD, CtxFile: l.CtxFile, MetaSeq: l.MetaSeq,
		FileInode: l.FileInode, InodeMode: l.InodeMode, InodeIno: l.InodeIno,
		TaskGroupLeader: l.TaskGroupLeader, TaskThreadPid: l.TaskThreadPid,
		PidLevel: l.PidLevel, PidNumbers: l.PidNumbers, UpidSize: l.UpidSize, UpidNr: l.UpidNr,
		SocketSk: l.SocketSk, SockNet: l.SockNet, NetInum: l.NetInum}
	copy(r.Magic[:], cacheMagic)
	if l.HasNetNS {
		r.HasNetNS = 1
	}
	var b bytes.Buffer
	binary.Write(&b, hostOrder(), &r) // a fixed-size struct: cannot fail
	return b.Bytes()
}

var errCacheMiss = errors.New("no usable layout cache")

// decodeCache returns the layout in b if b is a cache record for key k
// whose offsets are ones ParseLayout could have given.
func decodeCache(b []byte, k cacheKey) (Layout, error) {
	var l Layout
	if len(b) != cacheSize {
		return l, errCacheMiss
	}
	var r cacheRecord
	if err := binary.Read(bytes.NewReader(b), hostOrder(), &r); err != nil {
		return l, errCacheMiss
	}
	if string(r.Magic[:]) != cacheMagic || r.Version != cacheVersion || r.Key != k {
		return l, errCacheMiss
	}
	offs := []int16{r.CtxMeta, r.CtxTask, r.CtxFD, r.CtxFile, r.MetaSeq, r.FileInode, r.InodeMode, r.InodeIno,
		r.TaskGroupLeader, r.TaskThreadPid, r.PidLevel, r.PidNumbers, r.UpidNr, r.SocketSk, r.SockNet, r.NetInum}
	for _, o := range offs {
		if o < 0 {
			return l, errCacheMiss
		}
	}
	if r.AttachID == 0 || r.UpidSize <= 0 || r.UpidSize > 256 || r.PidNumbers > 1<<14 || r.HasNetNS > 1 {
		return l, errCacheMiss
	}
	l = Layout{AttachID: r.AttachID,
		CtxMeta: r.CtxMeta, CtxTask: r.CtxTask, CtxFD: r.CtxFD, CtxFile: r.CtxFile, MetaSeq: r.MetaSeq,
		FileInode: r.FileInode, InodeMode: r.InodeMode, InodeIno: r.InodeIno,
		TaskGroupLeader: r.TaskGroupLeader, TaskThreadPid: r.TaskThreadPid,
		PidLevel: r.PidLevel, PidNumbers: r.PidNumbers, UpidSize: r.UpidSize, UpidNr: r.UpidNr,
		HasNetNS: r.HasNetNS == 1, SocketSk: r.SocketSk, SockNet: r.SockNet, NetInum: r.NetInum}
	return l, nil
}

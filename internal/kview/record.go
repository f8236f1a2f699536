// Package kview is the kernel's own view of sockets and processes, read with
// BPF iterators (iter/tcp, iter/udp, iter/task, iter/task_file) for
// `porteiro audit`. These walk the kernel's tables with their own code, not
// through /proc/net/* or getdents(/proc), so a rootkit that filters those
// does not filter this view.
//
// Records are decoded here without build tags, so the decoder is tested and
// fuzzed on any OS; loading the programs is Linux only (iter_linux.go).
package kview

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
)

// RecordSize is the size of struct record in bpf/kview.c.
const RecordSize = 96

// Kind says which iterator wrote a record.
type Kind uint8

// The kinds, as in bpf/kview.c.
const (
	KindTCP  Kind = 1 // a socket from iter/tcp
	KindUDP  Kind = 2 // a socket from iter/udp
	KindTask Kind = 3 // a process from iter/task
	KindFile Kind = 4 // an inet socket held by a process, from iter/task_file
)

// ErrBadRecord is wrapped by Parse errors.
var ErrBadRecord = errors.New("decoding kernel view record")

// Record is one decoded record. Socket fields are zero in task records and
// task fields are zero in socket records (except KindFile, which has both).
type Record struct {
	Kind     Kind
	Inode    uint64
	CgroupID uint64
	NetNS    uint32
	TGID     uint32
	UID      uint32
	FD       uint32
	Proto    uint8 // 6 TCP, 17 UDP
	Family   uint8 // 2 AF_INET, 10 AF_INET6
	State    uint8 // the kernel's TCP state (UDP: 7 unconnected, 1 connected)
	V6Only   bool
	Local    netip.AddrPort
	Remote   netip.AddrPort
	Comm     string
}

// Parse decodes one record. The kernel writes native byte order; the
// addresses are network order bytes.
func Parse(b []byte) (Record, error) {
	if len(b) < RecordSize {
		return Record{}, fmt.Errorf("%w: %d bytes, want %d", ErrBadRecord, len(b), RecordSize)
	}
	ne := binary.NativeEndian
	r := Record{
		Inode:    ne.Uint64(b[0:]),
		CgroupID: ne.Uint64(b[8:]),
		NetNS:    ne.Uint32(b[16:]),
		TGID:     ne.Uint32(b[20:]),
		UID:      ne.Uint32(b[24:]),
		FD:       ne.Uint32(b[28:]),
		Kind:     Kind(b[32]),
		Proto:    b[33],
		Family:   b[34],
		State:    b[35],
		V6Only:   b[40]&0x01 != 0,
	}
	if r.Kind < KindTCP || r.Kind > KindFile {
		return Record{}, fmt.Errorf("%w: unknown kind %d", ErrBadRecord, r.Kind)
	}
	lport, rport := ne.Uint16(b[36:]), ne.Uint16(b[38:])
	switch r.Family {
	case 2:
		r.Local = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[48:52])), lport)
		r.Remote = netip.AddrPortFrom(netip.AddrFrom4([4]byte(b[64:68])), rport)
	case 10:
		r.Local = netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[48:64])), lport)
		r.Remote = netip.AddrPortFrom(netip.AddrFrom16([16]byte(b[64:80])), rport)
	case 0:
		if r.Kind != KindTask {
			return Record{}, fmt.Errorf("%w: socket record without a family", ErrBadRecord)
		}
	default:
		return Record{}, fmt.Errorf("%w: unknown family %d", ErrBadRecord, r.Family)
	}
	comm := b[80:96]
	for i, c := range comm {
		if c == 0 {
			comm = comm[:i]
			break
		}
	}
	r.Comm = string(comm)
	return r, nil
}

// ParseAll decodes a whole iterator output.
func ParseAll(b []byte, fn func(Record)) error {
	if len(b)%RecordSize != 0 {
		return fmt.Errorf("%w: %d bytes is not a whole number of records", ErrBadRecord, len(b))
	}
	for ; len(b) > 0; b = b[RecordSize:] {
		r, err := Parse(b[:RecordSize])
		if err != nil {
			return err
		}
		fn(r)
	}
	return nil
}

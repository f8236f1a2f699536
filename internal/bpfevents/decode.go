package bpfevents

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/porteiro/porteiro/inventory"
)

// ErrBadRecord is wrapped by every error of Decode: a record that does not
// come from this package's program, which is a bug, not a kernel refusal.
var ErrBadRecord = errors.New("decoding event")

// RecordSize is the size of struct event in bpf/events.c.
const RecordSize = 88

// Record flags, as set in bpf/events.c.
const (
	flagV6Only       = 0x01
	flagReusePort    = 0x02
	flagPIDOutsideNS = 0x04
)

// Offsets of the fields of struct event in bpf/events.c. Every field is in
// the host's byte order, the port included (the kernel's skc_num is), and
// the address is in network order, as in the kernel.
const (
	offTS      = 0
	offCookie  = 8
	offCgroup  = 16
	offInode   = 24
	offNetNS   = 32
	offTGID    = 36
	offPID     = 40
	offUID     = 44
	offKind    = 48
	offProto   = 49
	offFamily  = 50
	offFlags   = 51
	offPort    = 52
	offAddr    = 56
	offComm    = 72
	commLength = 16
)

// Decode parses one ring buffer record. It checks the length and every
// enumerated field, so a record from a mismatched program is an error, not
// a wrong event. Time is left zero: only the reader knows the boot clock.
func Decode(b []byte) (Event, error) {
	var ev Event
	if len(b) < RecordSize {
		return ev, fmt.Errorf("%w: %d bytes, want %d", ErrBadRecord, len(b), RecordSize)
	}
	ne := binary.NativeEndian
	ev.BootNS = ne.Uint64(b[offTS:])
	ev.Cookie = ne.Uint64(b[offCookie:])
	ev.CgroupID = ne.Uint64(b[offCgroup:])
	ev.Inode = ne.Uint64(b[offInode:])
	ev.NetNS = uint64(ne.Uint32(b[offNetNS:]))
	ev.PID = int(ne.Uint32(b[offTGID:]))
	ev.TID = int(ne.Uint32(b[offPID:]))
	ev.UID = ne.Uint32(b[offUID:])
	switch k := Kind(b[offKind]); k {
	case Opened, Closed:
		ev.Kind = k
	default:
		return ev, fmt.Errorf("%w: unknown kind %d", ErrBadRecord, b[offKind])
	}
	switch p := b[offProto]; p {
	case 6:
		ev.Proto = inventory.TCP
	case 17:
		ev.Proto = inventory.UDP
	default:
		return ev, fmt.Errorf("%w: unknown protocol %d", ErrBadRecord, p)
	}
	flags := b[offFlags]
	switch f := b[offFamily]; f {
	case 2: // AF_INET
		ev.Family = inventory.IPv4
		ev.Addr = netip.AddrFrom4([4]byte(b[offAddr : offAddr+4]))
	case 10: // AF_INET6
		ev.Family = inventory.IPv6
		ev.Addr = netip.AddrFrom16([16]byte(b[offAddr : offAddr+16]))
		ev.DualStack = ev.Addr.IsUnspecified() && flags&flagV6Only == 0
	default:
		return ev, fmt.Errorf("%w: unknown address family %d", ErrBadRecord, f)
	}
	ev.Port = ne.Uint16(b[offPort:])
	ev.ReusePort = flags&flagReusePort != 0
	if flags&flagPIDOutsideNS != 0 {
		ev.PIDOutsideNS = true
		ev.PID, ev.TID = 0, 0
	}
	comm := b[offComm : offComm+commLength]
	for i, c := range comm {
		if c == 0 {
			comm = comm[:i]
			break
		}
	}
	ev.Comm = string(comm)
	return ev, nil
}

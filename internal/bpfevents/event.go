// Package bpfevents hears every TCP listen and UDP bind on the host from the
// kernel as it happens, and every close of one, through small BPF programs:
// the tp_btf/inet_sock_set_state tracepoint and a sockops program for TCP, and
// cgroup post_bind4, post_bind6 and sock_release hooks for UDP, all attached
// at the cgroup2 root so that every container is seen. Each event
// carries its owner (pid, uid, comm, cgroup) taken in the kernel at the event,
// since a short-lived process is gone before userspace could look.
//
// The programs are written in C (bpf/*.c) and compiled by bpf2go into the
// committed listener_bpf*.o and .go files, so building porteiro needs no
// clang. Decoding a record (decode.go) is pure Go and runs anywhere.
//
// A TCP listen is reported when it is done, by a sockops program at the
// cgroup2 root (BPF_SOCK_OPS_TCP_LISTEN_CB), so a listen() without bind()
// carries the port the kernel picked, and a listen() that fails reports
// nothing.
//
// The same tracepoint sums, per local end (namespace, address, port), the
// bytes of every TCP connection that closes (Source.Closed), so that a
// sampler of live connections can count those that lived between two of
// its samples.
//
// Not seen: UDP autobind (sendto without bind), and the release of UDP
// sockets bound before Open (the close of a TCP listener opened before Open
// is seen). A caller that needs the whole truth reconciles with a periodic
// scan, and scans at once when Drops grows.
package bpfevents

import (
	"errors"
	"net/netip"
	"time"

	"github.com/porteiro/porteiro/internal/localapi"
	"github.com/porteiro/porteiro/inventory"
)

// ErrNotSupported means this process or kernel cannot run the programs: a
// capability is missing, the kernel lacks BTF or a program type, no cgroup2
// is mounted, or bpf(2) is refused. The wrapping error says which. Callers
// fall back to polling.
var ErrNotSupported = errors.New("listener events from the kernel are not available")

// Kind says whether a listener appeared or went away.
type Kind uint8

// Event kinds.
const (
	Opened Kind = 1 // TCP entered LISTEN, or a UDP socket was bound
	Closed Kind = 2 // TCP left LISTEN for CLOSE, or a bound UDP socket was released
)

func (k Kind) String() string {
	switch k {
	case Opened:
		return "opened"
	case Closed:
		return "closed"
	}
	return "unknown"
}

// MarshalText makes Kind a JSON string.
func (k Kind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// Event is one listener opened or closed.
type Event struct {
	Kind   Kind             `json:"kind"`
	Time   time.Time        `json:"time"`
	Proto  inventory.Proto  `json:"proto"`
	Family inventory.Family `json:"family"`
	// Addr is the local address; the unspecified address for a wildcard bind.
	Addr netip.Addr `json:"address"`
	// Port is the local port.
	Port uint16 `json:"port"`
	// DualStack is true for an IPv6 wildcard socket that accepts IPv4 too.
	DualStack bool `json:"dual_stack"`
	// ReusePort is true when SO_REUSEPORT was set at the event.
	ReusePort bool `json:"reuse_port"`
	// NetNS is the inode of the socket's network namespace.
	NetNS uint64 `json:"netns"`
	// Cookie is the kernel's socket cookie, unique per boot: a Closed event
	// has the Cookie of the Opened event of the same socket.
	Cookie uint64 `json:"cookie"`
	// Inode is the socket's inode, as in inventory.Socket; 0 when the socket
	// had no file at the event.
	Inode uint64 `json:"inode"`
	// PID is the process (thread group) that caused the event, and TID the
	// thread, as seen in the reader's PID namespace. For Closed it is
	// whoever closed the socket, which may not be the owner. Both are 0
	// when PIDOutsideNS.
	PID int `json:"pid"`
	TID int `json:"tid"`
	// PIDOutsideNS is true when the task is not visible in the reader's PID
	// namespace (it runs in a sibling or parent namespace).
	PIDOutsideNS bool `json:"pid_outside_ns,omitempty"`
	// UID is the task's real uid.
	UID uint32 `json:"uid"`
	// Comm is the task's name (at most 15 bytes); hostile bytes stay as
	// they are, escape before printing.
	Comm string `json:"comm"`
	// CgroupID is the task's cgroup v2 id (the inode of its directory).
	CgroupID uint64 `json:"cgroup_id"`
	// Cmdline and Exe are read from /proc when the event is read, when the
	// process is still there; empty otherwise.
	Cmdline []string `json:"cmdline,omitempty"`
	Exe     string   `json:"exe,omitempty"`
	// BootNS is the kernel's CLOCK_BOOTTIME at the event, in nanoseconds.
	BootNS uint64 `json:"-"`
}

// Endpoint returns the local address and port.
func (e *Event) Endpoint() inventory.Endpoint {
	return inventory.Endpoint{Address: e.Addr, Port: e.Port}
}

// Wire is the event as porteiro's local API and `-o ndjson` carry it;
// user is the owner's name ("" to leave it to the reader).
func (e *Event) Wire(user string) localapi.TraceEvent {
	return localapi.TraceEvent{
		Kind: e.Kind.String(), Time: e.Time, Proto: string(e.Proto), Family: string(e.Family),
		Address: e.Addr, Port: e.Port, DualStack: e.DualStack, ReusePort: e.ReusePort,
		NetNS: e.NetNS, Cookie: e.Cookie, Inode: e.Inode,
		PID: e.PID, TID: e.TID, PIDOutsideNS: e.PIDOutsideNS, UID: e.UID, User: user,
		Comm: e.Comm, CgroupID: e.CgroupID, Cmdline: e.Cmdline, Exe: e.Exe,
	}
}

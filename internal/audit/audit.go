// Package audit compares independent views of the kernel's sockets and
// processes and reports the differences that survive re-checks: a port busy
// for bind() that no socket view shows (hidden_socket), a process the kernel
// runs that /proc does not show (hidden_process), a network namespace with
// sockets that no process is a member of and no mount names (orphan_netns),
// and a socket that one view shows and another does not (view_mismatch).
//
// The comparison (compare.go) is pure and runs on fixtures; the collectors
// that read the kernel are Linux only (collect_linux.go, probe_linux.go).
package audit

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// SchemaVersion is the version of the JSON report documented in docs/audit.md.
const SchemaVersion = 1

// ErrUnsupported is wrapped when the audit cannot run on this OS.
var ErrUnsupported = errors.New("porteiro audit needs Linux")

// View names one independent source of truth.
type View string

// The views.
const (
	ViewSockDiag View = "sock_diag"     // the NETLINK_SOCK_DIAG dump
	ViewProcNet  View = "proc_net"      // /proc/PID/net/{tcp,tcp6,udp,udp6}
	ViewBPFSock  View = "bpf_iter_sock" // BPF iter/tcp and iter/udp
	ViewBPFFile  View = "bpf_iter_file" // BPF iter/task_file: sockets that processes hold
	ViewProcFD   View = "proc_fd"       // /proc/PID/fd links
	ViewBind     View = "bind_probe"    // bind() on every port
	ViewBPFTask  View = "bpf_iter_task" // BPF iter/task
	ViewProc     View = "proc"          // readdir(/proc) and /proc/PID/stat
	ViewNSMember View = "netns_members" // /proc/PID/ns/net
	ViewNSMount  View = "netns_mounts"  // nsfs mounts in every mount namespace
)

// tableViews are the views that list a namespace's whole socket tables;
// view_mismatch compares them with each other.
var tableViews = []View{ViewSockDiag, ViewProcNet, ViewBPFSock}

// Kinds of findings.
const (
	KindHiddenSocket  = "hidden_socket"
	KindHiddenProcess = "hidden_process"
	KindOrphanNetNS   = "orphan_netns"
	KindViewMismatch  = "view_mismatch"
)

// Sock is one socket as a table view shows it.
type Sock struct {
	Proto  uint8 // 6 TCP, 17 UDP
	Local  netip.AddrPort
	Remote netip.AddrPort
	State  uint8 // kernel state (UDP: 7 unconnected, 1 connected)
	Inode  uint64
	V6Only bool
}

// V6 says whether the socket is AF_INET6 (the views give AF_INET6
// addresses in 16 bytes, v4-mapped ones included).
func (s Sock) V6() bool { return s.Local.Addr().Is6() }

// Owner is a process that holds a socket, or the hidden process itself, as
// the kernel's view names it.
type Owner struct {
	PID      uint32 `json:"pid"`
	Comm     string `json:"comm"`
	UID      uint32 `json:"uid"`
	CgroupID uint64 `json:"cgroup_id"`
	FD       *int   `json:"fd,omitempty"`
}

// SockRef names a socket in a finding.
type SockRef struct {
	Proto string `json:"proto"` // tcp4, tcp6, udp4, udp6
	Local string `json:"local"`
	State string `json:"state"`
	Inode uint64 `json:"inode"`
}

// Finding is one difference that survived every re-check.
type Finding struct {
	Kind     string    `json:"kind"`
	NetNS    uint64    `json:"netns,omitempty"`
	Proto    string    `json:"proto,omitempty"`
	Local    string    `json:"local,omitempty"`
	Remote   string    `json:"remote,omitempty"`
	State    string    `json:"state,omitempty"`
	Inode    uint64    `json:"inode,omitempty"`
	PID      uint32    `json:"pid,omitempty"`
	SeenBy   []View    `json:"seen_by"`
	MissedBy []View    `json:"missed_by"`
	Owners   []Owner   `json:"owners"`
	Sockets  []SockRef `json:"sockets,omitempty"`
	Detail   string    `json:"detail"`

	key string
}

// ViewStatus says whether a view ran, and why not.
type ViewStatus struct {
	View    View   `json:"view"`
	Ran     bool   `json:"ran"`
	Skipped string `json:"skipped,omitempty"`
}

// Report is the result of an audit.
type Report struct {
	SchemaVersion int          `json:"schema_version"`
	Clean         bool         `json:"clean"`
	Findings      []Finding    `json:"findings"`
	Views         []ViewStatus `json:"views"`
	Namespaces    int          `json:"namespaces"`
	PortsProbed   int          `json:"ports_probed"`
	PortsSkipped  int          `json:"ports_explained"`
	Rounds        int          `json:"rounds"`
	DurationMS    int64        `json:"duration_ms"`
	// Compared is false when no two views could be compared (not root, no
	// BPF, no /proc): the report then proves nothing.
	Compared bool `json:"compared"`
}

// Options tunes an audit. The zero value is a full audit.
type Options struct {
	// ProcRoot is /proc by default.
	ProcRoot string
	// Rounds is how many times every difference must be seen: at least 3,
	// the first sighting and two re-checks.
	Rounds int
	// NoProbe skips the bind probe.
	NoProbe bool
	// ProbeHostOnly probes the audit's own network namespace only, not
	// every namespace it finds (each costs as much as the host's).
	ProbeHostOnly bool
	// Workers run the bind probe; runtime.NumCPU() by default.
	Workers int
	// Fault, when set, may change what a table view (or, as ViewBPFFile
	// with netns 0, the kernel's file tables) returned before it is
	// compared. It exists for fault-injection tests that make one view lie;
	// porteiro itself never sets it.
	Fault func(v View, netns uint64, socks []Sock) []Sock
}

func (o *Options) defaults() {
	if o.ProcRoot == "" {
		o.ProcRoot = "/proc"
	}
	if o.Rounds < 3 {
		o.Rounds = 3
	}
}

// ProtoName is tcp4, tcp6, udp4 or udp6.
func ProtoName(proto uint8, v6 bool) string {
	p := "tcp"
	if proto == 17 {
		p = "udp"
	}
	if v6 {
		return p + "6"
	}
	return p + "4"
}

func durationMS(d time.Duration) int64 { return d.Milliseconds() }

// ID identifies the finding across audits: the same hidden port, process,
// namespace or socket gets the same ID each time, so a scheduler can tell
// a new finding from one it has already reported.
func (f Finding) ID() string { return f.key }

func (f Finding) String() string {
	return fmt.Sprintf("%s netns %d %s %s pid %d", f.Kind, f.NetNS, f.Proto, f.Local, f.PID)
}

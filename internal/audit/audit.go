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
	"net/netip"
	"time"

	"github.com/porteiro/porteiro/internal/audit/report"
)

// SchemaVersion is the version of the JSON report documented in docs/audit.md.
const SchemaVersion = report.SchemaVersion

// ErrUnsupported is wrapped when the audit cannot run on this OS.
var ErrUnsupported = errors.New("porteiro audit needs Linux")

// The report's types live in package report, which the porteiro client
// links to print an audit the daemon ran; these names keep the audit's
// code short.
type (
	View       = report.View
	Owner      = report.Owner
	SockRef    = report.SockRef
	Finding    = report.Finding
	ViewStatus = report.ViewStatus
	Report     = report.Report
)

// The views.
const (
	ViewSockDiag = report.ViewSockDiag
	ViewProcNet  = report.ViewProcNet
	ViewBPFSock  = report.ViewBPFSock
	ViewBPFFile  = report.ViewBPFFile
	ViewProcFD   = report.ViewProcFD
	ViewBind     = report.ViewBind
	ViewBPFTask  = report.ViewBPFTask
	ViewProc     = report.ViewProc
	ViewNSMember = report.ViewNSMember
	ViewNSMount  = report.ViewNSMount
)

// tableViews are the views that list a namespace's whole socket tables;
// view_mismatch compares them with each other.
var tableViews = []View{ViewSockDiag, ViewProcNet, ViewBPFSock}

// Kinds of findings.
const (
	KindHiddenSocket  = report.KindHiddenSocket
	KindHiddenProcess = report.KindHiddenProcess
	KindOrphanNetNS   = report.KindOrphanNetNS
	KindViewMismatch  = report.KindViewMismatch
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

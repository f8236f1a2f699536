// Package report holds what an audit reports (the Report and Finding types
// of `porteirod audit -o json`, documented in docs/audit.md) and its table.
// It has no kernel code, so that the porteiro client, which asks the daemon
// for an audit, can print one without linking the audit's BPF loader.
package report

import (
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/porteiro/porteiro/internal/render"
)

// SchemaVersion is the version of the JSON report documented in docs/audit.md.
const SchemaVersion = 1

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

// Kinds of findings.
const (
	KindHiddenSocket  = "hidden_socket"
	KindHiddenProcess = "hidden_process"
	KindOrphanNetNS   = "orphan_netns"
	KindViewMismatch  = "view_mismatch"
)

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
	Kind string `json:"kind"`
	// Key is the finding's identity across audits (see ID).
	Key      string    `json:"key"`
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
}

// ID identifies the finding across audits: the same hidden port, process,
// namespace or socket gets the same ID each time, so a scheduler can tell
// a new finding from one it has already reported.
func (f Finding) ID() string { return f.Key }

func (f Finding) String() string {
	return fmt.Sprintf("%s netns %d %s %s pid %d", f.Kind, f.NetNS, f.Proto, f.Local, f.PID)
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

// Ran reports whether view v ran in this audit.
func (r *Report) Ran(v View) bool {
	for _, s := range r.Views {
		if s.View == v {
			return s.Ran
		}
	}
	return false
}

// Table writes the report for a person: one row per finding, or one line
// saying the views agree, then a summary. Every name from the kernel goes
// through render's escaping.
func Table(w io.Writer, rep *Report, o render.Options) error {
	summary := fmt.Sprintf("%d network namespaces, %d ports probed (%d explained by the views), %d rounds, %d ms",
		rep.Namespaces, rep.PortsProbed, rep.PortsSkipped, rep.Rounds, rep.DurationMS)
	if len(rep.Findings) == 0 {
		_, err := fmt.Fprintf(w, "clean: the views agree (%s)\n", summary)
		return err
	}
	t := render.NewTable("KIND", "NETNS", "PROTO", "LOCAL", "STATE", "PID", "COMM", "UID", "SEEN BY", "MISSED BY", "DETAIL")
	for _, f := range rep.Findings {
		pid, comm, uid := "-", "-", "-"
		if len(f.Owners) > 0 {
			var pids, comms []string
			for _, o := range f.Owners {
				pids = append(pids, strconv.FormatUint(uint64(o.PID), 10))
				comms = append(comms, o.Comm)
			}
			pid, comm, uid = strings.Join(pids, ","), strings.Join(comms, ","), strconv.FormatUint(uint64(f.Owners[0].UID), 10)
		}
		local := f.Local
		if local == "" && len(f.Sockets) > 0 {
			var ls []string
			for _, s := range f.Sockets {
				ls = append(ls, s.Proto+" "+s.Local)
			}
			local = strings.Join(ls, ",")
		}
		t.Row(f.Kind, dash(strconv.FormatUint(f.NetNS, 10), f.NetNS == 0), dash(f.Proto, f.Proto == ""), dash(local, local == ""),
			dash(f.State, f.State == ""), pid, comm, uid, JoinViews(f.SeenBy), JoinViews(f.MissedBy), f.Detail)
	}
	if err := t.Write(w, o); err != nil {
		return err
	}
	_, err := fmt.Fprintf(w, "%d findings (%s)\n", len(rep.Findings), summary)
	return err
}

func dash(s string, empty bool) string {
	if empty {
		return "-"
	}
	return s
}

// JoinViews is "a,b,c", or "-" for none.
func JoinViews(vs []View) string {
	if len(vs) == 0 {
		return "-"
	}
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = string(v)
	}
	return strings.Join(s, ",")
}

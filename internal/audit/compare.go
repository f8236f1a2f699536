package audit

import (
	"fmt"
	"sort"
	"strings"

	"github.com/porteiro/porteiro/inventory"
)

// Namespace is what one round saw of one network namespace.
type Namespace struct {
	Inode uint64
	// Member is a process in the namespace (0: none), Mount a path that
	// names it ("": none). A namespace with neither was found only through
	// a socket that a process holds.
	Member int
	Mount  string
	// Tables holds each table view that ran in this namespace.
	Tables map[View][]Sock
}

// Orphan says that no process is a member of the namespace and no mount
// names it.
func (n *Namespace) Orphan() bool { return n.Member == 0 && n.Mount == "" }

// Task is a process as the kernel's task list shows it.
type Task struct {
	TGID     uint32
	Comm     string
	UID      uint32
	CgroupID uint64
}

// FD is a socket that a process holds, as the kernel's file tables show it.
type FD struct {
	Owner Owner
	NetNS uint64
	Sock  Sock
}

// Port is one bind probe.
type Port struct {
	Proto uint8 // 6, 17
	V6    bool
	Port  uint16
}

func (p Port) String() string {
	if p.V6 {
		return fmt.Sprintf("%s [::]:%d", ProtoName(p.Proto, true), p.Port)
	}
	return fmt.Sprintf("%s 0.0.0.0:%d", ProtoName(p.Proto, false), p.Port)
}

// Round is everything one pass of the collectors saw. Nil maps and slices
// mean the view did not run.
type Round struct {
	HostNS     uint64
	Namespaces map[uint64]*Namespace
	// KernelFDs are the TCP and UDP sockets every process holds, from the
	// kernel (all namespaces).
	KernelFDs []FD
	// ProcFDMissing are kernel FDs that /proc/PID/fd does not show although
	// the process is visible and its fds readable; the value says why.
	ProcFDMissing map[int]string // index into KernelFDs
	// Tasks is the kernel's task list; ProcHidden says, for each of its
	// processes that /proc does not show, how /proc failed.
	Tasks      map[uint32]Task
	ProcHidden map[uint32]string
	// Busy are, per network namespace, the ports that bind() found in use
	// and that no socket view explained.
	Busy map[uint64][]Port
}

// sockKey identifies a socket across the table views: the inode (0 for
// TIME-WAIT, request and kernel sockets) and both ends.
type sockKey struct {
	proto  uint8
	inode  uint64
	local  [16]byte
	lport  uint16
	remote [16]byte
	rport  uint16
}

func keyOf(s Sock) sockKey {
	return sockKey{s.Proto, s.Inode, s.Local.Addr().As16(), s.Local.Port(), s.Remote.Addr().As16(), s.Remote.Port()}
}

// Explains says whether a socket the views show accounts for a busy bind()
// probe. A v4 probe on 0.0.0.0:p is refused by any v4 socket on p and by a
// dual-stack v6 one; a v6 probe with IPV6_V6ONLY only by v6 sockets. Every
// state counts: an ephemeral port of a connection or a TIME-WAIT also makes
// bind() fail.
func Explains(s Sock, p Port) bool {
	if s.Proto != p.Proto || s.Local.Port() != p.Port {
		return false
	}
	if p.V6 {
		return s.V6()
	}
	// A v6 socket that is not v6-only holds the v4 port too; one whose flag
	// a view does not know is given the benefit of the doubt.
	return !s.V6() || !s.V6Only
}

// Explained is the set of ports the socket views account for.
type Explained map[Port]bool

// Add marks the ports that s accounts for.
func (e Explained) Add(s Sock) {
	for _, v6 := range []bool{false, true} {
		p := Port{s.Proto, v6, s.Local.Port()}
		if Explains(s, p) {
			e[p] = true
		}
	}
}

// ExplainedBy collects the ports that any socket of the namespace in any
// view accounts for, including the sockets processes hold that are in no
// table (a TCP socket bound but not listening is only in the bind hash).
func ExplainedBy(r *Round, netns uint64) Explained {
	e := Explained{}
	if ns := r.Namespaces[netns]; ns != nil {
		for _, socks := range ns.Tables {
			for _, s := range socks {
				e.Add(s)
			}
		}
	}
	for _, fd := range r.KernelFDs {
		if fd.NetNS == netns {
			e.Add(fd.Sock)
		}
	}
	return e
}

// Findings lists what one round saw, keyed so that rounds can be matched.
func Findings(r *Round) []Finding {
	var out []Finding
	owners := map[uint64][]Owner{}
	for _, fd := range r.KernelFDs {
		if fd.Sock.Inode != 0 {
			owners[fd.Sock.Inode] = append(owners[fd.Sock.Inode], fd.Owner)
		}
	}

	// view_mismatch: a socket in one table view of a namespace and not in
	// another that ran there.
	for _, ns := range sortedNS(r) {
		var ran []View
		for _, v := range tableViews {
			if _, ok := ns.Tables[v]; ok {
				ran = append(ran, v)
			}
		}
		if len(ran) < 2 {
			continue
		}
		seen := map[sockKey]*Finding{}
		var order []sockKey
		for _, v := range ran {
			for _, s := range ns.Tables[v] {
				k := keyOf(s)
				f := seen[k]
				if f == nil {
					f = sockFinding(KindViewMismatch, ns.Inode, s)
					seen[k] = f
					order = append(order, k)
				}
				if !hasView(f.SeenBy, v) {
					f.SeenBy = append(f.SeenBy, v)
				}
			}
		}
		for _, k := range order {
			f := seen[k]
			if len(f.SeenBy) == len(ran) {
				continue
			}
			for _, v := range ran {
				if !hasView(f.SeenBy, v) {
					f.MissedBy = append(f.MissedBy, v)
				}
			}
			f.Owners = owners[f.Inode]
			f.Detail = fmt.Sprintf("seen by %s; not by %s", joinViews(f.SeenBy), joinViews(f.MissedBy))
			f.Key = fmt.Sprintf("%s netns %d %s %s %s inode %d", f.Kind, ns.Inode, f.Proto, f.Local, orDash(f.Remote), f.Inode)
			out = append(out, *f)
		}
	}

	// view_mismatch between the kernel's file tables and /proc/PID/fd.
	for i, why := range r.ProcFDMissing {
		fd := r.KernelFDs[i]
		f := sockFinding(KindViewMismatch, fd.NetNS, fd.Sock)
		o := fd.Owner
		f.Owners = []Owner{o}
		f.PID = o.PID
		f.SeenBy = []View{ViewBPFFile}
		f.MissedBy = []View{ViewProcFD}
		f.Detail = fmt.Sprintf("the kernel says pid %d holds the socket at fd %d; /proc: %s", o.PID, derefFD(o.FD), why)
		f.Key = fmt.Sprintf("%s pid %d fd %d inode %d", f.Kind, o.PID, derefFD(o.FD), fd.Sock.Inode)
		out = append(out, *f)
	}

	// hidden_socket: busy for bind() and in no view.
	for _, ns := range sortedNS(r) {
		for _, p := range r.Busy[ns.Inode] {
			f := Finding{
				Kind:     KindHiddenSocket,
				NetNS:    ns.Inode,
				Proto:    ProtoName(p.Proto, p.V6),
				SeenBy:   []View{ViewBind},
				MissedBy: socketViews(r, ns.Inode),
				Detail:   fmt.Sprintf("bind() on %s fails with EADDRINUSE, but no socket view shows a socket on the port", p),
			}
			if p.V6 {
				f.Local = fmt.Sprintf("[::]:%d", p.Port)
			} else {
				f.Local = fmt.Sprintf("0.0.0.0:%d", p.Port)
			}
			f.Key = fmt.Sprintf("%s netns %d %v", f.Kind, ns.Inode, p)
			out = append(out, f)
		}
	}

	// hidden_process: the kernel runs it, /proc does not show it.
	for tgid, why := range r.ProcHidden {
		t, ok := r.Tasks[tgid]
		if !ok {
			continue
		}
		f := Finding{
			Kind:     KindHiddenProcess,
			PID:      tgid,
			SeenBy:   []View{ViewBPFTask},
			MissedBy: []View{ViewProc},
			Owners:   []Owner{{PID: tgid, Comm: t.Comm, UID: t.UID, CgroupID: t.CgroupID}},
			Detail:   fmt.Sprintf("the kernel runs pid %d (%s); /proc: %s", tgid, t.Comm, why),
			Key:      fmt.Sprintf("%s pid %d comm %q", KindHiddenProcess, tgid, t.Comm),
		}
		for _, fd := range r.KernelFDs {
			if fd.Owner.PID == tgid {
				f.Sockets = append(f.Sockets, refOf(fd.Sock))
			}
		}
		out = append(out, f)
	}

	// orphan_netns: sockets in a namespace nothing names.
	for _, ns := range sortedNS(r) {
		if !ns.Orphan() {
			continue
		}
		f := Finding{
			Kind:     KindOrphanNetNS,
			NetNS:    ns.Inode,
			SeenBy:   []View{ViewBPFFile},
			MissedBy: []View{ViewNSMember, ViewNSMount},
			Key:      fmt.Sprintf("%s netns %d", KindOrphanNetNS, ns.Inode),
		}
		refs := map[uint64]bool{}
		for _, v := range tableViews {
			for _, s := range ns.Tables[v] {
				if !refs[s.Inode] || s.Inode == 0 {
					refs[s.Inode] = true
					f.Sockets = append(f.Sockets, refOf(s))
				}
			}
		}
		for _, fd := range r.KernelFDs {
			if fd.NetNS != ns.Inode {
				continue
			}
			f.Owners = append(f.Owners, fd.Owner)
			if !refs[fd.Sock.Inode] {
				refs[fd.Sock.Inode] = true
				f.Sockets = append(f.Sockets, refOf(fd.Sock))
			}
		}
		f.Detail = fmt.Sprintf("network namespace %d has %d sockets, but no process is a member and no mount names it", ns.Inode, len(f.Sockets))
		out = append(out, f)
	}
	return out
}

// Compare keeps the findings that every round saw: a difference that
// churn made (a socket opened between two views, a process that exited)
// is not seen again. The details come from the last round.
func Compare(rounds []*Round) []Finding {
	if len(rounds) == 0 {
		return nil
	}
	count := map[string]int{}
	var last []Finding
	for i, r := range rounds {
		fs := Findings(r)
		seen := map[string]bool{}
		for _, f := range fs {
			if !seen[f.Key] {
				seen[f.Key] = true
				count[f.Key]++
			}
		}
		if i == len(rounds)-1 {
			last = fs
		}
	}
	var out []Finding
	done := map[string]bool{}
	for _, f := range last {
		if count[f.Key] == len(rounds) && !done[f.Key] {
			done[f.Key] = true
			if f.Owners == nil {
				f.Owners = []Owner{}
			}
			out = append(out, f)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return out[i].Kind < out[j].Kind
		}
		return out[i].Key < out[j].Key
	})
	return out
}

func sockFinding(kind string, netns uint64, s Sock) *Finding {
	f := &Finding{
		Kind:  kind,
		NetNS: netns,
		Proto: ProtoName(s.Proto, s.V6()),
		Local: s.Local.String(),
		State: stateName(s),
		Inode: s.Inode,
	}
	if s.Remote.Port() != 0 || (s.Remote.Addr().IsValid() && !s.Remote.Addr().IsUnspecified()) {
		f.Remote = s.Remote.String()
	}
	return f
}

func refOf(s Sock) SockRef {
	return SockRef{Proto: ProtoName(s.Proto, s.V6()), Local: s.Local.String(), State: stateName(s), Inode: s.Inode}
}

func stateName(s Sock) string {
	if s.Proto == 17 {
		if s.State == inventory.TCPEstablished {
			return "ESTAB"
		}
		return "UNCONN"
	}
	return string(inventory.StateFromKernel(s.State))
}

func sortedNS(r *Round) []*Namespace {
	out := make([]*Namespace, 0, len(r.Namespaces))
	for _, ns := range r.Namespaces {
		out = append(out, ns)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Inode < out[j].Inode })
	return out
}

func socketViews(r *Round, netns uint64) []View {
	var out []View
	if ns := r.Namespaces[netns]; ns != nil {
		for _, v := range tableViews {
			if _, ok := ns.Tables[v]; ok {
				out = append(out, v)
			}
		}
	}
	if r.KernelFDs != nil {
		out = append(out, ViewBPFFile)
	}
	return out
}

func hasView(vs []View, v View) bool {
	for _, x := range vs {
		if x == v {
			return true
		}
	}
	return false
}

func joinViews(vs []View) string {
	s := make([]string, len(vs))
	for i, v := range vs {
		s[i] = string(v)
	}
	return strings.Join(s, ", ")
}

func derefFD(p *int) int {
	if p == nil {
		return -1
	}
	return *p
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

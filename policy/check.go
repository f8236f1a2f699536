package policy

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/porteiro/porteiro/inventory"
)

// Finding kinds.
const (
	// Unexpected: listening, and no rule allows it.
	Unexpected = "unexpected"
	// Missing: a require rule matches no listener.
	Missing = "missing"
	// WrongOwner: a rule allows the port, but another process, user or
	// unit holds it.
	WrongOwner = "wrong_owner"
	// TooExposed: a rule allows the port on some addresses, and the socket
	// is bound more widely (typically all interfaces instead of loopback).
	TooExposed = "too_exposed"
)

// Kinds lists the finding kinds in the order reports count them.
var Kinds = []string{Unexpected, Missing, WrongOwner, TooExposed}

// Finding is one way the host differs from the policy. Its JSON form is
// part of the check output schema (docs/check-json.md).
type Finding struct {
	// Kind is unexpected, missing, wrong_owner or too_exposed.
	Kind string `json:"kind"`
	// Key identifies the condition across scans, for as long as it lasts:
	// "unexpected tcp 0.0.0.0:4444", "missing ssh". Alerting uses it to
	// drop duplicates and to notice when the condition is resolved.
	Key string `json:"key"`
	// Message is one line for a person.
	Message string `json:"message"`
	// Socket is the listener and its owners; nil for missing.
	Socket *inventory.Socket `json:"socket,omitempty"`
	// Rule is the name of the rule concerned; empty for unexpected.
	Rule       string `json:"rule,omitempty"`
	RuleReason string `json:"rule_reason,omitempty"`
	// Expected says what the rule wanted, such as "process sshd, user
	// root" or "bind loopback"; empty for unexpected.
	Expected string `json:"expected,omitempty"`
}

// Report is the result of one check.
type Report struct {
	Findings []Finding
	// Checked counts the listeners compared with the policy.
	Checked int
	// Unverified counts listeners whose owners could not be seen (no
	// permission, or the process exited during the scan) while a rule
	// needed them; they gave no finding. A caller that cannot accept that
	// refuses unprivileged snapshots when NeedsOwners is true, as check does.
	Unverified int
}

// Clean reports whether there are no findings.
func (r *Report) Clean() bool { return len(r.Findings) == 0 }

// Counts returns the number of findings of each kind; every kind is present.
func (r *Report) Counts() map[string]int {
	m := make(map[string]int, len(Kinds))
	for _, k := range Kinds {
		m[k] = 0
	}
	for _, f := range r.Findings {
		m[f.Kind]++
	}
	return m
}

// index finds the rules that may concern a (proto, port) without looking
// at every rule. Small ranges are spread into the exact map; wide ranges and
// port-less rules stay in a short list scanned linearly.
type index struct {
	exact [2]map[uint16][]int32
	wide  [2][]wideEntry
}

type wideEntry struct {
	r    PortRange
	rule int32
}

// spreadLimit is the widest range put into the exact map.
const spreadLimit = 256

func protoSlot(p inventory.Proto) int {
	if p == inventory.UDP {
		return 1
	}
	return 0
}

func buildIndex(rules []*Rule) index {
	var ix index
	for s := range ix.exact {
		ix.exact[s] = map[uint16][]int32{}
	}
	for i, r := range rules {
		slots := []int{0, 1}
		if len(r.Protos) > 0 {
			slots = slots[:0]
			for _, p := range r.Protos {
				if s := protoSlot(p); !slices.Contains(slots, s) {
					slots = append(slots, s)
				}
			}
		}
		ports := r.Ports
		if len(ports) == 0 {
			ports = []PortRange{{Lo: 0, Hi: 65535}}
		}
		for _, s := range slots {
			for _, pr := range ports {
				if int(pr.Hi)-int(pr.Lo) < spreadLimit {
					for p := int(pr.Lo); p <= int(pr.Hi); p++ {
						l := ix.exact[s][uint16(p)]
						if len(l) == 0 || l[len(l)-1] != int32(i) {
							ix.exact[s][uint16(p)] = append(l, int32(i))
						}
					}
				} else {
					ix.wide[s] = append(ix.wide[s], wideEntry{r: pr, rule: int32(i)})
				}
			}
		}
	}
	return ix
}

// candidates appends to buf the rules whose protocol and port match, in
// file order and without repeats.
func (ix *index) candidates(buf []int32, p inventory.Proto, port uint16) []int32 {
	buf = buf[:0]
	if p != inventory.TCP && p != inventory.UDP {
		return buf
	}
	s := protoSlot(p)
	buf = append(buf, ix.exact[s][port]...)
	for _, w := range ix.wide[s] {
		if w.r.Contains(port) {
			buf = append(buf, w.rule)
		}
	}
	if len(buf) > 1 {
		slices.Sort(buf)
		buf = slices.Compact(buf)
	}
	return buf
}

// Check compares the listening sockets of snap with the policy. Each
// listener gives at most one finding; sockets that share a listener key
// (SO_REUSEPORT groups) give one finding listing every owner. Missing
// findings come last, in rule order.
func (p *Policy) Check(snap *inventory.Snapshot) *Report {
	rep := &Report{}
	satisfied := make([]bool, len(p.Rules))
	var byKey map[string]int
	var buf []int32
	var sockets []inventory.Socket
	if snap != nil {
		sockets = snap.Sockets
	}
	for i := range sockets {
		so := &sockets[i]
		if !so.Listening {
			continue
		}
		rep.Checked++
		buf = p.idx.candidates(buf, so.Proto, so.Local.Port)
		f, unverified := p.checkSocket(so, buf, satisfied)
		if unverified {
			rep.Unverified++
		}
		if f == nil {
			continue
		}
		if byKey == nil {
			byKey = map[string]int{}
		}
		if j, ok := byKey[f.Key]; ok {
			rep.Findings[j].Socket = mergeOwners(rep.Findings[j].Socket, so)
			continue
		}
		byKey[f.Key] = len(rep.Findings)
		rep.Findings = append(rep.Findings, *f)
	}
	for i, r := range p.Rules {
		if r.Section != Require || satisfied[i] {
			continue
		}
		msg := fmt.Sprintf("%s is not listening: required by rule %q", r.describeWhere(), r.Name)
		if o := r.describeOwners(); o != "" {
			msg += " (" + o + ")"
		}
		if r.Reason != "" {
			msg += ": " + r.Reason
		}
		rep.Findings = append(rep.Findings, Finding{
			Kind:       Missing,
			Key:        Missing + " " + r.Name,
			Message:    msg,
			Rule:       r.Name,
			RuleReason: r.Reason,
			Expected:   joinNonEmpty(r.describeWhere(), r.describeOwners()),
		})
	}
	return rep
}

// checkSocket decides one listener. It marks the require rules the socket
// satisfies, and reports whether owner conditions could not be decided.
func (p *Policy) checkSocket(so *inventory.Socket, cands []int32, satisfied []bool) (*Finding, bool) {
	ignored, allowed, unknown := false, false, false
	var wrongOwner, tooExposed, both *Rule
	for _, ri := range cands {
		r := p.Rules[ri]
		if !r.matchScope(so) {
			continue
		}
		bindOK := r.matchBind(so.Local.Address)
		own := r.matchOwners(so)
		switch {
		case r.Section == Ignore:
			// Ignore rules win over everything, as their name says, but
			// the loop goes on: an ignored listener still satisfies the
			// require rules that match it.
			ignored = ignored || (bindOK && own == ownerYes)
		case bindOK && own == ownerYes:
			allowed = true
			satisfied[ri] = true
		case bindOK && own == ownerUnknown:
			// Owners hidden by permissions: neither a finding nor a
			// missing service. The caller refuses such scans anyway
			// when the policy needs owners.
			unknown = true
			satisfied[ri] = true
		case bindOK && wrongOwner == nil:
			wrongOwner = r
		case !bindOK && own != ownerNo && tooExposed == nil:
			tooExposed = r
		case !bindOK && own == ownerNo && both == nil:
			both = r
		}
	}
	if ignored || allowed {
		return nil, false
	}
	if unknown {
		return nil, true
	}
	lk := listenerName(so) + whereSuffix(so)
	sockCopy := *so
	switch {
	case wrongOwner != nil || (tooExposed == nil && both != nil):
		r := wrongOwner
		if r == nil {
			r = both
		}
		return &Finding{
			Kind:       WrongOwner,
			Key:        WrongOwner + " " + lk,
			Message:    fmt.Sprintf("%s has the wrong owner: rule %q expects %s; held by %s", lk, r.Name, r.describeOwners(), ownersSummary(so)),
			Socket:     &sockCopy,
			Rule:       r.Name,
			RuleReason: r.Reason,
			Expected:   r.describeOwners(),
		}, false
	case tooExposed != nil:
		r := tooExposed
		return &Finding{
			Kind:       TooExposed,
			Key:        TooExposed + " " + lk,
			Message:    fmt.Sprintf("%s is bound %s: rule %q allows only %s; held by %s", lk, exposurePhrase(so), r.Name, r.describeBind(), ownersSummary(so)),
			Socket:     &sockCopy,
			Rule:       r.Name,
			RuleReason: r.Reason,
			Expected:   "bind " + r.describeBind(),
		}, false
	}
	if p.DefaultAllow {
		return nil, false
	}
	return &Finding{
		Kind:    Unexpected,
		Key:     Unexpected + " " + lk,
		Message: fmt.Sprintf("%s is listening and no rule allows it; held by %s", lk, ownersSummary(so)),
		Socket:  &sockCopy,
	}, false
}

// listenerName is "tcp 0.0.0.0:4444" or "udp [::]:53": unlike the ss form
// (*:4444) it keeps the IPv4 and IPv6 wildcards apart, so each has its own
// finding key.
func listenerName(so *inventory.Socket) string {
	a := so.Local.Address
	if !a.IsValid() {
		return string(so.Proto) + " *:" + strconv.Itoa(int(so.Local.Port))
	}
	if a.Is4In6() {
		a = a.Unmap()
	}
	return string(so.Proto) + " " + netip.AddrPortFrom(a, so.Local.Port).String()
}

// whereSuffix says which namespace a listener is in, for finding keys and
// messages: "" in the host's (so that keys are what they were before
// porteiro saw other namespaces, and stored events and alerts keep
// matching), " in container web-1", " in netns blue" (the words of
// Socket.NamespaceLabel). The container's name,
// not its id, keeps the key across a recreated container. Several
// namespaces can be "orphan" at once, so an orphan's key carries its inode,
// the only identity it has, lest two of them share a finding.
func whereSuffix(so *inventory.Socket) string {
	if inHost(so) {
		return ""
	}
	if so.Container != nil {
		return " in container " + so.ContainerName()
	}
	s := " in netns " + so.NetNSName
	if so.NetNSName == "orphan" {
		s += " [" + strconv.FormatUint(so.NetNS, 10) + "]"
	}
	return s
}

func exposurePhrase(so *inventory.Socket) string {
	switch so.Exposure {
	case inventory.ExposureAll:
		return "to all interfaces"
	case inventory.ExposureLoopback:
		return "to loopback"
	}
	return "to " + so.Local.Address.String()
}

// mergeOwners adds the processes of b to a copy of a, once per pid.
func mergeOwners(a *inventory.Socket, b *inventory.Socket) *inventory.Socket {
	out := *a
	out.Processes = slices.Clone(a.Processes)
	for _, p := range b.Processes {
		if !slices.ContainsFunc(out.Processes, func(q inventory.Process) bool { return q.PID == p.PID }) {
			out.Processes = append(out.Processes, p)
		}
	}
	slices.SortFunc(out.Processes, func(x, y inventory.Process) int { return x.PID - y.PID })
	if len(out.Processes) > 0 {
		out.UnattributedReason = inventory.ReasonNone
	}
	return &out
}

// ownersSummary names the holders of a socket in one short phrase:
// "nginx (pids 10,11; user www-data, root)", or for a socket without a
// visible process inventory's words for why (Reason.Holder).
func ownersSummary(so *inventory.Socket) string {
	if len(so.Processes) == 0 {
		return so.UnattributedReason.Holder()
	}
	var names, users, pids []string
	for i := range so.Processes {
		pr := &so.Processes[i]
		if !slices.Contains(names, pr.Name) {
			names = append(names, pr.Name)
		}
		if pr.User != "" && !slices.Contains(users, pr.User) {
			users = append(users, pr.User)
		}
		pids = append(pids, strconv.Itoa(pr.PID))
	}
	const maxPIDs = 8
	if len(pids) > maxPIDs {
		pids = append(pids[:maxPIDs], fmt.Sprintf("+%d", len(so.Processes)-maxPIDs))
	}
	label := "pid "
	if len(so.Processes) > 1 {
		label = "pids "
	}
	s := strings.Join(names, ",") + " (" + label + strings.Join(pids, ",")
	if len(users) > 0 {
		s += "; user " + strings.Join(users, ",")
	}
	s += ")"
	if cl := so.Processes[0].CommandLine(); cl != "" {
		s += ": " + oneLine(cl, 120)
	}
	return s
}

// oneLine keeps a message on one line and bounded, because command lines
// can hold anything.
func oneLine(s string, max int) string {
	b := []rune(s)
	for i, r := range b {
		if r < 0x20 || r == 0x7f {
			b[i] = ' '
		}
	}
	if len(b) > max {
		return string(b[:max-1]) + "…"
	}
	return string(b)
}

func joinNonEmpty(xs ...string) string {
	var out []string
	for _, x := range xs {
		if x != "" {
			out = append(out, x)
		}
	}
	return strings.Join(out, ", ")
}

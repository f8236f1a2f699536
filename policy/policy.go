// Package policy says what may listen on a host, and checks a snapshot
// against it.
//
// A policy is a YAML file with three lists of rules: ignore (never a
// finding), allow (may listen) and require (may listen, and must). Anything
// no rule allows is a finding unless the policy's default is "allow". A rule
// matches a listening socket when every condition it names holds: the
// network namespace or container, protocol, port, bind address, and the
// owning process, executable, user or systemd unit. A rule that names no
// namespace and no container is about the host's namespace only, so that a
// policy written for the host does not allow the same ports inside every
// container. The file format is documented in docs/policy.md.
//
// Parse and Load read a policy strictly: an unknown key, a bad port or a bad
// address is an error of the form FILE:LINE:COLUMN: message. The file is
// read through internal/yamlx, within its limits (a regular file of at most
// 512 KiB, nested at most 64 levels, aliases bounded), the way the daemon's
// config is. Check is cheap enough to run on every poll: rules are indexed
// by protocol and port.
package policy

import (
	"fmt"
	"net/netip"
	"path"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/porteiro/porteiro/internal/target"
	"github.com/porteiro/porteiro/internal/yamlx"
	"github.com/porteiro/porteiro/inventory"
)

// DefaultPath is where porteiro looks for the policy when -p is not given.
const DefaultPath = "/etc/porteiro/policy.yaml"

// Section is the list a rule belongs to.
type Section string

// Sections of a policy file.
const (
	Ignore  Section = "ignore"
	Allow   Section = "allow"
	Require Section = "require"
)

// Policy is a parsed, validated policy file.
type Policy struct {
	// File is the name the policy was parsed under, for messages.
	File string
	// DefaultAllow is true when the file says "default: allow": a listener
	// that no rule names is then not a finding.
	DefaultAllow bool
	// Rules are every rule in file order, whatever their section.
	Rules []*Rule

	idx index
}

// Rule is one entry of the ignore, allow or require list. An empty condition
// list means "any".
type Rule struct {
	// Name is the rule's name; rules without one are named after their
	// section and position, such as "allow[3]".
	Name   string
	Reason string
	// Section is ignore, allow or require.
	Section Section
	// Line and Column locate the rule in the file.
	Line, Column int

	// Where the socket is: shell patterns (path.Match) on the network
	// namespace's name and on the container's name or id. With neither,
	// the rule is about the host's namespace only.
	NetNS     []string
	Container []string

	Protos []inventory.Proto
	Ports  []PortRange
	Bind   []Bind
	// Owner conditions: shell patterns (path.Match). A socket satisfies them
	// when one of its processes satisfies all of them together.
	Process []string
	Exe     []string
	User    []string
	Unit    []string
}

// PortRange is an inclusive range of ports; a single port has Lo == Hi.
type PortRange = target.Range

// BindKind says how a Bind matches an address.
type BindKind int

// Bind kinds.
const (
	// BindAny matches every address, the wildcard included.
	BindAny BindKind = iota
	// BindLoopback matches 127.0.0.0/8 and ::1.
	BindLoopback
	// BindPrefix matches the addresses of a CIDR; a plain address is a
	// prefix of full length, so "0.0.0.0" matches only the IPv4 wildcard.
	BindPrefix
)

// Bind is one allowed bind scope.
type Bind struct {
	Kind   BindKind
	Prefix netip.Prefix
}

func (b Bind) String() string {
	switch b.Kind {
	case BindAny:
		return "any"
	case BindLoopback:
		return "loopback"
	}
	if b.Prefix.IsSingleIP() {
		return b.Prefix.Addr().String()
	}
	return b.Prefix.String()
}

// Matches reports whether the local address a is within the scope.
func (b Bind) Matches(a netip.Addr) bool {
	switch b.Kind {
	case BindAny:
		return true
	case BindLoopback:
		return a.IsValid() && a.Unmap().IsLoopback()
	}
	if !a.IsValid() {
		return false
	}
	return b.Prefix.Contains(a.Unmap().WithZone(""))
}

// Load reads and parses the policy file at path. It must be a regular file
// within yamlx's limits; a file that is not is an ErrorList too.
func Load(path string) (*Policy, error) {
	data, err := yamlx.ReadFile(path, "policy")
	if err != nil {
		if e, ok := err.(*Error); ok {
			return nil, ErrorList{e}
		}
		return nil, err
	}
	return Parse(data, path)
}

// NeedsOwners reports whether some rule matches on the owning process
// (process, exe, user, unit) or on a container. Checking such a policy
// needs a scan that could see every process's file descriptors; container
// names come from the runtimes' state files, which only root can read, so
// an unprivileged scan would name a container by its id and turn every
// container rule into a false alarm.
func (p *Policy) NeedsOwners() bool {
	for _, r := range p.Rules {
		if r.hasOwnerConds() || len(r.Container) > 0 {
			return true
		}
	}
	return false
}

// Count returns how many rules the section has.
func (p *Policy) Count(s Section) int {
	n := 0
	for _, r := range p.Rules {
		if r.Section == s {
			n++
		}
	}
	return n
}

func (r *Rule) hasOwnerConds() bool {
	return len(r.Process)+len(r.Exe)+len(r.User)+len(r.Unit) > 0
}

// HostNetNS is the name porteiro gives the host's network namespace (that
// of PID 1), and the one a rule without netns or container is about.
const HostNetNS = "host"

// inHost reports whether the socket is in the host's network namespace. A
// socket without a namespace name comes from a scan that did not name
// namespaces (one namespace, or an older snapshot): it is the host's.
func inHost(so *inventory.Socket) bool {
	return (so.NetNSName == "" || so.NetNSName == HostNetNS) && so.Container == nil
}

// netnsName is the name a netns pattern is matched against.
func netnsName(so *inventory.Socket) string {
	if so.NetNSName == "" {
		return HostNetNS
	}
	return so.NetNSName
}

// matchScope reports whether the socket is in a namespace the rule is
// about. It comes before every other condition: a rule about the host says
// nothing of a container's port 80, not even that it has the wrong owner.
func (r *Rule) matchScope(so *inventory.Socket) bool {
	if len(r.NetNS) == 0 && len(r.Container) == 0 {
		return inHost(so)
	}
	return matchAny(r.NetNS, func(pat string) bool {
		return globMatch(pat, netnsName(so))
	}) && matchAny(r.Container, func(pat string) bool {
		return matchContainer(pat, so)
	})
}

// matchContainer matches a container pattern against the container whose
// namespace the socket is in: its name as porteiro shows it
// (Socket.ContainerName: "web-1", "prod/web-7d9f-x2k4p/nginx"), the
// runtime's own name, or its id. A container on the host's network has no
// namespace of its own; its sockets match by the container id of the
// processes that hold them, as the scan finds it in their cgroups.
func matchContainer(pat string, so *inventory.Socket) bool {
	if c := so.Container; c != nil {
		if globMatch(pat, so.ContainerName()) || globMatch(pat, c.Name) || matchID(pat, c.ID) {
			return true
		}
	}
	for i := range so.Processes {
		if matchID(pat, so.Processes[i].Container) {
			return true
		}
	}
	return false
}

// matchID matches a container id, full or short: "docker ps" shows 12
// characters, so a plain pattern also matches as a prefix.
func matchID(pat, id string) bool {
	return globMatch(pat, id) || (id != "" && !hasMeta(pat) && strings.HasPrefix(id, pat))
}

func (r *Rule) matchProto(p inventory.Proto) bool {
	if len(r.Protos) == 0 {
		return true
	}
	for _, x := range r.Protos {
		if x == p {
			return true
		}
	}
	return false
}

func (r *Rule) matchPort(port uint16) bool {
	if len(r.Ports) == 0 {
		return true
	}
	for _, pr := range r.Ports {
		if pr.Contains(port) {
			return true
		}
	}
	return false
}

func (r *Rule) matchBind(a netip.Addr) bool {
	if len(r.Bind) == 0 {
		return true
	}
	for _, b := range r.Bind {
		if b.Matches(a) {
			return true
		}
	}
	return false
}

// ownerResult is the outcome of the owner conditions on one socket.
type ownerResult int

const (
	ownerYes ownerResult = iota
	ownerNo
	// ownerUnknown: the socket's owners could not be seen (no permission,
	// or the process exited during the scan).
	ownerUnknown
)

func (r *Rule) matchOwners(so *inventory.Socket) ownerResult {
	if !r.hasOwnerConds() {
		return ownerYes
	}
	for i := range so.Processes {
		if r.matchProcess(&so.Processes[i]) {
			return ownerYes
		}
	}
	// Owners hidden by permissions, or gone mid-scan, prove nothing either
	// way: a wrong_owner finding would be a false alarm.
	if len(so.Processes) == 0 && (so.UnattributedReason == inventory.ReasonNotPermitted || so.UnattributedReason == inventory.ReasonExited) {
		return ownerUnknown
	}
	return ownerNo
}

// matchProcess reports whether one process satisfies every owner condition.
func (r *Rule) matchProcess(p *inventory.Process) bool {
	return matchAny(r.Process, func(pat string) bool {
		// comm is cut at 15 bytes, so a long name is also tried against
		// the executable's file name.
		return globMatch(pat, p.Name) || (p.Exe != "" && globMatch(pat, filepath.Base(p.Exe)))
	}) && matchAny(r.Exe, func(pat string) bool {
		return globMatch(pat, p.Exe)
	}) && matchAny(r.User, func(pat string) bool {
		// A number is a uid, unless a user really has that name.
		if target.IsDigits(pat) && pat == strconv.FormatUint(uint64(p.UID), 10) {
			return true
		}
		return globMatch(pat, p.User)
	}) && matchAny(r.Unit, func(pat string) bool {
		return globMatch(pat, p.Unit)
	})
}

func matchAny(pats []string, f func(string) bool) bool {
	if len(pats) == 0 {
		return true
	}
	for _, p := range pats {
		if f(p) {
			return true
		}
	}
	return false
}

// globMatch never matches an empty value: an unknown unit or executable
// must not satisfy "*".
func globMatch(pat, s string) bool {
	if s == "" {
		return false
	}
	if !hasMeta(pat) {
		return pat == s // the common case, without path.Match's cost
	}
	ok, _ := path.Match(pat, s)
	return ok
}

func hasMeta(s string) bool { return strings.ContainsAny(s, `*?[\`) }

// describeWhere says which listeners a rule names, for "missing" messages:
// "tcp port 22 on loopback".
func (r *Rule) describeWhere() string {
	var b strings.Builder
	switch len(r.Protos) {
	case 1:
		b.WriteString(string(r.Protos[0]))
	default:
		b.WriteString("tcp or udp")
	}
	switch {
	case len(r.Ports) == 0:
		b.WriteString(" on any port")
	case len(r.Ports) == 1 && r.Ports[0].Lo == r.Ports[0].Hi:
		b.WriteString(" port " + r.Ports[0].String())
	default:
		b.WriteString(" port " + joinStrings(r.Ports, ", "))
	}
	if len(r.Bind) > 0 && !(len(r.Bind) == 1 && r.Bind[0].Kind == BindAny) {
		b.WriteString(" on " + joinStrings(r.Bind, ", "))
	}
	b.WriteString(r.describeScope())
	return b.String()
}

// describeScope says where a rule looks, for messages: "" for the host (as
// before namespaces), " in container web-1", " in netns blue|green".
func (r *Rule) describeScope() string {
	var parts []string
	if len(r.Container) > 0 {
		parts = append(parts, "container "+strings.Join(r.Container, "|"))
	}
	if len(r.NetNS) > 0 {
		parts = append(parts, "netns "+strings.Join(r.NetNS, "|"))
	}
	if len(parts) == 0 {
		return ""
	}
	return " in " + strings.Join(parts, ", ")
}

// describeOwners says what owner a rule expects: "process sshd, user root".
func (r *Rule) describeOwners() string {
	var parts []string
	add := func(label string, v []string) {
		if len(v) > 0 {
			parts = append(parts, label+" "+strings.Join(v, "|"))
		}
	}
	add("process", r.Process)
	add("exe", r.Exe)
	add("user", r.User)
	add("unit", r.Unit)
	return strings.Join(parts, ", ")
}

func (r *Rule) describeBind() string {
	return joinStrings(r.Bind, ", ")
}

func joinStrings[T fmt.Stringer](xs []T, sep string) string {
	var b strings.Builder
	for i, x := range xs {
		if i > 0 {
			b.WriteString(sep)
		}
		b.WriteString(x.String())
	}
	return b.String()
}

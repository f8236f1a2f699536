package policy

import (
	"bytes"
	"fmt"
	"io"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/porteiro/porteiro/internal/target"
	"github.com/porteiro/porteiro/inventory"
)

// BaselineOptions configures Baseline. The zero value writes allow rules
// and no ephemeral grouping.
type BaselineOptions struct {
	// Require writes the rules under require: instead of allow:, so that a
	// service that stops is a finding too.
	Require bool
	// Ephemeral is the kernel's ephemeral port range
	// (net.ipv4.ip_local_port_range). A UDP listener of a known process in
	// that range gets a rule over the whole range, because such ports
	// (resolvers, NTP clients) change at every restart. Zero: no grouping.
	Ephemeral PortRange
	// Host and Time go into the header comment.
	Host string
	Time time.Time
}

// DefaultEphemeral is Linux's default ephemeral port range.
var DefaultEphemeral = PortRange{Lo: 32768, Hi: 60999}

// ParseLocalPortRange parses /proc/sys/net/ipv4/ip_local_port_range
// ("32768\t60999\n").
func ParseLocalPortRange(data []byte) (PortRange, error) {
	f := strings.Fields(string(data))
	if len(f) != 2 {
		return PortRange{}, fmt.Errorf("parsing ip_local_port_range %q: want two numbers", data)
	}
	lo, err1 := target.ParsePort(f[0])
	hi, err2 := target.ParsePort(f[1])
	if err1 != nil || err2 != nil || lo > hi {
		return PortRange{}, fmt.Errorf("parsing ip_local_port_range %q: want two ports, low first", data)
	}
	return PortRange{Lo: lo, Hi: hi}, nil
}

// baseScope is where a baseline rule looks: the host (the zero value), a
// container by name, or a network namespace by name.
type baseScope struct {
	// key is "container" or "netns"; "" for the host.
	key string
	// pattern is the value written, a shell pattern.
	pattern string
	// label names the scope in rule names and comments: "web-1".
	label string
	// note explains the pattern when it is not simply the name.
	note string
}

func (s baseScope) String() string { return s.key + "=" + s.pattern }

// baseRule is a rule being built by Baseline.
type baseRule struct {
	scope     baseScope
	protos    []inventory.Proto
	ports     []PortRange
	bind      []string // "any", "loopback" or addresses
	names     []string
	users     []string
	ephemeral bool
	sockets   []*inventory.Socket
}

func (r *baseRule) ownerKey() string {
	return r.scope.String() + "\x01" + strings.Join(r.names, "\x00") + "\x01" + strings.Join(r.users, "\x00")
}

// skipped is a listener that Baseline wrote no rule for, and why.
type skipped struct {
	so  *inventory.Socket
	why string
}

// Why baseline writes no rule for a socket, one comment line each: a key
// that would not name the same namespace after a restart would be a rule
// that silently allows nothing, or worse, something else.
const (
	whyOrphan = `In a network namespace with no process and no name: only its sockets keep
it alive, which is how a process hides a listener. To allow such a
listener on purpose, write a rule with netns: orphan.`
	whyNoName = `In a container with no name, only an id, which changes when the container
is recreated. Name the container, or write a rule with container: ID.`
)

// scopeOf says where the rule for a socket looks. Containers are keyed by
// name and `ip netns` namespaces by their name, never by id or inode: both
// change when a container is recreated or a namespace is added again. A
// namespace named after its first process ("pid 4242 (python3)") is keyed
// by the command alone, since the pid changes at every restart. A
// namespace with no name at all ("orphan") gets no rule.
func scopeOf(so *inventory.Socket, privileged bool) (baseScope, string) {
	if inHost(so) {
		return baseScope{}, ""
	}
	// Without root, the runtimes' state files (and so containers' names)
	// cannot be read, and a container rule could not be checked: the
	// namespace's name is used instead.
	if c := so.Container; c != nil && privileged {
		switch {
		case c.Pod != "":
			pat, generated := podPattern(c.Pod)
			if c.Namespace != "" {
				pat = globLiteral(c.Namespace) + "/" + pat
			}
			if c.Container != "" {
				pat += "/" + globLiteral(c.Container)
			}
			sc := baseScope{key: "container", pattern: pat, label: so.ContainerName()}
			if generated {
				sc.label = pat
				sc.note = "the pod's name ends in a suffix that Kubernetes generates anew for each pod, so the rule matches it with *"
			}
			return sc, ""
		case c.Name != "":
			return baseScope{key: "container", pattern: globLiteral(c.Name), label: c.Name}, ""
		}
		return baseScope{}, whyNoName
	}
	if c := so.Container; c != nil && c.Name == "" && c.Pod == "" && so.NetNSName == so.ContainerName() {
		return baseScope{}, whyNoName // named "runtime:id": an id all the same
	}
	name := so.NetNSName
	if name == "orphan" {
		return baseScope{}, whyOrphan
	}
	if comm, ok := firstProcessName(name); ok {
		return baseScope{key: "netns", pattern: "pid * (" + globLiteral(comm) + ")", label: "pid * (" + comm + ")",
			note: "the namespace has no name; it is known by its first process, whose pid changes at every restart, so the rule names the command only"}, ""
	}
	return baseScope{key: "netns", pattern: globLiteral(name), label: name}, ""
}

// firstProcessName returns comm from a namespace name "pid 4242 (comm)".
func firstProcessName(name string) (string, bool) {
	rest, ok := strings.CutPrefix(name, "pid ")
	if !ok {
		return "", false
	}
	pid, comm, ok := strings.Cut(rest, " (")
	if !ok || !target.IsDigits(pid) || !strings.HasSuffix(comm, ")") {
		return "", false
	}
	return strings.TrimSuffix(comm, ")"), true
}

// k8sRand are the characters of the suffixes Kubernetes generates for pod
// names (k8s.io/apimachinery/pkg/util/rand: no vowels, no 0, 1 or 3).
const k8sRand = "bcdfghjklmnpqrstvwxz2456789"

// podPattern turns a pod's name into a pattern that survives the pod
// being recreated. A Deployment's pods are named
// DEPLOYMENT-TEMPLATEHASH-XXXXX and a DaemonSet's DAEMONSET-XXXXX, both
// random: "web-7d9f8c6b5-x2k4p" becomes "web-*". A StatefulSet's pods
// (web-0) and bare pods keep their names.
func podPattern(pod string) (string, bool) {
	isRand := func(s string, lo, hi int) bool {
		if len(s) < lo || len(s) > hi {
			return false
		}
		for i := 0; i < len(s); i++ {
			if !strings.ContainsRune(k8sRand, rune(s[i])) {
				return false
			}
		}
		return true
	}
	i := strings.LastIndexByte(pod, '-')
	if i <= 0 || !isRand(pod[i+1:], 5, 5) {
		return globLiteral(pod), false
	}
	stem := pod[:i]
	if j := strings.LastIndexByte(stem, '-'); j > 0 && isRand(stem[j+1:], 6, 10) {
		stem = stem[:j]
	}
	return globLiteral(stem) + "-*", true
}

// Baseline writes a policy that allows exactly what listens in snap,
// commented, one rule per service: sockets of the same processes on the same
// protocol and bind scope share a rule, so SO_REUSEPORT groups and worker
// processes do not multiply rules. Checking snap against the result gives no
// findings. When snap could not see every process, the rules name no owners,
// so that the same unprivileged check stays clean.
func Baseline(w io.Writer, snap *inventory.Snapshot, o BaselineOptions) error {
	rules, left := baselineRules(snap, o)
	var b bytes.Buffer
	writeBaseline(&b, snap, o, rules, left)
	if _, err := w.Write(b.Bytes()); err != nil {
		return fmt.Errorf("writing baseline: %w", err)
	}
	return nil
}

func baselineRules(snap *inventory.Snapshot, o BaselineOptions) ([]*baseRule, []skipped) {
	owners := snap != nil && snap.Privileged
	var left []skipped
	// Stage 1: one group per (proto, port, namespace, owners).
	type k1 struct {
		proto inventory.Proto
		port  PortRange
		owner string
	}
	groups := map[k1]*baseRule{}
	var order []k1
	if snap != nil {
		for i := range snap.Sockets {
			so := &snap.Sockets[i]
			// Port 0 (an unbound UDP socket) cannot be written as a rule,
			// and nobody can reach it.
			if !so.Listening || so.Local.Port == 0 {
				continue
			}
			scope, why := scopeOf(so, owners)
			if why != "" {
				left = append(left, skipped{so, why})
				continue
			}
			r := &baseRule{scope: scope, protos: []inventory.Proto{so.Proto}}
			if owners {
				for _, p := range so.Processes {
					if p.Name != "" && !slices.Contains(r.names, p.Name) {
						r.names = append(r.names, p.Name)
					}
					u := p.User
					// A name the parser would refuse as a bad uid ("+0")
					// is written as the uid.
					if u == "" || !validUser(u) {
						u = strconv.FormatUint(uint64(p.UID), 10)
					}
					if !slices.Contains(r.users, u) {
						r.users = append(r.users, u)
					}
				}
				slices.Sort(r.names)
				slices.Sort(r.users)
			}
			port := PortRange{Lo: so.Local.Port, Hi: so.Local.Port}
			if so.Proto == inventory.UDP && len(r.names) > 0 && o.Ephemeral.Lo != 0 && o.Ephemeral.Contains(so.Local.Port) {
				port = o.Ephemeral
				r.ephemeral = true
			}
			key := k1{so.Proto, port, r.ownerKey()}
			g, ok := groups[key]
			if !ok {
				r.ports = []PortRange{port}
				groups[key] = r
				order = append(order, key)
				g = r
			}
			g.sockets = append(g.sockets, so)
			g.bind = addBind(g.bind, so)
		}
	}
	// Stage 2: merge the ports of groups with the same proto, owners and
	// bind scope: one rule per service.
	var merged []*baseRule
	byKey := map[string]*baseRule{}
	for _, k := range order {
		g := groups[k]
		slices.Sort(g.bind)
		key := string(g.protos[0]) + "\x02" + g.ownerKey() + "\x02" + strings.Join(g.bind, ",")
		if m, ok := byKey[key]; ok {
			m.ports = append(m.ports, g.ports...)
			m.sockets = append(m.sockets, g.sockets...)
			m.ephemeral = m.ephemeral || g.ephemeral
			continue
		}
		byKey[key] = g
		merged = append(merged, g)
	}
	for _, m := range merged {
		m.ports = mergeRanges(m.ports)
	}
	// Stage 3: a service on the same ports over TCP and UDP (DNS) is one
	// rule without a protocol.
	var out []*baseRule
	byKey = map[string]*baseRule{}
	for _, m := range merged {
		key := joinStrings(m.ports, ",") + "\x02" + m.ownerKey() + "\x02" + strings.Join(m.bind, ",")
		if x, ok := byKey[key]; ok && !slices.Contains(x.protos, m.protos[0]) {
			x.protos = append(x.protos, m.protos...)
			x.sockets = append(x.sockets, m.sockets...)
			x.ephemeral = x.ephemeral || m.ephemeral
			continue
		}
		byKey[key] = m
		out = append(out, m)
	}
	// The host's rules first, as before namespaces, then one namespace
	// after the other.
	slices.SortStableFunc(out, func(a, b *baseRule) int {
		if ah, bh := a.scope.key == "", b.scope.key == ""; ah != bh {
			if ah {
				return -1
			}
			return 1
		}
		if c := strings.Compare(a.scope.String(), b.scope.String()); c != 0 {
			return c
		}
		if a.ports[0].Lo != b.ports[0].Lo {
			return int(a.ports[0].Lo) - int(b.ports[0].Lo)
		}
		return strings.Compare(string(a.protos[0]), string(b.protos[0]))
	})
	return out, left
}

// mergeRanges sorts ranges and joins those that overlap or touch, so that
// a service on 20000, 20001, ... 20999 gets "20000-20999".
func mergeRanges(rs []PortRange) []PortRange {
	slices.SortFunc(rs, func(a, b PortRange) int { return int(a.Lo) - int(b.Lo) })
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 && int(r.Lo) <= int(out[n-1].Hi)+1 {
			if r.Hi > out[n-1].Hi {
				out[n-1].Hi = r.Hi
			}
			continue
		}
		out = append(out, r)
	}
	return out
}

// addBind adds the socket's bind scope: any for the wildcard, loopback for
// 127.0.0.0/8 and ::1, else the address itself.
func addBind(bind []string, so *inventory.Socket) []string {
	var s string
	a := so.Local.Address
	switch {
	case !a.IsValid() || a.IsUnspecified():
		s = "any"
	case a.Unmap().IsLoopback():
		s = "loopback"
	default:
		s = a.Unmap().WithZone("").String()
	}
	if slices.Contains(bind, "any") || slices.Contains(bind, s) {
		return bind
	}
	if s == "any" {
		return []string{"any"}
	}
	return append(bind, s)
}

func writeBaseline(b *bytes.Buffer, snap *inventory.Snapshot, o BaselineOptions, rules []*baseRule, left []skipped) {
	n := 0
	privileged := false
	if snap != nil {
		n = len(snap.Listeners())
		privileged = snap.Privileged
	}
	host := o.Host
	if host == "" {
		host = "this host"
	}
	b.WriteString("# porteiro policy, written by \"porteiro baseline\"")
	if !o.Time.IsZero() {
		b.WriteString(" at " + o.Time.UTC().Format(time.RFC3339))
	}
	fmt.Fprintf(b, "\n# from the %d listening socket(s) of %s.\n", n, commentText(host))
	b.WriteString("#\n# Each rule allows what listened then; edit freely (docs/policy.md). Anything\n")
	b.WriteString("# that no rule allows is an \"unexpected\" finding. Check with: porteiro check -p FILE\n")
	if !privileged {
		b.WriteString("#\n# This scan could not see every process (run as root, or with CAP_SYS_PTRACE\n")
		b.WriteString("# and CAP_DAC_READ_SEARCH), so the rules name no process or user, and name\n")
		b.WriteString("# containers by their network namespace's name.\n")
	}
	writeLeftOut(b, left)
	b.WriteString("version: 1\ndefault: deny\n\n")
	b.WriteString("# Listeners that are never a finding. Examples:\n")
	b.WriteString("#  - name: ephemeral-udp\n#    reason: resolver and NTP client sockets\n#    proto: udp\n#    port: 32768-60999\n")
	b.WriteString("ignore: []\n\n")
	sec := Allow
	if o.Require {
		sec = Require
		b.WriteString("# Each of these must be listening: a stopped service is a \"missing\" finding.\n")
	}
	if len(rules) == 0 {
		fmt.Fprintf(b, "%s: []\n", sec)
		return
	}
	fmt.Fprintf(b, "%s:\n", sec)
	used := map[string]int{}
	for i, r := range rules {
		if i > 0 {
			b.WriteByte('\n')
		}
		writeRuleComment(b, r, o)
		fmt.Fprintf(b, "  - name: %s\n", yamlQuote(uniqueName(used, r)))
		if r.scope.key != "" {
			fmt.Fprintf(b, "    %s: %s\n", r.scope.key, yamlQuote(r.scope.pattern))
		}
		if len(r.protos) == 1 {
			fmt.Fprintf(b, "    proto: %s\n", r.protos[0])
		}
		fmt.Fprintf(b, "    port: %s\n", yamlPorts(r.ports))
		fmt.Fprintf(b, "    bind: %s\n", yamlList(r.bind, func(s string) string {
			if s == "any" || s == "loopback" {
				return s
			}
			return yamlQuote(s)
		}))
		if len(r.names) > 0 {
			fmt.Fprintf(b, "    process: %s\n", yamlList(r.names, func(s string) string { return yamlQuote(globLiteral(s)) }))
		}
		if len(r.users) > 0 {
			fmt.Fprintf(b, "    user: %s\n", yamlList(r.users, func(s string) string { return yamlQuote(globLiteral(s)) }))
		}
	}
}

func uniqueName(used map[string]int, r *baseRule) string {
	owner := "unknown"
	if len(r.names) > 0 {
		owner = r.names[0]
	}
	proto := "tcp-udp"
	if len(r.protos) == 1 {
		proto = string(r.protos[0])
	}
	port := strconv.Itoa(int(r.ports[0].Lo))
	if r.ephemeral && len(r.ports) == 1 {
		port = "ephemeral"
	}
	name := commentText(owner) + "-" + proto + "-" + port
	if r.scope.key != "" {
		name += "@" + commentText(r.scope.label)
	}
	used[name]++
	if n := used[name]; n > 1 {
		name += "-" + strconv.Itoa(n)
		used[name]++
	}
	return name
}

// writeRuleComment names the processes behind a rule and the sockets it
// covers, so the admin editing the file knows what each rule is for.
func writeRuleComment(b *bytes.Buffer, r *baseRule, o BaselineOptions) {
	type proc struct {
		name, user, unit, cmd string
		pids                  []int
	}
	type procKey struct{ name, user, cmd string }
	// Maps keep this linear: a rule can cover thousands of sockets held
	// by hundreds of workers.
	var procs []*proc
	byKey := map[procKey]*proc{}
	seenPID := map[int]bool{}
	noOwner := inventory.ReasonNone
	for _, so := range r.sockets {
		if len(so.Processes) == 0 && noOwner == inventory.ReasonNone {
			noOwner = so.UnattributedReason
		}
		for i := range so.Processes {
			p := &so.Processes[i]
			if seenPID[p.PID] {
				continue
			}
			seenPID[p.PID] = true
			k := procKey{p.Name, p.User, p.CommandLine()}
			g := byKey[k]
			if g == nil {
				g = &proc{name: p.Name, user: p.User, unit: p.Unit, cmd: k.cmd}
				byKey[k] = g
				procs = append(procs, g)
			}
			g.pids = append(g.pids, p.PID)
		}
	}
	if r.scope.key != "" {
		// Replicas of a pod, or namespaces of the same command, share a
		// rule: name each of them.
		var wheres []string
		for _, so := range r.sockets {
			w := "network namespace " + so.NetNSName
			if c := so.Container; c != nil && r.scope.key == "container" {
				w = "container " + so.ContainerName() + " (" + c.Runtime
				if c.ID != "" {
					w += " " + c.ID[:min(len(c.ID), 12)]
				}
				w += ")"
			}
			if !slices.Contains(wheres, w) {
				wheres = append(wheres, w)
			}
		}
		if len(wheres) > 4 {
			wheres = append(wheres[:4], fmt.Sprintf("%d more", len(wheres)-4))
		}
		fmt.Fprintf(b, "  # in %s\n", commentText(strings.Join(wheres, ", ")))
	}
	if r.scope.note != "" {
		fmt.Fprintf(b, "  # %s.\n", r.scope.note)
	}
	const maxProcs = 4
	for i, p := range procs {
		if i == maxProcs {
			fmt.Fprintf(b, "  # ... and %d more\n", len(procs)-maxProcs)
			break
		}
		slices.Sort(p.pids)
		var ids []string
		for j, pid := range p.pids {
			if j == 6 {
				ids = append(ids, fmt.Sprintf("+%d", len(p.pids)-6))
				break
			}
			ids = append(ids, strconv.Itoa(pid))
		}
		label := "pid"
		if len(p.pids) > 1 {
			label = "pids"
		}
		detail := label + " " + strings.Join(ids, ",")
		if p.user != "" {
			detail += ", user " + p.user
		}
		if p.unit != "" {
			detail += ", unit " + p.unit
		}
		fmt.Fprintf(b, "  # %s (%s): %s\n", commentText(p.name), commentText(detail), commentText(oneLine(p.cmd, 100)))
	}
	if len(procs) == 0 {
		hint := noOwner.Hint()
		if hint == "" {
			hint = "owners not resolved"
		}
		fmt.Fprintf(b, "  # no process: %s\n", commentText(hint))
	}
	var socks []string
	// By name: replicas of a pod have the same listeners in namespaces of
	// their own.
	seen := map[string]bool{}
	for _, so := range r.sockets {
		k := listenerName(so)
		if seen[k] {
			continue
		}
		seen[k] = true
		if len(socks) < 6 {
			socks = append(socks, k)
		}
	}
	if len(seen) > 6 {
		socks = append(socks, fmt.Sprintf("and %d more", len(seen)-6))
	}
	fmt.Fprintf(b, "  # listening: %s (%d socket(s))\n", strings.Join(socks, ", "), len(r.sockets))
	if r.ephemeral {
		fmt.Fprintf(b, "  # UDP ports in the ephemeral range %s change at every restart: the whole range is allowed.\n", o.Ephemeral)
	}
}

// writeLeftOut lists, in the header, the listeners that got no rule and
// why: check reports them, and the admin should know that before, not
// from the first finding.
func writeLeftOut(b *bytes.Buffer, left []skipped) {
	if len(left) == 0 {
		return
	}
	fmt.Fprintf(b, "#\n# %d listening socket(s) got no rule, so check reports them.\n", len(left))
	var whys []string
	for _, s := range left {
		if !slices.Contains(whys, s.why) {
			whys = append(whys, s.why)
		}
	}
	const maxShown = 10
	for _, why := range whys {
		for _, l := range strings.Split(why, "\n") {
			b.WriteString("# " + l + "\n")
		}
		n := 0
		for _, s := range left {
			if s.why != why {
				continue
			}
			if n++; n > maxShown {
				continue
			}
			where := " in netns " + s.so.NetNSName
			if s.so.Container != nil {
				where = " in container " + s.so.ContainerName()
			}
			fmt.Fprintf(b, "#   %s%s, held by %s\n", listenerName(s.so), commentText(where), commentText(oneLine(ownersSummary(s.so), 100)))
		}
		if n > maxShown {
			fmt.Fprintf(b, "#   ... and %d more\n", n-maxShown)
		}
	}
}

// commentText makes s safe inside a YAML comment: one line, printable.
func commentText(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r < 0x20 || r == 0x7f || r == utf8.RuneError {
			b.WriteByte('?')
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// globLiteral turns a name into a pattern that matches exactly that name:
// shell metacharacters are escaped, and bytes that are not UTF-8 become ?
// (which path.Match lets match one such byte).
func globLiteral(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size <= 1 {
			b.WriteByte('?')
			i++
			continue
		}
		if strings.ContainsRune(`*?[\`, r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
		i += size
	}
	return b.String()
}

// yamlQuote writes a YAML double-quoted string. Go's escapes (\n, \x07,
// \u2028...) are a subset of YAML's, and the input is valid UTF-8.
func yamlQuote(s string) string { return strconv.Quote(strings.ToValidUTF8(s, "?")) }

func yamlList(xs []string, f func(string) string) string {
	if len(xs) == 1 {
		return f(xs[0])
	}
	parts := make([]string, len(xs))
	for i, x := range xs {
		parts[i] = f(x)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func yamlPorts(ps []PortRange) string {
	parts := make([]string, len(ps))
	for i, p := range ps {
		parts[i] = p.String() // a bare 8000-8100 reads as a YAML string
	}
	if len(parts) == 1 {
		return parts[0]
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

package policy

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"path"
	"strconv"
	"strings"

	"github.com/goccy/go-yaml/ast"

	"github.com/porteiro/porteiro/internal/target"
	"github.com/porteiro/porteiro/internal/yamlx"
	"github.com/porteiro/porteiro/inventory"
)

// Error is one problem in a policy file, at a position. It is the error
// type of the config file too.
type Error = yamlx.Error

// ErrorList is every problem found in a policy file, in file order. Its
// message has one line per problem.
type ErrorList = yamlx.ErrorList

// maxErrors bounds the list so that a binary file fed by mistake does not
// print a page per byte.
const maxErrors = 20

// maxUnknown is how many unknown top-level keys are reported one by one:
// more mean the file is not a policy at all.
const maxUnknown = 3

var topKeys = []string{"version", "default", "ignore", "allow", "require"}
var ruleKeys = []string{"name", "reason", "proto", "port", "bind", "process", "exe", "user", "unit", "container", "netns"}

// Parse parses and validates a policy. filename is used in error messages
// only. A non-nil error is an ErrorList.
func Parse(data []byte, filename string) (*Policy, error) {
	ps := &parseState{data: data, file: filename, anchors: map[string]ast.Node{}}
	pol := ps.parse(data)
	if len(ps.errs) > 0 {
		ps.errs.Sort()
		if len(ps.errs) > maxErrors {
			ps.errs = ps.errs[:maxErrors]
		}
		return nil, ps.errs
	}
	pol.idx = buildIndex(pol.Rules)
	return pol, nil
}

type parseState struct {
	data    []byte
	file    string
	errs    ErrorList
	anchors map[string]ast.Node
}

func (ps *parseState) errorAt(line, col int, format string, a ...any) {
	if line < 1 {
		line = 1
	}
	if col < 1 {
		col = 1
	}
	ps.errs = append(ps.errs, &Error{File: ps.file, Line: line, Column: col, Msg: fmt.Sprintf(format, a...)})
}

func (ps *parseState) errorf(n ast.Node, format string, a ...any) {
	l, c := yamlx.NodePos(n)
	ps.errorAt(l, c, format, a...)
}

func (ps *parseState) parse(data []byte) *Policy {
	pol := &Policy{File: ps.file}
	if strings.TrimSpace(string(data)) == "" {
		ps.errorAt(1, 1, "empty policy: write at least \"version: 1\" and an allow list (porteiro baseline writes one)")
		return pol
	}
	f, err := yamlx.Parse(ps.file, data)
	var doc ast.Node
	if err == nil {
		doc, err = yamlx.Body(ps.file, f, "a policy")
	}
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			ps.errs = append(ps.errs, e)
		} else {
			ps.errorAt(1, 1, "%v", err)
		}
		return pol
	}
	if doc == nil {
		ps.errorAt(1, 1, "empty policy: the file has only comments; write at least \"version: 1\" and an allow list")
		return pol
	}
	return ps.parseBody(pol, doc)
}

func (ps *parseState) parseBody(pol *Policy, doc ast.Node) *Policy {
	body := ps.resolve(doc)
	m, ok := ps.mapping(body, "the policy")
	if !ok {
		return pol
	}
	seen := map[string]*Rule{}
	unknown := 0
	for _, kv := range m {
		switch kv.key {
		case "version":
			v, ok := ps.scalar(kv.value, "version")
			if ok && v != "1" {
				ps.errorf(kv.value, "unsupported policy version %s: this porteiro reads version 1", word(v))
			}
		case "default":
			v, ok := ps.scalar(kv.value, "default")
			if !ok {
				break
			}
			switch v {
			case "deny":
				pol.DefaultAllow = false
			case "allow":
				pol.DefaultAllow = true
			default:
				ps.errorf(kv.value, "bad default %s: want deny (anything not allowed is a finding) or allow", yamlx.Quote(v))
			}
		case "ignore", "allow", "require":
			ps.rules(pol, Section(kv.key), kv.value, seen)
		default:
			unknown++
			switch {
			case unknown <= maxUnknown:
				ps.errorf(kv.keyNode, "unknown key %s: want one of %s", yamlx.QuoteKey(kv.key), strings.Join(topKeys, ", "))
			case unknown == maxUnknown+1:
				ps.errorf(kv.keyNode, "more unknown keys follow: is this a porteiro policy file?")
			}
		}
	}
	return pol
}

// explicitNull reports whether a null was written (~, null), rather than
// left out ("allow:" alone). go-yaml gives both the same token.
func (ps *parseState) explicitNull(n *ast.NullNode) bool {
	tk := n.GetToken()
	if tk == nil || tk.Position == nil {
		return false
	}
	line, col := tk.Position.Line, tk.Position.Column
	off := 0
	for l := 1; l < line && off < len(ps.data); l++ {
		i := bytes.IndexByte(ps.data[off:], '\n')
		if i < 0 {
			return false
		}
		off += i + 1
	}
	rest := ps.data[off:]
	if i := bytes.IndexByte(rest, '\n'); i >= 0 {
		rest = rest[:i]
	}
	rs := []rune(string(rest))
	if col < 1 || col > len(rs) {
		return false
	}
	v := string(rs[col-1:])
	for _, w := range []string{"~", "null", "Null", "NULL"} {
		if strings.HasPrefix(v, w) {
			return true
		}
	}
	return false
}

// resolve follows anchors, aliases and tags to the node that holds the value.
func (ps *parseState) resolve(n ast.Node) ast.Node {
	for i := 0; i < 64 && n != nil; i++ {
		switch v := n.(type) {
		case *ast.AnchorNode:
			if v.Name != nil && v.Name.GetToken() != nil {
				ps.anchors[v.Name.GetToken().Value] = v.Value
			}
			n = v.Value
		case *ast.AliasNode:
			name := ""
			if v.Value != nil && v.Value.GetToken() != nil {
				name = v.Value.GetToken().Value
			}
			target, ok := ps.anchors[name]
			if !ok {
				ps.errorf(v, "unknown alias *%s: define the anchor &%s first", word(name), word(name))
				return nil
			}
			n = target
		case *ast.TagNode:
			n = v.Value
		case *ast.CommentGroupNode, *ast.CommentNode:
			return nil
		default:
			return n
		}
	}
	return n
}

type keyValue struct {
	key     string
	keyNode ast.Node
	value   ast.Node
}

// mapping returns the entries of a mapping node, or reports what it got.
func (ps *parseState) mapping(n ast.Node, what string) ([]keyValue, bool) {
	var entries []*ast.MappingValueNode
	switch v := n.(type) {
	case nil:
		return nil, false // an unknown alias, already reported
	case *ast.MappingNode:
		entries = v.Values
	case *ast.MappingValueNode:
		entries = []*ast.MappingValueNode{v}
	default:
		ps.errorf(n, "%s must be a mapping of keys to values, not %s", what, describeNode(n))
		return nil, false
	}
	out := make([]keyValue, 0, len(entries))
	for _, e := range entries {
		if _, ok := e.Key.(*ast.MergeKeyNode); ok {
			ps.errorf(e.Key, "merge keys (<<) are not supported in a policy; repeat the keys, or use an alias for the whole value")
			continue
		}
		k, ok := ps.scalar(e.Key, "a key")
		if !ok {
			continue
		}
		out = append(out, keyValue{key: k, keyNode: e.Key, value: ps.resolve(e.Value)})
	}
	return out, true
}

func describeNode(n ast.Node) string {
	switch n.(type) {
	case nil, *ast.NullNode:
		return "nothing"
	case *ast.SequenceNode:
		return "a list"
	case *ast.MappingNode, *ast.MappingValueNode:
		return "a mapping"
	case *ast.StringNode, *ast.LiteralNode:
		return "a string"
	case *ast.IntegerNode, *ast.FloatNode, *ast.InfinityNode, *ast.NanNode:
		return "a number"
	case *ast.BoolNode:
		return "a boolean"
	}
	return "a " + n.Type().String()
}

// scalar returns the text of a scalar node. Numbers and booleans keep the
// text they were written with, so "user: 0" reads as "0".
func (ps *parseState) scalar(n ast.Node, what string) (string, bool) {
	n = ps.resolve(n)
	switch v := n.(type) {
	case nil:
		return "", false // an unknown alias, already reported
	case *ast.StringNode:
		return v.Value, true
	case *ast.LiteralNode:
		if v.Value != nil {
			return strings.TrimRight(v.Value.Value, "\n"), true
		}
	case *ast.IntegerNode, *ast.FloatNode, *ast.BoolNode, *ast.InfinityNode, *ast.NanNode:
		if tk := v.GetToken(); tk != nil {
			return tk.Value, true
		}
	}
	ps.errorf(n, "%s must be a single value, not %s", what, describeNode(n))
	return "", false
}

// list returns the items of a value that may be one scalar or a list.
func (ps *parseState) list(n ast.Node, what string) []ast.Node {
	switch v := n.(type) {
	case *ast.SequenceNode:
		if len(v.Values) == 0 {
			ps.errorf(n, "%s is an empty list: remove the key to match anything", what)
			return nil
		}
		out := make([]ast.Node, 0, len(v.Values))
		for _, x := range v.Values {
			out = append(out, ps.resolve(x))
		}
		return out
	case nil:
		return nil // an unknown alias, already reported
	case *ast.NullNode:
		ps.errorf(n, "%s has no value: remove the key to match anything", what)
		return nil
	}
	return []ast.Node{n}
}

func (ps *parseState) rules(pol *Policy, sec Section, n ast.Node, seen map[string]*Rule) {
	var items []ast.Node
	switch v := n.(type) {
	case nil:
		return // an unknown alias, already reported
	case *ast.NullNode:
		// "allow:" alone is an empty list; "allow: ~" says "nothing" on
		// purpose, and may be a rule list lost in an edit.
		if ps.explicitNull(v) {
			ps.errorf(n, "%s is null: write %s: [] for an empty list, or remove the key", sec, sec)
		}
		return
	case *ast.SequenceNode:
		for _, x := range v.Values {
			items = append(items, ps.resolve(x))
		}
	default:
		ps.errorf(n, "%s must be a list of rules (each starting with \"- \"), not %s", sec, describeNode(n))
		return
	}
	for i, item := range items {
		r, ok := ps.rule(sec, i+1, item)
		if r == nil {
			continue
		}
		// Names are checked even on a rule with other errors, so that one
		// run reports everything.
		if prev, dup := seen[r.Name]; dup {
			ps.errorAt(r.Line, r.Column, "duplicate rule name %q (first used at line %d): rule names must be unique", r.Name, prev.Line)
			continue
		}
		seen[r.Name] = r
		if ok {
			pol.Rules = append(pol.Rules, r)
		}
	}
}

// rule parses one rule. It returns the rule, even a partial one, whenever
// the entry is a mapping, and whether it is free of errors.
func (ps *parseState) rule(sec Section, idx int, n ast.Node) (*Rule, bool) {
	kvs, ok := ps.mapping(n, fmt.Sprintf("%s rule %d", sec, idx))
	if !ok {
		return nil, false
	}
	r := &Rule{Section: sec, Name: fmt.Sprintf("%s[%d]", sec, idx)}
	r.Line, r.Column = yamlx.NodePos(n)
	nerr := len(ps.errs)
	for _, kv := range kvs {
		switch kv.key {
		case "name":
			if v, ok := ps.scalar(kv.value, "name"); ok {
				if strings.TrimSpace(v) == "" {
					ps.errorf(kv.value, "empty rule name")
					break
				}
				if strings.ContainsAny(v, "\n\r") {
					ps.errorf(kv.value, "a rule name must be one line")
					break
				}
				r.Name = v
				r.Line, r.Column = yamlx.NodePos(kv.value)
			}
		case "reason":
			if v, ok := ps.scalar(kv.value, "reason"); ok {
				r.Reason = strings.Join(strings.Fields(v), " ")
			}
		case "proto":
			for _, x := range ps.list(kv.value, "proto") {
				v, ok := ps.scalar(x, "proto")
				if !ok {
					continue
				}
				p, err := inventory.ParseProto(strings.ToLower(v))
				if err != nil {
					ps.errorf(x, "unknown protocol %s: want tcp or udp", yamlx.Quote(v))
					continue
				}
				r.Protos = append(r.Protos, p)
			}
		case "port":
			for _, x := range ps.list(kv.value, "port") {
				if pr, ok := ps.port(x); ok {
					r.Ports = append(r.Ports, pr)
				}
			}
		case "bind":
			for _, x := range ps.list(kv.value, "bind") {
				if b, ok := ps.bind(x); ok {
					r.Bind = append(r.Bind, b)
				}
			}
		case "process":
			r.Process = ps.patterns(kv.value, "process")
		case "exe":
			r.Exe = ps.patterns(kv.value, "exe")
		case "user":
			r.User = ps.patterns(kv.value, "user")
		case "unit":
			r.Unit = ps.patterns(kv.value, "unit")
		case "netns":
			r.NetNS = ps.patterns(kv.value, "netns")
		case "container":
			r.Container = ps.patterns(kv.value, "container")
		default:
			ps.errorf(kv.keyNode, "unknown key %s in %s rule: want one of %s", yamlx.QuoteKey(kv.key), sec, strings.Join(ruleKeys, ", "))
		}
	}
	conds := 0
	for _, kv := range kvs {
		if kv.key != "name" && kv.key != "reason" {
			conds++
		}
	}
	if conds == 0 {
		// "- {}" or a rule with only a name would match every socket:
		// almost always a rule whose conditions were lost in an edit.
		l, c := yamlx.NodePos(n)
		ps.errorAt(l, c, "%s rule %s has no conditions and would match every socket: add port, proto, bind, netns, container, process, exe, user or unit (to allow everything, write default: allow)", sec, yamlx.Quote(r.Name))
	}
	return r, len(ps.errs) == nerr
}

// port parses 22, "22", "8000-8100" or 8000-8100 (a YAML string).
func (ps *parseState) port(n ast.Node) (PortRange, bool) {
	var s string
	if in, ok := n.(*ast.IntegerNode); ok {
		// The number as written: YAML reads 0x16 as 22, and the command
		// line does not.
		s = in.GetToken().Value
	} else {
		var ok bool
		if s, ok = ps.scalar(n, "port"); !ok {
			return PortRange{}, false
		}
	}
	pr, err := ParsePortRange(s)
	if err != nil {
		ps.errorf(n, "%v", err)
		return PortRange{}, false
	}
	return pr, true
}

// ParsePortRange parses "22" or "8000-8100", with target.ParseRange, the
// parser the command line uses too.
func ParsePortRange(s string) (PortRange, error) {
	s = strings.TrimSpace(s)
	if n, proto, ok := strings.Cut(s, "/"); ok && target.IsDigits(strings.TrimSpace(n)) {
		return PortRange{}, fmt.Errorf("bad port %s: write the protocol apart, as port: %s and proto: %s", yamlx.Quote(s), strings.TrimSpace(n), word(strings.TrimSpace(proto)))
	}
	if s == "" || !(s[0] >= '0' && s[0] <= '9' || s[0] == '-' || s[0] == '+') {
		return PortRange{}, fmt.Errorf("bad port %s: want a number 1-65535 or a range such as 8000-8100 (not a service name)", yamlx.Quote(s))
	}
	return target.ParseRange(s)
}

func (ps *parseState) bind(n ast.Node) (Bind, bool) {
	s, ok := ps.scalar(n, "bind")
	if !ok {
		return Bind{}, false
	}
	b, err := ParseBind(s)
	if err != nil {
		ps.errorf(n, "%v", err)
		return Bind{}, false
	}
	return b, true
}

// ParseBind parses loopback, any, an address or a CIDR.
func ParseBind(s string) (Bind, error) {
	s = strings.TrimSpace(s)
	switch strings.ToLower(s) {
	case "any":
		return Bind{Kind: BindAny}, nil
	case "loopback":
		return Bind{Kind: BindLoopback}, nil
	case "*":
		return Bind{}, fmt.Errorf("bad bind %s: write any (every address) or 0.0.0.0 / :: (the wildcard address only)", yamlx.Quote(s))
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return Bind{}, fmt.Errorf("bad bind CIDR %s: want loopback, any, an address such as 192.0.2.1 or a CIDR such as 10.0.0.0/8", yamlx.Quote(s))
		}
		if p.Addr().Is4In6() {
			return Bind{}, fmt.Errorf("bad bind CIDR %s: write IPv4 CIDRs in dotted form", yamlx.Quote(s))
		}
		if p.Masked() != p {
			return Bind{}, fmt.Errorf("bad bind CIDR %s: it has host bits set; did you mean %s?", yamlx.Quote(s), p.Masked())
		}
		return Bind{Kind: BindPrefix, Prefix: p}, nil
	}
	a, err := netip.ParseAddr(strings.Trim(s, "[]"))
	if err != nil {
		return Bind{}, fmt.Errorf("bad bind %s: want loopback, any, an address such as 192.0.2.1 or a CIDR such as 10.0.0.0/8", yamlx.Quote(s))
	}
	a = a.Unmap().WithZone("")
	return Bind{Kind: BindPrefix, Prefix: netip.PrefixFrom(a, a.BitLen())}, nil
}

// word returns s as it is when it is a short plain word, and as a short
// escaped excerpt otherwise: a file's text is never echoed whole.
func word(s string) string {
	if len(s) == 0 || len(s) > 40 {
		return yamlx.Quote(s)
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return yamlx.Quote(s)
		}
	}
	return s
}

// validUser refuses numbers that cannot be a uid: negative, signed, or
// beyond 32 bits. They would never match, silently.
func validUser(v string) bool {
	t := strings.TrimLeft(v, "+-")
	if t != v && target.IsDigits(t) {
		return false
	}
	if target.IsDigits(v) {
		_, err := strconv.ParseUint(v, 10, 32)
		return err == nil
	}
	return true
}

func (ps *parseState) patterns(n ast.Node, what string) []string {
	var out []string
	for _, x := range ps.list(n, what) {
		v, ok := ps.scalar(x, what)
		if !ok {
			continue
		}
		if v == "" {
			ps.errorf(x, "empty %s: remove the key to match anything", what)
			continue
		}
		if _, err := path.Match(v, ""); err != nil {
			ps.errorf(x, "bad %s pattern %s: %v (escape a literal *, ? or [ with a backslash)", what, yamlx.Quote(v), err)
			continue
		}
		if what == "user" && !validUser(v) {
			ps.errorf(x, "bad user %s: want a user name or a uid 0-4294967295", yamlx.Quote(v))
			continue
		}
		out = append(out, v)
	}
	return out
}

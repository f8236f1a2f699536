package policy

import (
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/porteiro/porteiro/inventory"
)

func mustParse(t *testing.T, src string) *Policy {
	t.Helper()
	p, err := Parse([]byte(src), "p.yaml")
	if err != nil {
		t.Fatalf("Parse:\n%s\nerror: %v", src, err)
	}
	return p
}

func TestParseRuleKinds(t *testing.T) {
	src := `version: 1
default: deny
ignore:
  - name: ephemeral
    reason: resolver sockets
    proto: udp
    port: 32768-60999
  - bind: loopback
allow:
  - name: ssh
    reason: remote administration
    proto: tcp
    port: 22
    bind: any
    process: sshd
    exe: /usr/sbin/sshd
    user: root
    unit: ssh.service
  - name: web
    proto: [tcp, UDP]
    port: [80, 443, "8000-8100", 9000-9001]
    bind: [10.0.0.0/8, "::1", 192.0.2.7, "fe80::/10"]
    process: [nginx, "php-fpm*"]
    user: [www-data, 0]
    container: 3f2a9c
require:
  - name: db
    port: 5432
    bind: 127.0.0.1
`
	p := mustParse(t, src)
	if p.DefaultAllow {
		t.Error("DefaultAllow = true, want false")
	}
	if got := len(p.Rules); got != 5 {
		t.Fatalf("got %d rules, want 5", got)
	}
	names := []string{}
	for _, r := range p.Rules {
		names = append(names, string(r.Section)+":"+r.Name)
	}
	want := []string{"ignore:ephemeral", "ignore:ignore[2]", "allow:ssh", "allow:web", "require:db"}
	if !reflect.DeepEqual(names, want) {
		t.Errorf("rules = %v, want %v", names, want)
	}
	eph := p.Rules[0]
	if eph.Reason != "resolver sockets" || !reflect.DeepEqual(eph.Protos, []inventory.Proto{inventory.UDP}) ||
		!reflect.DeepEqual(eph.Ports, []PortRange{{Lo: 32768, Hi: 60999}}) {
		t.Errorf("ephemeral rule = %+v", eph)
	}
	if b := p.Rules[1].Bind; len(b) != 1 || b[0].Kind != BindLoopback {
		t.Errorf("ignore[2] bind = %v, want loopback", b)
	}
	ssh := p.Rules[2]
	if ssh.Line != 10 || ssh.Column != 11 {
		t.Errorf("ssh position = %d:%d, want 10:11 (its name)", ssh.Line, ssh.Column)
	}
	if !reflect.DeepEqual(ssh.Process, []string{"sshd"}) || !reflect.DeepEqual(ssh.Exe, []string{"/usr/sbin/sshd"}) ||
		!reflect.DeepEqual(ssh.User, []string{"root"}) || !reflect.DeepEqual(ssh.Unit, []string{"ssh.service"}) ||
		len(ssh.Bind) != 1 || ssh.Bind[0].Kind != BindAny {
		t.Errorf("ssh rule = %+v", ssh)
	}
	web := p.Rules[3]
	if !reflect.DeepEqual(web.Protos, []inventory.Proto{inventory.TCP, inventory.UDP}) {
		t.Errorf("web protos = %v", web.Protos)
	}
	if !reflect.DeepEqual(web.Ports, []PortRange{{Lo: 80, Hi: 80}, {Lo: 443, Hi: 443}, {Lo: 8000, Hi: 8100}, {Lo: 9000, Hi: 9001}}) {
		t.Errorf("web ports = %v", web.Ports)
	}
	if got := joinStrings(web.Bind, " "); got != "10.0.0.0/8 ::1 192.0.2.7 fe80::/10" {
		t.Errorf("web bind = %q", got)
	}
	if !reflect.DeepEqual(web.User, []string{"www-data", "0"}) || !reflect.DeepEqual(web.Container, []string{"3f2a9c"}) {
		t.Errorf("web owners = %+v", web)
	}
	if !p.NeedsOwners() {
		t.Error("NeedsOwners = false, want true")
	}
	if p.Count(Allow) != 2 || p.Count(Ignore) != 2 || p.Count(Require) != 1 {
		t.Errorf("counts = %d %d %d", p.Count(Allow), p.Count(Ignore), p.Count(Require))
	}
}

func TestParseMinimal(t *testing.T) {
	for _, src := range []string{
		"version: 1\n",
		"allow:\n",
		"allow: []\nignore: []\nrequire: []\n",
		"default: allow\n",
		"# comment\n---\nallow: [{port: 22}]\n",
	} {
		p := mustParse(t, src)
		if p.NeedsOwners() {
			t.Errorf("%q: NeedsOwners = true", src)
		}
	}
	p := mustParse(t, "default: allow\n")
	if !p.DefaultAllow {
		t.Error("default: allow not read")
	}
}

func TestParseAliases(t *testing.T) {
	p := mustParse(t, `allow:
  - &web
    name: web
    port: &ports [80, 443]
    process: nginx
  - name: web-alt
    port: *ports
    user: www-data
`)
	if got := p.Rules[1].Ports; !reflect.DeepEqual(got, []PortRange{{Lo: 80, Hi: 80}, {Lo: 443, Hi: 443}}) {
		t.Errorf("alias ports = %v", got)
	}
	_, err := Parse([]byte("allow:\n  - port: *nope\n"), "p.yaml")
	if err == nil || !strings.Contains(err.Error(), "p.yaml:2:11: unknown alias *nope") {
		t.Errorf("unknown alias: err = %v", err)
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"port out of range", "allow:\n  - port: 70000\n", "p.yaml:2:11: port 70000 is out of range: ports are 1-65535"},
		{"port zero", "allow:\n  - port: 0\n", "p.yaml:2:11: port 0 is out of range"},
		{"port negative", "allow:\n  - port: -5\n", "p.yaml:2:11: port -5 is out of range"},
		{"port string out of range", "allow:\n  - port: \"99999\"\n", "p.yaml:2:11: port 99999 is out of range"},
		{"reversed range", "allow:\n  - port: 90-80\n", "p.yaml:2:11: port range 90-80 is reversed: write 80-90"},
		{"range in list", "allow:\n  - port: [22, 90-80]\n", "p.yaml:2:16: port range 90-80 is reversed"},
		{"range out of range", "allow:\n  - port: 1-70000\n", "p.yaml:2:11: port 70000 is out of range"},
		{"bad port word", "allow:\n  - port: ssh\n", `p.yaml:2:11: bad port "ssh": want a number 1-65535 or a range such as 8000-8100 (not a service name)`},
		{"port with proto", "allow:\n  - port: 22/tcp\n", `p.yaml:2:11: bad port "22/tcp": write the protocol apart, as port: 22 and proto: tcp`},
		{"port mapping", "allow:\n  - port: {a: 1}\n", "p.yaml:2:11: port must be a single value, not a mapping"},
		{"unknown rule key", "allow:\n  - name: x\n    prot: tcp\n", `p.yaml:3:5: unknown key "prot" in allow rule: want one of name, reason, proto, port`},
		{"unknown top key", "version: 1\nallwo: []\n", `p.yaml:2:1: unknown key "allwo": want one of version, default, ignore, allow, require`},
		{"bad CIDR", "allow:\n  - bind: 10.0.0.0/33\n", `p.yaml:2:11: bad bind CIDR "10.0.0.0/33"`},
		{"CIDR host bits", "allow:\n  - bind: 10.0.0.1/8\n", `p.yaml:2:11: bad bind CIDR "10.0.0.1/8": it has host bits set; did you mean 10.0.0.0/8?`},
		{"bad address", "allow:\n  - bind: [loopback, 300.1.1.1]\n", `p.yaml:2:22: bad bind "300.1.1.1"`},
		{"star bind", "allow:\n  - bind: \"*\"\n", `p.yaml:2:11: bad bind "*": write any`},
		{"duplicate names", "allow:\n  - name: ssh\n    port: 22\nrequire:\n  - name: ssh\n    port: 22\n", `p.yaml:5:11: duplicate rule name "ssh" (first used at line 2)`},
		{"empty file", "", "p.yaml:1:1: empty policy"},
		{"blank file", "\n  \n\t\n", "p.yaml:1:1: empty policy"},
		{"only comments", "# nothing here\n", "p.yaml:1:1: empty policy"},
		{"not yaml", "allow: [1,\n", "p.yaml:1:8: not valid YAML"},
		{"not yaml nested", "allow:\n  - port: 22\n   bad: : :\n", "p.yaml:3:"},
		{"scalar document", "hello\n", "p.yaml:1:1: the policy must be a mapping of keys to values, not a string"},
		{"list document", "- port: 22\n", "p.yaml:1:1: the policy must be a mapping of keys to values, not a list"},
		{"allow not list", "allow: 22\n", `p.yaml:1:8: allow must be a list of rules`},
		{"rule not mapping", "allow:\n  - 22\n", "p.yaml:2:5: allow rule 1 must be a mapping of keys to values, not a number"},
		{"bad proto", "allow:\n  - proto: sctp\n", `p.yaml:2:12: unknown protocol "sctp"`},
		{"bad default", "default: maybe\n", `p.yaml:1:10: bad default "maybe"`},
		{"bad version", "version: 2\n", "p.yaml:1:10: unsupported policy version 2"},
		{"empty list", "allow:\n  - process: []\n", "p.yaml:2:14: process is an empty list"},
		{"null value", "allow:\n  - user:\n", "p.yaml:2:"},
		{"bad glob", "allow:\n  - process: \"ngin[x\"\n", `p.yaml:2:14: bad process pattern "ngin[x"`},
		{"empty name", "allow:\n  - name: \"\"\n", "p.yaml:2:11: empty rule name"},
		{"two documents", "allow: []\n---\nignore: []\n", "p.yaml:3:1: a policy is one YAML document"},
		{"merge key", "base: &b {port: 22}\n", `unknown key "base"`},
		{"merge key in rule", "allow:\n  - <<: {port: 22}\n", "merge keys (<<) are not supported"},
		{"duplicate key", "allow: []\nallow: []\n", "p.yaml:2:1: not valid YAML"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Parse([]byte(tt.src), "p.yaml")
			if err == nil {
				t.Fatalf("Parse(%q) = %+v, want error %q", tt.src, p, tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse(%q) error:\n  %v\nwant it to contain:\n  %s", tt.src, err, tt.want)
			}
			var pe *Error
			if !errors.As(err, &pe) {
				t.Fatalf("error %T is not a *policy.Error", err)
			}
			if pe.File != "p.yaml" || pe.Line < 1 || pe.Column < 1 {
				t.Errorf("error position %s:%d:%d", pe.File, pe.Line, pe.Column)
			}
		})
	}
}

// Several problems are all reported, in file order, one per line.
func TestParseReportsEveryError(t *testing.T) {
	_, err := Parse([]byte("allow:\n  - port: 70000\n    bind: nowhere\n  - port: 90-80\n"), "p.yaml")
	if err == nil {
		t.Fatal("no error")
	}
	lines := strings.Split(err.Error(), "\n")
	if len(lines) != 3 {
		t.Fatalf("got %d error lines, want 3:\n%v", len(lines), err)
	}
	for i, prefix := range []string{"p.yaml:2:11:", "p.yaml:3:11:", "p.yaml:4:11:"} {
		if !strings.HasPrefix(lines[i], prefix) {
			t.Errorf("line %d = %q, want prefix %q", i, lines[i], prefix)
		}
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "policy.yaml")
	if err := os.WriteFile(path, []byte("allow:\n  - port: 70000\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := Load(path)
	if err == nil || !strings.HasPrefix(err.Error(), path+":2:11: ") {
		t.Errorf("Load error = %v, want it to start with %s:2:11:", err, path)
	}
	_, err = Load(filepath.Join(dir, "absent.yaml"))
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Load(absent) = %v, want ErrNotExist", err)
	}
}

func TestParseBind(t *testing.T) {
	tests := []struct {
		bind  string
		addr  string
		match bool
	}{
		{"any", "0.0.0.0", true},
		{"any", "::", true},
		{"loopback", "127.0.0.53", true},
		{"loopback", "::1", true},
		{"loopback", "::ffff:127.0.0.1", true},
		{"loopback", "0.0.0.0", false},
		{"loopback", "10.0.0.1", false},
		{"0.0.0.0", "0.0.0.0", true},
		{"0.0.0.0", "::", false},
		{"::", "::", true},
		{"10.0.0.0/8", "10.1.2.3", true},
		{"10.0.0.0/8", "::ffff:10.1.2.3", true},
		{"10.0.0.0/8", "0.0.0.0", false},
		{"[fe80::1]", "fe80::1", true},
		{"fe80::/10", "fe80::1%eth0", true},
	}
	for _, tt := range tests {
		b, err := ParseBind(tt.bind)
		if err != nil {
			t.Fatalf("ParseBind(%q): %v", tt.bind, err)
		}
		if got := b.Matches(netip.MustParseAddr(tt.addr)); got != tt.match {
			t.Errorf("bind %q matches %s = %v, want %v", tt.bind, tt.addr, got, tt.match)
		}
	}
}

func TestParseLocalPortRange(t *testing.T) {
	r, err := ParseLocalPortRange([]byte("32768\t60999\n"))
	if err != nil || r != (PortRange{Lo: 32768, Hi: 60999}) {
		t.Errorf("got %v, %v", r, err)
	}
	for _, bad := range []string{"", "1", "60999 32768", "0 10", "a b", "1 2 3"} {
		if _, err := ParseLocalPortRange([]byte(bad)); err == nil {
			t.Errorf("ParseLocalPortRange(%q) = nil error", bad)
		}
	}
}

func TestParseDuplicateNameOnBrokenRule(t *testing.T) {
	_, err := Parse([]byte("allow:\n  - name: ssh\n    port: 70000\n  - name: ssh\n    prto: tcp\n"), "p.yaml")
	want := "p.yaml:3:11: port 70000 is out of range: ports are 1-65535\n" +
		"p.yaml:4:11: duplicate rule name \"ssh\" (first used at line 2): rule names must be unique\n" +
		"p.yaml:5:5: unknown key \"prto\" in allow rule: want one of name, reason, proto, port, bind, process, exe, user, unit, container, netns"
	if err == nil || err.Error() != want {
		t.Errorf("error:\n%v\nwant:\n%s", err, want)
	}
}

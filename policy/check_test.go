package policy

import (
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/porteiro/porteiro/inventory"
)

type proc struct {
	pid        int
	name, user string
	uid        uint32
	cmd        string
	unit       string
}

// sock builds a listening socket the way the scanner fills it.
func sock(proto inventory.Proto, addr string, port uint16, inode uint64, procs ...proc) inventory.Socket {
	a := netip.MustParseAddr(addr)
	fam := inventory.IPv4
	if a.Is6() {
		fam = inventory.IPv6
	}
	so := inventory.Socket{
		Proto: proto, Family: fam, Listening: true, Inode: inode,
		Local:    inventory.Endpoint{Address: a, Port: port},
		Exposure: inventory.ExposureOf(a),
	}
	for _, p := range procs {
		var cmdline []string
		if p.cmd != "" {
			cmdline = strings.Fields(p.cmd)
		}
		so.Processes = append(so.Processes, inventory.Process{ProcessInfo: &inventory.ProcessInfo{
			PID:     p.pid,
			Name:    p.name,
			User:    p.user,
			UID:     p.uid,
			Cmdline: cmdline,
			Exe:     "/usr/sbin/" + p.name,
			Unit:    p.unit,
		}})
	}
	if len(so.Processes) == 0 {
		so.UnattributedReason = inventory.ReasonNoProcess
	}
	return so
}

var (
	sshd  = proc{pid: 812, name: "sshd", user: "root", cmd: "/usr/sbin/sshd -D", unit: "ssh.service"}
	ncat  = proc{pid: 4242, name: "nc", user: "mallory", uid: 1001, cmd: "nc -l -p 4444"}
	pg    = proc{pid: 900, name: "postgres", user: "postgres", uid: 110, cmd: "/usr/lib/postgresql/16/bin/postgres -D /var/lib/postgresql"}
	nginx = proc{pid: 100, name: "nginx", user: "root", cmd: "nginx: master process /usr/sbin/nginx"}
	wrk1  = proc{pid: 101, name: "nginx", user: "www-data", uid: 33, cmd: "nginx: worker process"}
)

func snapOf(socks ...inventory.Socket) *inventory.Snapshot {
	return &inventory.Snapshot{Sockets: socks, Privileged: true, Source: "test"}
}

func kinds(r *Report) []string {
	var out []string
	for _, f := range r.Findings {
		out = append(out, f.Kind+" "+f.Key)
	}
	return out
}

const basePolicy = `
ignore:
  - name: ephemeral
    proto: udp
    port: 32768-60999
allow:
  - name: ssh
    reason: remote administration
    proto: tcp
    port: 22
    process: sshd
    user: root
  - name: postgres
    reason: local clients only
    proto: tcp
    port: 5432
    bind: loopback
    process: postgres
  - name: web
    proto: tcp
    port: [80, 443]
    process: nginx
require:
  - name: dns
    reason: the resolver must run
    port: 53
`

func TestCheckFindings(t *testing.T) {
	p := mustParse(t, basePolicy)
	tests := []struct {
		name string
		snap *inventory.Snapshot
		want []string
	}{
		{
			name: "clean",
			snap: snapOf(
				sock(inventory.TCP, "0.0.0.0", 22, 1, sshd),
				sock(inventory.TCP, "::", 22, 2, sshd),
				sock(inventory.TCP, "127.0.0.1", 5432, 3, pg),
				sock(inventory.TCP, "::1", 5432, 4, pg),
				sock(inventory.UDP, "127.0.0.53", 53, 5),
				sock(inventory.UDP, "0.0.0.0", 40000, 6, ncat),
				sock(inventory.TCP, "0.0.0.0", 80, 7, nginx, wrk1),
			),
		},
		{
			name: "unexpected and missing",
			snap: snapOf(
				sock(inventory.TCP, "0.0.0.0", 22, 1, sshd),
				sock(inventory.TCP, "0.0.0.0", 4444, 2, ncat),
			),
			want: []string{"unexpected unexpected tcp 0.0.0.0:4444", "missing missing dns"},
		},
		{
			name: "wrong owner",
			snap: snapOf(
				sock(inventory.TCP, "0.0.0.0", 22, 1, ncat),
				sock(inventory.TCP, "127.0.0.53", 53, 2),
			),
			want: []string{"wrong_owner wrong_owner tcp 0.0.0.0:22"},
		},
		{
			name: "wrong user",
			snap: snapOf(
				sock(inventory.TCP, "0.0.0.0", 22, 1, proc{pid: 5, name: "sshd", user: "mallory"}),
				sock(inventory.UDP, "127.0.0.53", 53, 2),
			),
			want: []string{"wrong_owner wrong_owner tcp 0.0.0.0:22"},
		},
		{
			name: "too exposed",
			snap: snapOf(
				sock(inventory.TCP, "0.0.0.0", 5432, 1, pg),
				sock(inventory.TCP, "::", 5432, 2, pg),
				sock(inventory.UDP, "127.0.0.53", 53, 3),
			),
			want: []string{"too_exposed too_exposed tcp 0.0.0.0:5432", "too_exposed too_exposed tcp [::]:5432"},
		},
		{
			name: "exposed and wrong owner is wrong owner",
			snap: snapOf(
				sock(inventory.TCP, "0.0.0.0", 5432, 1, ncat),
				sock(inventory.UDP, "127.0.0.53", 53, 3),
			),
			want: []string{"wrong_owner wrong_owner tcp 0.0.0.0:5432"},
		},
		{
			name: "wrong protocol is unexpected",
			snap: snapOf(
				sock(inventory.UDP, "0.0.0.0", 22, 1, sshd),
				sock(inventory.TCP, "127.0.0.53", 53, 3),
			),
			want: []string{"unexpected unexpected udp 0.0.0.0:22"},
		},
		{
			name: "not listening sockets are not checked",
			snap: func() *inventory.Snapshot {
				s := snapOf(sock(inventory.TCP, "10.0.0.1", 4444, 1, ncat), sock(inventory.UDP, "127.0.0.53", 53, 2))
				s.Sockets[0].Listening = false
				return s
			}(),
		},
		{
			name: "reuseport group is one finding",
			snap: snapOf(
				sock(inventory.TCP, "0.0.0.0", 8080, 1, proc{pid: 10, name: "srv"}),
				sock(inventory.TCP, "0.0.0.0", 8080, 2, proc{pid: 11, name: "srv"}),
				sock(inventory.TCP, "0.0.0.0", 8080, 3, proc{pid: 12, name: "srv"}),
				sock(inventory.UDP, "127.0.0.53", 53, 4),
			),
			want: []string{"unexpected unexpected tcp 0.0.0.0:8080"},
		},
		{
			name: "empty snapshot",
			snap: snapOf(),
			want: []string{"missing missing dns"},
		},
		{
			name: "nil snapshot",
			snap: nil,
			want: []string{"missing missing dns"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rep := p.Check(tt.snap)
			if got := kinds(rep); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("findings = %q, want %q", got, tt.want)
				for _, f := range rep.Findings {
					t.Logf("  %s", f.Message)
				}
			}
			if rep.Clean() != (len(tt.want) == 0) {
				t.Errorf("Clean() = %v", rep.Clean())
			}
		})
	}
}

func TestCheckFindingDetails(t *testing.T) {
	p := mustParse(t, basePolicy)
	rep := p.Check(snapOf(
		sock(inventory.TCP, "0.0.0.0", 22, 1, ncat),
		sock(inventory.TCP, "0.0.0.0", 4444, 2, ncat),
		sock(inventory.TCP, "0.0.0.0", 5432, 3, pg),
	))
	byKind := map[string]Finding{}
	for _, f := range rep.Findings {
		byKind[f.Kind] = f
	}
	if len(byKind) != 4 {
		t.Fatalf("want one finding of each kind, got %q", kinds(rep))
	}
	u := byKind[Unexpected]
	if u.Socket == nil || u.Socket.Local.Port != 4444 || u.Rule != "" {
		t.Errorf("unexpected finding = %+v", u)
	}
	for _, s := range []string{"tcp 0.0.0.0:4444", "pid 4242", "nc -l -p 4444", "mallory"} {
		if !strings.Contains(u.Message, s) {
			t.Errorf("unexpected message %q lacks %q", u.Message, s)
		}
	}
	w := byKind[WrongOwner]
	if w.Rule != "ssh" || w.RuleReason != "remote administration" || w.Expected != "process sshd, user root" {
		t.Errorf("wrong_owner finding = %+v", w)
	}
	if !strings.Contains(w.Message, `tcp 0.0.0.0:22 has the wrong owner: rule "ssh" expects process sshd, user root; held by nc (pid 4242`) {
		t.Errorf("wrong_owner message = %q", w.Message)
	}
	x := byKind[TooExposed]
	if x.Rule != "postgres" || x.Expected != "bind loopback" || !strings.Contains(x.Message, "bound to all interfaces") {
		t.Errorf("too_exposed finding = %+v", x)
	}
	m := byKind[Missing]
	if m.Socket != nil || m.Rule != "dns" || m.Key != "missing dns" ||
		m.Message != `tcp or udp port 53 is not listening: required by rule "dns": the resolver must run` {
		t.Errorf("missing finding = %+v", m)
	}
	for _, f := range rep.Findings {
		if strings.ContainsAny(f.Message, "\n\r") {
			t.Errorf("message is not one line: %q", f.Message)
		}
	}
	c := rep.Counts()
	if c[Unexpected] != 1 || c[Missing] != 1 || c[WrongOwner] != 1 || c[TooExposed] != 1 || rep.Checked != 3 {
		t.Errorf("counts %v checked %d", c, rep.Checked)
	}
}

// Keys must stay the same across scans while the condition lasts, even when
// the process behind it restarts with a new pid and inode.
func TestCheckKeysStable(t *testing.T) {
	p := mustParse(t, basePolicy)
	a := p.Check(snapOf(sock(inventory.TCP, "0.0.0.0", 4444, 1, ncat)))
	n2 := ncat
	n2.pid = 5555
	b := p.Check(snapOf(sock(inventory.TCP, "0.0.0.0", 4444, 77, n2)))
	if !reflect.DeepEqual(kinds(a), kinds(b)) {
		t.Errorf("keys changed: %q vs %q", kinds(a), kinds(b))
	}
}

func TestCheckReusePortMergesOwners(t *testing.T) {
	p := mustParse(t, "allow: []\n")
	rep := p.Check(snapOf(
		sock(inventory.TCP, "0.0.0.0", 8080, 1, proc{pid: 11, name: "srv"}),
		sock(inventory.TCP, "0.0.0.0", 8080, 2, proc{pid: 10, name: "srv"}),
	))
	if len(rep.Findings) != 1 {
		t.Fatalf("findings %q", kinds(rep))
	}
	if got := rep.Findings[0].Socket.PIDs(); !reflect.DeepEqual(got, []int{10, 11}) {
		t.Errorf("merged pids = %v, want [10 11]", got)
	}
}

func TestCheckDefaultAllow(t *testing.T) {
	p := mustParse(t, "default: allow\nallow:\n  - port: 5432\n    bind: loopback\n")
	rep := p.Check(snapOf(
		sock(inventory.TCP, "0.0.0.0", 4444, 1, ncat),
		sock(inventory.TCP, "0.0.0.0", 5432, 2, pg),
	))
	if got := kinds(rep); !reflect.DeepEqual(got, []string{"too_exposed too_exposed tcp 0.0.0.0:5432"}) {
		t.Errorf("findings = %q", got)
	}
}

func TestCheckIgnore(t *testing.T) {
	p := mustParse(t, `ignore:
  - bind: loopback
  - process: "chrony*"
  - port: 5000-5010
    user: mallory
allow: []
`)
	chrony := proc{pid: 7, name: "chronyd", user: "_chrony"}
	rep := p.Check(snapOf(
		sock(inventory.TCP, "127.0.0.1", 9999, 1, ncat),
		sock(inventory.UDP, "0.0.0.0", 323, 2, chrony),
		sock(inventory.TCP, "0.0.0.0", 5005, 3, ncat),
		sock(inventory.TCP, "0.0.0.0", 5011, 4, ncat),
		sock(inventory.TCP, "0.0.0.0", 5006, 5, sshd),
	))
	want := []string{"unexpected unexpected tcp 0.0.0.0:5006", "unexpected unexpected tcp 0.0.0.0:5011"}
	got := kinds(rep)
	if len(got) == 2 && got[0] > got[1] {
		got[0], got[1] = got[1], got[0]
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("findings = %q, want %q", got, want)
	}
}

func TestCheckOwnerConditions(t *testing.T) {
	longName := proc{pid: 3, name: "systemd-resolve", user: "systemd-resolve", cmd: "/lib/systemd/systemd-resolved"}
	longName2 := longName
	tests := []struct {
		rule string
		p    proc
		ok   bool
	}{
		{"process: sshd", sshd, true},
		{"process: ssh*", sshd, true},
		{"process: nginx", sshd, false},
		{"process: systemd-resolved", func() proc { longName2.name = "systemd-resolve"; return longName2 }(), true},
		{"exe: /usr/sbin/*", sshd, true},
		{"exe: /opt/*", sshd, false},
		{"user: root", sshd, true},
		{"user: \"1001\"", ncat, true},
		{"user: 1001", ncat, true},
		{"user: 0", ncat, false},
		{"unit: ssh.service", sshd, true},
		{"unit: \"*.service\"", ncat, false}, // no unit never matches a pattern
		{"container: \"*\"", sshd, false},
		{"process: sshd\n    user: mallory", sshd, false},
		{"process: [nc, sshd]\n    user: [root, mallory]", ncat, true},
	}
	for _, tt := range tests {
		p := mustParse(t, "allow:\n  - port: 22\n    "+tt.rule+"\n")
		so := sock(inventory.TCP, "0.0.0.0", 22, 1, tt.p)
		if tt.p.name == "systemd-resolve" {
			so.Processes[0].Exe = "/usr/lib/systemd/systemd-resolved"
		}
		rep := p.Check(snapOf(so))
		if rep.Clean() != tt.ok {
			t.Errorf("rule %q on %s: clean = %v, want %v (%q)", tt.rule, tt.p.name, rep.Clean(), tt.ok, kinds(rep))
		}
	}
}

func TestCheckContainerPrefix(t *testing.T) {
	p := mustParse(t, "allow:\n  - port: 80\n    container: 3f2a9c1b2d3e\n")
	so := sock(inventory.TCP, "0.0.0.0", 80, 1, nginx)
	so.Processes[0].Container = "3f2a9c1b2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a"
	if rep := p.Check(snapOf(so)); !rep.Clean() {
		t.Errorf("short container id does not match: %q", kinds(rep))
	}
	so.Processes[0].Container = "ffff"
	if rep := p.Check(snapOf(so)); rep.Clean() {
		t.Error("other container matches")
	}
}

// Owners hidden by permissions are neither a finding nor proof that a
// required service is missing.
func TestCheckUnverifiedOwners(t *testing.T) {
	p := mustParse(t, "require:\n  - name: ssh\n    port: 22\n    process: sshd\n")
	so := sock(inventory.TCP, "0.0.0.0", 22, 1)
	so.UnattributedReason = inventory.ReasonNotPermitted
	rep := p.Check(&inventory.Snapshot{Sockets: []inventory.Socket{so}})
	if !rep.Clean() || rep.Unverified != 1 {
		t.Errorf("findings %q, unverified %d; want none and 1", kinds(rep), rep.Unverified)
	}
	so.UnattributedReason = inventory.ReasonExited
	if rep := p.Check(snapOf(so)); !rep.Clean() || rep.Unverified != 1 {
		t.Errorf("exited owner: findings %q, unverified %d; want none and 1", kinds(rep), rep.Unverified)
	}
	// A kernel socket (no process in any namespace) does not satisfy an
	// owner condition: that is a real wrong owner.
	so.UnattributedReason = inventory.ReasonNoProcess
	rep = p.Check(snapOf(so))
	if got := kinds(rep); !reflect.DeepEqual(got, []string{"wrong_owner wrong_owner tcp 0.0.0.0:22", "missing missing ssh"}) {
		t.Errorf("findings = %q", got)
	}
}

func TestCheckWideRanges(t *testing.T) {
	p := mustParse(t, "allow:\n  - proto: tcp\n    port: 1000-20000\n  - proto: udp\n    port: [7, 100-355]\n  - process: sshd\n")
	cases := []struct {
		proto inventory.Proto
		port  uint16
		p     proc
		ok    bool
	}{
		{inventory.TCP, 1000, ncat, true},
		{inventory.TCP, 20000, ncat, true},
		{inventory.TCP, 20001, ncat, false},
		{inventory.TCP, 999, ncat, false},
		{inventory.UDP, 1000, ncat, false},
		{inventory.UDP, 7, ncat, true},
		{inventory.UDP, 355, ncat, true},
		{inventory.UDP, 356, ncat, false},
		{inventory.UDP, 65535, sshd, true},
		{inventory.TCP, 1, sshd, true},
	}
	for _, c := range cases {
		rep := p.Check(snapOf(sock(c.proto, "0.0.0.0", c.port, 1, c.p)))
		if rep.Clean() != c.ok {
			t.Errorf("%s %d by %s: clean = %v, want %v", c.proto, c.port, c.p.name, rep.Clean(), c.ok)
		}
	}
}

// The index must give the same answers as trying every rule.
func TestIndexMatchesLinearScan(t *testing.T) {
	var b strings.Builder
	b.WriteString("allow:\n")
	for i := 0; i < 200; i++ {
		switch i % 4 {
		case 0:
			fmt.Fprintf(&b, "  - proto: tcp\n    port: %d\n", 1+i*37%65000)
		case 1:
			fmt.Fprintf(&b, "  - port: %d-%d\n", 1+i*53%60000, 1+i*53%60000+i*3)
		case 2:
			fmt.Fprintf(&b, "  - proto: udp\n    port: [%d, %d]\n", 1+i*11, 2+i*13)
		case 3:
			fmt.Fprintf(&b, "  - process: p%d\n", i)
		}
	}
	p := mustParse(t, b.String())
	for port := 1; port <= 65535; port += 7 {
		for _, proto := range []inventory.Proto{inventory.TCP, inventory.UDP} {
			got := p.idx.candidates(nil, proto, uint16(port))
			var want []int32
			for i, r := range p.Rules {
				if r.matchProto(proto) && r.matchPort(uint16(port)) {
					want = append(want, int32(i))
				}
			}
			if !reflect.DeepEqual(got, want) && !(len(got) == 0 && len(want) == 0) {
				t.Fatalf("%s/%d: index %v, linear %v", proto, port, got, want)
			}
		}
	}
}

// An ignored listener still counts for the require rules it matches.
func TestCheckIgnoredSatisfiesRequire(t *testing.T) {
	p := mustParse(t, "ignore:\n  - bind: loopback\nrequire:\n  - name: dns\n    port: 53\n    bind: loopback\n")
	if rep := p.Check(snapOf(sock(inventory.UDP, "127.0.0.53", 53, 1))); !rep.Clean() {
		t.Errorf("findings %q", kinds(rep))
	}
	if rep := p.Check(snapOf(sock(inventory.UDP, "127.0.0.53", 54, 1))); len(rep.Findings) != 1 || rep.Findings[0].Kind != Missing {
		t.Errorf("findings %q, want missing dns", kinds(rep))
	}
}

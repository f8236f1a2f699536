package policy

import (
	"bytes"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/porteiro/porteiro/inventory"
)

// FuzzParse checks that no input crashes the parser, that every error has a
// position, and that what it accepts is valid: ports in range, ranges in
// order, unique names, and a policy that can check a snapshot.
func FuzzParse(f *testing.F) {
	f.Add([]byte(basePolicy))
	f.Add([]byte("allow:\n  - port: [22, 80-90]\n    bind: [loopback, 10.0.0.0/8]\n"))
	f.Add([]byte("allow:\n  - port: 70000\n"))
	f.Add([]byte("a: &x [1]\nb: *x\n"))
	f.Add([]byte(nsPolicy))
	f.Add([]byte("allow:\n  - netns: [host, \"b*\", \"pid * (python3)\"]\n    container: \"prod/api-*/api\"\n"))
	f.Add([]byte("require:\n  - container: [\"\", \"[x\"]\n    netns: ~\n"))
	snap := snapOf(
		sock(inventory.TCP, "0.0.0.0", 22, 1, sshd),
		sock(inventory.UDP, "127.0.0.1", 53, 2),
		sock(inventory.TCP, "::", 4444, 3, ncat),
		inCtr(sock(inventory.TCP, "0.0.0.0", 80, 4, nginx1), web1Ino, web1),
		inCtr(sock(inventory.TCP, "::", 8080, 5, apiP), apiAIno, apiA),
		inNS(sock(inventory.UDP, "10.200.0.1", 53, 6, dnsmq), blueIno, "blue"),
		inNS(sock(inventory.TCP, "0.0.0.0", 4444, 7, ncat), orphanIno, "orphan"),
	)
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := Parse(data, "f.yaml")
		if err != nil {
			l, ok := err.(ErrorList)
			if !ok || len(l) == 0 {
				t.Fatalf("error %T %v is not a non-empty ErrorList", err, err)
			}
			for _, e := range l {
				if e.Line < 1 || e.Column < 1 || e.File != "f.yaml" {
					t.Fatalf("error without a position: %v", e)
				}
			}
			return
		}
		seen := map[string]bool{}
		for _, r := range p.Rules {
			if seen[r.Name] {
				t.Fatalf("duplicate rule name %q accepted", r.Name)
			}
			seen[r.Name] = true
			for _, pr := range r.Ports {
				if pr.Lo < 1 || pr.Lo > pr.Hi {
					t.Fatalf("bad port range %v accepted", pr)
				}
			}
		}
		rep := p.Check(snap)
		for _, fd := range rep.Findings {
			if fd.Key == "" || fd.Message == "" {
				t.Fatalf("finding without key or message: %+v", fd)
			}
		}
	})
}

func FuzzParseLocalPortRange(f *testing.F) {
	f.Add([]byte("32768\t60999\n"))
	f.Add([]byte("1024 65535"))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseLocalPortRange(data)
		if err == nil && (r.Lo < 1 || r.Lo > r.Hi) {
			t.Fatalf("accepted bad range %v from %q", r, data)
		}
	})
}

// FuzzBaselineRoundTrip checks that any process name, user and address
// written by Baseline reads back as a policy under which the same host is
// clean, and another name is not allowed.
func FuzzBaselineRoundTrip(f *testing.F) {
	f.Add("sshd", "root", uint16(22), true, byte(0))
	f.Add(`we"ird*[x`, "1000", uint16(53), false, byte(1))
	f.Add("a\x00b\n\xff", "ü", uint16(40000), false, byte(2))
	addrs := []string{"0.0.0.0", "::", "127.0.0.1", "::1", "10.0.0.1", "fe80::1", "::ffff:10.0.0.1"}
	f.Fuzz(func(t *testing.T, name, user string, port uint16, tcp bool, a byte) {
		if port == 0 {
			return
		}
		proto := inventory.UDP
		if tcp {
			proto = inventory.TCP
		}
		snap := snapOf(sock(proto, addrs[int(a)%len(addrs)], port, 1, proc{pid: 7, name: name, user: user}))
		var b bytes.Buffer
		if err := Baseline(&b, snap, BaselineOptions{Ephemeral: DefaultEphemeral}); err != nil {
			t.Fatal(err)
		}
		p, err := Parse(b.Bytes(), "baseline.yaml")
		if err != nil {
			t.Fatalf("baseline does not parse: %v\n%s", err, b.String())
		}
		if rep := p.Check(snap); !rep.Clean() {
			t.Fatalf("findings %q\n%s", kinds(rep), b.String())
		}
		if name == "" || !utf8.ValidString(name) {
			return // empty names get no condition; bad bytes become "?"
		}
		snap.Sockets[0].Processes[0].Name = name + "x"
		snap.Sockets[0].Processes[0].Exe = ""
		if rep := p.Check(snap); rep.Clean() {
			t.Fatalf("name %q: the rule also allows %q\n%s", name, name+"x", b.String())
		}
	})
}

// FuzzBaselineNamespace checks that any namespace or container name that
// Baseline keys a rule on reads back as a policy under which the same host
// is clean and another container or namespace is not allowed; and that a
// socket Baseline leaves out is reported. kind picks where the socket is:
// 0 an ip netns, 1 a docker container, 2 a Kubernetes pod, 3 a namespace
// known by its first process, 4 any NetNSName with no container.
func FuzzBaselineNamespace(f *testing.F) {
	f.Add("blue", "", uint16(53), byte(0), true)
	f.Add("web-1", "3f2a9c1b2d3e", uint16(80), byte(1), true)
	f.Add("api-7d9f8c6b5-x2k4p", "prod", uint16(8080), byte(2), true)
	f.Add("python3", "4242", uint16(9000), byte(3), false)
	f.Add("orphan", "", uint16(4444), byte(4), true)
	f.Add("we\"ird*[x\n\xff", "ns/x", uint16(1), byte(2), true)
	f.Fuzz(func(t *testing.T, name, extra string, port uint16, kind byte, privileged bool) {
		if port == 0 {
			return
		}
		so := sock(inventory.TCP, "0.0.0.0", port, 1, nginx1)
		switch kind % 5 {
		case 0:
			so = inNS(so, blueIno, name)
		case 1:
			so = inCtr(so, web1Ino, &inventory.Container{Runtime: "docker", ID: extra, Name: name})
		case 2:
			so = inCtr(so, apiAIno, &inventory.Container{Runtime: "containerd", ID: "ab", Pod: name, Namespace: extra, Container: "api"})
		case 3:
			so = inNS(so, pidIno, "pid "+extra+" ("+name+")")
		case 4:
			so = inNS(so, orphanIno, name)
		}
		snap := snapOf(so)
		snap.Privileged = privileged
		var b bytes.Buffer
		if err := Baseline(&b, snap, BaselineOptions{}); err != nil {
			t.Fatal(err)
		}
		p, err := Parse(b.Bytes(), "baseline.yaml")
		if err != nil {
			t.Fatalf("baseline does not parse: %v\n%s", err, b.String())
		}
		_, why := scopeOf(&snap.Sockets[0], privileged)
		rep := p.Check(snap)
		if why != "" {
			if len(rep.Findings) != 1 || rep.Findings[0].Kind != Unexpected || !bytes.Contains(b.Bytes(), []byte("got no rule")) {
				t.Fatalf("a socket left out: findings %q\n%s", kinds(rep), b.String())
			}
			return
		}
		if !rep.Clean() {
			t.Fatalf("findings %q\n%s", kinds(rep), b.String())
		}
		if !utf8.ValidString(name) || !utf8.ValidString(extra) || strings.ContainsAny(name+extra, "/") {
			return // bad bytes become "?", and a / changes what * spans
		}
		// Another container or namespace of another name is not allowed,
		// unless the name was a generated pod name (kind 2) or a first
		// process's pid (kind 3), which the rule leaves open on purpose.
		other := snap.Sockets[0]
		switch {
		case other.Container != nil && other.Container.Pod == "":
			c := *other.Container
			c.Name += "x"
			c.ID = ""
			other.Container = &c
			other.NetNSName = other.ContainerName()
		case other.Container == nil && kind%5 != 3 && !inHost(&other):
			other.NetNSName += "x"
		default:
			return
		}
		if rep := p.Check(snapOf(other)); rep.Clean() {
			t.Fatalf("the rule for %q also allows %q\n%s", snap.Sockets[0].NetNSName, other.NetNSName, b.String())
		}
	})
}

package policy

import (
	"bytes"
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
	snap := snapOf(
		sock(inventory.TCP, "0.0.0.0", 22, 1, sshd),
		sock(inventory.UDP, "127.0.0.1", 53, 2),
		sock(inventory.TCP, "::", 4444, 3, ncat),
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

package policy

import (
	"testing"

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

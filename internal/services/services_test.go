package services

import (
	"strings"
	"testing"
)

const sample = `# /etc/services
tcpmux		1/tcp				# TCP port service multiplexer
ssh		22/tcp				# SSH Remote Login Protocol
domain		53/tcp
domain		53/udp
http		80/tcp		www		# WorldWideWeb HTTP
broken		nonsense
zero		0/tcp
`

func TestParse(t *testing.T) {
	tb, err := Parse(strings.NewReader(sample))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name, proto string
		port        uint16
		ok          bool
	}{
		{"ssh", "", 22, true}, {"ssh", "tcp", 22, true}, {"ssh", "sctp", 0, false},
		// Registered by IANA for both protocols, listed for tcp only.
		{"ssh", "udp", 22, true},
		{"www", "tcp", 80, true}, {"HTTP", "", 80, true}, {"domain", "udp", 53, true},
		{"broken", "", 0, false}, {"zero", "", 0, false},
	}
	for _, c := range cases {
		p, ok := tb.Lookup(c.name, c.proto)
		if p != c.port || ok != c.ok {
			t.Errorf("Lookup(%q, %q) = %d %v, want %d %v", c.name, c.proto, p, ok, c.port, c.ok)
		}
	}
	if n := tb.Name(53, "udp"); n != "domain" {
		t.Errorf("Name(53, udp) = %q", n)
	}
}

func FuzzParse(f *testing.F) {
	f.Add(sample)
	f.Fuzz(func(t *testing.T, s string) {
		tb, err := Parse(strings.NewReader(s))
		if err != nil {
			return
		}
		for k, p := range tb {
			if p == 0 || !strings.Contains(k, "/") {
				t.Fatalf("entry %q -> %d", k, p)
			}
		}
	})
}

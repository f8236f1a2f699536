package target

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/porteiro/porteiro/internal/services"
)

var svc = func() services.Table {
	t, _ := services.Parse(strings.NewReader("ssh 22/tcp\ndomain 53/tcp\ndomain 53/udp\nhttp 80/tcp www\n"))
	return t
}()

func TestParse(t *testing.T) {
	tests := []struct {
		in   string
		want Target
	}{
		{"22", Target{Port: 22}},
		{"22/tcp", Target{Proto: "tcp", Port: 22}},
		{"53/UDP", Target{Proto: "udp", Port: 53}},
		{"ssh", Target{Port: 22}},
		{"www", Target{Port: 80}},
		{"domain/udp", Target{Proto: "udp", Port: 53}},
		{"127.0.0.1:8080", Target{Addr: netip.MustParseAddr("127.0.0.1"), Port: 8080}},
		{"127.0.0.1:8080/tcp", Target{Proto: "tcp", Addr: netip.MustParseAddr("127.0.0.1"), Port: 8080}},
		{"[::1]:53/udp", Target{Proto: "udp", Addr: netip.MustParseAddr("::1"), Port: 53}},
		{"[fe80::1]:22", Target{Addr: netip.MustParseAddr("fe80::1"), Port: 22}},
		{"ssh/udp", Target{Proto: "udp", Port: 22}},
		{"*:8080", Target{Port: 8080}},
		{"65535", Target{Port: 65535}},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in, svc)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.in, err)
			continue
		}
		if got != tt.want {
			t.Errorf("Parse(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestParseErrors(t *testing.T) {
	tests := map[string]string{
		"0":                 "out of range",
		"65536":             "out of range",
		"70000/tcp":         "out of range",
		"99999999999999":    "out of range",
		"nosuchservice":     "unknown service",
		"22/sctp":           "unknown protocol",
		"":                  "empty",
		"::1:53":            "brackets",
		"[::1:53":           "bad address",
		"[127.0.0.1]:53":    "bad IPv6",
		"300.1.1.1:80":      "bad IPv4",
		"1.2.3.4:":          "missing port",
		"[fe80::1%eth0]:22": "zone \"eth0\"",
		":22":               "missing address before ':'",
		"+22":               "bad port",
		"0x16":              "bad port",
		"-1":                "bad port",
	}
	for in, want := range tests {
		_, err := Parse(in, svc)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Parse(%q) error = %v, want one containing %q", in, err, want)
		}
	}
}

func TestParseRange(t *testing.T) {
	for in, want := range map[string]Range{"22": {22, 22}, "8000-8100": {8000, 8100}, " 80 - 90 ": {80, 90}, "65535": {65535, 65535}} {
		if got, err := ParseRange(strings.TrimSpace(in)); err != nil || got != want {
			t.Errorf("ParseRange(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for in, want := range map[string]string{
		"0":       "port 0 is out of range: ports are 1-65535",
		"-5":      "port -5 is out of range",
		"90-80":   "port range 90-80 is reversed: write 80-90",
		"1-70000": "port 70000 is out of range",
		"0x16":    `bad port "0x16": want a number 1-65535`,
		"+22":     `bad port "+22"`,
		"":        `bad port ""`,
		"\x1b[2J": `bad port "\x1b[2J"`,
	} {
		_, err := ParseRange(in)
		if err == nil || !strings.HasPrefix(err.Error(), want) {
			t.Errorf("ParseRange(%q) = %v, want %q", in, err, want)
		}
	}
}

func TestParsePorts(t *testing.T) {
	rs, err := ParsePorts("80, 443,8000-8100,ssh", svc)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []uint16{80, 443, 8000, 8050, 8100, 22} {
		if !InRanges(p, rs) {
			t.Errorf("%d not in %v", p, rs)
		}
	}
	for _, p := range []uint16{81, 7999, 8101} {
		if InRanges(p, rs) {
			t.Errorf("%d in %v", p, rs)
		}
	}
	for _, bad := range []string{"90-80", "0", "1-70000", "", " ", "x-y", "nosuch", "22,", ",22", "22,,80", "+5", "-5", "0x16", "1-+5"} {
		if _, err := ParsePorts(bad, svc); err == nil {
			t.Errorf("ParsePorts(%q): want error", bad)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"22", "22/tcp", "ssh", "127.0.0.1:8080", "[::1]:53/udp", "0", "[::1", "1.2.3.4:/udp"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tg, err := Parse(s, svc)
		if err != nil {
			return
		}
		if tg.Port == 0 {
			t.Fatalf("Parse(%q) accepted port 0", s)
		}
		if tg.Proto != "" && tg.Proto != "tcp" && tg.Proto != "udp" {
			t.Fatalf("Parse(%q) accepted protocol %q", s, tg.Proto)
		}
		// A parsed target prints back to something that parses the same.
		again, err := Parse(tg.String(), svc)
		if err != nil || again != tg {
			t.Fatalf("round trip of %q: %q -> %+v, %v", s, tg.String(), again, err)
		}
	})
}

func FuzzParsePorts(f *testing.F) {
	f.Add("80,443,8000-8100")
	f.Add("90-80")
	f.Fuzz(func(t *testing.T, s string) {
		rs, err := ParsePorts(s, svc)
		if err != nil {
			return
		}
		for _, r := range rs {
			if r.Lo == 0 || r.Lo > r.Hi {
				t.Fatalf("ParsePorts(%q) gave bad range %+v", s, r)
			}
		}
	})
}

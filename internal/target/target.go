// Package target parses what an admin types to name a port: "22",
// "22/tcp", "ssh", "127.0.0.1:8080", "[::1]:53/udp", and port lists such as
// "80,443,8000-8100". ParsePort and ParseRange are porteiro's one parser of
// port numbers and ranges: the command line and the policy both use them.
package target

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/porteiro/porteiro/internal/services"
	"github.com/porteiro/porteiro/internal/yamlx"
)

// Target names sockets by port, and optionally protocol and local address.
type Target struct {
	Proto string     // "", "tcp" or "udp"
	Addr  netip.Addr // invalid: any address
	Port  uint16
}

// String formats the target back, as "22/tcp" or "127.0.0.1:8080/tcp".
func (t Target) String() string {
	s := strconv.Itoa(int(t.Port))
	if t.Addr.IsValid() {
		s = netip.AddrPortFrom(t.Addr, t.Port).String()
	}
	if t.Proto != "" {
		s += "/" + t.Proto
	}
	return s
}

// Parse parses one target. Service names are looked up in svc.
func Parse(s string, svc services.Table) (Target, error) {
	var t Target
	in := s
	if s == "" {
		return t, fmt.Errorf("empty port")
	}
	if i := strings.LastIndexByte(s, '/'); i >= 0 {
		p := strings.ToLower(s[i+1:])
		if p != "tcp" && p != "udp" {
			return t, fmt.Errorf("unknown protocol %q in %q: want tcp or udp", s[i+1:], in)
		}
		t.Proto = p
		s = s[:i]
	}
	portPart := s
	switch {
	case strings.HasPrefix(s, "["):
		end := strings.Index(s, "]:")
		if end < 0 {
			return t, fmt.Errorf("bad address %q: want [IPv6]:PORT", in)
		}
		a, err := netip.ParseAddr(s[1:end])
		if err != nil || !a.Is6() {
			return t, fmt.Errorf("bad IPv6 address %q in %q", s[1:end], in)
		}
		if a.Zone() != "" {
			// Sockets are matched by address alone: a zone would be
			// dropped without a word, and name a socket on another link.
			return t, fmt.Errorf("zone %q in %q: porteiro matches addresses without a zone; write [%s]:%s", a.Zone(), in, a.WithZone(""), s[end+2:])
		}
		t.Addr = a
		portPart = s[end+2:]
	case strings.Count(s, ":") == 1:
		host, port, _ := strings.Cut(s, ":")
		if host == "" {
			return t, fmt.Errorf("missing address before ':' in %q: write %s for any address, or *:%s", in, port, port)
		}
		if host != "*" {
			a, err := netip.ParseAddr(host)
			if err != nil || !a.Is4() {
				return t, fmt.Errorf("bad IPv4 address %q in %q", host, in)
			}
			t.Addr = a
		}
		portPart = port
	case strings.Count(s, ":") > 1:
		return t, fmt.Errorf("bad address %q: write IPv6 addresses in brackets, as [::1]:53", in)
	}
	p, err := parsePort(portPart, t.Proto, svc)
	if err != nil {
		return t, fmt.Errorf("%w in %q", err, in)
	}
	t.Port = p
	return t, nil
}

func parsePort(s, proto string, svc services.Table) (uint16, error) {
	if s == "" {
		return 0, fmt.Errorf("missing port")
	}
	if s[0] >= '0' && s[0] <= '9' || s[0] == '-' || s[0] == '+' {
		return ParsePort(s)
	}
	if svc != nil {
		if p, ok := svc.Lookup(s, proto); ok {
			return p, nil
		}
	}
	return 0, fmt.Errorf("unknown service name %q (not in /etc/services)", s)
}

// Range is an inclusive range of ports; a single port has Lo == Hi.
type Range struct{ Lo, Hi uint16 }

// Contains reports whether port p is in the range.
func (r Range) Contains(p uint16) bool { return r.Lo <= p && p <= r.Hi }

func (r Range) String() string {
	if r.Lo == r.Hi {
		return strconv.Itoa(int(r.Lo))
	}
	return strconv.Itoa(int(r.Lo)) + "-" + strconv.Itoa(int(r.Hi))
}

// ParsePort parses a port number: decimal digits only (no sign, no 0x),
// 1-65535.
func ParsePort(s string) (uint16, error) {
	if !IsDigits(s) {
		return 0, fmt.Errorf("bad port %s: want a number 1-65535", yamlx.Quote(s))
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("port %s is out of range: ports are 1-65535", s)
	}
	return uint16(n), nil
}

// ParseRange parses "22" or "8000-8100", numbers only.
func ParseRange(s string) (Range, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	if isRange && lo == "" {
		// "-5": a negative number, not a range.
		return Range{}, fmt.Errorf("port %s is out of range: ports are 1-65535", s)
	}
	a, err := ParsePort(strings.TrimSpace(lo))
	if err != nil {
		return Range{}, err
	}
	if !isRange {
		return Range{Lo: a, Hi: a}, nil
	}
	b, err := ParsePort(strings.TrimSpace(hi))
	if err != nil {
		return Range{}, err
	}
	if a > b {
		return Range{}, fmt.Errorf("port range %d-%d is reversed: write %d-%d", a, b, b, a)
	}
	return Range{Lo: a, Hi: b}, nil
}

// ParsePorts parses "80,443,8000-8100,ssh" into ranges.
func ParsePorts(s string, svc services.Table) ([]Range, error) {
	var out []Range
	if strings.TrimSpace(s) == "" {
		return nil, fmt.Errorf("empty port list: give ports such as 22 or 80,443,8000-8100")
	}
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			return nil, fmt.Errorf("empty item in port list %s: remove the extra comma", yamlx.Quote(s))
		}
		if f[0] >= '0' && f[0] <= '9' || f[0] == '-' || f[0] == '+' {
			r, err := ParseRange(f)
			if err != nil {
				return nil, err
			}
			out = append(out, r)
			continue
		}
		p, err := parsePort(f, "", svc)
		if err != nil {
			return nil, err
		}
		out = append(out, Range{p, p})
	}
	return out, nil
}

// IsDigits reports whether s is one or more ASCII digits: a number as
// porteiro reads ports, pids and uids (no sign, no 0x, no spaces).
func IsDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// InRanges reports whether port p is in any range.
func InRanges(p uint16, rs []Range) bool {
	for _, r := range rs {
		if r.Contains(p) {
			return true
		}
	}
	return false
}

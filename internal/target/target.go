// Package target parses what an admin types to name a port: "22",
// "22/tcp", "ssh", "127.0.0.1:8080", "[::1]:53/udp", and port lists such as
// "80,443,8000-8100".
package target

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/porteiro/porteiro/internal/services"
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
		t.Addr = a.WithZone("")
		portPart = s[end+2:]
	case strings.Count(s, ":") == 1:
		host, port, _ := strings.Cut(s, ":")
		if host != "" && host != "*" {
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
	if s[0] >= '0' && s[0] <= '9' {
		n, err := strconv.ParseUint(s, 10, 32)
		if err != nil {
			return 0, fmt.Errorf("bad port %q", s)
		}
		if n < 1 || n > 65535 {
			return 0, fmt.Errorf("port %d is out of range 1-65535", n)
		}
		return uint16(n), nil
	}
	if svc != nil {
		if p, ok := svc.Lookup(s, proto); ok {
			return p, nil
		}
	}
	return 0, fmt.Errorf("unknown service name %q (not in /etc/services)", s)
}

// Range is an inclusive port range.
type Range struct{ Lo, Hi uint16 }

// ParsePorts parses "80,443,8000-8100,ssh" into ranges.
func ParsePorts(s string, svc services.Table) ([]Range, error) {
	var out []Range
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if lo, hi, ok := strings.Cut(f, "-"); ok && lo != "" && lo[0] >= '0' && lo[0] <= '9' {
			l, err := parsePort(lo, "", nil)
			if err != nil {
				return nil, err
			}
			h, err := parsePort(hi, "", nil)
			if err != nil {
				return nil, err
			}
			if l > h {
				return nil, fmt.Errorf("bad port range %q: %d is above %d", f, l, h)
			}
			out = append(out, Range{l, h})
			continue
		}
		p, err := parsePort(f, "", svc)
		if err != nil {
			return nil, err
		}
		out = append(out, Range{p, p})
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("empty port list")
	}
	return out, nil
}

// InRanges reports whether port p is in any range.
func InRanges(p uint16, rs []Range) bool {
	for _, r := range rs {
		if p >= r.Lo && p <= r.Hi {
			return true
		}
	}
	return false
}

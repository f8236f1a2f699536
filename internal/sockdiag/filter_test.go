package sockdiag

import (
	"encoding/binary"
	"testing"
)

// audit and run mirror the kernel's inet_diag_bc_audit and
// inet_diag_bc_run (net/ipv4/inet_diag.c) for the ops LocalPortFilter
// uses, so the bytecode is checked the way the kernel checks it.
func audit(bc []byte) bool {
	validCC := func(cc int) bool {
		p, l := 0, len(bc)
		for l >= 0 {
			if cc > l {
				return false
			}
			if cc == l {
				return true
			}
			yes := int(bc[p+1])
			if yes < 4 || yes&3 != 0 {
				return false
			}
			l -= yes
			p += yes
		}
		return false
	}
	p, l := 0, len(bc)
	for l > 0 {
		if l < 4 {
			return false
		}
		code, yes, no := bc[p], int(bc[p+1]), int(binary.NativeEndian.Uint16(bc[p+2:]))
		minLen := 4
		switch code {
		case bcSGE, bcSLE:
			minLen += 4
			if l < minLen {
				return false
			}
		case bcJMP:
		default:
			return false
		}
		if no < minLen || no > l+4 || no&3 != 0 {
			return false
		}
		if no < l && !validCC(l-no) {
			return false
		}
		if yes < minLen || yes > l+4 || yes&3 != 0 {
			return false
		}
		p += yes
		l -= yes
	}
	return l == 0
}

func run(bc []byte, sport uint16) bool {
	p, l := 0, len(bc)
	for l > 0 {
		code, yes, no := bc[p], int(bc[p+1]), int(binary.NativeEndian.Uint16(bc[p+2:]))
		ok := true
		switch code {
		case bcJMP:
			ok = false
		case bcSGE:
			ok = sport >= binary.NativeEndian.Uint16(bc[p+6:])
		case bcSLE:
			ok = sport <= binary.NativeEndian.Uint16(bc[p+6:])
		}
		if ok {
			p, l = p+yes, l-yes
		} else {
			p, l = p+no, l-no
		}
	}
	return l == 0
}

func TestLocalPortFilter(t *testing.T) {
	for _, rs := range [][]PortRange{
		{{22, 22}},
		{{443, 443}, {80, 80}, {22, 22}},
		{{0, 10}, {65535, 65535}},
		{{1000, 1999}, {1500, 2500}, {2501, 2600}, {8080, 8080}},
		{{0, 65535}},
	} {
		bc := LocalPortFilter(rs)
		if !audit(bc) {
			t.Fatalf("%v: the kernel's checker would refuse %v", rs, bc)
		}
		for p := 0; p <= 65535; p++ {
			want := false
			for _, r := range rs {
				if uint16(p) >= r.Lo && uint16(p) <= r.Hi {
					want = true
				}
			}
			if got := run(bc, uint16(p)); got != want {
				t.Fatalf("%v: port %d kept=%v, want %v", rs, p, got, want)
			}
		}
	}
	if LocalPortFilter(nil) != nil {
		t.Error("no ranges: want no filter")
	}
	many := make([]PortRange, 0, maxPortRanges+1)
	for i := 0; i <= maxPortRanges; i++ {
		many = append(many, PortRange{uint16(2 * i), uint16(2 * i)})
	}
	if LocalPortFilter(many) != nil {
		t.Error("too many ranges: want no filter")
	}
}

func FuzzLocalPortFilter(f *testing.F) {
	f.Add(uint16(22), uint16(22), uint16(80), uint16(90), uint16(85))
	f.Add(uint16(0), uint16(0), uint16(65535), uint16(65535), uint16(65535))
	f.Fuzz(func(t *testing.T, a, b, c, d, port uint16) {
		rs := []PortRange{{a, b}, {c, d}}
		bc := LocalPortFilter(rs)
		want := (port >= a && port <= b) || (port >= c && port <= d)
		if bc == nil {
			if a <= b || c <= d {
				t.Fatal("no filter for valid ranges")
			}
			return
		}
		if !audit(bc) {
			t.Fatalf("%v: refused by the checker", rs)
		}
		if run(bc, port) != want {
			t.Fatalf("%v: port %d kept=%v, want %v", rs, port, !want, want)
		}
	})
}

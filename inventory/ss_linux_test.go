package inventory

import (
	"strconv"
	"strings"
	"testing"

	"github.com/porteiro/porteiro/internal/testenv"
)

// ssSocket is one socket of `ss -H -tunpe`: the oracle porteiro is checked
// against.
type ssSocket = testenv.SSSocket

// runSS runs ss with the given state flag (-l for listeners, -a for all)
// and returns its sockets by inode. Sockets with inode 0 (TIME-WAIT and
// friends) are dropped: they have no owner to compare. The output is read
// by testenv.ParseSS, which process names cannot fool.
func runSS(t *testing.T, prefix []string, flag string) map[uint64]ssSocket {
	t.Helper()
	m := map[uint64]ssSocket{}
	for _, s := range testenv.SS(t, prefix, flag) {
		if s.Inode != 0 {
			m[s.Inode] = s
		}
	}
	return m
}

// ssLocal formats a porteiro socket's local endpoint as ss prints it.
func ssLocal(s *Socket) string {
	port := strconv.Itoa(int(s.Local.Port))
	a := s.Local.Address
	switch {
	case s.Family == IPv6 && a.IsUnspecified():
		if s.DualStack {
			return "*:" + port
		}
		return "[::]:" + port
	case s.Family == IPv4 && a.IsUnspecified() && s.Proto == UDP:
		return "0.0.0.0:" + port
	case a.Is4():
		return a.String() + ":" + port
	default:
		return "[" + a.String() + "]:" + port
	}
}

// ssLocalNormal makes ss's "%iface" suffixes and ipv4-mapped forms
// comparable.
func ssLocalNormal(s string) string {
	if i := strings.Index(s, "%"); i >= 0 {
		if j := strings.LastIndex(s, ":"); j > i {
			s = s[:i] + s[j:]
		}
	}
	return s
}

package inventory

import (
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// ssSocket is one line of `ss -H -tuanpe`: the oracle porteiro is checked
// against.
type ssSocket struct {
	Proto string
	State string
	Local string
	Inode uint64
	PIDs  []int
}

var (
	ssIno = regexp.MustCompile(`\bino:(\d+)`)
	ssPID = regexp.MustCompile(`pid=(\d+)`)
)

// runSS runs ss with the given state flag (-l for listeners, -a for all)
// and returns its sockets by inode. Sockets with inode 0 (TIME-WAIT and
// friends) are dropped: they have no owner to compare.
func runSS(t *testing.T, prefix []string, flag string) map[uint64]ssSocket {
	t.Helper()
	args := append(prefix, "ss", "-H", "-tunpe", flag)
	out, err := exec.Command(args[0], args[1:]...).Output()
	if err != nil {
		t.Fatalf("%s: %v", strings.Join(args, " "), err)
	}
	m := map[uint64]ssSocket{}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) < 6 {
			continue
		}
		mi := ssIno.FindStringSubmatch(line)
		if mi == nil {
			continue
		}
		ino, _ := strconv.ParseUint(mi[1], 10, 64)
		if ino == 0 {
			continue
		}
		s := ssSocket{Proto: f[0], State: f[1], Local: f[4], Inode: ino}
		seen := map[int]bool{}
		for _, mp := range ssPID.FindAllStringSubmatch(line, -1) {
			p, _ := strconv.Atoi(mp[1])
			if !seen[p] {
				seen[p] = true
				s.PIDs = append(s.PIDs, p)
			}
		}
		sort.Ints(s.PIDs)
		m[ino] = s
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

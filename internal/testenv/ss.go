package testenv

import (
	"fmt"
	"os/exec"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// SSSocket is one socket as `ss -H -tunpe` reports it: the oracle that
// porteiro's scans are checked against.
type SSSocket struct {
	Proto string
	State string
	Local string
	Peer  string
	Inode uint64
	// PIDs are the holders' pids, sorted, each once.
	PIDs []int
}

// SS runs `ss -H -tunpe` with the extra arguments (a state flag such as -l
// or -a, and a filter), under the command prefix (for example `ip netns
// exec NS`), and parses its output with ParseSS. It fails the test if ss
// fails or prints what ParseSS cannot read.
func SS(t testing.TB, prefix []string, args ...string) []SSSocket {
	t.Helper()
	argv := append(append(append([]string(nil), prefix...), "ss", "-H", "-tunpe"), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	return ssRun(t, cmd)
}

// SSCmd is SS for a command the caller set up (for example with other
// credentials); its arguments must include -H, -t, -u, -n, -p and -e.
func SSCmd(t testing.TB, cmd *exec.Cmd) []SSSocket {
	t.Helper()
	return ssRun(t, cmd)
}

func ssRun(t testing.TB, cmd *exec.Cmd) []SSSocket {
	t.Helper()
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s: %v", strings.Join(cmd.Args, " "), err)
	}
	socks, err := ParseSS(out)
	if err != nil {
		t.Fatalf("%s: %v", strings.Join(cmd.Args, " "), err)
	}
	return socks
}

// ssRecord is one record of `ss -H -tunpe`:
//
//	tcp LISTEN 0 128 127.0.0.1:22 0.0.0.0:* users:(("sshd",pid=812,fd=3)) ino:1234 sk:1 cgroup:/ <->
//
// A process name may hold any byte but ')', and ss prints it raw between
// quotes, newlines included. So records are not lines: each record is read
// from where the previous one ended, and a name is read as [^)]* up to the
// `",pid=N,fd=N)` that the first ')' closes. Text inside a name can then
// neither end a record nor start one, nor add a pid.
var (
	ssRecord = regexp.MustCompile(`\A(tcp|udp)[ \t]+(\S+)[ \t]+\d+[ \t]+\d+[ \t]+(\S+)[ \t]+(\S+)` +
		`(?:[ \t]+users:\(((?:\("[^)]*",pid=\d+,fd=\d+\),?)+)\))?` +
		`(?:[ \t]+[a-z_]+:\S+)*?[ \t]+ino:(\d+)[^\n]*\n`)
	ssUser = regexp.MustCompile(`\("[^)]*",pid=(\d+),fd=\d+\)`)
)

// ParseSS parses the output of `ss -H -tunpe`. The fields after the inode
// (sk, cgroup) are skipped to the end of the line: cgroup paths are named
// by root, not by whoever starts a process.
func ParseSS(out []byte) ([]SSSocket, error) {
	s := string(out)
	if s != "" && !strings.HasSuffix(s, "\n") {
		s += "\n"
	}
	var socks []SSSocket
	for off := 0; off < len(s); {
		m := ssRecord.FindStringSubmatchIndex(s[off:])
		if m == nil {
			end := min(len(s), off+200)
			return nil, fmt.Errorf("unreadable ss output at byte %d: %q", off, s[off:end])
		}
		rec := s[off : off+m[1]]
		sub := func(i int) string {
			if m[2*i] < 0 {
				return ""
			}
			return rec[m[2*i]:m[2*i+1]]
		}
		ino, err := strconv.ParseUint(sub(6), 10, 64)
		if err != nil {
			return nil, fmt.Errorf("ss inode %q: %w", sub(6), err)
		}
		so := SSSocket{Proto: sub(1), State: sub(2), Local: sub(3), Peer: sub(4), Inode: ino}
		seen := map[int]bool{}
		for _, u := range ssUser.FindAllStringSubmatch(sub(5), -1) {
			pid, _ := strconv.Atoi(u[1])
			if !seen[pid] {
				seen[pid] = true
				so.PIDs = append(so.PIDs, pid)
			}
		}
		sort.Ints(so.PIDs)
		socks = append(socks, so)
		off += m[1]
	}
	return socks, nil
}

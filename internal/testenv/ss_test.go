package testenv

import (
	"os"
	"os/exec"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

// ssFixture is ss output with hostile names, as ss prints them: raw, a
// name cut at its first ')'.
const ssFixture = "tcp   LISTEN 0      128          0.0.0.0:2024       0.0.0.0:*    ino:588 sk:1 cgroup:/ <->\n" +
	"tcp   LISTEN 0      4096       127.0.0.1:34419      0.0.0.0:*    users:((\"x\ntcp LISTEN 0\",pid=9581,fd=3)) ino:23019 sk:2 cgroup:/ <->\n" +
	"udp   UNCONN 0      0          127.0.0.1:40000      0.0.0.0:*    users:((\"x\",pid=1,fd=9\",pid=77,fd=4),(\"v\",pid=78,fd=5)) uid:1000 ino:23020 sk:3 cgroup:/user.slice <->\n" +
	"tcp   TIME-WAIT 0   0          127.0.0.1:40001    127.0.0.1:22   timer:(timewait,40sec,0) ino:0 sk:1002\n" +
	"tcp   LISTEN 0      128      [fe80::1]%eth0:22          [::]:*    users:((\"a\nb\x1b[2J\r\u202ec\",pid=5,fd=3)) ino:23021 sk:4 cgroup:/ v6only:1 <->\n"

func TestParseSS(t *testing.T) {
	got, err := ParseSS([]byte(ssFixture))
	if err != nil {
		t.Fatal(err)
	}
	want := []SSSocket{
		{Proto: "tcp", State: "LISTEN", Local: "0.0.0.0:2024", Peer: "0.0.0.0:*", Inode: 588},
		{Proto: "tcp", State: "LISTEN", Local: "127.0.0.1:34419", Peer: "0.0.0.0:*", Inode: 23019, PIDs: []int{9581}},
		{Proto: "udp", State: "UNCONN", Local: "127.0.0.1:40000", Peer: "0.0.0.0:*", Inode: 23020, PIDs: []int{77, 78}},
		{Proto: "tcp", State: "TIME-WAIT", Local: "127.0.0.1:40001", Peer: "127.0.0.1:22", Inode: 0},
		{Proto: "tcp", State: "LISTEN", Local: "[fe80::1]%eth0:22", Peer: "[::]:*", Inode: 23021, PIDs: []int{5}},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got\n%+v\nwant\n%+v", got, want)
	}
	for _, bad := range []string{"garbage\n", "tcp LISTEN 0 0 a:1 b:*\n", ssFixture[:40]} {
		if _, err := ParseSS([]byte(bad)); err == nil {
			t.Errorf("ParseSS(%q) succeeded", bad)
		}
	}
	if socks, err := ParseSS(nil); err != nil || len(socks) != 0 {
		t.Errorf("empty output: %v %v", socks, err)
	}
}

// With hostile processes running, ss with -p (names shown) and ss without
// it (no names) must yield the same sockets, and each hostile socket its
// own pid and no other.
func TestSSWithHostileNames(t *testing.T) {
	RequireCommand(t, "ss")
	hs := StartHostile(t)
	withNames := SS(t, nil, "-l")
	byPort := map[string][]SSSocket{}
	for _, s := range withNames {
		byPort[s.Proto+" "+s.Local] = append(byPort[s.Proto+" "+s.Local], s)
	}
	for _, h := range hs {
		comm, _ := os.ReadFile("/proc/" + strconv.Itoa(h.PID) + "/comm")
		if strings.TrimSuffix(string(comm), "\n") != h.Comm {
			t.Errorf("pid %d is named %q, want %q", h.PID, comm, h.Comm)
		}
		for _, k := range []string{"tcp 127.0.0.1:" + strconv.Itoa(h.TCPPort), "udp 127.0.0.1:" + strconv.Itoa(h.UDPPort)} {
			ss := byPort[k]
			if len(ss) != 1 || !reflect.DeepEqual(ss[0].PIDs, []int{h.PID}) {
				t.Errorf("%s held by %q (pid %d): ss says %+v", k, h.Comm, h.PID, ss)
			}
		}
	}
	// No names at all: lines are records. The inodes must agree. Other
	// processes on the host (other tests, a load) open and close sockets
	// between the runs, so only the inodes that ss shows both before and
	// after the run with names must be in it.
	before := ssInodes(t)
	withNames = SS(t, nil, "-l")
	after := ssInodes(t)
	inodes := map[uint64]bool{}
	for _, s := range withNames {
		inodes[s.Inode] = true
	}
	stable := 0
	for ino, ln := range before {
		if _, ok := after[ino]; !ok {
			continue
		}
		stable++
		if !inodes[ino] {
			t.Errorf("ss without names shows inode %d before and after, which the parse of ss -p lacks: %q", ino, ln)
		}
	}
	if stable == 0 {
		t.Fatal("no socket was stable across the ss runs")
	}
}

// ssInodes runs ss without process names, where lines are records, and
// returns each socket's line by inode.
func ssInodes(t *testing.T) map[uint64]string {
	t.Helper()
	out, err := execOutput("ss", "-H", "-tune", "-l")
	if err != nil {
		t.Fatal(err)
	}
	m := map[uint64]string{}
	for _, ln := range strings.Split(strings.TrimSpace(out), "\n") {
		if ln == "" {
			continue
		}
		i := strings.Index(ln, " ino:")
		if i < 0 {
			t.Fatalf("no inode in %q", ln)
		}
		ino, _ := strconv.ParseUint(strings.Fields(ln[i+5:])[0], 10, 64)
		m[ino] = ln
	}
	return m
}

// FuzzParseSS feeds ParseSS any bytes: it must not panic, and whatever
// it accepts must hold as many records as the output has ino: fields
// outside process names.
func FuzzParseSS(f *testing.F) {
	f.Add(ssFixture)
	f.Add("")
	f.Add("tcp LISTEN 0 0 a:1 b:* users:((\"\",pid=1,fd=2)) ino:3\n")
	f.Fuzz(func(t *testing.T, s string) {
		socks, err := ParseSS([]byte(s))
		if err != nil {
			return
		}
		for _, so := range socks {
			if so.Proto != "tcp" && so.Proto != "udp" {
				t.Fatalf("proto %q", so.Proto)
			}
		}
	})
}

func execOutput(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).Output()
	return string(out), err
}

package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/porteiro/porteiro/internal/testenv"
)

type result struct {
	code           int
	stdout, stderr string
}

func runAs(t *testing.T, cred *syscall.Credential, args ...string) result {
	t.Helper()
	cmd := exec.Command(testenv.Binary(t), args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("running porteiro %v: %v", args, err)
	}
	return result{code, out.String(), errb.String()}
}

func porteiro(t *testing.T, args ...string) result { return runAs(t, nil, args...) }

// document mirrors the JSON schema (docs/schema.md) loosely, with numbers
// decoded as numbers: a string where a number belongs fails the decode.
type document struct {
	SchemaVersion int      `json:"schema_version"`
	Resolver      string   `json:"resolver"`
	Privileged    bool     `json:"privileged"`
	Notes         []string `json:"notes"`
	Sockets       []struct {
		Proto  string `json:"proto"`
		Family string `json:"family"`
		State  string `json:"state"`
		Local  struct {
			Address string `json:"address"`
			Port    int    `json:"port"`
		} `json:"local"`
		Inode     uint64 `json:"inode"`
		UID       int    `json:"uid"`
		NetNS     uint64 `json:"netns"`
		Exposure  string `json:"exposure"`
		Processes []struct {
			PID       int      `json:"pid"`
			PPID      int      `json:"ppid"`
			Name      string   `json:"name"`
			Exe       string   `json:"exe"`
			Cmdline   []string `json:"cmdline"`
			User      string   `json:"user"`
			UID       int      `json:"uid"`
			FDs       []int    `json:"fds"`
			StartTime string   `json:"start_time"`
		} `json:"processes"`
		UnattributedReason string `json:"unattributed_reason"`
	} `json:"sockets"`
}

func decode(t *testing.T, s string) document {
	t.Helper()
	var d document
	if err := json.Unmarshal([]byte(s), &d); err != nil {
		t.Fatalf("bad JSON: %v\n%s", err, s)
	}
	return d
}

func listen(t *testing.T, addr string) (*net.TCPListener, int) {
	t.Helper()
	l, err := net.Listen("tcp4", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l.(*net.TCPListener), l.Addr().(*net.TCPAddr).Port
}

// holder starts `sleep` holding the listener's socket as fd 3, optionally
// as another user, and closes the test's own copy when own is false.
func holder(t *testing.T, l *net.TCPListener, cred *syscall.Credential, own bool) *exec.Cmd {
	t.Helper()
	f, err := l.File()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("sleep", "120")
	cmd.ExtraFiles = []*os.File{f}
	if cred != nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if !own {
		l.Close()
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// Wait until the child has exec'd, so /proc shows sleep, not the test.
	for i := 0; i < 100; i++ {
		if b, _ := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/comm"); strings.TrimSpace(string(b)) == "sleep" {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	return cmd
}

func TestWho(t *testing.T) {
	l, port := listen(t, "127.0.0.1:0")
	child := holder(t, l, nil, true)
	r := porteiro(t, "who", strconv.Itoa(port)+"/tcp")
	if r.code != 0 {
		t.Fatalf("who: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "PROTO") {
		t.Fatalf("who: want a header and one line per holder (test and sleep):\n%s", r.stdout)
	}
	if !strings.Contains(r.stdout, "sleep 120") || !strings.Contains(r.stdout, strconv.Itoa(child.Process.Pid)) ||
		!strings.Contains(r.stdout, strconv.Itoa(os.Getpid())) || !strings.Contains(r.stdout, "127.0.0.1:"+strconv.Itoa(port)) {
		t.Errorf("who output lacks a holder, its pid or its command line:\n%s", r.stdout)
	}
	// Columns line up: every row has its PID column at the header's offset.
	col := strings.Index(lines[0], "PID")
	for _, ln := range lines[1:] {
		if ln[col-2:col] != "  " || ln[col] < '0' || ln[col] > '9' {
			t.Errorf("PID column misaligned at %d:\n%s\n%s", col, lines[0], ln)
		}
	}

	d := decode(t, porteiro(t, "who", "127.0.0.1:"+strconv.Itoa(port), "-o", "json").stdout)
	if d.SchemaVersion != 1 || len(d.Sockets) != 1 || len(d.Sockets[0].Processes) != 2 {
		t.Fatalf("who -o json: %+v", d)
	}
	// Where the kernel's task-file iterator is offered (as root), owners
	// come from it.
	if testenv.IteratorError() == nil && d.Resolver != "taskfd" {
		t.Errorf("owners were found by %q, want taskfd", d.Resolver)
	}
	s := d.Sockets[0]
	if s.Proto != "tcp" || s.Family != "ipv4" || s.State != "LISTEN" || s.Local.Port != port || s.Exposure != "loopback" || s.Inode == 0 || s.NetNS == 0 {
		t.Errorf("socket fields: %+v", s)
	}
	for _, p := range s.Processes {
		if p.StartTime == "" || len(p.Cmdline) == 0 || p.User == "" || len(p.FDs) == 0 {
			t.Errorf("process fields: %+v", p)
		}
	}
}

func TestExitCodes(t *testing.T) {
	_, port := listen(t, "127.0.0.1:0")
	free := testenv.FreePort(t)
	cases := []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"who", strconv.Itoa(port)}, 0, ""},
		{[]string{"who", strconv.Itoa(free) + "/tcp"}, 1, "nothing listens"},
		{[]string{"who", "0"}, 2, "out of range"},
		{[]string{"who", "70000"}, 2, "out of range"},
		{[]string{"who", "no-such-service"}, 2, "unknown service"},
		{[]string{"who", "22/sctp"}, 2, "unknown protocol"},
		{[]string{"list", "--user", "no-such-user-porteiro"}, 2, "unknown user"},
		{[]string{"list", "--port", "90-80"}, 2, "range"},
		{[]string{"list", "--state", "bogus"}, 2, "unknown socket state"},
		{[]string{"list", "-o", "yaml"}, 2, "unknown output format"},
		{[]string{"list", "--port", strconv.Itoa(free)}, 1, ""},
		{[]string{"pid", "abc"}, 2, "not a process id"},
		{[]string{"frobnicate"}, 2, "unknown command"},
		{[]string{"list", "--bogus-flag"}, 2, "unknown flag"},
	}
	for _, c := range cases {
		r := porteiro(t, c.args...)
		if r.code != c.code || !strings.Contains(r.stderr, c.err) {
			t.Errorf("porteiro %v: exit %d stderr %q; want exit %d and %q", c.args, r.code, r.stderr, c.code, c.err)
		}
		if c.code == 2 && strings.Count(strings.TrimSpace(r.stderr), "\n") != 0 {
			t.Errorf("porteiro %v: error is not one line: %q", c.args, r.stderr)
		}
	}
}

func TestListDefaultAndFormats(t *testing.T) {
	_, port := listen(t, "127.0.0.1:0")
	p := strconv.Itoa(port)
	bare := porteiro(t)
	if bare.code != 0 || !strings.Contains(bare.stdout, "127.0.0.1:"+p) {
		t.Errorf("porteiro alone: exit %d, listener missing:\n%s", bare.code, bare.stdout)
	}
	if strings.Contains(bare.stdout, "\x1b[") {
		t.Error("colour escape codes in output that is not a terminal")
	}
	csv := porteiro(t, "list", "--port", p, "-o", "csv")
	if !strings.HasPrefix(csv.stdout, "proto,family,state,") || !strings.Contains(csv.stdout, "tcp,ipv4,LISTEN,127.0.0.1,"+p) {
		t.Errorf("csv:\n%s", csv.stdout)
	}
	nd := porteiro(t, "list", "--port", p, "-o", "ndjson")
	if n := strings.Count(strings.TrimSpace(nd.stdout), "\n"); n != 0 {
		t.Errorf("ndjson: want one line for one socket, got %d more", n)
	}
	wide := porteiro(t, "list", "--port", p, "-o", "wide")
	if !strings.Contains(wide.stdout, "INODE") || !strings.Contains(wide.stdout, strconv.Itoa(os.Getpid())) {
		t.Errorf("wide:\n%s", wide.stdout)
	}
	pidOut := porteiro(t, "pid", strconv.Itoa(os.Getpid()), "--listening")
	if pidOut.code != 0 || !strings.Contains(pidOut.stdout, "127.0.0.1:"+p) {
		t.Errorf("pid: exit %d\n%s", pidOut.code, pidOut.stdout)
	}
	if r := porteiro(t, "pid", "999999999"); r.code != 1 || !strings.Contains(r.stderr, "no process") {
		t.Errorf("pid of a missing process: exit %d %q", r.code, r.stderr)
	}
	help := porteiro(t, "who", "--help")
	if !strings.Contains(help.stdout, "Exit status") || !strings.Contains(help.stdout, "porteiro who 22") {
		t.Errorf("who --help lacks exit codes or an example:\n%s", help.stdout)
	}
}

var nobody = &syscall.Credential{Uid: 65534, Gid: 65534}

// TestUnprivileged runs porteiro as nobody: a root listener is still listed,
// with the reason its process is hidden, and nobody's own process is shown.
// ss, run as nobody too, is the oracle.
func TestUnprivileged(t *testing.T) {
	testenv.RequireRoot(t)
	bin := testenv.Binary(t)
	os.Chmod(bin, 0o755)
	for d := bin; d != "/"; {
		i := strings.LastIndex(d, "/")
		if i <= 0 {
			break
		}
		d = d[:i]
		if st, err := os.Stat(d); err == nil && st.Mode().Perm()&0o001 == 0 {
			os.Chmod(d, st.Mode().Perm()|0o011)
		}
	}
	_, rootPort := listen(t, "127.0.0.1:0")
	nl, nobodyPort := listen(t, "127.0.0.1:0")
	child := holder(t, nl, nobody, false)

	r := runAs(t, nobody, "list", "--port", strconv.Itoa(rootPort)+","+strconv.Itoa(nobodyPort), "-o", "json")
	if r.code != 0 {
		t.Fatalf("as nobody: exit %d\n%s", r.code, r.stderr)
	}
	d := decode(t, r.stdout)
	if d.Privileged {
		t.Error("privileged = true for nobody")
	}
	// nobody may not load BPF programs: the /proc walk takes over.
	if d.Resolver != "procfs" {
		t.Errorf("as nobody, owners were found by %q, want procfs", d.Resolver)
	}
	seen := 0
	for _, s := range d.Sockets {
		switch s.Local.Port {
		case rootPort:
			seen++
			if len(s.Processes) != 0 || s.UnattributedReason != "not_permitted" {
				t.Errorf("root's listener as seen by nobody: %+v", s)
			}
		case nobodyPort:
			seen++
			if len(s.Processes) != 1 || s.Processes[0].PID != child.Process.Pid || s.Processes[0].User != "nobody" {
				t.Errorf("nobody's listener: %+v", s)
			}
		}
	}
	if seen != 2 {
		t.Errorf("as nobody, saw %d of the 2 listeners:\n%s", seen, r.stdout)
	}
	if !strings.Contains(r.stderr, "not permitted") || !strings.Contains(r.stderr, "CAP_SYS_PTRACE") {
		t.Errorf("no note on what is missing and why: %q", r.stderr)
	}
	// ss as nobody agrees: it shows nobody's process and no process for
	// root's. testenv.SSCmd reads records, so no process name can fool it.
	cmd := exec.Command("ss", "-H", "-tunpe", "-l", "sport", "=", ":"+strconv.Itoa(nobodyPort), "or", "sport", "=", ":"+strconv.Itoa(rootPort))
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: nobody}
	ss := testenv.SSCmd(t, cmd)
	if len(ss) != 2 {
		t.Errorf("ss as nobody shows %d sockets on the two ports, want 2: %+v", len(ss), ss)
	}
	for _, s := range ss {
		want := []int(nil)
		if strings.HasSuffix(s.Local, ":"+strconv.Itoa(nobodyPort)) {
			want = []int{child.Process.Pid}
		}
		if fmt.Sprint(s.PIDs) != fmt.Sprint(want) {
			t.Errorf("ss as nobody disagrees with porteiro: %s held by %v, want %v", s.Local, s.PIDs, want)
		}
	}
}

func TestKill(t *testing.T) {
	l, port := listen(t, "127.0.0.1:0")
	child := holder(t, l, nil, false)
	p := strconv.Itoa(port) + "/tcp"

	if r := porteiro(t, "kill", p, "--dry-run"); r.code != 0 || !strings.Contains(r.stdout, "would send SIGTERM to pid "+strconv.Itoa(child.Process.Pid)) {
		t.Fatalf("dry run: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if r := porteiro(t, "kill", p); r.code != 2 || !strings.Contains(r.stderr, "--yes") {
		t.Errorf("without a terminal and without --yes: exit %d %q", r.code, r.stderr)
	}
	if err := child.Process.Signal(syscall.Signal(0)); err != nil {
		t.Fatal("the child died before the real kill")
	}
	if r := porteiro(t, "kill", p, "--yes", "--signal", "KILL"); r.code != 0 || !strings.Contains(r.stdout, "sent SIGKILL to pid "+strconv.Itoa(child.Process.Pid)) {
		t.Fatalf("kill: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	st, _ := child.Process.Wait()
	if ws, ok := st.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Errorf("child status %v, want killed by SIGKILL", st)
	}
	if r := porteiro(t, "kill", p, "--yes"); r.code != 1 {
		t.Errorf("kill on a free port: exit %d, want 1", r.code)
	}
	if r := porteiro(t, "kill", p, "--signal", "BOGUS"); r.code != 2 {
		t.Errorf("bad signal: exit %d, want 2", r.code)
	}
}

// TestMain lets the test binary double as a process that listens, for
// TestInPIDNamespace.
func TestMain(m *testing.M) {
	if addr := os.Getenv("PORTEIRO_E2E_LISTEN"); addr != "" {
		l, err := net.Listen("tcp4", addr)
		if err != nil {
			fmt.Println("listen error:", err)
			os.Exit(1)
		}
		defer l.Close()
		fmt.Println("ready", os.Getpid())
		time.Sleep(60 * time.Second)
		return
	}
	os.Exit(m.Run())
}

// TestInPIDNamespace runs porteiro in a new PID namespace, next to a
// process there that holds a listener. porteiro must name that process by
// its pid inside the namespace, and show the test's own listener, whose
// process it cannot see from there, with that reason.
func TestInPIDNamespace(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireIterator(t)
	unshare := testenv.RequireCommand(t, "unshare")
	bin := testenv.Binary(t)
	_, outside := listen(t, "127.0.0.1:0")
	inside := testenv.FreePort(t)
	ready := filepath.Join(t.TempDir(), "ready")
	script := fmt.Sprintf(`PORTEIRO_E2E_LISTEN=127.0.0.1:%d %s >%s &
i=0; until grep -q ready %s; do i=$((i+1)); [ $i -gt 200 ] && exit 3; sleep 0.05; done
%s list --port %d,%d -o json; echo; cat %s; kill $!`,
		inside, os.Args[0], ready, ready, bin, inside, outside, ready)
	cmd := exec.Command(unshare, "--pid", "--fork", "--mount-proc", "sh", "-c", script)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("in a new PID namespace: %v\n%s%s", err, out, stderr.String())
	}
	doc, readyLine, _ := strings.Cut(string(out), "\nready ")
	helperPID, _ := strconv.Atoi(strings.TrimSpace(readyLine))
	d := decode(t, doc)
	if d.Resolver != "taskfd" {
		t.Errorf("inside a PID namespace, owners were found by %q, want taskfd", d.Resolver)
	}
	seen := 0
	for _, s := range d.Sockets {
		switch s.Local.Port {
		case outside:
			seen++
			if len(s.Processes) != 0 || s.UnattributedReason != "no_process_in_pid_namespace" {
				t.Errorf("a listener held outside the namespace: %+v", s)
			}
		case inside:
			seen++
			if len(s.Processes) != 1 || s.Processes[0].PID != helperPID || helperPID <= 1 || helperPID > 100 {
				t.Errorf("the listener held inside the namespace by pid %d: %+v", helperPID, s)
			}
		}
	}
	if seen != 2 {
		t.Errorf("saw %d of the 2 listeners:\n%s\n%s", seen, out, stderr.String())
	}
}

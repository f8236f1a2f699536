// Package e2e runs the built porteiro binary against real sockets, processes
// and servers.
package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/porteiro/porteiro/internal/testenv"
)

// The policy tests run porteiro and the processes holding the sockets in a
// network namespace of their own: as root in CI porteiro would otherwise
// see every socket of the host, including those that other tests open and
// close concurrently, and "exactly one finding" could not be asserted.
//
// The test binary doubles as the helper processes (TestPolicyHelperProcess):
// "hold" opens listeners and keeps them until its stdin closes; "exec" joins
// the namespace and execs porteiro.

const (
	polHelperEnv  = "PORTEIRO_POLICY_HELPER"
	polNetnsEnv   = "PORTEIRO_POLICY_NETNS"
	polListenEnv  = "PORTEIRO_POLICY_LISTEN"
	polArgvEnv    = "PORTEIRO_POLICY_ARGV"
	polUidEnv     = "PORTEIRO_POLICY_UID"
	polHolderMark = "porteiro-e2e-holder"
)

// TestPolicyHelperProcess is not a test: it is the body of the helper
// processes, and skips when run normally.
func TestPolicyHelperProcess(t *testing.T) {
	switch os.Getenv(polHelperEnv) {
	case "hold":
		os.Exit(polHelperHold())
	case "exec":
		os.Exit(polHelperExec())
	}
	t.Skip("helper process body; runs only when started by the policy tests")
}

func polHelperHold() int {
	runtime.LockOSThread()
	if ns := os.Getenv(polNetnsEnv); ns != "" {
		if err := polJoinNetNS(ns); err != nil {
			fmt.Println("ERROR", err)
			return 1
		}
	} else if err := loopbackUp(); err != nil {
		fmt.Println("ERROR", err)
		return 1
	}
	var addrs []string
	var keep []io.Closer
	for _, spec := range strings.Split(os.Getenv(polListenEnv), ",") {
		if spec == "" {
			continue
		}
		// The network is Go's: "tcp" on 0.0.0.0 is a dual-stack [::]
		// socket, "tcp4" is IPv4 only.
		network, addr, _ := strings.Cut(spec, ":")
		switch network {
		case "tcp", "tcp4", "tcp6":
			l, err := net.Listen(network, addr)
			if err != nil {
				fmt.Println("ERROR", err)
				return 1
			}
			keep = append(keep, l)
			addrs = append(addrs, network+":"+l.Addr().String())
		case "udp", "udp4", "udp6":
			c, err := net.ListenPacket(network, addr)
			if err != nil {
				fmt.Println("ERROR", err)
				return 1
			}
			keep = append(keep, c)
			addrs = append(addrs, network+":"+c.LocalAddr().String())
		}
	}
	fmt.Println("READY " + strings.Join(addrs, " "))
	io.Copy(io.Discard, os.Stdin)
	for _, c := range keep {
		c.Close()
	}
	return 0
}

func polHelperExec() int {
	runtime.LockOSThread()
	if err := polJoinNetNS(os.Getenv(polNetnsEnv)); err != nil {
		fmt.Fprintln(os.Stderr, "helper:", err)
		return 125
	}
	var argv []string
	if err := json.Unmarshal([]byte(os.Getenv(polArgvEnv)), &argv); err != nil || len(argv) == 0 {
		fmt.Fprintln(os.Stderr, "helper: bad argv", err)
		return 125
	}
	if u := os.Getenv(polUidEnv); u != "" {
		id, _ := strconv.Atoi(u)
		if err := syscall.Setgroups(nil); err != nil {
			fmt.Fprintln(os.Stderr, "helper: setgroups:", err)
			return 125
		}
		if err := syscall.Setgid(id); err != nil {
			fmt.Fprintln(os.Stderr, "helper: setgid:", err)
			return 125
		}
		if err := syscall.Setuid(id); err != nil {
			fmt.Fprintln(os.Stderr, "helper: setuid:", err)
			return 125
		}
	}
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PORTEIRO_POLICY_") {
			env = append(env, kv)
		}
	}
	// The thread is locked and in the namespace; exec keeps it.
	err := syscall.Exec(argv[0], argv, env)
	fmt.Fprintln(os.Stderr, "helper: exec:", err)
	return 125
}

func polJoinNetNS(path string) error {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("opening %s: %w", path, err)
	}
	defer unix.Close(fd)
	if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
		return fmt.Errorf("setns %s: %w", path, err)
	}
	return nil
}

// polNetns is a network namespace kept alive by an anchor process.
type polNetns struct {
	t      *testing.T
	path   string
	bin    string
	dir    string
	anchor *polHolder
}

// polHolder is a child process holding listeners.
type polHolder struct {
	t     *testing.T
	cmd   *exec.Cmd
	stdin io.WriteCloser
	// Addrs are "tcp:127.0.0.1:41234", in the order asked.
	Addrs []string
	PID   int
}

// Port returns the port of the i-th listener.
func (h *polHolder) Port(i int) int {
	_, port, _ := net.SplitHostPort(strings.SplitN(h.Addrs[i], ":", 2)[1])
	n, _ := strconv.Atoi(port)
	return n
}

// Stop closes the polHolder's listeners and waits for it to exit.
func (h *polHolder) Stop() {
	h.t.Helper()
	if h.stdin == nil {
		return
	}
	h.stdin.Close()
	h.stdin = nil
	done := make(chan error, 1)
	go func() { done <- h.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			h.t.Errorf("polHolder %d: %v", h.PID, err)
		}
	case <-time.After(10 * time.Second):
		h.cmd.Process.Kill()
		h.t.Fatalf("polHolder %d did not exit", h.PID)
	}
}

func polNewNetNS(t *testing.T) *polNetns {
	t.Helper()
	testenv.RequireRoot(t)
	bin := testenv.Binary(t)
	// A directory everyone can traverse, so porteiro can also run as nobody.
	dir, err := os.MkdirTemp("", "porteiro-policy-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(bin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "porteiro"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	ns := &polNetns{t: t, bin: filepath.Join(dir, "porteiro"), dir: dir}
	ns.anchor = ns.start(true, polHolderMark+"-anchor")
	ns.path = fmt.Sprintf("/proc/%d/ns/net", ns.anchor.PID)
	return ns
}

// Hold starts a process in the namespace listening on specs such as
// "tcp4:127.0.0.1:0" (a Go network, then an address); label goes on its
// command line.
func (ns *polNetns) Hold(label string, specs ...string) *polHolder {
	ns.t.Helper()
	return ns.start(false, polHolderMark+"-"+label, specs...)
}

func (ns *polNetns) start(anchor bool, label string, specs ...string) *polHolder {
	t := ns.t
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestPolicyHelperProcess$", "--", label)
	cmd.Env = append(os.Environ(), polHelperEnv+"=hold", polListenEnv+"="+strings.Join(specs, ","))
	if anchor {
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWNET}
	} else {
		cmd.Env = append(cmd.Env, polNetnsEnv+"="+ns.path)
	}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting polHolder: %v", err)
	}
	h := &polHolder{t: t, cmd: cmd, stdin: stdin, PID: cmd.Process.Pid}
	t.Cleanup(func() {
		if h.stdin != nil {
			h.stdin.Close()
			h.cmd.Process.Kill()
			h.cmd.Wait()
		}
	})
	line := make(chan string, 1)
	go func() {
		s, _ := bufio.NewReader(stdout).ReadString('\n')
		line <- s
		io.Copy(io.Discard, stdout)
	}()
	select {
	case s := <-line:
		if !strings.HasPrefix(s, "READY") {
			t.Fatalf("polHolder %s: %q", label, s)
		}
		h.Addrs = strings.Fields(s)[1:]
	case <-time.After(15 * time.Second):
		t.Fatalf("polHolder %s did not start", label)
	}
	return h
}

// Porteiro runs the binary in the namespace, as root or as uid. The
// commands that scan are kept to the test's namespace (--netns): porteiro
// sees every namespace of the host, and the tests are about this one.
func (ns *polNetns) Porteiro(uid int, args ...string) (stdout, stderr string, code int) {
	ns.t.Helper()
	if len(args) > 0 && slices.Contains([]string{"check", "baseline", "list", "who", "pid", "kill"}, args[0]) {
		var st syscall.Stat_t
		if err := syscall.Stat(ns.path, &st); err != nil {
			ns.t.Fatal(err)
		}
		args = append([]string{args[0], "--netns", strconv.FormatUint(st.Ino, 10)}, args[1:]...)
	}
	argv, _ := json.Marshal(append([]string{ns.bin}, args...))
	cmd := exec.Command(os.Args[0], "-test.run=^TestPolicyHelperProcess$")
	cmd.Env = append(os.Environ(), polHelperEnv+"=exec", polNetnsEnv+"="+ns.path, polArgvEnv+"="+string(argv))
	if uid >= 0 {
		cmd.Env = append(cmd.Env, polUidEnv+"="+strconv.Itoa(uid))
	}
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code = 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		ns.t.Fatalf("running porteiro %v: %v", args, err)
	}
	if code == 125 {
		ns.t.Fatalf("helper failed: %s", errb.String())
	}
	return out.String(), errb.String(), code
}

// PorteiroTTY runs the binary in the namespace with stdout on a
// pseudo-terminal 200 columns wide, and returns what it printed there.
func (ns *polNetns) PorteiroTTY(t *testing.T, args ...string) string {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals here: %v", err)
	}
	defer master.Close()
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatalf("unlocking pty: %v", err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatalf("pty number: %v", err)
	}
	tty, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("opening pty: %v", err)
	}
	if err := unix.IoctlSetWinsize(int(tty.Fd()), unix.TIOCSWINSZ, &unix.Winsize{Row: 50, Col: 200}); err != nil {
		t.Fatalf("pty size: %v", err)
	}
	argv, _ := json.Marshal(append([]string{ns.bin}, args...))
	cmd := exec.Command(os.Args[0], "-test.run=^TestPolicyHelperProcess$")
	cmd.Env = append(os.Environ(), polHelperEnv+"=exec", polNetnsEnv+"="+ns.path, polArgvEnv+"="+string(argv))
	for i, kv := range cmd.Env {
		if strings.HasPrefix(kv, "NO_COLOR=") {
			cmd.Env[i] = "PORTEIRO_UNSET_NO_COLOR=1"
		}
	}
	cmd.Stdout = tty
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	tty.Close()
	var out strings.Builder
	done := make(chan struct{})
	go func() {
		// Reading the master ends with EIO once the child has exited.
		io.Copy(&out, master)
		close(done)
	}()
	cmd.Wait()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("reading the pty did not end")
	}
	return out.String()
}

// WriteFile writes a file in the shared directory and returns its path.
func (ns *polNetns) WriteFile(name, content string) string {
	ns.t.Helper()
	p := filepath.Join(ns.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		ns.t.Fatal(err)
	}
	return p
}

// polCheckJSON is the part of "check -o json" the tests read.
type polCheckJSON struct {
	SchemaVersion int            `json:"schema_version"`
	Clean         bool           `json:"clean"`
	Listeners     int            `json:"listeners"`
	Counts        map[string]int `json:"counts"`
	Findings      []struct {
		Kind    string `json:"kind"`
		Key     string `json:"key"`
		Message string `json:"message"`
		Rule    string `json:"rule"`
		Socket  *struct {
			Proto string `json:"proto"`
			Local struct {
				Address string `json:"address"`
				Port    int    `json:"port"`
			} `json:"local"`
			Processes []struct {
				PID     int      `json:"pid"`
				Cmdline []string `json:"cmdline"`
			} `json:"processes"`
		} `json:"socket"`
	} `json:"findings"`
}

func (ns *polNetns) check(policyPath string) (polCheckJSON, int, string) {
	ns.t.Helper()
	out, errOut, code := ns.Porteiro(-1, "check", "-p", policyPath, "-o", "json")
	var doc polCheckJSON
	if code == 0 || code == 1 {
		if err := json.Unmarshal([]byte(out), &doc); err != nil {
			ns.t.Fatalf("check -o json: %v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
		}
		if doc.SchemaVersion != 1 || doc.Clean != (code == 0) || doc.Clean != (len(doc.Findings) == 0) {
			ns.t.Errorf("check: exit %d but clean=%v with %d findings", code, doc.Clean, len(doc.Findings))
		}
	}
	return doc, code, errOut
}

func (ns *polNetns) baseline(name string, args ...string) string {
	ns.t.Helper()
	out, errOut, code := ns.Porteiro(-1, append([]string{"baseline"}, args...)...)
	if code != 0 {
		ns.t.Fatalf("baseline: exit %d: %s", code, errOut)
	}
	return ns.WriteFile(name, out)
}

func TestPolicyBaselineThenCheck(t *testing.T) {
	ns := polNewNetNS(t)
	web := ns.Hold("web", "tcp4:127.0.0.1:0", "tcp4:0.0.0.0:0", "tcp6:[::]:0", "tcp:[::]:0", "udp4:0.0.0.0:0")
	pol := ns.baseline("policy.yaml")

	// Baseline followed by check is clean, in both output formats.
	doc, code, errOut := ns.check(pol)
	if code != 0 || !doc.Clean || doc.Listeners != 5 {
		t.Fatalf("check after baseline: exit %d, %d listeners, findings %+v\nstderr: %s", code, doc.Listeners, doc.Findings, errOut)
	}
	out, _, code := ns.Porteiro(-1, "check", "-p", pol)
	if code != 0 || !strings.HasPrefix(out, "clean: 5 listening socket(s)") {
		t.Errorf("table check: exit %d:\n%s", code, out)
	}

	// A new listener gives exactly one unexpected finding naming its pid
	// and command line.
	intruder := ns.Hold("intruder", "tcp4:0.0.0.0:0")
	doc, code, errOut = ns.check(pol)
	if code != 1 || len(doc.Findings) != 1 {
		t.Fatalf("check with a new listener: exit %d, findings %+v\nstderr: %s", code, doc.Findings, errOut)
	}
	f := doc.Findings[0]
	port := intruder.Port(0)
	// The test's namespace is not the host's: the key names it.
	if want := fmt.Sprintf("unexpected tcp 0.0.0.0:%d in netns pid %d (", port, ns.anchor.PID); f.Kind != "unexpected" || !strings.HasPrefix(f.Key, want) {
		t.Errorf("finding = %s %q, want %s...)", f.Kind, f.Key, want)
	}
	if f.Socket == nil || f.Socket.Local.Port != port || len(f.Socket.Processes) != 1 || f.Socket.Processes[0].PID != intruder.PID {
		t.Errorf("finding socket = %+v, want port %d held by pid %d", f.Socket, port, intruder.PID)
	} else if cl := strings.Join(f.Socket.Processes[0].Cmdline, " "); !strings.Contains(cl, polHolderMark+"-intruder") {
		t.Errorf("finding cmdline = %q", cl)
	}
	for _, s := range []string{fmt.Sprintf("pid %d", intruder.PID), polHolderMark + "-intruder"} {
		if !strings.Contains(f.Message, s) {
			t.Errorf("message %q does not name %q", f.Message, s)
		}
	}
	out, _, code = ns.Porteiro(-1, "check", "-p", pol)
	if code != 1 || !strings.Contains(out, "KIND") || !strings.Contains(out, "unexpected") || !strings.Contains(out, strconv.Itoa(intruder.PID)) {
		t.Errorf("table check: exit %d:\n%s", code, out)
	}
	if strings.Contains(out, "\x1b[") {
		t.Errorf("colour codes in output that is not a terminal:\n%q", out)
	}

	// Once it is gone, the host is clean again.
	intruder.Stop()
	if doc, code, _ := ns.check(pol); code != 0 {
		t.Errorf("after the intruder stopped: exit %d, findings %+v", code, doc.Findings)
	}
	_ = web
}

func TestPolicyRequiredListenerStopped(t *testing.T) {
	ns := polNewNetNS(t)
	ns.Hold("db", "tcp4:127.0.0.1:0")
	api := ns.Hold("api", "tcp4:0.0.0.0:0")
	pol := ns.baseline("policy.yaml", "--require")
	if doc, code, errOut := ns.check(pol); code != 0 {
		t.Fatalf("check after baseline --require: exit %d, findings %+v: %s", code, doc.Findings, errOut)
	}
	port := api.Port(0)
	api.Stop()
	doc, code, _ := ns.check(pol)
	if code != 1 || len(doc.Findings) != 1 {
		t.Fatalf("after stopping api: exit %d, findings %+v", code, doc.Findings)
	}
	f := doc.Findings[0]
	if f.Kind != "missing" || f.Socket != nil || !strings.Contains(f.Rule, strconv.Itoa(port)) ||
		!strings.Contains(f.Message, fmt.Sprintf("tcp port %d", port)) {
		t.Errorf("finding = %+v, want missing for tcp port %d", f, port)
	}
}

func TestPolicyWrongOwnerAndTooExposed(t *testing.T) {
	ns := polNewNetNS(t)
	h := ns.Hold("svc", "tcp4:0.0.0.0:0", "tcp:[::]:0", "udp4:127.0.0.1:0")
	pol := ns.WriteFile("policy.yaml", fmt.Sprintf(`version: 1
allow:
  - name: ssh
    reason: only sshd may hold it
    netns: "*"
    proto: tcp
    port: %d
    process: sshd
  - name: metrics
    reason: scraped locally
    netns: "*"
    proto: tcp
    port: %d
    bind: loopback
  - name: stats
    netns: "*"
    port: %d
    bind: loopback
    user: root
`, h.Port(0), h.Port(1), h.Port(2)))
	doc, code, errOut := ns.check(pol)
	if code != 1 || len(doc.Findings) != 2 {
		t.Fatalf("exit %d, findings %+v: %s", code, doc.Findings, errOut)
	}
	got := map[string]string{}
	for _, f := range doc.Findings {
		got[f.Kind] = f.Rule
		if f.Socket == nil || len(f.Socket.Processes) != 1 || f.Socket.Processes[0].PID != h.PID {
			t.Errorf("%s finding socket %+v, want pid %d", f.Kind, f.Socket, h.PID)
		}
	}
	if got["wrong_owner"] != "ssh" || got["too_exposed"] != "metrics" {
		t.Errorf("findings by kind = %v, want wrong_owner ssh and too_exposed metrics", got)
	}
	// On a terminal the kinds are coloured, and the columns still line up.
	t.Run("terminal", func(t *testing.T) {
		out := ns.PorteiroTTY(t, "check", "-p", pol)
		for _, want := range []string{"\x1b[31mwrong_owner\x1b[0m  tcp", "\x1b[33mtoo_exposed\x1b[0m  tcp", "\x1b[1mKIND"} {
			if !strings.Contains(out, want) {
				t.Errorf("terminal output lacks %q:\n%q", want, out)
			}
		}
	})
}

// A policy that names owners cannot be checked by a user who cannot see
// them: exit 2, never a clean report. An unprivileged baseline names no
// owners, so the same user can check it.
func TestPolicyUnprivileged(t *testing.T) {
	ns := polNewNetNS(t)
	ns.Hold("root-svc", "tcp4:127.0.0.1:0")
	pol := ns.baseline("policy.yaml")
	const nobody = 65534
	out, errOut, code := ns.Porteiro(nobody, "check", "-p", pol)
	if code != 2 || !strings.Contains(errOut, "run as root") || out != "" {
		t.Errorf("unprivileged check of an owner policy: exit %d\nstdout: %s\nstderr: %s", code, out, errOut)
	}
	out, errOut, code = ns.Porteiro(nobody, "baseline")
	if code != 0 || !strings.Contains(errOut, "not running as root") || strings.Contains(out, "    process:") {
		t.Fatalf("unprivileged baseline: exit %d\n%s\n%s", code, out, errOut)
	}
	pol2 := ns.WriteFile("unpriv.yaml", out)
	if out, errOut, code := ns.Porteiro(nobody, "check", "-p", pol2); code != 0 {
		t.Errorf("unprivileged check of an unprivileged baseline: exit %d\n%s%s", code, out, errOut)
	}
}

// A broken policy stops check and validate with exit 2 and positions.
// Nothing is scanned, so this needs neither root nor a namespace.
func TestPolicyBroken(t *testing.T) {
	bin := testenv.Binary(t)
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.yaml")
	if err := os.WriteFile(bad, []byte("version: 1\nallow:\n  - name: web\n    port: 70000\n  - name: db\n    port: 90-80\n    bind: 10.0.0.0/33\n  - nmae: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	good := filepath.Join(dir, "good.yaml")
	if err := os.WriteFile(good, []byte("allow:\n  - port: 22\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	wantErrs := []string{
		bad + ":4:11: port 70000 is out of range",
		bad + ":6:11: port range 90-80 is reversed",
		bad + ":7:11: bad bind CIDR \"10.0.0.0/33\"",
		bad + ":8:5: unknown key \"nmae\"",
	}
	for _, args := range [][]string{
		{"check", "-p", bad},
		{"check", "--policy", bad, "-o", "json"},
		{"policy", "validate", "-p", bad},
		{"policy", "validate", good, bad},
	} {
		cmd := exec.Command(bin, args...)
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		ee, ok := err.(*exec.ExitError)
		if !ok || ee.ExitCode() != 2 {
			t.Errorf("%v: err %v, want exit 2", args, err)
		}
		for _, w := range wantErrs {
			if !strings.Contains(errb.String(), w) {
				t.Errorf("%v: stderr lacks %q:\n%s", args, w, errb.String())
			}
		}
		if args[0] == "check" && out.String() != "" {
			t.Errorf("%v: stdout %q, want nothing", args, out.String())
		}
	}
	out, err := exec.Command(bin, "policy", "validate", "-p", good).CombinedOutput()
	if err != nil || !strings.Contains(string(out), good+": ok (1 allow, 0 require, 0 ignore rule(s); default deny)") {
		t.Errorf("validate good: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "check", "-p", filepath.Join(dir, "absent.yaml")).CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 || !strings.Contains(string(out), "porteiro baseline >") {
		t.Errorf("check with no policy: %v\n%s", err, out)
	}
	out, err = exec.Command(bin, "check", "-p", good, "-o", "xml").CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
		t.Errorf("check -o xml: %v\n%s", err, out)
	}
}

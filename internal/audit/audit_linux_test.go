package audit

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"math/rand"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// The tests re-run this binary as a helper child for what must happen in
// another process: a listener in a namespace nothing names, listener churn,
// and an audit inside a private mount namespace.
const helperEnv = "PORTEIRO_AUDIT_TEST_HELPER"

func TestMain(m *testing.M) {
	switch os.Getenv(helperEnv) {
	case "":
		os.Exit(m.Run())
	case "orphan":
		helperOrphan()
	case "churn":
		helperChurn()
	case "hide":
		helperHide()
	case "bound":
		helperBound()
	case "hidepid":
		helperHidepid()
	}
	os.Exit(0)
}

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("the audit's kernel views need root")
	}
}

func helper(t *testing.T, mode string, args ...string) (*exec.Cmd, *bufio.Reader, func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0], append([]string{"-test.run=^$"}, args...)...)
	cmd.Env = append(os.Environ(), helperEnv+"="+mode)
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
		t.Fatal(err)
	}
	// stop tells the helper to finish; the cleanup waits for it.
	stop := func() { stdin.Close() }
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
	})
	return cmd, bufio.NewReader(stdout), stop
}

func run(t *testing.T, o Options) *Report {
	t.Helper()
	rep, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range rep.Views {
		if !v.Ran {
			t.Logf("view %s skipped: %s", v.View, v.Skipped)
		}
	}
	return rep
}

func TestCleanRun(t *testing.T) {
	needRoot(t)
	rep := run(t, Options{})
	if !rep.Clean || !rep.Compared {
		b, _ := json.MarshalIndent(rep.Findings, "", "  ")
		t.Fatalf("this host should audit clean; findings:\n%s", b)
	}
	// Every port of every namespace probed: 4 × 65535 per namespace (other
	// tests may have namespaces of their own on the host meanwhile).
	if n := rep.PortsProbed + rep.PortsSkipped; n == 0 || n%(4*65535) != 0 {
		t.Errorf("probed %d + explained %d ports, want a multiple of 262140", rep.PortsProbed, rep.PortsSkipped)
	}
	// Every listener ss shows must have been explained, not probed.
	out, err := exec.Command("ss", "-Hltn4").Output()
	if err == nil && len(strings.TrimSpace(string(out))) > 0 && rep.PortsSkipped == 0 {
		t.Errorf("ss shows TCP listeners but the audit explained no port:\n%s", out)
	}
}

// helperChurn opens and closes listeners on random ports as fast as it can,
// TCP and UDP, v4 and v6, and prints how many per second when told to stop.
func helperChurn() {
	stop := make(chan struct{})
	go func() { bufio.NewReader(os.Stdin).ReadByte(); close(stop) }()
	fmt.Println("ready")
	start, n := time.Now(), 0
	for {
		select {
		case <-stop:
			fmt.Printf("%.0f\n", float64(n)/time.Since(start).Seconds())
			return
		default:
		}
		var c interface{ Close() error }
		var err error
		switch n % 4 {
		case 0:
			c, err = net.Listen("tcp4", "127.0.0.1:0")
		case 1:
			c, err = net.Listen("tcp6", "[::1]:0")
		case 2:
			c, err = net.ListenPacket("udp4", "127.0.0.1:0")
		default:
			c, err = net.ListenPacket("udp6", "[::]:0")
		}
		if err == nil {
			time.Sleep(time.Duration(rand.Intn(2000)) * time.Microsecond)
			c.Close()
			n++
		}
	}
}

func TestChurnStaysClean(t *testing.T) {
	needRoot(t)
	_, out, stop := helper(t, "churn")
	if l, _ := out.ReadString('\n'); l != "ready\n" {
		t.Fatalf("helper: %q", l)
	}
	rep := run(t, Options{})
	stop()
	rate, _ := out.ReadString('\n')
	t.Logf("listeners opened and closed per second during the audit: %s", strings.TrimSpace(rate))
	if r, _ := strconv.Atoi(strings.TrimSpace(rate)); r < 100 {
		t.Errorf("churn was only %d listeners per second; the test wants hundreds", r)
	}
	if !rep.Clean {
		b, _ := json.MarshalIndent(rep.Findings, "", "  ")
		t.Fatalf("churn made findings:\n%s", b)
	}
}

// helperOrphan makes a listener in a new network namespace, then returns
// its thread to the original one: the namespace then lives only through
// the socket, with no member and no mount.
func helperOrphan() {
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		panic(err)
	}
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		panic(err)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		panic(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{}); err != nil {
		panic(err)
	}
	if err := unix.Listen(fd, 8); err != nil {
		panic(err)
	}
	sa, _ := unix.Getsockname(fd)
	// And a TCP socket bound but not listening: in no table, only in the
	// kernel's file tables.
	bound, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		panic(err)
	}
	if err := unix.Bind(bound, &unix.SockaddrInet4{}); err != nil {
		panic(err)
	}
	bsa, _ := unix.Getsockname(bound)
	ns, _ := os.Readlink("/proc/thread-self/ns/net")
	if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
		panic(err)
	}
	unix.Close(orig)
	fmt.Println(sa.(*unix.SockaddrInet4).Port, bsa.(*unix.SockaddrInet4).Port, ns)
	bufio.NewReader(os.Stdin).ReadByte()
}

func TestOrphanNetNS(t *testing.T) {
	needRoot(t)
	cmd, out, _ := helper(t, "orphan")
	var port, boundPort int
	var ns string
	if _, err := fmt.Fscanln(out, &port, &boundPort, &ns); err != nil {
		t.Fatal(err)
	}
	// With the probe: it runs inside the orphan namespace too, and its
	// listener explains its port there.
	rep := run(t, Options{})
	var found *Finding
	for i, f := range rep.Findings {
		if f.Kind == KindOrphanNetNS && fmt.Sprintf("net:[%d]", f.NetNS) == ns {
			found = &rep.Findings[i]
		} else {
			t.Errorf("unexpected finding: %+v", f)
		}
	}
	if found == nil {
		t.Fatalf("no orphan_netns finding for %s; findings %+v", ns, rep.Findings)
	}
	sawSock, sawOwner := false, false
	for _, s := range found.Sockets {
		if s.Local == fmt.Sprintf("0.0.0.0:%d", port) && s.State == "LISTEN" {
			sawSock = true
		}
	}
	for _, o := range found.Owners {
		if int(o.PID) == cmd.Process.Pid {
			sawOwner = true
		}
	}
	if !sawSock || !sawOwner {
		t.Fatalf("orphan_netns should name the listener 0.0.0.0:%d and pid %d: %+v", port, cmd.Process.Pid, found)
	}
	if rep.PortsProbed+rep.PortsSkipped < 2*4*65535 {
		t.Errorf("the probe should have run in both namespaces: %d + %d ports", rep.PortsProbed, rep.PortsSkipped)
	}

	// A fake: the seam hides the bound socket from the kernel's file
	// tables; the probe inside the orphan namespace still finds its port.
	fault := func(v View, netns uint64, socks []Sock) []Sock {
		if v != ViewBPFFile {
			return socks
		}
		out := socks[:0]
		for _, s := range socks {
			if int(s.Local.Port()) != boundPort {
				out = append(out, s)
			}
		}
		return out
	}
	rep = run(t, Options{Fault: fault})
	var hidden bool
	for _, f := range rep.Findings {
		if f.Kind == KindHiddenSocket && f.NetNS == found.NetNS && f.Local == fmt.Sprintf("0.0.0.0:%d", boundPort) {
			hidden = true
		}
	}
	if !hidden {
		t.Fatalf("no hidden_socket for 0.0.0.0:%d in the orphan namespace: %+v", boundPort, rep.Findings)
	}
}

func TestViewMismatchFromALyingView(t *testing.T) {
	needRoot(t)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	// A fake: the fault-injection seam makes /proc/net lie about one
	// listener, as a rootkit hooking tcp4_seq_show would. The other views
	// are the real kernel's.
	fault := func(v View, netns uint64, socks []Sock) []Sock {
		if v != ViewProcNet {
			return socks
		}
		out := socks[:0]
		for _, s := range socks {
			if !(s.Proto == 6 && s.Local.Port() == port) {
				out = append(out, s)
			}
		}
		return out
	}
	rep := run(t, Options{Fault: fault, NoProbe: true})
	if len(rep.Findings) != 1 {
		t.Fatalf("want one finding, got %+v", rep.Findings)
	}
	f := rep.Findings[0]
	if f.Kind != KindViewMismatch || f.Local != fmt.Sprintf("127.0.0.1:%d", port) || f.State != "LISTEN" ||
		!hasView(f.SeenBy, ViewSockDiag) || !hasView(f.SeenBy, ViewBPFSock) || !hasView(f.MissedBy, ViewProcNet) || f.Inode == 0 {
		t.Fatalf("finding %+v", f)
	}
}

// helperHide hides /proc/PID (argument) by mounting an empty directory on
// it in this process's private mount namespace, then audits and prints the
// report. The mount dies with the namespace when the helper exits.
func helperHide() {
	pid := os.Args[len(os.Args)-1]
	empty, err := os.MkdirTemp("", "audit-hide")
	if err != nil {
		panic(err)
	}
	defer os.Remove(empty)
	target := filepath.Join("/proc", pid)
	if err := unix.Mount(empty, target, "", unix.MS_BIND, ""); err != nil {
		panic(fmt.Sprintf("bind-mounting over %s: %v", target, err))
	}
	defer unix.Unmount(target, unix.MNT_DETACH)
	rep, err := Run(context.Background(), Options{NoProbe: true})
	if err != nil {
		panic(err)
	}
	json.NewEncoder(os.Stdout).Encode(rep)
}

func TestHiddenProcess(t *testing.T) {
	needRoot(t)
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lf, err := ln.(*net.TCPListener).File()
	ln.Close()
	if err != nil {
		t.Fatal(err)
	}
	victim := exec.Command("sleep", "60")
	victim.ExtraFiles = []*os.File{lf}
	if err := victim.Start(); err != nil {
		t.Fatal(err)
	}
	lf.Close()
	defer func() { victim.Process.Kill(); victim.Wait() }()
	// Wait for the exec, so that the kernel's comm is "sleep".
	for i := 0; i < 100; i++ {
		if b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", victim.Process.Pid)); string(b) == "sleep\n" {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^$", strconv.Itoa(victim.Process.Pid))
	cmd.Env = append(os.Environ(), helperEnv+"=hide")
	// A private mount namespace (Go makes / private in it), so the mount
	// over /proc/PID is seen by the helper only.
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v", err)
	}
	var rep Report
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("helper output: %v\n%s", err, out)
	}
	var hidden *Finding
	for i, f := range rep.Findings {
		if f.Kind == KindHiddenProcess && int(f.PID) == victim.Process.Pid {
			hidden = &rep.Findings[i]
		}
	}
	if hidden == nil {
		t.Fatalf("no hidden_process for pid %d: %+v", victim.Process.Pid, rep.Findings)
	}
	if len(hidden.Owners) != 1 || hidden.Owners[0].Comm != "sleep" || hidden.Owners[0].UID != 0 || len(hidden.Sockets) != 1 || hidden.Sockets[0].State != "LISTEN" {
		t.Fatalf("hidden_process should carry the kernel's pid, comm, uid and the listener: %+v", hidden)
	}
	// The mount was the helper's alone.
	if _, err := os.Stat(fmt.Sprintf("/proc/%d/stat", victim.Process.Pid)); err != nil {
		t.Fatalf("the mount leaked out of the helper's namespace: %v", err)
	}
}

// helperBound holds a TCP socket that is bound but not listening: the
// kernel keeps it in the bind hash only, so no socket table shows it, yet
// bind() on its port fails.
func helperBound() {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		panic(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{}); err != nil {
		panic(err)
	}
	sa, _ := unix.Getsockname(fd)
	fmt.Println(sa.(*unix.SockaddrInet4).Port)
	bufio.NewReader(os.Stdin).ReadByte()
}

func TestHiddenSocketBoundNotListening(t *testing.T) {
	needRoot(t)
	_, out, _ := helper(t, "bound")
	var port uint16
	if _, err := fmt.Fscanln(out, &port); err != nil {
		t.Fatal(err)
	}
	// First, honestly: the kernel's file tables explain the port.
	if rep := run(t, Options{}); !rep.Clean {
		t.Fatalf("a socket bound and not listening is not hidden: %+v", rep.Findings)
	}
	// Then a fake: the seam removes the socket from the kernel's file
	// tables, the one view that shows it, as if a rootkit hid it there
	// too. Only the bind probe still sees the port taken.
	fault := func(v View, netns uint64, socks []Sock) []Sock {
		if v != ViewBPFFile {
			return socks
		}
		out := socks[:0]
		for _, s := range socks {
			if !(s.Proto == 6 && s.Local.Port() == port) {
				out = append(out, s)
			}
		}
		return out
	}
	rep := run(t, Options{Fault: fault})
	if len(rep.Findings) != 1 {
		t.Fatalf("want one finding, got %+v", rep.Findings)
	}
	f := rep.Findings[0]
	if f.Kind != KindHiddenSocket || f.Local != fmt.Sprintf("0.0.0.0:%d", port) || f.Proto != "tcp4" ||
		!hasView(f.SeenBy, ViewBind) || !hasView(f.MissedBy, ViewSockDiag) || !hasView(f.MissedBy, ViewBPFFile) {
		t.Fatalf("finding %+v", f)
	}
}

func TestProbeSeesBusyPorts(t *testing.T) {
	// No root needed: the ports are above 1024.
	t4, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer t4.Close()
	u6, err := net.ListenPacket("udp6", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	defer u6.Close()
	tp, up := uint16(t4.Addr().(*net.TCPAddr).Port), uint16(u6.LocalAddr().(*net.UDPAddr).Port)
	for _, c := range []struct {
		p    Port
		want bool
	}{
		{Port{6, false, tp}, true},
		{Port{6, true, tp}, false}, // IPV6_V6ONLY: a v4 listener does not refuse it
		{Port{17, false, tp}, false},
		{Port{17, true, up}, true},
	} {
		if got := inUse(c.p); got != c.want {
			t.Errorf("inUse(%v) = %v, want %v", c.p, got, c.want)
		}
	}
	busy := probe(context.Background(), []Port{{6, false, tp}, {17, true, up}, {6, false, tp}}, Explained{{6, false, tp}: true}, 2, nil)
	if len(busy) != 1 || busy[0] != (Port{17, true, up}) {
		t.Fatalf("probe skips explained ports and finds the rest: %v", busy)
	}
}

func TestDualStackProbeAnswersForBoth(t *testing.T) {
	if !dualStackWorks() {
		t.Skip("no dual-stack IPv6 sockets here")
	}
	t4, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer t4.Close()
	u6, err := net.ListenPacket("udp6", "[::1]:0")
	if err != nil {
		t.Fatal(err)
	}
	defer u6.Close()
	tp, up := uint16(t4.Addr().(*net.TCPAddr).Port), uint16(u6.LocalAddr().(*net.UDPAddr).Port)
	if !bindRefused(6, tp, modeDual) || !bindRefused(17, up, modeDual) {
		t.Fatal("a dual-stack bind must be refused by a v4 and by a v6 socket on the port")
	}
	all := []Port{{6, false, tp}, {6, true, tp}, {17, false, up}, {17, true, up}}
	busy := probe(context.Background(), all, Explained{}, 2, nil)
	want := []Port{{6, false, tp}, {17, true, up}}
	if len(busy) != 2 || !((busy[0] == want[0] && busy[1] == want[1]) || (busy[0] == want[1] && busy[1] == want[0])) {
		t.Fatalf("probe found %v, want %v", busy, want)
	}
}

// helperHidepid mounts a procfs with hidepid=2 (in its private mount
// namespace) and audits through it.
func helperHidepid() {
	dir, err := os.MkdirTemp("", "audit-proc")
	if err != nil {
		panic(err)
	}
	defer os.Remove(dir)
	if err := unix.Mount("proc", dir, "proc", 0, "hidepid=2"); err != nil {
		panic(fmt.Sprintf("mounting proc with hidepid=2: %v", err))
	}
	defer unix.Unmount(dir, unix.MNT_DETACH)
	rep, err := Run(context.Background(), Options{ProcRoot: dir, NoProbe: true})
	if err != nil {
		panic(err)
	}
	json.NewEncoder(os.Stdout).Encode(rep)
}

// hidepid=2 hides other users' processes from other users, not from root:
// root auditing through such a /proc finds nothing hidden.
func TestHidepidProcIsNotAFinding(t *testing.T) {
	needRoot(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), helperEnv+"=hidepid")
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("helper: %v", err)
	}
	var rep Report
	if err := json.Unmarshal(out, &rep); err != nil {
		t.Fatalf("helper output: %v\n%s", err, out)
	}
	if !rep.Clean {
		t.Fatalf("findings through a hidepid=2 /proc: %+v", rep.Findings)
	}
	for _, v := range rep.Views {
		if v.View == ViewProc && !v.Ran {
			t.Fatalf("the /proc view did not run: %s", v.Skipped)
		}
	}
}

// A kernel socket (here VXLAN's UDP socket) has an inode but no file and
// no process: every view must agree on it.
func TestKernelSocketIsNotAFinding(t *testing.T) {
	needRoot(t)
	for _, tool := range []string{"unshare", "ip"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("%s not found", tool)
		}
	}
	cmd := exec.Command("unshare", "-n", "sh", "-c",
		"ip link set lo up && ip link add vx0 type vxlan id 42 dstport 4789 local 127.0.0.1 dev lo && ip link set vx0 up && echo ready && read x")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); cmd.Wait() }()
	if l, _ := bufio.NewReader(stdout).ReadString('\n'); l != "ready\n" {
		t.Skipf("no VXLAN here (%q)", l)
	}
	ns, err := nsInode(fmt.Sprintf("/proc/%d/ns/net", cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	rep := run(t, Options{NoProbe: true})
	if !rep.Clean {
		t.Fatalf("findings: %+v", rep.Findings)
	}
	// And the namespace was audited: the fault seam sees its tables.
	saw := false
	run(t, Options{NoProbe: true, Fault: func(v View, netns uint64, socks []Sock) []Sock {
		for _, s := range socks {
			if netns == ns && v == ViewBPFSock && s.Proto == 17 && s.Local.Port() == 4789 && s.Inode != 0 {
				saw = true
			}
		}
		return socks
	}})
	if !saw {
		t.Fatal("the VXLAN socket was not seen with its inode in its namespace")
	}
}

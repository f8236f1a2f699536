package e2e

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
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

	"github.com/porteiro/porteiro/internal/render"
	"github.com/porteiro/porteiro/internal/testenv"
)

// The helper is this test binary, re-executed inside (or next to) a network
// namespace. It opens a TCP and a UDP socket, IPv4 and IPv6, on one port of
// that namespace's loopback, prints what it made, and lives until the test
// closes its stdin.
const (
	nsHelperEnv = "PORTEIRO_E2E_NETNS_HELPER" // the mode: member or socket-only
	nsPortEnv   = "PORTEIRO_E2E_NETNS_PORT"
	nsCommEnv   = "PORTEIRO_E2E_NETNS_COMM" // hex of the comm to take
)

// init turns the test binary into the helper before the testing package
// reads the command line.
func init() {
	if mode := os.Getenv(nsHelperEnv); mode != "" {
		os.Exit(runNSHelper(mode))
	}
}

// nsSock is one socket a helper opened.
type nsSock struct {
	Proto, Family string
	Inode         uint64
}

func runNSHelper(mode string) int {
	fail := func(format string, a ...any) int {
		fmt.Printf("error "+format+"\n", a...)
		return 2
	}
	port, err := strconv.Atoi(os.Getenv(nsPortEnv))
	if err != nil {
		return fail("bad port: %v", err)
	}
	if h := os.Getenv(nsCommEnv); h != "" {
		comm, err := hex.DecodeString(h)
		if err != nil {
			return fail("bad comm: %v", err)
		}
		if err := os.WriteFile("/proc/self/comm", comm, 0); err != nil {
			return fail("setting comm: %v", err)
		}
	}
	var (
		ns    uint64
		socks []nsSock
	)
	switch mode {
	case "member":
		// The process is a member of the namespace it was started in.
		if err := loopbackUp(); err != nil {
			return fail("%v", err)
		}
		if ns, err = nsInode("/proc/self/ns/net"); err != nil {
			return fail("%v", err)
		}
		if socks, err = openNSSockets(port); err != nil {
			return fail("%v", err)
		}
	case "socket-only":
		// One thread enters a new namespace, opens the sockets there and
		// comes back: afterwards no thread and no mount is in the
		// namespace, and only the sockets' fds lead to it. The Go runtime
		// starts new threads from a template thread, never from a locked
		// one, so none is born inside.
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fail("opening /proc/thread-self/ns/net: %v", err)
		}
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			return fail("unshare(CLONE_NEWNET): %v", err)
		}
		if ns, err = nsInode("/proc/thread-self/ns/net"); err != nil {
			return fail("%v", err)
		}
		if err := loopbackUp(); err != nil {
			return fail("%v", err)
		}
		if socks, err = openNSSockets(port); err != nil {
			return fail("%v", err)
		}
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			return fail("setns back: %v", err) // exits: the thread never runs anything else
		}
		unix.Close(orig)
		if back, _ := nsInode("/proc/thread-self/ns/net"); back == ns {
			return fail("still in the new namespace after setns")
		}
		runtime.UnlockOSThread()
	default:
		return fail("unknown mode %q", mode)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "ready %d %d", os.Getpid(), ns)
	for _, s := range socks {
		fmt.Fprintf(&b, " %s/%s/%d", s.Proto, s.Family, s.Inode)
	}
	fmt.Println(b.String())
	// Live until the test closes stdin (or dies), and no longer than the
	// longest test.
	done := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Minute):
	}
	return 0
}

// loopbackUp brings up lo of the calling thread's namespace: a new
// namespace starts with it down, and ::1 appears only once it is up.
func loopbackUp() error {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("socket for SIOCSIFFLAGS: %w", err)
	}
	defer unix.Close(fd)
	ifr, err := unix.NewIfreq("lo")
	if err != nil {
		return err
	}
	if err := unix.IoctlIfreq(fd, unix.SIOCGIFFLAGS, ifr); err != nil {
		return fmt.Errorf("SIOCGIFFLAGS lo: %w", err)
	}
	ifr.SetUint16(ifr.Uint16() | unix.IFF_UP)
	if err := unix.IoctlIfreq(fd, unix.SIOCSIFFLAGS, ifr); err != nil {
		return fmt.Errorf("SIOCSIFFLAGS lo up: %w", err)
	}
	return nil
}

// openNSSockets opens, in the calling thread's namespace, a TCP listener
// and a bound UDP socket on 127.0.0.1:port and [::1]:port. The fds stay
// open for the life of the process.
func openNSSockets(port int) ([]nsSock, error) {
	v4 := &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}
	v6 := &unix.SockaddrInet6{Port: port, Addr: [16]byte{15: 1}}
	specs := []struct {
		proto, family string
		domain, typ   int
		sa            unix.Sockaddr
	}{
		{"tcp", "ipv4", unix.AF_INET, unix.SOCK_STREAM, v4},
		{"tcp", "ipv6", unix.AF_INET6, unix.SOCK_STREAM, v6},
		{"udp", "ipv4", unix.AF_INET, unix.SOCK_DGRAM, v4},
		{"udp", "ipv6", unix.AF_INET6, unix.SOCK_DGRAM, v6},
	}
	var out []nsSock
	for _, s := range specs {
		fd, err := unix.Socket(s.domain, s.typ|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil, fmt.Errorf("%s/%s socket: %w", s.proto, s.family, err)
		}
		if err := unix.Bind(fd, s.sa); err != nil {
			return nil, fmt.Errorf("%s/%s bind port %d: %w", s.proto, s.family, port, err)
		}
		if s.typ == unix.SOCK_STREAM {
			if err := unix.Listen(fd, 16); err != nil {
				return nil, fmt.Errorf("%s/%s listen: %w", s.proto, s.family, err)
			}
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil {
			return nil, err
		}
		out = append(out, nsSock{s.proto, s.family, st.Ino})
	}
	return out, nil
}

func nsInode(path string) (uint64, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, fmt.Errorf("stat %s: %w", path, err)
	}
	return st.Ino, nil
}

// nsHelper is a running helper.
type nsHelper struct {
	PID   int
	NetNS uint64
	Socks []nsSock
	// Comm is the helper's comm as the kernel keeps it.
	Comm string
}

// startNSHelper runs the helper program exe in mode under the command
// prefix (ip netns exec NAME, unshare --net, ...), which must exec, not
// fork, so that the helper keeps the pid started. It waits for the
// helper's sockets and kills it, by pid, when the test ends.
func startNSHelper(t *testing.T, exe string, prefix []string, mode string, port int, comm string) *nsHelper {
	t.Helper()
	argv := append(append([]string(nil), prefix...), exe)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = filepath.Dir(exe)
	cmd.Env = append(os.Environ(), nsHelperEnv+"="+mode, nsPortEnv+"="+strconv.Itoa(port))
	if comm != "" {
		cmd.Env = append(cmd.Env, nsCommEnv+"="+hex.EncodeToString([]byte(comm)))
	}
	var stderr testenv.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %v: %v", argv, err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() {
		stdin.Close()
		_ = syscall.Kill(pid, syscall.SIGKILL)
		_ = cmd.Wait()
	})
	lines := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(stdout).ReadString('\n')
		lines <- line
		io.Copy(io.Discard, stdout)
	}()
	var line string
	select {
	case line = <-lines:
	case <-time.After(30 * time.Second):
		t.Fatalf("%v: no answer after 30 s; stderr: %s", argv, stderr.String())
	}
	f := strings.Fields(line)
	if len(f) != 7 || f[0] != "ready" {
		t.Fatalf("%v (mode %s): %q; stderr: %s", prefix, mode, line, stderr.String())
	}
	h := &nsHelper{}
	h.PID, _ = strconv.Atoi(f[1])
	h.NetNS, _ = strconv.ParseUint(f[2], 10, 64)
	if h.PID != pid {
		// The prefix forked: kill the helper too.
		t.Cleanup(func() { _ = syscall.Kill(h.PID, syscall.SIGKILL) })
		t.Fatalf("%v forked: the helper is pid %d, not %d", prefix, h.PID, pid)
	}
	for _, s := range f[3:] {
		p := strings.Split(s, "/")
		ino, _ := strconv.ParseUint(p[2], 10, 64)
		h.Socks = append(h.Socks, nsSock{p[0], p[1], ino})
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	if err != nil {
		t.Fatal(err)
	}
	h.Comm = strings.TrimSuffix(string(b), "\n")
	return h
}

// nsDocument is the part of porteiro's JSON these tests read.
type nsDocument struct {
	Privileged bool     `json:"privileged"`
	Notes      []string `json:"notes"`
	Sockets    []nsJSONSocket
}

type nsJSONSocket struct {
	Proto  string `json:"proto"`
	Family string `json:"family"`
	State  string `json:"state"`
	Local  struct {
		Address string `json:"address"`
		Port    int    `json:"port"`
	} `json:"local"`
	Inode     uint64 `json:"inode"`
	NetNS     uint64 `json:"netns"`
	NetNSName string `json:"netns_name"`
	Exposure  string `json:"exposure"`
	Processes []struct {
		PID  int    `json:"pid"`
		Name string `json:"name"`
	} `json:"processes"`
	UnattributedReason string `json:"unattributed_reason"`
}

func (s nsJSONSocket) String() string {
	return fmt.Sprintf("%s/%s %s:%d ino %d netns %d %q", s.Proto, s.Family, s.Local.Address, s.Local.Port, s.Inode, s.NetNS, s.NetNSName)
}

func decodeNS(t *testing.T, r result) nsDocument {
	t.Helper()
	var d nsDocument
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil {
		t.Fatalf("bad JSON (exit %d): %v\n%.2000s\n%s", r.code, err, r.stdout, r.stderr)
	}
	return d
}

// inNS returns porteiro's sockets in namespace ino.
func (d nsDocument) inNS(ino uint64) []nsJSONSocket {
	var out []nsJSONSocket
	for _, s := range d.Sockets {
		if s.NetNS == ino {
			out = append(out, s)
		}
	}
	return out
}

// checkHelperSockets checks that socks, porteiro's sockets in h's
// namespace, hold h's four sockets, named name and held by h.
func checkHelperSockets(t *testing.T, what string, socks []nsJSONSocket, h *nsHelper, name string, port int) {
	t.Helper()
	for _, want := range h.Socks {
		i := slices.IndexFunc(socks, func(s nsJSONSocket) bool { return s.Inode == want.Inode })
		if i < 0 {
			t.Errorf("%s: porteiro lacks %s/%s inode %d of pid %d in netns %d", what, want.Proto, want.Family, want.Inode, h.PID, h.NetNS)
			continue
		}
		s := socks[i]
		if s.Proto != want.Proto || s.Family != want.Family || s.Local.Port != port || s.NetNS != h.NetNS || s.NetNSName != name || s.Exposure != "loopback" {
			t.Errorf("%s: %v; want %s/%s port %d in netns %d %q, exposure loopback", what, s, want.Proto, want.Family, port, h.NetNS, name)
		}
		if len(s.Processes) != 1 || s.Processes[0].PID != h.PID {
			t.Errorf("%s: %v held by %+v (%s), want pid %d", what, s, s.Processes, s.UnattributedReason, h.PID)
		}
	}
}

// ssFamily is the family of an ss local address: [v6]:port or v4:port
// ("*:port" is the IPv6 wildcard).
func ssFamily(local string) string {
	if strings.HasPrefix(local, "[") || strings.HasPrefix(local, "*:") {
		return "ipv6"
	}
	return "ipv4"
}

// compareWithSS checks that porteiro's listening sockets of one namespace
// are those that `ss -tulne`, run inside it, shows: by inode, and counted
// by protocol and family.
func compareWithSS(t *testing.T, what string, socks []nsJSONSocket, ss []testenv.SSSocket) {
	t.Helper()
	count := func(proto, family string) string { return proto + "/" + family }
	pc, sc := map[string]int{}, map[string]int{}
	pino, sino := map[uint64]bool{}, map[uint64]bool{}
	for _, s := range socks {
		pc[count(s.Proto, s.Family)]++
		pino[s.Inode] = true
	}
	for _, s := range ss {
		sc[count(s.Proto, ssFamily(s.Local))]++
		sino[s.Inode] = true
		if !pino[s.Inode] {
			t.Errorf("%s: ss shows %s %s inode %d; porteiro does not", what, s.Proto, s.Local, s.Inode)
		}
	}
	for _, s := range socks {
		if !sino[s.Inode] {
			t.Errorf("%s: porteiro shows %v; ss does not", what, s)
		}
	}
	for _, k := range []string{"tcp/ipv4", "tcp/ipv6", "udp/ipv4", "udp/ipv6"} {
		if pc[k] != sc[k] {
			t.Errorf("%s: %s: porteiro counts %d listening sockets, ss %d", what, k, pc[k], sc[k])
		}
	}
	if len(socks) != len(ss) {
		t.Errorf("%s: porteiro shows %d listening sockets, ss %d", what, len(socks), len(ss))
	}
}

// nsNobody is the unprivileged user that creates its own user and network
// namespace.
var nsNobody = []string{"--reuid=nobody", "--regid=nogroup", "--clear-groups"}

// exposeForNobody copies the test binary and porteiro into a directory
// that nobody may read and run them from, removed when the test ends.
func exposeForNobody(t *testing.T) (helper, bin string) {
	t.Helper()
	dir, err := os.MkdirTemp("", "porteiro-e2e-netns-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	cp := func(src, name string) string {
		b, err := os.ReadFile(src)
		if err != nil {
			t.Fatal(err)
		}
		dst := filepath.Join(dir, name)
		if err := os.WriteFile(dst, b, 0o755); err != nil {
			t.Fatal(err)
		}
		return dst
	}
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	return cp(self, "netns-helper"), cp(testenv.Binary(t), "porteiro")
}

// addIPNetns runs `ip netns add` for a name of this test process, and
// `ip netns del` when the test ends.
func addIPNetns(t *testing.T, ip, suffix string) string {
	t.Helper()
	name := fmt.Sprintf("porteiro-e2e-%d-%s", os.Getpid(), suffix)
	if out, err := exec.Command(ip, "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v\n%s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command(ip, "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v\n%s", name, err, out)
		}
	})
	return name
}

// nsFreePort is a port that no TCP or UDP socket of the host uses, so that
// in the tests below it is open only inside the namespaces.
func nsFreePort(t *testing.T) int {
	t.Helper()
	for range 20 {
		p := testenv.FreePort(t)
		u, err := syscall.Socket(syscall.AF_INET6, syscall.SOCK_DGRAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		err = syscall.Bind(u, &syscall.SockaddrInet6{Port: p})
		syscall.Close(u)
		if err == nil {
			return p
		}
	}
	t.Fatal("no port free for both TCP and UDP")
	return 0
}

// TestNetNS runs listeners in three kinds of network namespace at once: one
// made by `ip netns add`, one by `unshare --net` with no mount (a process
// with a hostile name is its only member), and a user and network namespace
// that nobody made. Each holds TCP and UDP, IPv4 and IPv6, on one port that
// the host does not use. porteiro, as root, must show every one, named, in
// agreement with ss run inside it, and --netns, who and pid must work
// across them.
func TestNetNS(t *testing.T) {
	testenv.RequireRoot(t)
	ip := testenv.RequireCommand(t, "ip")
	unshare := testenv.RequireCommand(t, "unshare")
	nsenter := testenv.RequireCommand(t, "nsenter")
	setpriv := testenv.RequireCommand(t, "setpriv")
	testenv.RequireCommand(t, "ss")
	helper, _ := exposeForNobody(t)
	port := nsFreePort(t)
	p := strconv.Itoa(port)

	name := addIPNetns(t, ip, "named")
	named := startNSHelper(t, helper, []string{ip, "netns", "exec", name}, "member", port, "ns-named")
	// A name that forges a line, a colour and a bidi override, and closes
	// the parenthesis of "pid N (comm)" early.
	hostile := "n\x1b[31m\n)\u202ex"
	unshared := startNSHelper(t, helper, []string{unshare, "--net"}, "member", port, hostile)
	userns := startNSHelper(t, helper, append(append([]string{setpriv}, nsNobody...), unshare, "--user", "--map-root-user", "--net"), "member", port, "ns-userns")
	type nsCase struct {
		what string
		h    *nsHelper
		name string
		ss   []string // how to run ss inside
	}
	cases := []nsCase{
		{"ip netns add", named, name, []string{ip, "netns", "exec", name}},
		{"unshare --net", unshared, "pid " + strconv.Itoa(unshared.PID) + " (" + unshared.Comm + ")", []string{nsenter, "--net=/proc/" + strconv.Itoa(unshared.PID) + "/ns/net"}},
		{"user+net namespace of nobody", userns, "pid " + strconv.Itoa(userns.PID) + " (" + userns.Comm + ")", []string{nsenter, "--net=/proc/" + strconv.Itoa(userns.PID) + "/ns/net"}},
	}
	if unshared.Comm != hostile {
		t.Fatalf("the kernel keeps the comm %q, not %q", unshared.Comm, hostile)
	}
	host, err := nsInode("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		if c.h.NetNS == host || c.h.NetNS == 0 {
			t.Fatalf("%s: the helper is in netns %d, the host's is %d", c.what, c.h.NetNS, host)
		}
	}

	t.Run("every namespace by default", func(t *testing.T) {
		r := porteiro(t, "list", "--port", p, "-o", "json")
		if r.code != 0 {
			t.Fatalf("list --port %s: exit %d\n%s", p, r.code, r.stderr)
		}
		d := decodeNS(t, r)
		if host := d.inNS(host); len(host) != 0 {
			t.Errorf("port %d is open on the host too: %v", port, host)
		}
		for _, c := range cases {
			checkHelperSockets(t, c.what, d.inNS(c.h.NetNS), c.h, c.name, port)
		}
		if len(d.Sockets) != 4*len(cases) {
			t.Errorf("%d sockets on port %d, want %d: %v", len(d.Sockets), port, 4*len(cases), d.Sockets)
		}
	})

	t.Run("counts match ss inside each namespace", func(t *testing.T) {
		for _, c := range cases {
			r := porteiro(t, "list", "--netns", strconv.FormatUint(c.h.NetNS, 10), "-o", "json")
			if r.code != 0 {
				t.Errorf("%s: list --netns %d: exit %d\n%s", c.what, c.h.NetNS, r.code, r.stderr)
				continue
			}
			d := decodeNS(t, r)
			if other := len(d.Sockets) - len(d.inNS(c.h.NetNS)); other != 0 {
				t.Errorf("%s: --netns %d shows %d sockets of other namespaces", c.what, c.h.NetNS, other)
			}
			checkHelperSockets(t, c.what, d.Sockets, c.h, c.name, port)
			compareWithSS(t, c.what, d.Sockets, testenv.SS(t, c.ss, "-l"))
		}
	})

	t.Run("--netns", func(t *testing.T) {
		d := decodeNS(t, porteiro(t, "list", "--netns", name, "-o", "json"))
		if len(d.Sockets) != 4 || len(d.inNS(named.NetNS)) != 4 {
			t.Errorf("--netns %s: want the 4 sockets of that namespace, got %v", name, d.Sockets)
		}
		// A glob.
		d = decodeNS(t, porteiro(t, "list", "--netns", "porteiro-e2e-"+strconv.Itoa(os.Getpid())+"-*", "--port", p, "-o", "json"))
		if len(d.Sockets) != 4 || len(d.inNS(named.NetNS)) != 4 {
			t.Errorf("--netns with a glob: want the 4 sockets of %s, got %v", name, d.Sockets)
		}
		// "pid N (comm)" names select too.
		d = decodeNS(t, porteiro(t, "list", "--netns", cases[2].name, "-o", "json"))
		if len(d.Sockets) != 4 || len(d.inNS(userns.NetNS)) != 4 {
			t.Errorf("--netns %q: want the 4 sockets of that namespace, got %v", cases[2].name, d.Sockets)
		}
		r := porteiro(t, "list", "--netns", "host", "--port", p, "-o", "json")
		if r.code != 1 {
			t.Errorf("--netns host --port %s: exit %d, want 1 (nothing there)\n%s%s", p, r.code, r.stdout, r.stderr)
		}
		d = decodeNS(t, porteiro(t, "list", "--netns", "host", "--netns", name, "--port", p, "-o", "json"))
		if len(d.Sockets) != 4 || len(d.inNS(named.NetNS)) != 4 {
			t.Errorf("--netns host --netns %s: want the 4 sockets of %s, got %v", name, name, d.Sockets)
		}
		// The table gets a NETNS column, escaped.
		tr := porteiro(t, "list", "--netns", "all", "--port", p)
		if ok, c := terminalSafe(tr.stdout + tr.stderr); !ok {
			t.Errorf("list printed %U:\n%q", c, tr.stdout)
		}
		lines := strings.Split(strings.TrimRight(tr.stdout, "\n"), "\n")
		if len(lines) != 1+4*len(cases) || !strings.Contains(lines[0], "NETNS") {
			t.Fatalf("want a header with NETNS and %d lines:\n%s", 4*len(cases), tr.stdout)
		}
		for _, c := range cases {
			n := 0
			for _, ln := range lines[1:] {
				if strings.Contains(ln, "  "+render.Escape(c.name)+"  ") && strings.Contains(ln, " "+strconv.Itoa(c.h.PID)+" ") {
					n++
				}
			}
			if n != 4 {
				t.Errorf("%s: %d table lines name %q and pid %d, want 4:\n%s", c.what, n, render.Escape(c.name), c.h.PID, tr.stdout)
			}
		}
	})

	t.Run("who", func(t *testing.T) {
		r := porteiro(t, "who", p+"/tcp", "-o", "json")
		if r.code != 0 {
			t.Fatalf("who %s/tcp: exit %d\n%s", p, r.code, r.stderr)
		}
		d := decodeNS(t, r)
		// Other tests' namespaces may use the same port meanwhile: count
		// this test's.
		n := 0
		for _, c := range cases {
			n += len(d.inNS(c.h.NetNS))
		}
		if n != 2*len(cases) {
			t.Errorf("who %s/tcp: %d sockets in the test's namespaces, want %d: %v", p, n, 2*len(cases), d.Sockets)
		}
		for _, c := range cases {
			var tcp []nsJSONSocket
			for _, s := range d.inNS(c.h.NetNS) {
				if s.Proto == "tcp" {
					tcp = append(tcp, s)
				}
			}
			if len(tcp) != 2 || tcp[0].NetNSName != c.name {
				t.Errorf("who: %s: %v, want two TCP sockets named %q", c.what, tcp, c.name)
			}
		}
		tr := porteiro(t, "who", "127.0.0.1:"+p+"/udp")
		lines := strings.Split(strings.TrimRight(tr.stdout, "\n"), "\n")
		// (At least: another test's wildcard socket on the same port, in
		// a namespace of its own, also serves 127.0.0.1 there.)
		if tr.code != 0 || len(lines) < 1+len(cases) {
			t.Fatalf("who 127.0.0.1:%s/udp: exit %d, want a header and %d lines:\n%s%s", p, tr.code, len(cases), tr.stdout, tr.stderr)
		}
		if ok, c := terminalSafe(tr.stdout + tr.stderr); !ok {
			t.Errorf("who printed %U:\n%q", c, tr.stdout)
		}
		for _, c := range cases {
			if !strings.Contains(tr.stdout, render.Escape(c.name)) {
				t.Errorf("who does not say that pid %d's socket is in %q:\n%s", c.h.PID, render.Escape(c.name), tr.stdout)
			}
		}
	})

	t.Run("pid", func(t *testing.T) {
		for _, c := range cases {
			r := porteiro(t, "pid", strconv.Itoa(c.h.PID), "-o", "json")
			if r.code != 0 {
				t.Errorf("%s: pid %d: exit %d\n%s", c.what, c.h.PID, r.code, r.stderr)
				continue
			}
			d := decodeNS(t, r)
			checkHelperSockets(t, c.what+": pid", d.Sockets, c.h, c.name, port)
			if len(d.Sockets) != 4 {
				t.Errorf("%s: pid %d shows %d sockets, want 4: %v", c.what, c.h.PID, len(d.Sockets), d.Sockets)
			}
		}
	})
}

// TestNetNSUnprivileged runs porteiro as the user who made a user and
// network namespace: it shows that namespace's sockets (setns needs
// CAP_SYS_ADMIN in porteiro's own user namespace, which nobody lacks, so
// through /proc/PID/net of the member), and says which namespaces it could
// not enter. ss, run by the same user inside the namespace, is the oracle.
func TestNetNSUnprivileged(t *testing.T) {
	testenv.RequireRoot(t)
	ip := testenv.RequireCommand(t, "ip")
	unshare := testenv.RequireCommand(t, "unshare")
	nsenter := testenv.RequireCommand(t, "nsenter")
	setpriv := testenv.RequireCommand(t, "setpriv")
	testenv.RequireCommand(t, "ss")
	helper, bin := exposeForNobody(t)
	port := nsFreePort(t)
	p := strconv.Itoa(port)

	name := addIPNetns(t, ip, "closed")
	closed := startNSHelper(t, helper, []string{ip, "netns", "exec", name}, "member", port, "ns-root")
	userns := startNSHelper(t, helper, append(append([]string{setpriv}, nsNobody...), unshare, "--user", "--map-root-user", "--net"), "member", port, "ns-nobody")
	want := "pid " + strconv.Itoa(userns.PID) + " (" + userns.Comm + ")"

	asNobody := func(args ...string) result {
		cmd := exec.Command(setpriv, append(append(append([]string(nil), nsNobody...), bin), args...)...)
		cmd.Dir = filepath.Dir(bin)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatalf("running porteiro %v as nobody: %v", args, err)
		}
		return result{code, out.String(), errb.String()}
	}

	r := asNobody("list", "--port", p, "-o", "json")
	if r.code != 0 {
		t.Fatalf("as nobody: list --port %s: exit %d\n%s", p, r.code, r.stderr)
	}
	d := decodeNS(t, r)
	if d.Privileged {
		t.Error("privileged = true for nobody")
	}
	checkHelperSockets(t, "as nobody", d.inNS(userns.NetNS), userns, want, port)
	if got := d.inNS(closed.NetNS); len(got) != 0 {
		t.Errorf("as nobody, the sockets of root's namespace %s were read: %v", name, got)
	}
	// How the namespace was read, and what could not be entered, are
	// said in notes, in JSON and on stderr.
	via := fmt.Sprintf("read from /proc/%d/net", userns.PID)
	notes := strings.Join(d.Notes, "\n")
	if !strings.Contains(notes, via) || !strings.Contains(r.stderr, via) {
		t.Errorf("no note says the namespace of nobody was %s:\nnotes: %q\nstderr: %s", via, d.Notes, r.stderr)
	}
	if !strings.Contains(notes, name) || !strings.Contains(r.stderr, name) {
		t.Errorf("no note says that namespace %s could not be entered:\nnotes: %q\nstderr: %s", name, d.Notes, r.stderr)
	}

	// The host's own sockets are the host's, even where nobody may not
	// read PID 1's namespace link.
	_, hostPort := listen(t, "127.0.0.1:0")
	r = asNobody("list", "--port", strconv.Itoa(hostPort), "-o", "json")
	if d := decodeNS(t, r); len(d.Sockets) != 1 || d.Sockets[0].NetNSName != "host" {
		t.Errorf("as nobody, a listener of the host (port %d) is not named host: %v", hostPort, d.Sockets)
	}

	// Every listening socket of the namespace, against ss run by nobody,
	// who is root inside its own user namespace and may enter it.
	r = asNobody("list", "--netns", want, "-o", "json")
	if r.code != 0 {
		t.Fatalf("as nobody: list --netns %q: exit %d\n%s", want, r.code, r.stderr)
	}
	d = decodeNS(t, r)
	if other := len(d.Sockets) - len(d.inNS(userns.NetNS)); other != 0 {
		t.Errorf("--netns %q shows %d sockets of other namespaces", want, other)
	}
	// --preserve-credentials: nobody's user namespace maps one uid and
	// denies setgroups, which nsenter would otherwise call.
	ssCmd := exec.Command(setpriv, append(append([]string(nil), nsNobody...), nsenter, "--preserve-credentials", "--user", "--net", "--target", strconv.Itoa(userns.PID),
		"ss", "-H", "-tunpe", "-l")...)
	compareWithSS(t, "as nobody", d.Sockets, testenv.SSCmd(t, ssCmd))

	// As root, the same namespace is the same.
	d = decodeNS(t, porteiro(t, "list", "--netns", want, "-o", "json"))
	checkHelperSockets(t, "as root", d.Sockets, userns, want, port)
	compareWithSS(t, "as root", d.Sockets, testenv.SS(t, []string{nsenter, "--net=/proc/" + strconv.Itoa(userns.PID) + "/ns/net"}, "-l"))
}

// TestNetNSSocketOnly opens sockets in a namespace that only they lead to:
// a thread unshares a network namespace, opens TCP and UDP sockets, IPv4
// and IPv6, and goes back, so no process, thread or mount is in it. ss,
// lsns and /proc/PID/net do not see such sockets; porteiro must, through
// the socket's fd.
func TestNetNSSocketOnly(t *testing.T) {
	testenv.RequireRoot(t)
	testenv.RequireCommand(t, "ss")
	port := nsFreePort(t)
	p := strconv.Itoa(port)
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	h := startNSHelper(t, self, nil, "socket-only", port, "ns-socket-only")

	// The setup is what it claims: no thread is in the namespace, no mount
	// names it, and ss on the host does not see its sockets.
	host, err := nsInode("/proc/self/ns/net")
	if err != nil {
		t.Fatal(err)
	}
	tasks, _ := filepath.Glob("/proc/" + strconv.Itoa(h.PID) + "/task/*/ns/net")
	if len(tasks) == 0 {
		t.Fatal("no threads of the helper found")
	}
	for _, task := range tasks {
		if ino, err := nsInode(task); err != nil || ino != host {
			t.Fatalf("%s is netns %d (%v), want the host's %d", task, ino, err, host)
		}
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(mi, []byte("net:["+strconv.FormatUint(h.NetNS, 10)+"]")) {
		t.Fatalf("a mount names netns %d", h.NetNS)
	}
	for _, s := range testenv.SS(t, nil, "-l", "sport", "=", ":"+p) {
		t.Fatalf("ss on the host sees %v on port %d", s, port)
	}

	// porteiro follows the sockets to their namespace: the task-file
	// iterator names each socket's namespace, and pid's copies of the
	// sockets ask SIOCGSKNS.
	r := porteiro(t, "list", "--port", p, "-o", "json")
	if r.code != 0 {
		t.Fatalf("list --port %s: exit %d: the sockets of a namespace that only a socket leads to are missing\n%s%s", p, r.code, r.stdout, r.stderr)
	}
	d := decodeNS(t, r)
	checkHelperSockets(t, "socket-only", d.inNS(h.NetNS), h, "orphan", port)
	if len(d.Sockets) != 4 {
		t.Errorf("%d sockets on port %d, want 4: %v", len(d.Sockets), port, d.Sockets)
	}
	r = porteiro(t, "pid", strconv.Itoa(h.PID), "-o", "json")
	if r.code != 0 {
		t.Fatalf("pid %d: exit %d\n%s", h.PID, r.code, r.stderr)
	}
	checkHelperSockets(t, "socket-only: pid", decodeNS(t, r).Sockets, h, "orphan", port)
	d = decodeNS(t, porteiro(t, "list", "--netns", "orphan", "--port", p, "-o", "json"))
	if len(d.inNS(h.NetNS)) != 4 {
		t.Errorf("--netns orphan: %v, want the 4 sockets of netns %d", d.Sockets, h.NetNS)
	}
}

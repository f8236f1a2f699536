package inventory

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"reflect"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/porteiro/porteiro/internal/testenv"
)

func inodeOf(t *testing.T, c syscall.Conn) uint64 {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var ino uint64
	rc.Control(func(fd uintptr) {
		var st unix.Stat_t
		if err := unix.Fstat(int(fd), &st); err != nil {
			t.Fatal(err)
		}
		ino = st.Ino
	})
	return ino
}

func listenTCP(t *testing.T, network, addr string, opts ...func(fd uintptr)) *net.TCPListener {
	t.Helper()
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var err error
		c.Control(func(fd uintptr) {
			for _, o := range opts {
				o(fd)
			}
		})
		return err
	}}
	l, err := lc.Listen(context.Background(), network, addr)
	if err != nil {
		t.Skipf("cannot listen on %s %s here: %v", network, addr, err)
	}
	t.Cleanup(func() { l.Close() })
	return l.(*net.TCPListener)
}

func v6only(on int) func(uintptr) {
	return func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_V6ONLY, on) }
}

func reusePort(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_REUSEPORT, 1) }

// testResolver is the owner resolver scanHost uses; eachResolver sets it.
var testResolver = struct {
	name string
	make func() OwnerResolver
}{"", func() OwnerResolver { return DefaultResolver("/proc") }}

// eachResolver runs f once with each owner resolver: the task-file
// iterator (which needs root, or CAP_BPF and CAP_PERFMON) and the /proc walk.
func eachResolver(t *testing.T, f func(t *testing.T)) {
	t.Helper()
	for _, r := range []struct {
		name string
		make func() OwnerResolver
	}{
		{"taskfd", func() OwnerResolver { return NewIterResolver("/proc") }},
		{"procfs", func() OwnerResolver { return &ProcResolver{ProcRoot: "/proc"} }},
	} {
		t.Run(r.name, func(t *testing.T) {
			if r.name == "taskfd" {
				requireIterator(t)
			}
			old := testResolver
			testResolver.name, testResolver.make = r.name, r.make
			t.Cleanup(func() { testResolver = old })
			f(t)
		})
	}
}

// requireIterator skips the test where the task-file iterator is not
// offered, and fails it where it is offered but does not load.
func requireIterator(t *testing.T) { t.Helper(); testenv.RequireIterator(t) }

func scanHost(t *testing.T, q Query) *Snapshot {
	t.Helper()
	r := testResolver.make()
	if c, ok := r.(interface{ Close() error }); ok {
		defer c.Close()
	}
	snap, err := NewScanner(Options{Resolver: r}).Scan(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	if snap.Source != "netlink" {
		t.Errorf("source = %q, want netlink on a normal kernel", snap.Source)
	}
	if testResolver.name != "" && len(snap.Sockets) > 0 && snap.Resolver != testResolver.name {
		t.Errorf("owners found by %q, want %q", snap.Resolver, testResolver.name)
	}
	return snap
}

// checkAgainstSS compares porteiro's view of the given inodes with ss's.
func checkAgainstSS(t *testing.T, snap *Snapshot, inodes map[uint64]bool, ss map[uint64]ssSocket) {
	t.Helper()
	got := byInode(snap)
	for ino := range inodes {
		s, ok := got[ino]
		if !ok {
			t.Errorf("inode %d: missing from porteiro", ino)
			continue
		}
		o, ok := ss[ino]
		if !ok {
			t.Errorf("inode %d: missing from ss (porteiro has %s %s)", ino, s.Proto, ssLocal(&s))
			continue
		}
		if ssLocal(&s) != ssLocalNormal(o.Local) || string(s.Proto) != o.Proto {
			t.Errorf("inode %d: porteiro %s %s, ss %s %s", ino, s.Proto, ssLocal(&s), o.Proto, o.Local)
		}
		if pids := s.PIDs(); fmt.Sprint(pids) != fmt.Sprint(o.PIDs) {
			t.Errorf("inode %d (%s): porteiro pids %v, ss pids %v", ino, ssLocal(&s), pids, o.PIDs)
		}
	}
}

func TestListenersAgainstSS(t *testing.T) {
	eachResolver(t, func(t *testing.T) {
		self := os.Getpid()
		inodes := map[uint64]bool{}
		want := map[uint64]struct {
			exp  Exposure
			dual bool
			fam  Family
		}{}
		add := func(c syscall.Conn, exp Exposure, dual bool, fam Family) {
			ino := inodeOf(t, c)
			inodes[ino] = true
			want[ino] = struct {
				exp  Exposure
				dual bool
				fam  Family
			}{exp, dual, fam}
		}
		add(listenTCP(t, "tcp4", "127.0.0.1:0"), ExposureLoopback, false, IPv4)
		add(listenTCP(t, "tcp6", "[::1]:0"), ExposureLoopback, false, IPv6)
		add(listenTCP(t, "tcp4", "0.0.0.0:0"), ExposureAll, false, IPv4)
		dual := listenTCP(t, "tcp6", "[::]:0", v6only(0))
		add(dual, ExposureAll, true, IPv6)
		add(listenTCP(t, "tcp6", "[::]:0", v6only(1)), ExposureAll, false, IPv6)
		u4, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer u4.Close()
		add(u4.(*net.UDPConn), ExposureLoopback, false, IPv4)
		// Go sets IPV6_V6ONLY for "udp6"; clear it to get a dual-stack socket.
		u6, err := (&net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
			return c.Control(func(fd uintptr) { v6only(0)(fd) })
		}}).ListenPacket(context.Background(), "udp6", "[::]:0")
		if err != nil {
			t.Fatal(err)
		}
		defer u6.Close()
		add(u6.(*net.UDPConn), ExposureAll, true, IPv6)

		ss := runSS(t, nil, "-l")
		snap := scanHost(t, Query{})
		checkAgainstSS(t, snap, inodes, ss)
		got := byInode(snap)
		for ino, w := range want {
			s := got[ino]
			if s.Exposure != w.exp || s.DualStack != w.dual || s.Family != w.fam || !s.Listening {
				t.Errorf("inode %d %s: exposure %s dual %v family %s listening %v; want %s %v %s true",
					ino, ssLocal(&s), s.Exposure, s.DualStack, s.Family, s.Listening, w.exp, w.dual, w.fam)
			}
			if len(s.Processes) != 1 || s.Processes[0].PID != self || s.Processes[0].StartTime.IsZero() || len(s.Processes[0].Cmdline) == 0 {
				t.Errorf("inode %d: processes %+v, want this test process with details", ino, s.Processes)
			}
		}

		// -4 keeps the dual-stack socket and drops the v6-only ones.
		v4 := byInode(scanHost(t, Query{Families: []Family{IPv4}}))
		dualIno := inodeOf(t, dual)
		if _, ok := v4[dualIno]; !ok {
			t.Error("an IPv4 query dropped the dual-stack [::] listener")
		}
		for ino, w := range want {
			if _, ok := v4[ino]; ok != (w.fam == IPv4 || w.dual) {
				t.Errorf("IPv4 query: inode %d present=%v", ino, ok)
			}
		}
	})
}

// TestWholeHostAgainstSS compares every socket that ss reports twice in a
// row (so it was stable during porteiro's scan) with porteiro's view.
// Processes with hostile names (newlines, CR, escape sequences, bidi
// controls, forged ss fields) hold sockets meanwhile: the oracle must read
// them right, and porteiro must report their names byte for byte.
func TestWholeHostAgainstSS(t *testing.T) {
	hostile := testenv.StartHostile(t)
	eachResolver(t, func(t *testing.T) {
		for _, flag := range []string{"-l", "-a"} {
			t.Run(flag, func(t *testing.T) {
				q := Query{}
				if flag == "-a" {
					q.States = MaskAll
				}
				before := runSS(t, nil, flag)
				snap := scanHost(t, q)
				after := runSS(t, nil, flag)
				stable := map[uint64]bool{}
				for ino, b := range before {
					if a, ok := after[ino]; ok && reflect.DeepEqual(a, b) {
						stable[ino] = true
					}
				}
				// Connections owned by other tests' short-lived processes can
				// change owners between the runs; compare only what ss saw
				// stable, and require that there is something to compare.
				if len(stable) == 0 {
					t.Skip("no socket was stable across two ss runs")
				}
				checkAgainstSS(t, snap, stable, before)
				checkHostile(t, snap, hostile, stable)
			})
		}
	})
}

// checkHostile checks that each hostile process's sockets were compared
// with ss, and that porteiro has the process's name as the kernel has it.
func checkHostile(t *testing.T, snap *Snapshot, hostile []testenv.Hostile, compared map[uint64]bool) {
	t.Helper()
	for _, h := range hostile {
		for _, want := range []struct {
			proto Proto
			port  int
		}{{TCP, h.TCPPort}, {UDP, h.UDPPort}} {
			found := false
			for _, s := range snap.Sockets {
				if s.Proto != want.proto || int(s.Local.Port) != want.port || s.Local.Address.String() != "127.0.0.1" {
					continue
				}
				found = true
				if !compared[s.Inode] {
					t.Errorf("%s 127.0.0.1:%d of %q was not compared with ss", want.proto, want.port, h.Comm)
				}
				if len(s.Processes) != 1 || s.Processes[0].PID != h.PID || s.Processes[0].Name != h.Comm ||
					!reflect.DeepEqual(s.Processes[0].Cmdline, testenv.HostileArgs) {
					t.Errorf("%s 127.0.0.1:%d: porteiro has %+v, want pid %d named %q running %q", want.proto, want.port, s.Processes, h.PID, h.Comm, testenv.HostileArgs)
				}
			}
			if !found {
				t.Errorf("porteiro lacks %s 127.0.0.1:%d of %q", want.proto, want.port, h.Comm)
			}
		}
	}
}

// holdInChild starts `sleep` with the listener's fd inherited, so parent
// and child share one socket, as after a fork.
func holdInChild(t *testing.T, l *net.TCPListener) *exec.Cmd {
	t.Helper()
	f, err := l.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd := exec.Command("sleep", "60")
	cmd.ExtraFiles = []*os.File{f}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return cmd
}

func TestSharedWithChild(t *testing.T) {
	eachResolver(t, func(t *testing.T) {
		l := listenTCP(t, "tcp4", "127.0.0.1:0")
		child := holdInChild(t, l)
		ino := inodeOf(t, l)
		var snap *Snapshot
		// The child needs a moment to exist in /proc with its fds.
		for i := 0; i < 50; i++ {
			snap = scanHost(t, Query{})
			if s, ok := byInode(snap)[ino]; ok && len(s.Processes) == 2 {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		s := byInode(snap)[ino]
		want := []int{os.Getpid(), child.Process.Pid}
		sort.Ints(want)
		if !reflect.DeepEqual(s.PIDs(), want) {
			t.Fatalf("pids = %v, want %v (parent and child)", s.PIDs(), want)
		}
		for _, p := range s.Processes {
			if p.PID == child.Process.Pid && (p.Name != "sleep" || p.PPID != os.Getpid() || !reflect.DeepEqual(p.FDs, []int{3})) {
				t.Errorf("child = %+v, want sleep with ppid %d holding fd 3", p, os.Getpid())
			}
		}
		checkAgainstSS(t, snap, map[uint64]bool{ino: true}, runSS(t, nil, "-l"))
	})
}

func TestReusePort(t *testing.T) {
	eachResolver(t, func(t *testing.T) {
		a := listenTCP(t, "tcp4", "127.0.0.1:0", reusePort)
		port := a.Addr().(*net.TCPAddr).Port
		b := listenTCP(t, "tcp4", "127.0.0.1:"+strconv.Itoa(port), reusePort)
		ia, ib := inodeOf(t, a), inodeOf(t, b)
		if ia == ib {
			t.Fatal("two SO_REUSEPORT listeners share an inode")
		}
		snap := scanHost(t, Query{})
		n := 0
		for _, s := range snap.Sockets {
			if s.Local.Port == uint16(port) && s.Proto == TCP {
				n++
			}
		}
		if n != 2 {
			t.Errorf("found %d listeners on port %d, want 2", n, port)
		}
		checkAgainstSS(t, snap, map[uint64]bool{ia: true, ib: true}, runSS(t, nil, "-l"))
	})
}

// TestMain lets the test binary double as a child process that listens
// inside a network namespace, for TestOtherNetNS.
func TestMain(m *testing.M) {
	if addr := os.Getenv("PORTEIRO_HELPER_LISTEN"); addr != "" {
		helperListen(addr)
		return
	}
	if r := os.Getenv("PORTEIRO_HELPER_CHURN"); r != "" {
		helperChurn(r)
		return
	}
	if root := os.Getenv("PORTEIRO_HELPER_SCAN"); root != "" {
		helperScan(root)
		return
	}
	if port := os.Getenv("PORTEIRO_HELPER_HIDDEN"); port != "" {
		helperHidden(port)
		return
	}
	if os.Getenv("PORTEIRO_HELPER_ORPHANNS") != "" {
		helperOrphanNS()
		return
	}
	os.Exit(m.Run())
}

func helperListen(addr string) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Println("listen error:", err)
		os.Exit(1)
	}
	defer l.Close()
	fmt.Println("ready")
	time.Sleep(60 * time.Second)
}

func TestOtherNetNS(t *testing.T) {
	eachResolver(t, func(t *testing.T) {
		testenv.RequireRoot(t)
		ip := testenv.RequireCommand(t, "ip")
		ns := fmt.Sprintf("porteiro-test-%d", os.Getpid())
		if out, err := exec.Command(ip, "netns", "add", ns).CombinedOutput(); err != nil {
			t.Skipf("cannot create a network namespace here: %v: %s", err, out)
		}
		t.Cleanup(func() { exec.Command(ip, "netns", "del", ns).Run() })
		exec.Command(ip, "-n", ns, "link", "set", "lo", "up").Run()
		port := 47000 + os.Getpid()%1000
		cmd := exec.Command(ip, "netns", "exec", ns, os.Args[0])
		cmd.Env = append(os.Environ(), "PORTEIRO_HELPER_LISTEN=127.0.0.1:"+strconv.Itoa(port))
		out, _ := cmd.StdoutPipe()
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		buf := make([]byte, 64)
		n, _ := out.Read(buf)
		if !strings.Contains(string(buf[:n]), "ready") {
			t.Fatalf("helper in %s did not start: %q", ns, buf[:n])
		}
		inNS := runSS(t, []string{ip, "netns", "exec", ns}, "-l")
		var nsIno uint64
		for ino, s := range inNS {
			if strings.HasSuffix(s.Local, ":"+strconv.Itoa(port)) {
				nsIno = ino
			}
		}
		if nsIno == 0 {
			t.Fatalf("ss inside %s does not show the helper's listener: %v", ns, inNS)
		}
		var st syscall.Stat_t
		if err := syscall.Stat("/run/netns/"+ns, &st); err != nil {
			t.Fatal(err)
		}
		want := st.Ino
		// Every namespace by default: the listener is there, named.
		snap := scanHost(t, Query{})
		found := false
		for _, s := range snap.Sockets {
			if s.Inode != nsIno {
				continue
			}
			found = true
			if s.NetNS != want || s.NetNSName != ns {
				t.Errorf("listener of %s: netns %d %q, want %d %q", ns, s.NetNS, s.NetNSName, want, ns)
			}
			if len(s.Processes) != 1 || s.Processes[0].PID != cmd.Process.Pid {
				t.Errorf("listener of %s: owners %+v, want pid %d", ns, s.Processes, cmd.Process.Pid)
			}
		}
		if !found {
			t.Errorf("the list does not show the listener of namespace %s (inode %d)", ns, nsIno)
		}
		// Restricted to the host, it is not.
		snap = scanHost(t, Query{NetNS: []string{"host"}})
		for _, s := range snap.Sockets {
			if s.Inode == nsIno || s.NetNS == want {
				t.Errorf("the host list shows a listener from namespace %s: %+v", ns, s)
			}
		}
		// By name, only it.
		snap = scanHost(t, Query{NetNS: []string{ns}})
		if len(snap.Sockets) != 1 || snap.Sockets[0].Inode != nsIno {
			t.Errorf("--netns %s: %d sockets, want its one listener", ns, len(snap.Sockets))
		}
	})
}

// helperOrphanNS opens a TCP listener and a UDP socket in a new network
// namespace and leaves it, so that only the sockets lead there; it prints
// the namespace's inode and the sockets' inodes, and waits.
func helperOrphanNS() {
	unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0)
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	var ns unix.Stat_t
	unix.Stat("/proc/thread-self/ns/net", &ns)
	tcp, _ := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
	unix.Bind(tcp, &unix.SockaddrInet4{Port: 47123})
	unix.Listen(tcp, 8)
	udp, _ := unix.Socket(unix.AF_INET6, unix.SOCK_DGRAM, 0)
	unix.Bind(udp, &unix.SockaddrInet6{Port: 47124})
	if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
		fmt.Println("error", err)
		os.Exit(1)
	}
	var a, b unix.Stat_t
	unix.Fstat(tcp, &a)
	unix.Fstat(udp, &b)
	fmt.Println("ready", ns.Ino, a.Ino, b.Ino)
	time.Sleep(60 * time.Second)
}

// TestNamespaceOnlyASocketLeadsTo: a process opens sockets in a new
// network namespace and moves back. No process is a member and no mount
// names the namespace; ss, lsns and /proc/PID/net cannot see those
// sockets. The scan finds them through the socket fds (the task-file
// iterator gives each socket's namespace) and names the namespace
// "orphan".
func TestNamespaceOnlyASocketLeadsTo(t *testing.T) {
	testenv.RequireRoot(t)
	r := NewIterResolver("/proc")
	defer r.Close()
	if r.init(); r.it == nil {
		t.Skipf("the task-file iterator is not available: %v", r.Err())
	}
	if !r.it.NetNS() {
		t.Skip("this kernel's iterator gives no network namespaces")
	}
	cmd := exec.Command(os.Args[0])
	cmd.Env = append(os.Environ(), "PORTEIRO_HELPER_ORPHANNS=1")
	out, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	var word string
	var nsIno, tcpIno, udpIno uint64
	if _, err := fmt.Fscan(out, &word, &nsIno, &tcpIno, &udpIno); err != nil || word != "ready" {
		t.Fatalf("helper did not start: %q %v", word, err)
	}
	for _, q := range []Query{{}, {NetNS: []string{"orphan"}}} {
		sc := NewScanner(Options{})
		snap, err := sc.Scan(context.Background(), q)
		sc.Close()
		if err != nil {
			t.Fatal(err)
		}
		got := map[uint64]Socket{}
		for _, s := range snap.Sockets {
			if s.NetNS == nsIno {
				got[s.Inode] = s
			}
		}
		for _, ino := range []uint64{tcpIno, udpIno} {
			s, ok := got[ino]
			if !ok {
				t.Errorf("query %v: socket %d of the namespace only a socket leads to (%d) not listed; notes %q", q.NetNS, ino, nsIno, snap.Notes)
				continue
			}
			if s.NetNSName != "orphan" || len(s.Processes) != 1 || s.Processes[0].PID != cmd.Process.Pid {
				t.Errorf("socket %d: netns_name %q, owners %+v; want orphan, pid %d", ino, s.NetNSName, s.Processes, cmd.Process.Pid)
			}
		}
		if len(got) != 2 {
			t.Errorf("query %v: %d sockets in namespace %d, want the 2 listeners", q.NetNS, len(got), nsIno)
		}
	}
	// Restricted to the host, they are not there.
	sc := NewScanner(Options{})
	defer sc.Close()
	snap, err := sc.Scan(context.Background(), Query{NetNS: []string{"host"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range snap.Sockets {
		if s.NetNS == nsIno {
			t.Errorf("--netns host lists %+v", s)
		}
	}
}

// helperHidden scans (run where /proc/PID of the holder is hidden) and
// prints the owners of the listener on port.
func helperHidden(port string) {
	// Brief: the plain table's scan, whose details may come from the
	// task iterator, must see the mount over /proc/PID too.
	snap, err := NewScanner(Options{Brief: os.Getenv("PORTEIRO_HELPER_HIDDEN_BRIEF") == "1"}).Scan(context.Background(), Query{})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	for _, s := range snap.Sockets {
		if strconv.Itoa(int(s.Local.Port)) == port {
			json.NewEncoder(os.Stdout).Encode(s)
			return
		}
	}
	fmt.Println("not found")
}

// TestHiddenProcessShown hides a listener's process from /proc (an empty
// directory mounted over /proc/PID, in a mount namespace of the scan's
// own) and scans: the kernel's file tables still name the process, so the
// socket is shown with its pid, marked hidden, and not as held by a
// process that exited.
func TestHiddenProcessShown(t *testing.T) {
	testenv.RequireRoot(t)
	unshare := testenv.RequireCommand(t, "unshare")
	r := NewIterResolver("/proc")
	defer r.Close()
	if r.init(); r.it == nil {
		t.Skipf("the task-file iterator is not available (only it reads the kernel's file tables): %v", r.Err())
	}
	l := listenTCP(t, "tcp4", "127.0.0.1:0")
	f, err := l.File()
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	holder := exec.Command("sleep", "60")
	holder.ExtraFiles = []*os.File{f}
	if err := holder.Start(); err != nil {
		t.Fatal(err)
	}
	f.Close()
	l.Close() // the holder has it now
	t.Cleanup(func() { holder.Process.Kill(); holder.Wait() })
	empty := t.TempDir()
	for _, brief := range []string{"0", "1"} {
		t.Run("brief="+brief, func(t *testing.T) {
			script := fmt.Sprintf("mount --bind %s /proc/%d && exec %s", empty, holder.Process.Pid, os.Args[0])
			cmd := exec.Command(unshare, "--mount", "--propagation", "private", "sh", "-c", script)
			cmd.Env = append(os.Environ(), "PORTEIRO_HELPER_HIDDEN="+strconv.Itoa(port), "PORTEIRO_HELPER_HIDDEN_BRIEF="+brief)
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Skipf("cannot hide a process here (%v): %s", err, out)
			}
			var s Socket
			if err := json.Unmarshal(out, &s); err != nil {
				t.Fatalf("scan where pid %d is hidden: %v: %s", holder.Process.Pid, err, out)
			}
			if len(s.Processes) != 1 || s.Processes[0].PID != holder.Process.Pid || !s.Processes[0].Hidden {
				t.Fatalf("listener of a hidden process: owners %+v, reason %q; want pid %d, hidden", s.Processes, s.UnattributedReason, holder.Process.Pid)
			}
			// Its name and user come from the kernel, not /proc.
			if p := s.Processes[0]; p.Name != "sleep" || p.UID != 0 || p.User != "root" {
				t.Errorf("hidden process: name %q, uid %d, user %q; want sleep, 0, root (from taskstats)", p.Name, p.UID, p.User)
			}
			if s.UnattributedReason == ReasonExited {
				t.Error("a hidden process is reported as exited")
			}
		})
	}
}

// TestRaceWithExitingProcesses scans while children come and go: a scan
// must never fail because a process vanished.
func TestRaceWithExitingProcesses(t *testing.T) {
	l := listenTCP(t, "tcp4", "127.0.0.1:0")
	f, err := l.File()
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			default:
			}
			cmd := exec.Command("true")
			cmd.ExtraFiles = []*os.File{f}
			cmd.Run()
		}
	}()
	sc := NewScanner(Options{})
	for i := 0; i < 10; i++ {
		if _, err := sc.Scan(context.Background(), Query{}); err != nil {
			t.Fatalf("scan %d failed while processes exit: %v", i, err)
		}
	}
	close(stop)
	<-done
}

// TestLocalPortsFilteredInKernel: with LocalPorts, the sock_diag dump
// itself carries only those ports (no Keep is set here to do it).
func TestLocalPortsFilteredInKernel(t *testing.T) {
	a := listenTCP(t, "tcp4", "127.0.0.1:0")
	b := listenTCP(t, "tcp4", "127.0.0.1:0")
	pa := uint16(a.Addr().(*net.TCPAddr).Port)
	pb := uint16(b.Addr().(*net.TCPAddr).Port)
	src := &NetlinkSource{}
	defer src.Close()
	socks, err := src.Sockets(context.Background(), Query{LocalPorts: [][2]uint16{{pa, pa}}})
	if err != nil {
		t.Fatal(err)
	}
	sawA := false
	for _, s := range socks {
		if s.Local.Port != pa {
			t.Errorf("the dump for port %d carries port %d", pa, s.Local.Port)
		}
		sawA = sawA || s.Local.Port == pa
	}
	if !sawA {
		t.Errorf("the dump for port %d lacks it", pa)
	}
	all, err := src.Sockets(context.Background(), Query{})
	if err != nil {
		t.Fatal(err)
	}
	sawB := false
	for _, s := range all {
		sawB = sawB || s.Local.Port == pb
	}
	if !sawB {
		t.Errorf("the unfiltered dump lacks port %d", pb)
	}
}

// TestBriefScan: a brief scan names the owner as a full one does (pid,
// parent, name, user, command line) and leaves out what it does not read.
func TestBriefScan(t *testing.T) {
	l := listenTCP(t, "tcp4", "127.0.0.1:0")
	ino := inodeOf(t, l)
	owner := func(brief bool) Process {
		t.Helper()
		sc := NewScanner(Options{Brief: brief})
		defer sc.Close()
		snap, err := sc.Scan(context.Background(), Query{})
		if err != nil {
			t.Fatal(err)
		}
		s, ok := byInode(snap)[ino]
		if !ok || len(s.Processes) != 1 {
			t.Fatalf("brief=%v: listener %d not found with one owner: %+v", brief, ino, s)
		}
		return s.Processes[0]
	}
	full, brief := owner(false), owner(true)
	if full.Exe == "" {
		t.Fatalf("a full scan gave no executable: %+v", full)
	}
	if brief.PID != os.Getpid() || brief.Name != full.Name || brief.User != full.User ||
		brief.PPID != full.PPID || !reflect.DeepEqual(brief.Cmdline, full.Cmdline) {
		t.Errorf("brief owner %+v differs from full %+v", brief, full)
	}
	if brief.Exe != "" || brief.Unit != "" || brief.Container != "" {
		t.Errorf("brief owner read exe/unit/container: %+v", brief)
	}
	// The task iterator gives the start time; /proc's brief read does not.
	if brief.StartTicks != 0 && brief.StartTicks != full.StartTicks {
		t.Errorf("brief owner started at %d, the full scan says %d", brief.StartTicks, full.StartTicks)
	}
}

// TestDetailsFromTasks compares, for every owner on the host, the details
// a listing takes from the task iterator with those /proc alone gives
// (pid, parent, name, user, command line, hidden or not; and in the full
// form the start, executable, unit and container that /proc still gives),
// in the plain table's brief form and in the full one, with processes of
// hostile names and arguments among them, and checks that the iterator
// described most of them.
func TestDetailsFromTasks(t *testing.T) {
	requireIterator(t)
	hostile := testenv.StartHostile(t)
	for _, brief := range []bool{true, false} {
		t.Run(fmt.Sprintf("brief=%v", brief), func(t *testing.T) {
			scan := func(noTasks bool) (*Snapshot, int64) {
				t.Helper()
				r := NewIterResolver("/proc")
				r.Brief, r.noTasks = brief, noTasks
				defer r.Close()
				snap, err := NewScanner(Options{Resolver: r}).Scan(context.Background(), Query{})
				if err != nil {
					t.Fatal(err)
				}
				return snap, r.fromTasks.Load()
			}
			viaProc, n0 := scan(true)
			viaTasks, n := scan(false)
			if n0 != 0 {
				t.Fatalf("%d processes described from the task iterator with it off", n0)
			}
			procs := func(snap *Snapshot) map[int]*ProcessInfo {
				m := map[int]*ProcessInfo{}
				for _, s := range snap.Sockets {
					for _, p := range s.Processes {
						m[p.PID] = p.ProcessInfo
					}
				}
				return m
			}
			a, b := procs(viaProc), procs(viaTasks)
			compared := 0
			for pid, want := range a {
				got, ok := b[pid]
				if !ok {
					continue // exited, or a new owner, between the scans
				}
				compared++
				same := got.PPID == want.PPID && got.Name == want.Name && got.UID == want.UID &&
					got.User == want.User && got.Hidden == want.Hidden && reflect.DeepEqual(got.Cmdline, want.Cmdline)
				if !brief {
					same = same && got.StartTicks == want.StartTicks && got.StartTime.Equal(want.StartTime) &&
						got.Exe == want.Exe && got.ExeDeleted == want.ExeDeleted && got.Unit == want.Unit &&
						got.Container == want.Container
					// Resident memory and CPU use move between the two
					// scans: close, not equal (the task pass reads the
					// counters /proc/PID/stat reads).
					rss := max(got.RSSBytes, want.RSSBytes) - min(got.RSSBytes, want.RSSBytes)
					same = same && rss <= max(want.RSSBytes/10, 1<<20) && math.Abs(got.CPUPercent-want.CPUPercent) <= 2+want.CPUPercent/10
				}
				if !same {
					t.Errorf("pid %d: from the task iterator %+v, from /proc %+v", pid, *got, *want)
				}
			}
			for _, h := range hostile {
				if p, ok := b[h.PID]; !ok || p.Name != h.Comm || !reflect.DeepEqual(p.Cmdline, testenv.HostileArgs) {
					t.Errorf("hostile process %d (%q) not described right: %+v", h.PID, h.Comm, p)
				}
			}
			if compared < len(hostile) || n < int64(compared/2) {
				t.Fatalf("%d owners compared, %d described from the task iterator", compared, n)
			}
			t.Logf("%d owners compared; %d described from the task iterator", compared, n)
		})
	}
}

// TestWhoSkipsTasks: a scan of some ports describes a few owners, from
// /proc; the task pass would cost more than it saves.
func TestWhoSkipsTasks(t *testing.T) {
	requireIterator(t)
	l := listenTCP(t, "tcp4", "127.0.0.1:0")
	port := uint16(l.Addr().(*net.TCPAddr).Port)
	r := NewIterResolver("/proc")
	defer r.Close()
	snap, err := NewScanner(Options{Resolver: r}).Scan(context.Background(), Query{LocalPorts: [][2]uint16{{port, port}}})
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Sockets) != 1 || len(snap.Sockets[0].Processes) != 1 {
		t.Fatalf("port %d: %+v", port, snap.Sockets)
	}
	if n := r.fromTasks.Load(); n != 0 || r.tasks != nil {
		t.Fatalf("a scan of one port used the task iterator (%d processes)", n)
	}
}

package top

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/porteiro/porteiro/internal/netns"
	"github.com/porteiro/porteiro/internal/procfs"
	"github.com/porteiro/porteiro/internal/testenv"
	"github.com/porteiro/porteiro/inventory"
)

// BenchmarkSample is one refresh of "porteiro top" on this host, as it
// runs after the first: the listener scan (incremental owners), the
// connection dump and the rates. Run it beside bench/loadgen for the
// figures of docs/top.md.
func BenchmarkSample(b *testing.B) {
	s := NewSampler("", false)
	defer s.Close()
	m := NewModel(Options{})
	ctx := context.Background()
	smp, err := s.Sample(ctx)
	if err != nil {
		b.Fatal(err)
	}
	m.Update(smp)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		smp, err := s.Sample(ctx)
		if err != nil {
			b.Fatal(err)
		}
		m.Update(smp)
	}
}

// A listener in another network namespace, with three clients inside it
// pushing data: its row counts their connections and their bytes. A
// listener on the same address and port in the host's namespace gets
// none of them: connections are matched by namespace too. Checked
// against ss inside the namespace. Before the clients come, the namespace
// (which has a member process, through which its socket counts are read)
// has no connection, and its connections are not dumped.
func TestSampleOtherNamespace(t *testing.T) {
	testenv.RequireRoot(t)
	ip := testenv.RequireCommand(t, "ip")
	name := fmt.Sprintf("porteiro-top-%d", os.Getpid())
	if out, err := exec.Command(ip, "netns", "add", name).CombinedOutput(); err != nil {
		t.Skipf("cannot create a network namespace here: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command(ip, "netns", "del", name).Run() })
	if out, err := exec.Command(ip, "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		t.Fatalf("lo up in %s: %v: %s", name, err, out)
	}
	nsfd, err := unix.Open("/run/netns/"+name, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(nsfd)
	var st syscall.Stat_t
	if err := syscall.Fstat(nsfd, &st); err != nil {
		t.Fatal(err)
	}
	nsIno := st.Ino
	member := exec.Command(ip, "netns", "exec", name, "sleep", "60")
	if err := member.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { member.Process.Kill(); member.Wait() })
	// ip enters the namespace after it starts: the sampler must find the
	// member in it, or it has no member to read the socket counts through.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if got, err := procfs.NetNS("/proc", strconv.Itoa(member.Process.Pid)); err == nil && got == nsIno {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the member %d never entered %s", member.Process.Pid, name)
		}
	}

	// The sockets are made inside the namespace and used from anywhere:
	// a socket stays in the namespace it was created in.
	var (
		ln      net.Listener
		clients []net.Conn
		lerr    error
	)
	if err := netns.Do(nsfd, func() { ln, lerr = net.Listen("tcp4", "127.0.0.1:0") }); err != nil || lerr != nil {
		t.Fatalf("listener in %s: %v %v", name, err, lerr)
	}
	defer ln.Close()

	s := NewSampler("", false)
	defer s.Close()
	m := NewModel(Options{})
	ctx := context.Background()
	// The member is found by the namespace search, which the sampler
	// runs every few seconds: wait for its listener to show.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		smp, err := s.Sample(ctx)
		if err != nil {
			t.Fatal(err)
		}
		m.Update(smp)
		if slices.ContainsFunc(smp.Snapshot.Sockets, func(so inventory.Socket) bool { return so.NetNS == nsIno }) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the listener of %s never showed", name)
		}
	}
	if slices.Contains(s.dumped, nsIno) {
		t.Errorf("the connections of %s, which has none, were dumped", name)
	}
	if err := netns.Do(nsfd, func() {
		for range 3 {
			var c net.Conn
			if c, lerr = net.Dial("tcp4", ln.Addr().String()); lerr != nil {
				return
			}
			clients = append(clients, c)
		}
	}); err != nil || lerr != nil {
		t.Fatalf("clients in %s: %v %v", name, err, lerr)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	testenv.Drain(ln)
	var written atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			testenv.Push(c, make([]byte, 8<<10), 20*time.Millisecond, &written, stop)
		}()
	}
	defer func() { close(stop); wg.Wait() }()
	// The same address and port in the host's namespace, when free.
	host, herr := net.Listen("tcp4", ln.Addr().String())
	if herr == nil {
		defer host.Close()
	}

	smp, err := s.Sample(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m.Update(smp)
	time.Sleep(time.Second)
	smp, err = s.Sample(ctx)
	if err != nil {
		t.Fatal(err)
	}
	v := m.Update(smp)
	var mine, hosts *Listener
	for i := range v.Listeners {
		l := &v.Listeners[i]
		if int(l.Socket.Local.Port) != port {
			continue
		}
		switch l.Socket.NetNS {
		case nsIno:
			mine = l
		case s.netns:
			hosts = l
		}
	}
	if mine == nil {
		t.Fatalf("no row for 127.0.0.1:%d in namespace %s (%d)", port, name, nsIno)
	}
	if !slices.Contains(s.dumped, nsIno) {
		t.Errorf("the connections of %s were not dumped", name)
	}
	// ss inside the namespace: the server ends of the connections.
	out, err := exec.Command(ip, "netns", "exec", name, "ss", "-Htn", "state", "established", fmt.Sprintf("( sport = :%d )", port)).Output()
	if err != nil {
		t.Fatalf("ss in %s: %v", name, err)
	}
	ss := len(strings.Fields(strings.TrimSpace(string(out)))) / 4
	if mine.Conns != 3 || ss != 3 {
		t.Errorf("connections: top %d, ss %d; want 3", mine.Conns, ss)
	}
	if mine.InPerSec <= 0 || mine.TopPeer == nil || mine.TopPeer.Connections != 3 {
		t.Errorf("no traffic on the namespace's listener: in/s %.0f, top peer %+v", mine.InPerSec, mine.TopPeer)
	}
	if len(mine.Socket.Processes) == 0 || mine.Socket.Processes[0].PID != os.Getpid() {
		t.Errorf("owner %+v, want this test (pid %d)", mine.Socket.Processes, os.Getpid())
	}
	if herr == nil {
		if hosts == nil {
			t.Errorf("no row for the host's listener on the same port")
		} else if hosts.Conns != 0 || hosts.InPerSec != 0 {
			t.Errorf("the host's listener on the same port got the namespace's connections: %d conns, %.0f B/s", hosts.Conns, hosts.InPerSec)
		}
	}
	t.Logf("namespace listener: %d conns, %.0f B/s in (clients wrote %d bytes in all)", mine.Conns, mine.InPerSec, written.Load())
}

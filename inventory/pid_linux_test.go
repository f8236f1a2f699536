package inventory

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"reflect"
	"runtime"
	"strconv"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/porteiro/porteiro/internal/sockfd"
	"github.com/porteiro/porteiro/internal/sockfd/sockfdtest"
	"github.com/porteiro/porteiro/internal/testenv"
)

// dumpPIDs is what `porteiro pid` gave before ScanPIDs: a scan of the
// host, then the sockets that pids hold.
func dumpPIDs(t *testing.T, pids []int, q Query) []Socket {
	t.Helper()
	sc := NewScanner(Options{})
	defer sc.Close()
	snap, err := sc.Scan(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	want := map[int]bool{}
	for _, p := range pids {
		want[p] = true
	}
	var out []Socket
	for _, s := range snap.Sockets {
		for _, p := range s.Processes {
			if want[p.PID] {
				out = append(out, s)
				break
			}
		}
	}
	return out
}

// steady clears what changes from one read of /proc/PID to the next
// (%CPU over a lifetime that grows, RSS, the run state), so that two
// scans of the same process compare equal.
func steady(socks []Socket) []Socket {
	out := make([]Socket, len(socks))
	for i, s := range socks {
		ps := make([]Process, len(s.Processes))
		for j, p := range s.Processes {
			p.CPUPercent, p.RSSBytes, p.State = 0, 0, ""
			ps[j] = p
		}
		s.Processes = ps
		out[i] = s
	}
	return out
}

func comparePIDScans(t *testing.T, name string, got, want []Socket) {
	t.Helper()
	got, want = steady(got), steady(want)
	if reflect.DeepEqual(got, want) {
		return
	}
	t.Errorf("%s: ScanPIDs gives %d sockets, the dump %d", name, len(got), len(want))
	for i := 0; i < max(len(got), len(want)); i++ {
		var g, w string
		if i < len(got) {
			g = fmt.Sprintf("%+v", got[i])
		}
		if i < len(want) {
			w = fmt.Sprintf("%+v", want[i])
		}
		if g != w {
			t.Errorf("socket %d:\n got %s\nwant %s", i, g, w)
		}
	}
}

// ScanPIDs gives, for a real process holding TCP and UDP sockets of both
// families (listeners, a dual-stack [::] listener, a v6-only one, one bound
// to lo, connections, UDP bound and connected), exactly what the dump gives
// for the same process; and so for processes with hostile names.
func TestScanPIDsMatchesTheDump(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: pidfd_getfd of another process")
	}
	h := sockfdtest.Start(t)
	hostile := testenv.StartHostile(t)
	pids := []int{h.PID}
	for _, x := range hostile {
		pids = append(pids, x.PID)
	}
	for _, q := range []Query{{States: MaskAll}, {}, {Protos: []Proto{UDP}, States: MaskAll}, {Families: []Family{IPv4}}, {Families: []Family{IPv6}, States: MaskAll}} {
		name := fmt.Sprintf("query %+v", q)
		sc := NewScanner(Options{})
		snap, err := sc.ScanPIDs(context.Background(), pids, q)
		sc.Close()
		if err != nil {
			t.Fatal(err)
		}
		if snap.Source != "pidfd" {
			t.Fatalf("%s: source %q, want pidfd", name, snap.Source)
		}
		comparePIDScans(t, name, snap.Sockets, dumpPIDs(t, pids, q))
	}
	// Every socket of the holder that the dump lists is there, once.
	sc := NewScanner(Options{})
	defer sc.Close()
	snap, err := sc.ScanPIDs(context.Background(), []int{h.PID}, Query{States: MaskAll})
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Sockets) != h.Dumped() {
		t.Errorf("%d sockets of the holder, want %d", len(snap.Sockets), h.Dumped())
	}
	for _, s := range snap.Sockets {
		if len(s.Processes) != 1 || s.Processes[0].PID != h.PID || len(s.Processes[0].FDs) != 1 {
			t.Errorf("holders of %+v", s)
		}
	}
}

// A socket that several of the given processes hold lists each of them,
// by pid, with its fds, as the dump does.
func TestScanPIDsSharedSocket(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: pidfd_getfd of another process")
	}
	h := sockfdtest.Start(t)
	// The test process holds none of the holder's sockets; the holder's
	// listener, passed again to a second holder, is shared.
	h2 := sockfdtest.StartSharing(t, h)
	q := Query{States: MaskAll}
	sc := NewScanner(Options{})
	defer sc.Close()
	snap, err := sc.ScanPIDs(context.Background(), []int{h2, h.PID}, q)
	if err != nil {
		t.Fatal(err)
	}
	comparePIDScans(t, "shared", snap.Sockets, dumpPIDs(t, []int{h.PID, h2}, q))
	shared := 0
	for _, s := range snap.Sockets {
		if len(s.Processes) == 2 {
			shared++
		}
	}
	if shared != 1 {
		t.Errorf("%d sockets with two holders, want 1", shared)
	}
}

// When the kernel refuses pidfd_getfd, ScanPIDs falls back to the dump and
// gives the same sockets. The refusal is a fake (fault injection): openPIDFD
// is replaced by a function that returns what an old kernel returns.
func TestScanPIDsFallsBackWhenRefused(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the dump must see the holder's fds")
	}
	h := sockfdtest.Start(t)
	orig := openPIDFD
	t.Cleanup(func() { openPIDFD = orig })
	calls := 0
	openPIDFD = func(pid int) (*sockfd.Proc, error) {
		calls++
		return nil, fmt.Errorf("pidfd_open %d: %w: %w", pid, sockfd.ErrRefused, errors.ErrUnsupported)
	}
	q := Query{States: MaskAll}
	sc := NewScanner(Options{})
	defer sc.Close()
	snap, err := sc.ScanPIDs(context.Background(), []int{h.PID}, q)
	if err != nil {
		t.Fatal(err)
	}
	if calls == 0 || snap.Source != "netlink" || len(snap.Notes) != 1 {
		t.Errorf("after a refusal: %d calls, source %q, notes %q", calls, snap.Source, snap.Notes)
	}
	if len(snap.Sockets) != h.Dumped() {
		t.Errorf("fallback: %d sockets, want %d", len(snap.Sockets), h.Dumped())
	}
	openPIDFD = orig
	direct, err := sc.ScanPIDs(context.Background(), []int{h.PID}, q)
	if err != nil {
		t.Fatal(err)
	}
	comparePIDScans(t, "fallback", direct.Sockets, snap.Sockets)
}

// A pid that does not exist gives no sockets and no error; a fixture
// procfs root falls back to the scan, which reads the fixture.
func TestScanPIDsNoProcess(t *testing.T) {
	sc := NewScanner(Options{})
	defer sc.Close()
	snap, err := sc.ScanPIDs(context.Background(), []int{1 << 30}, Query{States: MaskAll})
	if err != nil && !errors.Is(err, sockfd.ErrRefused) {
		t.Fatal(err)
	}
	if err == nil && len(snap.Sockets) != 0 {
		t.Errorf("sockets of no process: %+v", snap.Sockets)
	}
}

// BenchmarkScanPIDs is `porteiro pid` on a process that holds n TCP and UDP
// sockets and n unix sockets: ns/socket and allocs/socket are per TCP or
// UDP socket, process details included.
func BenchmarkScanPIDs(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root: pidfd_getfd of another process")
	}
	for _, n := range []int{10, 1000} {
		b.Run(strconv.Itoa(n), func(b *testing.B) {
			pid := sockfdtest.StartN(b, n)
			sc := NewScanner(Options{})
			defer sc.Close()
			b.ReportAllocs()
			var m0, m1 runtime.MemStats
			runtime.ReadMemStats(&m0)
			for b.Loop() {
				snap, err := sc.ScanPIDs(context.Background(), []int{pid}, Query{States: MaskAll})
				if err != nil || len(snap.Sockets) != n || snap.Source != "pidfd" {
					b.Fatalf("%v", err)
				}
			}
			runtime.ReadMemStats(&m1)
			per := float64(b.N * n)
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/per, "ns/socket")
			b.ReportMetric(float64(m1.Mallocs-m0.Mallocs)/per, "allocs/socket")
			b.ReportMetric(float64(m1.TotalAlloc-m0.TotalAlloc)/per, "B/socket")
		})
	}
}

// A process's sockets in another network namespace, one that only its
// sockets lead to, are listed with that namespace, and a device bound
// there is named as that namespace names it. The dump of the scanner's
// namespace cannot see them.
func TestScanPIDsOtherNetNS(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: unshare(CLONE_NEWNET) and pidfd_getfd")
	}
	type made struct {
		fds []int
		err error
	}
	ch := make(chan made, 1)
	go func() {
		// The thread changes namespace: if it cannot come back it stays
		// locked, and the runtime ends it with the goroutine.
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			ch <- made{err: err}
			return
		}
		defer unix.Close(orig)
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			ch <- made{err: err}
			return
		}
		var m made
		for _, typ := range []int{unix.SOCK_STREAM, unix.SOCK_DGRAM} {
			fd, err := unix.Socket(unix.AF_INET, typ|unix.SOCK_CLOEXEC, 0)
			if err == nil && typ == unix.SOCK_DGRAM {
				err = unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, "lo")
			}
			if err == nil {
				err = unix.Bind(fd, &unix.SockaddrInet4{})
			}
			if err == nil && typ == unix.SOCK_STREAM {
				err = unix.Listen(fd, 8)
			}
			m.fds = append(m.fds, fd)
			if m.err == nil {
				m.err = err
			}
		}
		if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
			ch <- made{err: fmt.Errorf("setns back: %w", err)}
			return
		}
		runtime.UnlockOSThread()
		ch <- m
	}()
	m := <-ch
	var files []*os.File
	for _, fd := range m.fds {
		files = append(files, os.NewFile(uintptr(fd), "inet"))
	}
	defer func() {
		for _, f := range files {
			f.Close()
		}
	}()
	if m.err != nil {
		t.Fatal(m.err)
	}
	cmd := exec.Command("sleep", "600")
	cmd.ExtraFiles = files
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	pid := cmd.Process.Pid
	t.Cleanup(func() {
		unix.Kill(pid, unix.SIGKILL)
		cmd.Wait()
	})
	host := selfNetNS("/proc")
	sc := NewScanner(Options{})
	defer sc.Close()
	snap, err := sc.ScanPIDs(context.Background(), []int{pid}, Query{})
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Sockets) != 2 {
		t.Fatalf("%d sockets, want the TCP and the UDP listener: %+v", len(snap.Sockets), snap.Sockets)
	}
	for _, s := range snap.Sockets {
		if s.NetNS == host || s.NetNS == 0 || s.NetNS != snap.Sockets[0].NetNS {
			t.Errorf("%s %v in namespace %d (the host's is %d)", s.Proto, s.Local, s.NetNS, host)
		}
		if want := map[Proto]string{TCP: "", UDP: "lo"}[s.Proto]; s.Interface != want {
			t.Errorf("%s bound to %q, want %q", s.Proto, s.Interface, want)
		}
		if !s.Listening || s.Exposure != ExposureAll || len(s.Processes) != 1 || s.Processes[0].PID != pid {
			t.Errorf("%+v", s)
		}
	}
	for _, s := range snap.Sockets {
		if s.NetNSName != "orphan" {
			t.Errorf("%s %v: netns_name %q, want orphan (only sockets lead there)", s.Proto, s.Local, s.NetNSName)
		}
	}
	// The dump reaches that namespace through the same sockets.
	if got := dumpPIDs(t, []int{pid}, Query{}); len(got) != 2 {
		t.Errorf("the dump sees %d of them, want 2", len(got))
	}
}

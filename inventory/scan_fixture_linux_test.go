package inventory

import (
	"context"
	"os"
	"reflect"
	"testing"
	"time"

	"github.com/porteiro/porteiro/internal/procfs/procfstest"
)

// tcpTable is a /proc/net/tcp fixture with listeners on inodes 1000, 1001,
// 2000, 4000, 5000 and 9000, plus one established connection.
const tcpTable = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1000 1 0 100 0 0 10 0
   1: 0100007F:01BB 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001 1 0 100 0 0 10 0
   2: 0A00000A:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 2000 1 0 100 0 0 10 0
   3: 0100007F:0FA0 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4000 1 0 100 0 0 10 0
   4: 0100007F:1388 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 5000 1 0 100 0 0 10 0
   5: 0100007F:2328 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 9000 1 0 100 0 0 10 0
   6: 0100007F:0050 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 1002 1 0 20 4 30 10 -1
`

func fixtureScanner(t *testing.T, incremental bool) (*Scanner, *procfstest.Tree) {
	tr := procfstest.Standard(t)
	tr.File(t, "net/tcp", tcpTable)
	tr.File(t, "net/tcp6", "header\n")
	tr.File(t, "net/udp", "header\n")
	tr.File(t, "net/udp6", "header\n")
	sc := NewScanner(Options{
		ProcRoot:    tr.Root,
		Source:      &ProcNetSource{ProcRoot: tr.Root},
		Incremental: incremental,
	})
	return sc, tr
}

func byInode(snap *Snapshot) map[uint64]Socket {
	m := map[uint64]Socket{}
	for _, s := range snap.Sockets {
		m[s.Inode] = s
	}
	return m
}

func TestScanFixture(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the fixture's mode-000 fd directory is readable only with CAP_DAC_OVERRIDE")
	}
	sc, _ := fixtureScanner(t, false)
	snap, err := sc.Scan(context.Background(), Query{Protos: []Proto{TCP}})
	if err != nil {
		t.Fatal(err)
	}
	if snap.Source != "procfs" || snap.NetNS() != 4026531840 {
		t.Errorf("source %q netns %d", snap.Source, snap.NetNS())
	}
	got := byInode(snap)
	if len(got) != 6 {
		t.Fatalf("got %d listeners, want 6 (the established one excluded): %v", len(got), got)
	}
	shared := got[1000]
	if pids := shared.PIDs(); !reflect.DeepEqual(pids, []int{100, 101}) {
		t.Errorf("shared socket pids = %v, want [100 101]", pids)
	}
	if fds := shared.Processes[0].FDs; !reflect.DeepEqual(fds, []int{3, 7}) {
		t.Errorf("master fds = %v, want [3 7]", fds)
	}
	if p := shared.Processes[1]; p.User == "" || p.UID != 33 || p.Unit != "nginx.service" || p.PPID != 100 {
		t.Errorf("worker = %+v", p)
	}
	if shared.Exposure != ExposureAll || got[1001].Exposure != ExposureLoopback || got[2000].Exposure != ExposureSpecific {
		t.Errorf("exposures: %s %s %s", shared.Exposure, got[1001].Exposure, got[2000].Exposure)
	}
	odd := got[2000].Processes[0]
	if odd.Name != "my (odd) prog" || !odd.ExeDeleted || odd.Container == "" || odd.CommandLine() != "/opt/app/server --port 8080" {
		t.Errorf("odd process = %+v", odd)
	}
	wantStart := time.Unix(1700000000, 0).Add(6 * time.Second)
	if !odd.StartTime.Equal(wantStart) {
		t.Errorf("start time = %v, want %v", odd.StartTime, wantStart)
	}
	if r := got[4000].UnattributedReason; r != ReasonExited {
		t.Errorf("vanished holder: reason %q, want %q", r, ReasonExited)
	}
	if r := got[9000].UnattributedReason; r != ReasonNoProcess {
		t.Errorf("no holder: reason %q, want %q", r, ReasonNoProcess)
	}
	if len(got[5000].Processes) != 1 {
		t.Errorf("root sees the mode-000 fd dir's socket: %+v", got[5000])
	}
	if len(snap.Notes) != 2 {
		t.Errorf("notes = %q, want one for the exited and one for the missing process", snap.Notes)
	}
}

func TestScanIncremental(t *testing.T) {
	sc, tr := fixtureScanner(t, true)
	ctx := context.Background()
	q := Query{Protos: []Proto{TCP}}
	if _, err := sc.Scan(ctx, q); err != nil {
		t.Fatal(err)
	}
	if sc.Walks != 1 {
		t.Fatalf("walks = %d after the first scan", sc.Walks)
	}
	// Nothing new: the cached owners are reused... except that inode 4000's
	// holder is gone and 9000 has none, which are not cached as alive
	// processes, so they don't force a walk either.
	if _, err := sc.Scan(ctx, q); err != nil {
		t.Fatal(err)
	}
	if sc.Walks != 1 {
		t.Errorf("walks = %d after an unchanged scan, want 1", sc.Walks)
	}
	// A new socket is looked up alone: no full walk.
	tr.File(t, "net/tcp", tcpTable+"   7: 0100007F:2710 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 7777 1 0 100 0 0 10 0\n")
	snap, err := sc.Scan(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if sc.Walks != 1 || sc.Lookups != 1 {
		t.Errorf("walks = %d, lookups = %d after a new socket, want 1 and 1", sc.Walks, sc.Lookups)
	}
	if r := byInode(snap)[7777].UnattributedReason; r != ReasonNoProcess {
		t.Errorf("new socket reason = %q", r)
	}
	if so := byInode(snap)[1000]; !reflect.DeepEqual(so.PIDs(), []int{100, 101}) {
		pids := so.PIDs()
		t.Errorf("a known socket's owners after a lookup: %v, want [100 101]", pids)
	}
	// A cached owner that exited: its sockets are looked up again, and
	// lose it.
	os.Remove(tr.Root + "/101/stat")
	snap, err = sc.Scan(ctx, q)
	if err != nil {
		t.Fatal(err)
	}
	if sc.Walks != 1 || sc.Lookups != 2 {
		t.Errorf("walks = %d, lookups = %d after an owner exited, want 1 and 2", sc.Walks, sc.Lookups)
	}
	if so := byInode(snap)[1000]; !reflect.DeepEqual(so.PIDs(), []int{100}) {
		pids := so.PIDs()
		t.Errorf("shared socket after pid 101 exited: %v, want [100]", pids)
	}
	// After FullEvery, a full walk again.
	sc.opts.Now = func() time.Time { return time.Now().Add(time.Hour) }
	if _, err := sc.Scan(ctx, q); err != nil {
		t.Fatal(err)
	}
	if sc.Walks != 2 {
		t.Errorf("walks = %d after FullEvery, want 2", sc.Walks)
	}
}

// secondLook is a fake source for fault injection: it lists the fixture's
// sockets, and from its second call on, as the recheck of sockets without
// a holder makes, drops the inodes in gone (their process closed them
// meanwhile). It records each query.
type secondLook struct {
	SocketSource
	gone    map[uint64]bool
	queries []Query
}

func (s *secondLook) Sockets(ctx context.Context, q Query) ([]Socket, error) {
	s.queries = append(s.queries, q)
	socks, err := s.SocketSource.Sockets(ctx, q)
	if len(s.queries) == 1 || err != nil {
		return socks, err
	}
	kept := socks[:0]
	for _, so := range socks {
		if !s.gone[so.Inode] {
			kept = append(kept, so)
		}
	}
	return kept, nil
}

// TestOrphanRecheck checks the reasons of sockets without a holder: one
// that is gone when the scanner looks again lost its process during the
// scan; one still there is held by no process here. When only listeners
// lack a holder, the second look asks for listeners only, however wide
// the scan; when a connection lacks one too, it asks for what the scan
// asked.
func TestOrphanRecheck(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the fixture's mode-000 fd directory is readable only with CAP_DAC_OVERRIDE")
	}
	for _, tc := range []struct {
		gone   bool
		states StateMask // of the scan
		second StateMask // of the recheck
	}{
		{false, MaskTCPListen | 1<<TCPSynSent, MaskTCPListen | MaskUDPListen},
		{true, MaskTCPListen | 1<<TCPSynSent, MaskTCPListen | MaskUDPListen},
		{true, MaskAll, MaskAll}, // the fixture's connection has no holder
	} {
		gone := tc.gone
		_, tr := fixtureScanner(t, false)
		src := &secondLook{SocketSource: &ProcNetSource{ProcRoot: tr.Root}, gone: map[uint64]bool{9000: gone}}
		sc := NewScanner(Options{ProcRoot: tr.Root, Source: src})
		snap, err := sc.Scan(context.Background(), Query{Protos: []Proto{TCP}, States: tc.states})
		if err != nil {
			t.Fatal(err)
		}
		want := ReasonNoProcess
		if gone {
			want = ReasonExited
		}
		if r := byInode(snap)[9000].UnattributedReason; r != want {
			t.Errorf("socket closed during the scan: %v: reason %q, want %q", gone, r, want)
		}
		if len(src.queries) != 2 {
			t.Fatalf("%d listings, want the scan's and one recheck", len(src.queries))
		}
		if q := src.queries[1]; q.States != tc.second || !reflect.DeepEqual(q.Protos, []Proto{TCP}) ||
			!reflect.DeepEqual(q.Families, []Family{IPv4}) || q.WantsFamily(IPv6) {
			t.Errorf("scan of states %#x: the recheck asked for %+v, want IPv4 TCP and states %#x", tc.states, q, tc.second)
		}
	}
}

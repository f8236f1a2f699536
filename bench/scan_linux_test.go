package bench

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"runtime"
	"strconv"
	"testing"

	"github.com/porteiro/porteiro/bench/internal/load"
	"github.com/porteiro/porteiro/internal/cli"
	"github.com/porteiro/porteiro/internal/procfs"
	"github.com/porteiro/porteiro/inventory"
)

// whoPort is the port the CLI benchmarks ask `who` about: the load's,
// PORTEIRO_BENCH_PORT, or a listener of this process. whoPID is the process
// they ask `pid` about: the load's first holder (as bench/compare.sh does),
// PORTEIRO_BENCH_PID, or this process. The two variables name those of a
// load that is already running (loadgen's "ready" line has who_port; its
// first child is the first holder).
var (
	whoPort string
	whoPID  int
)

// TestMain builds the load named by PORTEIRO_BENCH_LOAD, but only when
// benchmarks run; plain `go test` never starts one.
func TestMain(m *testing.M) {
	flag.Parse()
	preset := os.Getenv("PORTEIRO_BENCH_LOAD")
	if preset == "" || flag.Lookup("test.bench").Value.String() == "" {
		os.Exit(m.Run())
	}
	os.Exit(withLoad(m, preset))
}

func withLoad(m *testing.M, preset string) int {
	cfg, err := load.Preset(preset)
	if err != nil {
		fmt.Fprintln(os.Stderr, "PORTEIRO_BENCH_LOAD:", err)
		return 2
	}
	plan, err := load.NewPlan(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	l, err := load.Start(context.Background(), plan, load.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "building the load:", err)
		return 1
	}
	defer l.Stop()
	whoPort = fmt.Sprint(l.Summary.WhoAddr.Port())
	if len(l.Summary.PIDs) > 0 {
		whoPID = l.Summary.PIDs[0]
	}
	fmt.Fprintf(os.Stderr, "load %s: %s\n", preset, l.Summary.String())
	return m.Run()
}

var (
	listeners = inventory.Query{}
	all       = inventory.Query{States: inventory.MaskAll}
)

// benchScan times Scan with a scanner that lives across iterations, as in
// the watch daemon. The first scan (not timed) fills its caches.
func benchScan(b *testing.B, o inventory.Options, q inventory.Query) {
	ctx := context.Background()
	s := inventory.NewScanner(o)
	defer s.Close()
	snap, err := s.Scan(ctx, q)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	m := startMallocs()
	for b.Loop() {
		if snap, err = s.Scan(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	m.report(b, len(snap.Sockets), "socket")
	b.ReportMetric(float64(len(snap.Sockets)), "sockets")
}

// mallocs counts the heap allocations of a benchmark's loop, to report
// them per socket or per fd: the figures that must not grow with the host.
// (allocs/op is the same count per iteration.)
type mallocs uint64

func startMallocs() mallocs {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return mallocs(ms.Mallocs)
}

// report adds allocs/UNIT, the allocations of one iteration per n units.
func (m mallocs) report(b *testing.B, n int, unit string) {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	if n > 0 && b.N > 0 {
		b.ReportMetric(float64(ms.Mallocs-uint64(m))/float64(b.N)/float64(n), "allocs/"+unit)
	}
}

// countSockets counts the sockets of q on the host, without owners.
func countSockets(b *testing.B, q inventory.Query) int {
	s := inventory.NewScanner(inventory.Options{NoOwners: true})
	defer s.Close()
	snap, err := s.Scan(context.Background(), q)
	if err != nil {
		b.Fatal(err)
	}
	return len(snap.Sockets)
}

// BenchmarkScanListeners is `porteiro list`: every listener and its owners,
// with a full /proc walk each time.
func BenchmarkScanListeners(b *testing.B) { benchScan(b, inventory.Options{}, listeners) }

// BenchmarkScanAll is `porteiro list --all`.
func BenchmarkScanAll(b *testing.B) { benchScan(b, inventory.Options{}, all) }

// BenchmarkIncrementalScan is the watch daemon's scan: owners are cached by
// inode, so with no new socket there is no /proc walk.
func BenchmarkIncrementalScan(b *testing.B) {
	benchScan(b, inventory.Options{Incremental: true}, listeners)
}

// BenchmarkScanListenersNoOwners is the sock_diag dump alone: the kernel's
// share of BenchmarkScanListeners.
func BenchmarkScanListenersNoOwners(b *testing.B) {
	benchScan(b, inventory.Options{NoOwners: true}, listeners)
}

// BenchmarkScanAllNoOwners is the sock_diag dump of every state.
func BenchmarkScanAllNoOwners(b *testing.B) {
	benchScan(b, inventory.Options{NoOwners: true}, all)
}

// BenchmarkResolveOwners finds the owners of every listener with the
// task-file iterator (as root), with the walk of the processes it did not
// report and the reading of the owners' details.
func BenchmarkResolveOwners(b *testing.B) {
	r := inventory.NewIterResolver("/proc")
	defer r.Close()
	benchResolve(b, r)
	if r.Err() != nil {
		b.Logf("the task-file iterator is not in use: %v", r.Err())
	}
}

// BenchmarkResolveOwnersWalk is the same with the /proc/*/fd walk alone, as
// without CAP_BPF.
func BenchmarkResolveOwnersWalk(b *testing.B) {
	benchResolve(b, &inventory.ProcResolver{ProcRoot: "/proc"})
}

func benchResolve(b *testing.B, r inventory.OwnerResolver) {
	ctx := context.Background()
	snap, err := inventory.NewScanner(inventory.Options{NoOwners: true}).Scan(ctx, listeners)
	if err != nil {
		b.Fatal(err)
	}
	want := make(map[uint64]struct{}, len(snap.Sockets))
	for _, so := range snap.Sockets {
		want[so.Inode] = struct{}{}
	}
	fds := countFDs()
	var own *inventory.Owners
	b.ReportAllocs()
	m := startMallocs()
	for b.Loop() {
		if own, err = r.Resolve(ctx, want); err != nil {
			b.Fatal(err)
		}
	}
	m.report(b, fds, "fd")
	b.ReportMetric(float64(own.Scanned), "procs")
	b.ReportMetric(float64(fds), "fds")
	if fds > 0 {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(fds), "ns/fd")
	}
}

// BenchmarkWalk is the /proc/*/fd walk alone, for every listener's inode,
// as the owner pipeline runs it (records go to Emit): the part of
// BenchmarkResolveOwnersWalk that grows with the host's fds, without the
// reading of the owners' details. The workers=N sub-benchmarks vary the
// number of workers (0: the default, two per CPU); start is the walk that
// runs beside the dump (Walker.Start, collected at once by Pass.Each),
// which keeps every socket's record.
func BenchmarkWalk(b *testing.B) {
	ctx := context.Background()
	s := inventory.NewScanner(inventory.Options{NoOwners: true})
	defer s.Close()
	snap, err := s.Scan(ctx, listeners)
	if err != nil {
		b.Fatal(err)
	}
	want := make(map[uint64]struct{}, len(snap.Sockets))
	for _, so := range snap.Sockets {
		want[so.Inode] = struct{}{}
	}
	fds := countFDs()
	report := func(b *testing.B, m mallocs, res *procfs.WalkResult) {
		m.report(b, fds, "fd")
		b.ReportMetric(float64(res.Scanned), "procs")
		b.ReportMetric(float64(fds), "fds")
		if fds > 0 {
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(fds), "ns/fd")
		}
	}
	for _, workers := range []int{0, 1, 2, 4} {
		b.Run(fmt.Sprintf("workers=%d", workers), func(b *testing.B) {
			w := &procfs.Walker{Root: "/proc", Workers: workers}
			found := make([]int, w.NumWorkers())
			w.Emit = func(k, pid, fd int, inode uint64) { found[k]++ }
			var res *procfs.WalkResult
			b.ReportAllocs()
			m := startMallocs()
			for b.Loop() {
				if res, err = w.Walk(ctx, want); err != nil {
					b.Fatal(err)
				}
			}
			report(b, m, res)
		})
	}
	b.Run("start", func(b *testing.B) {
		w := &procfs.Walker{Root: "/proc"}
		var res *procfs.WalkResult
		n := 0
		b.ReportAllocs()
		m := startMallocs()
		for b.Loop() {
			if res, err = w.Start(ctx).Each(func(pid, fd int, inode uint64) { n++ }); err != nil {
				b.Fatal(err)
			}
		}
		report(b, m, res)
	})
}

// countFDs counts the open fds of every process, the size of the walk.
func countFDs() int {
	procs, _ := os.ReadDir("/proc")
	n := 0
	for _, p := range procs {
		if c := p.Name()[0]; c < '0' || c > '9' {
			continue
		}
		ents, _ := os.ReadDir("/proc/" + p.Name() + "/fd")
		n += len(ents)
	}
	return n
}

// per says what a CLI benchmark reports its allocations per: the sockets
// of q on the host (when q is set), and the host's fds (when fds is set).
type per struct {
	q   *inventory.Query
	fds bool
}

// benchCLI runs porteiro's command line in-process with its output
// discarded: the scan plus flag parsing, filtering and rendering.
func benchCLI(b *testing.B, p per, args ...string) {
	socks, fds := 0, 0
	if p.q != nil {
		socks = countSockets(b, *p.q)
	}
	if p.fds {
		fds = countFDs()
	}
	b.ReportAllocs()
	m := startMallocs()
	for b.Loop() {
		if code := cli.Main(args, nil, io.Discard, io.Discard); code != cli.ExitOK {
			b.Fatalf("porteiro %v: exit %d", args, code)
		}
	}
	m.report(b, socks, "socket")
	m.report(b, fds, "fd")
}

// BenchmarkCLIList is `porteiro list > /dev/null` without process start-up.
func BenchmarkCLIList(b *testing.B) { benchCLI(b, per{q: &listeners}, "list") }

// BenchmarkCLIListJSON is `porteiro list -o json > /dev/null`.
func BenchmarkCLIListJSON(b *testing.B) { benchCLI(b, per{q: &listeners}, "list", "-o", "json") }

// BenchmarkCLIListNDJSON is `porteiro list -o ndjson > /dev/null`.
func BenchmarkCLIListNDJSON(b *testing.B) { benchCLI(b, per{q: &listeners}, "list", "-o", "ndjson") }

// BenchmarkCLIListAll is `porteiro list --all > /dev/null`.
func BenchmarkCLIListAll(b *testing.B) { benchCLI(b, per{q: &all}, "list", "--all") }

// BenchmarkCLIListWalk is `PORTEIRO_OWNERS=procfs porteiro list`: the
// owners from the /proc/*/fd walk alone, as without CAP_BPF or on a kernel
// without the task-file iterator.
func BenchmarkCLIListWalk(b *testing.B) {
	b.Setenv("PORTEIRO_OWNERS", "procfs")
	benchCLI(b, per{q: &listeners, fds: true}, "list")
}

// BenchmarkCLIListAllWalk is `PORTEIRO_OWNERS=procfs porteiro list --all`.
func BenchmarkCLIListAllWalk(b *testing.B) {
	b.Setenv("PORTEIRO_OWNERS", "procfs")
	benchCLI(b, per{q: &all, fds: true}, "list", "--all")
}

// BenchmarkCLIPid is `porteiro pid PID > /dev/null` for one process of the
// load: its cost should follow the process, not the host.
func BenchmarkCLIPid(b *testing.B) {
	pid := whoPID
	if v := os.Getenv("PORTEIRO_BENCH_PID"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			b.Fatalf("PORTEIRO_BENCH_PID=%q: not a pid", v)
		}
		pid = n
	}
	if pid == 0 {
		// No load: this process, with a listener so that it holds a
		// socket (pid exits 1 for a process that holds none).
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer ln.Close()
		pid = os.Getpid()
	}
	benchCLI(b, per{}, "pid", strconv.Itoa(pid))
}

// BenchmarkCLIWho is `porteiro who PORT > /dev/null`.
func BenchmarkCLIWho(b *testing.B) {
	port := whoPort
	if v := os.Getenv("PORTEIRO_BENCH_PORT"); v != "" {
		port = v
	}
	if port == "" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer ln.Close()
		port = fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
	}
	benchCLI(b, per{}, "who", port)
}

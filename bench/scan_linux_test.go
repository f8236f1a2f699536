package bench

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"testing"

	"github.com/porteiro/porteiro/bench/internal/load"
	"github.com/porteiro/porteiro/internal/cli"
	"github.com/porteiro/porteiro/inventory"
)

// whoPort is the port the CLI benchmarks ask `who` about: the load's, or a
// listener of this process.
var whoPort string

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
	snap, err := s.Scan(ctx, q)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if snap, err = s.Scan(ctx, q); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(snap.Sockets)), "sockets")
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
	for b.Loop() {
		if own, err = r.Resolve(ctx, want); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(own.Scanned), "procs")
	b.ReportMetric(float64(fds), "fds")
	if fds > 0 {
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(fds), "ns/fd")
	}
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

// benchCLI runs porteiro's command line in-process with its output
// discarded: the scan plus flag parsing, filtering and rendering.
func benchCLI(b *testing.B, args ...string) {
	b.ReportAllocs()
	for b.Loop() {
		if code := cli.Main(args, nil, io.Discard, io.Discard); code != cli.ExitOK {
			b.Fatalf("porteiro %v: exit %d", args, code)
		}
	}
}

// BenchmarkCLIList is `porteiro list > /dev/null` without process start-up.
func BenchmarkCLIList(b *testing.B) { benchCLI(b, "list") }

// BenchmarkCLIListAll is `porteiro list --all > /dev/null`.
func BenchmarkCLIListAll(b *testing.B) { benchCLI(b, "list", "--all") }

// BenchmarkCLIWho is `porteiro who PORT > /dev/null`.
func BenchmarkCLIWho(b *testing.B) {
	port := whoPort
	if port == "" {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		defer ln.Close()
		port = fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
	}
	benchCLI(b, "who", port)
}

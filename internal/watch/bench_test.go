package watch

import (
	"context"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/porteiro/porteiro/internal/store"
)

// These benchmarks run the daemon against the real host. Put the bench
// load on it first to measure the target (500 processes):
//
//	go run ./bench/loadgen -preset medium &
//	go test ./internal/watch -run '^$' -bench 'ScanCycle|DetectionLatency' -benchtime 20x

func benchDaemon(b *testing.B, interval time.Duration) *Daemon {
	b.Helper()
	dir := b.TempDir()
	pol := filepath.Join(dir, "policy.yaml")
	// A policy that allows everything still runs Check on every listener.
	if err := os.WriteFile(pol, []byte("version: 1\ndefault: allow\n"), 0o600); err != nil {
		b.Fatal(err)
	}
	off := ""
	cfg := &Config{IntervalRaw: NewDuration(interval), StateDir: dir, HTTP: HTTPConfig{Listen: &off}, Policy: &pol, Socket: &off, Events: "off"}
	rt, err := Build(cfg)
	if err != nil {
		b.Fatal(err)
	}
	d, err := New(Options{Config: cfg, Policy: rt.Policy, Logger: quietLogger(), Notify: func(string) {}})
	if err != nil {
		b.Fatal(err)
	}
	return d
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkScanCycle is one daemon cycle on an unchanged host: the
// incremental scan, the policy check, the detector, and no write. It
// reports the CPU time per cycle and what that costs at the default 2s
// interval, as a share of one core (the target is under 2%).
func BenchmarkScanCycle(b *testing.B) {
	d := benchDaemon(b, DefaultInterval)
	defer d.store.Close()
	ctx := context.Background()
	if err := d.ScanOnce(ctx); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	cpu0 := cpuTime()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := d.ScanOnce(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	per := (cpuTime() - cpu0) / time.Duration(b.N)
	b.ReportMetric(float64(per.Microseconds())/1000, "cpu-ms/scan")
	b.ReportMetric(100*per.Seconds()/DefaultInterval.Seconds(), "%core@2s")
	if snap := d.Snapshot(); snap != nil {
		b.ReportMetric(float64(len(snap.Sockets)), "listeners")
	}
}

// BenchmarkDetectionLatency runs the daemon at a 1s interval and measures,
// for each iteration, the time from listen() to the opened event being in
// the store. The mean is about half the interval plus one scan with a
// /proc walk; the max about one interval plus that scan.
func BenchmarkDetectionLatency(b *testing.B) {
	d := benchDaemon(b, time.Second)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() { cancel(); <-done }()
	deadline := time.Now().Add(30 * time.Second)
	for !d.Healthy().OK {
		if time.Now().After(deadline) {
			b.Fatal("no first scan")
		}
		time.Sleep(10 * time.Millisecond)
	}
	var lat []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// Start at a random phase of the scan interval: right after a
		// detection the next scan is a whole interval away.
		b.StopTimer()
		time.Sleep(time.Duration(rand.Int64N(int64(time.Second))))
		b.StartTimer()
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		port := l.Addr().(*net.TCPAddr).Port
		for {
			evs, err := d.store.Events(ctx, store.Filter{Port: port, Kind: KindOpened, Since: t0.Add(-time.Second)})
			if err != nil {
				b.Fatal(err)
			}
			if len(evs) > 0 {
				break
			}
			if time.Since(t0) > 30*time.Second {
				b.Fatal("no opened event within 30s")
			}
			time.Sleep(5 * time.Millisecond)
		}
		lat = append(lat, time.Since(t0))
		l.Close()
	}
	b.StopTimer()
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	var sum time.Duration
	for _, x := range lat {
		sum += x
	}
	b.ReportMetric(float64((sum / time.Duration(len(lat))).Milliseconds()), "ms-mean")
	b.ReportMetric(float64(lat[len(lat)-1].Milliseconds()), "ms-max")
}

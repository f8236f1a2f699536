package cli

import (
	"math"
	"runtime/debug"
	"testing"

	"github.com/porteiro/porteiro/inventory"
)

// TestCollectForSize: Main, which tests and benchmarks call many times in
// one process, leaves the collector as it is; MainProcess's scans set it
// by the host's size: no collection under a limit on a small host, 1.5x
// the live heap for a scan of every state on a big one.
func TestCollectForSize(t *testing.T) {
	t.Setenv("GOGC", "")
	t.Setenv("GOMEMLIMIT", "")
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(math.MaxInt64))

	collectForSize(inventory.Query{})
	if got := debug.SetGCPercent(100); got != 100 {
		t.Fatalf("Main's scan set GOGC to %d", got)
	}

	oneShotProcess = true
	defer func() { oneShotProcess = false }()
	// The host's socket count, which other tests running meanwhile
	// change, is replaced by fixed ones: a small host and a big one.
	defer func(f func() int) { kernelSocketCount = f }(kernelSocketCount)
	for _, n := range []int{2, 1000, bigScan, 100000} {
		kernelSocketCount = func() int { return n }
		for _, c := range []struct {
			name string
			q    inventory.Query
			want int // -1: no collection
		}{
			{"listeners", inventory.Query{}, -1},
			{"every state", inventory.Query{States: inventory.MaskAll}, map[bool]int{true: 50, false: -1}[n >= bigScan]},
			{"some ports", inventory.Query{States: inventory.MaskAll, LocalPorts: [][2]uint16{{22, 22}}}, -1},
		} {
			debug.SetGCPercent(100)
			debug.SetMemoryLimit(math.MaxInt64)
			collectForSize(c.q)
			if got := debug.SetGCPercent(100); got != c.want {
				t.Errorf("%s on a host of %d sockets: GOGC %d, want %d", c.name, n, got, c.want)
			}
			limit := debug.SetMemoryLimit(math.MaxInt64)
			if c.want == -1 && limit != noCollectBase+int64(n)*noCollectPerSocket {
				t.Errorf("%s on a host of %d sockets: no collection without its memory limit (%d)", c.name, n, limit)
			}
		}
	}
	// GOGC in the environment decides.
	t.Setenv("GOGC", "400")
	collectForSize(inventory.Query{})
	if got := debug.SetGCPercent(100); got != 100 {
		t.Errorf("with GOGC set, the scan set GOGC to %d", got)
	}
}

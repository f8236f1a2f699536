package policy

import (
	"fmt"
	"io"
	"math/rand"
	"strings"
	"testing"

	"github.com/porteiro/porteiro/inventory"
)

// benchPolicy has 1,000 rules: single ports with owners, small and wide
// ranges, and a few port-less rules, like a large fleet policy.
func benchPolicy(tb testing.TB) *Policy {
	var b strings.Builder
	b.WriteString("ignore:\n  - proto: udp\n    port: 32768-60999\n    process: chronyd\nallow:\n")
	for i := 0; i < 999; i++ {
		switch {
		case i%10 == 9:
			fmt.Fprintf(&b, "  - name: r%d\n    port: %d-%d\n    bind: [loopback, 10.0.0.0/8]\n", i, 20000+i*10, 20000+i*10+100)
		case i%100 == 50:
			fmt.Fprintf(&b, "  - name: r%d\n    proto: tcp\n    port: %d-%d\n    user: svc%d\n", i, 1000+i*40, 1000+i*40+2000, i)
		case i == 998:
			fmt.Fprintf(&b, "  - name: r%d\n    process: monitor\n", i)
		default:
			fmt.Fprintf(&b, "  - name: r%d\n    proto: tcp\n    port: %d\n    process: [svc%d, \"helper*\"]\n    user: svc%d\n", i, 1+i*7, i, i)
		}
	}
	p, err := Parse([]byte(b.String()), "bench.yaml")
	if err != nil {
		tb.Fatal(err)
	}
	if len(p.Rules) != 1000 {
		tb.Fatalf("%d rules", len(p.Rules))
	}
	return p
}

// benchSnap has 10,000 listeners on ports of single-port rules; with dirty,
// one in 50 is on a random port and they use varied addresses and protocols,
// so that about a fifth are findings.
func benchSnap(dirty bool) *inventory.Snapshot {
	rng := rand.New(rand.NewSource(42))
	addrs := []string{"0.0.0.0", "::", "127.0.0.1", "10.1.2.3"}
	socks := make([]inventory.Socket, 0, 10000)
	for i := 0; i < 10000; i++ {
		r := rng.Intn(999)
		for !dirty && (r%10 == 9 || r%100 == 50 || r == 998) {
			r = rng.Intn(999)
		}
		port := uint16(1 + r*7)
		name := fmt.Sprintf("svc%d", r)
		if dirty && rng.Intn(50) == 0 {
			port = uint16(1 + rng.Intn(65535))
		}
		proto := inventory.TCP
		if dirty && rng.Intn(5) == 0 {
			proto = inventory.UDP
		}
		socks = append(socks, sock(proto, addrs[rng.Intn(len(addrs))], port, uint64(i+1),
			proc{pid: 1000 + r, name: name, user: name, cmd: "/usr/bin/" + name + " --serve"}))
	}
	return snapOf(socks...)
}

func BenchmarkCheck10kSockets1kRules(b *testing.B) {
	p := benchPolicy(b)
	for _, dirty := range []bool{false, true} {
		name := "clean"
		if dirty {
			name = "findings"
		}
		snap := benchSnap(dirty)
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			var findings int
			for i := 0; i < b.N; i++ {
				findings = len(p.Check(snap).Findings)
			}
			b.ReportMetric(float64(findings), "findings")
		})
	}
}

// The hot path of a clean check must not allocate per socket.
func TestCheckAllocations(t *testing.T) {
	p := benchPolicy(t)
	snap := benchSnap(false)
	if n := len(p.Check(snap).Findings); n != 0 {
		t.Fatalf("clean bench snapshot has %d findings", n)
	}
	allocs := testing.AllocsPerRun(5, func() { p.Check(snap) })
	if allocs > 10 {
		t.Errorf("clean check of 10,000 sockets makes %.0f allocations, want at most 10", allocs)
	}
}

func BenchmarkParse1kRules(b *testing.B) {
	var src strings.Builder
	src.WriteString("allow:\n")
	for i := 0; i < 1000; i++ {
		fmt.Fprintf(&src, "  - name: r%d\n    proto: tcp\n    port: %d\n    process: svc%d\n", i, 1+i*7, i)
	}
	data := []byte(src.String())
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if _, err := Parse(data, "b.yaml"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkBaseline10kSockets(b *testing.B) {
	snap := benchSnap(true)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		if err := Baseline(io.Discard, snap, BaselineOptions{Ephemeral: DefaultEphemeral}); err != nil {
			b.Fatal(err)
		}
	}
}

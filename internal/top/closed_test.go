package top

import (
	"math"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/porteiro/porteiro/internal/localapi"
	"github.com/porteiro/porteiro/inventory"
)

// cc is one of porteirod's closed-connection counters, in namespace 1.
func cc(local string, in, out, closes uint64) localapi.ClosedCounter {
	ap := netip.MustParseAddrPort(local)
	return localapi.ClosedCounter{NetNS: 1, Address: ap.Addr(), Port: ap.Port(), BytesIn: in, BytesOut: out, Closes: closes}
}

func withClosed(s Sample, load string, cs ...localapi.ClosedCounter) Sample {
	s.Closed = &localapi.ClosedDocument{Available: true, Source: "ebpf", LoadID: load, Counters: cs}
	return s
}

func checkRates(t *testing.T, what string, l *Listener, in, out, newPerSec float64) {
	t.Helper()
	if l.InPerSec != in || l.OutPerSec != out || l.NewPerSec != newPerSec {
		t.Errorf("%s: in %v out %v new %v, want %v %v %v", what, l.InPerSec, l.OutPerSec, l.NewPerSec, in, out, newPerSec)
	}
}

// A connection seen at two samples that closes before the third: what it
// moved after its last sample comes from the counters, once.
func TestClosedBetweenSamples(t *testing.T) {
	ls := []inventory.Socket{listener(inventory.TCP, "0.0.0.0:80", 1, "nginx", 10)}
	m := NewModel(Options{})
	m.Update(withClosed(sample(0, ls, conn("10.0.0.1:80", "10.0.0.9:5000", 7, 100, 50)), "a"))
	v := m.Update(withClosed(sample(time.Second, ls, conn("10.0.0.1:80", "10.0.0.9:5000", 7, 300, 80)), "a"))
	checkRates(t, "alive", find(t, v, 80), 200, 30, 0)
	if !v.ClosedCounted || v.RateNote() != ClosedNote {
		t.Errorf("ClosedCounted %v, note %q", v.ClosedCounted, v.RateNote())
	}
	// Closed with 500 in and 90 out: 200 and 10 more since the last sample.
	v = m.Update(withClosed(sample(2*time.Second, ls), "a", cc("10.0.0.1:80", 500, 90, 1)))
	l := find(t, v, 80)
	checkRates(t, "closed since", l, 200, 10, 0)
	if l.TotalIn != 500-100 || l.TotalOut != 90-50 {
		t.Errorf("totals %d %d, want the connection's 500 and 90 less what it had at the baseline", l.TotalIn, l.TotalOut)
	}
	// Nothing more happens: nothing more is counted.
	v = m.Update(withClosed(sample(3*time.Second, ls), "a", cc("10.0.0.1:80", 500, 90, 1)))
	checkRates(t, "quiet", find(t, v, 80), 0, 0, 0)
}

// Connections born and closed between two samples count whole, as new.
func TestBornAndClosedBetweenSamples(t *testing.T) {
	ls := []inventory.Socket{listener(inventory.TCP, "0.0.0.0:80", 1, "nginx", 10), listener(inventory.TCP, "0.0.0.0:22", 2, "sshd", 11)}
	m := NewModel(Options{})
	m.Update(withClosed(sample(0, ls), "a", cc("10.0.0.1:80", 1000, 1000, 3)))
	v := m.Update(withClosed(sample(2*time.Second, ls), "a",
		cc("10.0.0.1:80", 1000+4000, 1000+600, 3+2), cc("127.0.0.1:80", 1000, 0, 2), cc("10.0.0.1:43210", 1e6, 1e6, 100)))
	checkRates(t, "born and closed", find(t, v, 80), 2500, 300, 2)
	checkRates(t, "another port", find(t, v, 22), 0, 0, 0)
	if v.InPerSec != 2500 || v.NewPerSec != 2 {
		t.Errorf("totals in %v new %v: the ephemeral port 43210 is no listener's", v.InPerSec, v.NewPerSec)
	}
}

// Counters match listeners as connections do: by namespace, port and the
// most specific address; a counter in another namespace is not ours, nor
// one of a namespace whose connections were not sampled.
func TestClosedMatchesListeners(t *testing.T) {
	wild := listener(inventory.TCP, "0.0.0.0:80", 1, "nginx", 10)
	lo := listener(inventory.TCP, "127.0.0.1:80", 2, "dev", 11)
	v6 := listener(inventory.TCP, "[::]:8080", 3, "app", 12)
	v6.DualStack = true
	other := listener(inventory.TCP, "0.0.0.0:81", 4, "web", 13)
	other.NetNS = 2
	ls := []inventory.Socket{wild, lo, v6, other}
	m := NewModel(Options{})
	base := withClosed(sample(0, ls), "a")
	base.ConnNetNS = []uint64{1}
	m.Update(base)
	inOther := cc("10.0.0.1:81", 500, 0, 1)
	inOther.NetNS = 2
	strange := cc("10.0.0.1:80", 900, 0, 1)
	strange.NetNS = 3
	s := withClosed(sample(time.Second, ls), "a", cc("10.0.0.1:80", 100, 0, 1), cc("192.168.1.1:80", 10, 0, 1),
		cc("127.0.0.1:80", 7, 0, 1), cc("[::ffff:10.0.0.1]:8080", 33, 0, 1), cc("[2001:db8::1]:8080", 44, 0, 1), inOther, strange)
	s.ConnNetNS = []uint64{1}
	v := m.Update(s)
	for _, c := range []struct {
		l  *inventory.Socket
		in float64
	}{{&wild, 110}, {&lo, 7}, {&v6, 77}, {&other, 0}} {
		for i := range v.Listeners {
			if v.Listeners[i].Socket.Inode == c.l.Inode && v.Listeners[i].InPerSec != c.in {
				t.Errorf("%v: in %v, want %v", c.l.Local, v.Listeners[i].InPerSec, c.in)
			}
		}
	}
}

// A restarted daemon's counters start again from zero, under a new load
// id: that interval counts what was sampled, never less than zero, and the
// next one counts from the new baseline.
func TestClosedDaemonRestart(t *testing.T) {
	ls := []inventory.Socket{listener(inventory.TCP, "0.0.0.0:80", 1, "nginx", 10)}
	m := NewModel(Options{})
	m.Update(withClosed(sample(0, ls, conn("10.0.0.1:80", "10.0.0.9:5000", 7, 100, 100)), "a", cc("10.0.0.1:80", 1e6, 1e6, 50)))
	v := m.Update(withClosed(sample(time.Second, ls, conn("10.0.0.1:80", "10.0.0.9:5000", 7, 400, 100)), "b", cc("10.0.0.1:80", 10, 10, 1)))
	checkRates(t, "restart", find(t, v, 80), 300, 0, 0)
	v = m.Update(withClosed(sample(2*time.Second, ls), "b", cc("10.0.0.1:80", 10+500, 10+100, 2)))
	checkRates(t, "after restart", find(t, v, 80), 100, 0, 0)

	// The daemon stops answering: no counters, the note says so, and
	// when it comes back its first answer is a baseline.
	v = m.Update(sample(3*time.Second, ls, conn("10.0.0.1:80", "10.0.0.9:6000", 8, 50, 0)))
	checkRates(t, "no daemon", find(t, v, 80), 50, 0, 1)
	if v.ClosedCounted || v.RateNote() != UndercountNote {
		t.Errorf("without counters: ClosedCounted %v, note %q", v.ClosedCounted, v.RateNote())
	}
	v = m.Update(withClosed(sample(4*time.Second, ls), "b", cc("10.0.0.1:80", 9e6, 0, 9)))
	checkRates(t, "back", find(t, v, 80), 0, 0, 0)
}

// Sums that wrap around 2^64 still give their increase; sums that went
// back (the daemon's table forgot the key and counts it again from zero)
// give nothing for that interval.
func TestClosedWrapAndEviction(t *testing.T) {
	ls := []inventory.Socket{listener(inventory.TCP, "0.0.0.0:80", 1, "nginx", 10)}
	m := NewModel(Options{})
	m.Update(withClosed(sample(0, ls), "a", cc("10.0.0.1:80", math.MaxUint64-99, 5, 3)))
	v := m.Update(withClosed(sample(time.Second, ls), "a", cc("10.0.0.1:80", 50, 5, 4)))
	checkRates(t, "wrap", find(t, v, 80), 150, 0, 1)
	v = m.Update(withClosed(sample(2*time.Second, ls), "a", cc("10.0.0.1:80", 20, 1, 1)))
	checkRates(t, "evicted", find(t, v, 80), 0, 0, 0)
	v = m.Update(withClosed(sample(3*time.Second, ls), "a", cc("10.0.0.1:80", 40, 1, 2)))
	checkRates(t, "after eviction", find(t, v, 80), 20, 0, 1)
}

// A connection that closes between the dump and the read of the counters
// is in both: one interval counts its close early, the next takes back
// what it had at the dump. The shortfall is carried, so no rate goes
// below zero and the totals come out exact.
func TestClosedCarriesTheShortfall(t *testing.T) {
	ls := []inventory.Socket{listener(inventory.TCP, "0.0.0.0:80", 1, "nginx", 10)}
	m := NewModel(Options{})
	m.Update(withClosed(sample(0, ls, conn("10.0.0.1:80", "10.0.0.9:5000", 7, 100, 0)), "a"))
	// Dumped alive at 1000, then closed at 1000 before the counters were read.
	v := m.Update(withClosed(sample(time.Second, ls, conn("10.0.0.1:80", "10.0.0.9:5000", 7, 1000, 0)), "a", cc("10.0.0.1:80", 1000, 0, 1)))
	checkRates(t, "counted early", find(t, v, 80), 900+1000, 0, 1)
	// Gone now: 1000 taken back, with 300 from a short connection to pay it.
	v = m.Update(withClosed(sample(2*time.Second, ls), "a", cc("10.0.0.1:80", 1300, 0, 2)))
	checkRates(t, "paying back", find(t, v, 80), 0, 0, 0)
	v = m.Update(withClosed(sample(3*time.Second, ls), "a", cc("10.0.0.1:80", 2300, 0, 3)))
	l := find(t, v, 80)
	checkRates(t, "paid", l, 300, 0, 1)
	// 1000 from the first connection, 300 and 1000 from the short ones.
	if l.TotalIn != 900+1000+300 {
		t.Errorf("total in %d, want %d (the 100 before the baseline is not counted)", l.TotalIn, 900+1000+300)
	}
}

// TestClosedAccountingSimulated plays random connections through a
// listener: born, moving bytes and closing at any moment, some between the
// connection dump and the read of the counters. What the model counts,
// less what it still carries as a shortfall, is exactly what the
// connections moved after the first sample, and no rate is negative.
func TestClosedAccountingSimulated(t *testing.T) {
	for seed := uint64(1); seed <= 200; seed++ {
		simulateClosed(t, seed)
	}
}

func simulateClosed(t *testing.T, seed uint64) {
	t.Helper()
	rng := rand.New(rand.NewPCG(seed, 7))
	ls := []inventory.Socket{listener(inventory.TCP, "0.0.0.0:80", 1, "nginx", 10)}
	type live struct {
		c       Conn
		counted bool // alive at the first sample: what it had is not counted
		base    uint64
	}
	var (
		alive              []*live
		sumIn, sumOut, sum uint64
		truthIn, truthOut  uint64
		truthNew           uint64
		cookie             uint64
		started            bool
	)
	step := func(closesOnly bool) {
		switch r := rng.IntN(10); {
		case r < 3 && !closesOnly:
			cookie++
			local := "10.0.0.1:80"
			if rng.IntN(2) == 0 {
				local = "127.0.0.1:80"
			}
			alive = append(alive, &live{c: conn(local, "10.0.0.9:"+itoa(1024+int(cookie)), cookie, 0, 0)})
			if started {
				truthNew++
			}
		case r < 7 && len(alive) > 0 && !closesOnly:
			l := alive[rng.IntN(len(alive))]
			in, out := uint64(rng.IntN(5000)), uint64(rng.IntN(5000))
			l.c.BytesIn += in
			l.c.BytesOut += out
			if started {
				truthIn += in
				truthOut += out
			}
		case len(alive) > 0:
			i := rng.IntN(len(alive))
			l := alive[i]
			sumIn += l.c.BytesIn
			sumOut += l.c.BytesOut
			sum++
			alive = slices.Delete(alive, i, i+1)
		}
	}
	counters := func() []localapi.ClosedCounter {
		// Split over two local ends, as the kernel keys them; both
		// belong to the wildcard listener.
		return []localapi.ClosedCounter{cc("10.0.0.1:80", sumIn, sumOut, sum), cc("127.0.0.1:80", 0, 0, 0)}
	}
	m := NewModel(Options{})
	// The last sample is quiet, so that what closed between the dump and
	// the counters at the one before is settled.
	for k := 0; k < 41; k++ {
		if k > 0 && k < 40 {
			for range rng.IntN(30) {
				step(false)
			}
		}
		var dump []Conn
		for _, l := range alive {
			dump = append(dump, l.c)
		}
		started = true
		// Between the dump and the read of the counters: closes only, and
		// none at the first sample (a close there is lost with the
		// baseline).
		if k > 0 && k < 40 {
			for range rng.IntN(3) {
				step(true)
			}
		}
		v := m.Update(withClosed(sample(time.Duration(k)*time.Second, ls, dump...), "a", counters()...))
		l := find(t, v, 80)
		if l.InPerSec < 0 || l.OutPerSec < 0 || l.NewPerSec < 0 {
			t.Fatalf("seed %d sample %d: negative rate %+v", seed, k, l)
		}
	}
	var r *rowState
	for _, x := range m.rows {
		r = x
	}
	d := m.closed.debt[r]
	if r.totalIn-d.in != truthIn || r.totalOut-d.out != truthOut || r.totalNew-d.born != truthNew {
		t.Errorf("seed %d: counted in %d out %d new %d (owing %+v), the connections moved %d, %d and %d were born",
			seed, r.totalIn, r.totalOut, r.totalNew, d, truthIn, truthOut, truthNew)
	}
}

// BenchmarkUpdateClosed is a refresh of 5,000 listeners and 10,000
// connections, of which 100 close and 100 open between samples, with and
// without porteirod's counters (one local end per listener).
func BenchmarkUpdateClosed(b *testing.B) {
	for _, withCounters := range []bool{false, true} {
		name := "sampled"
		if withCounters {
			name = "counters"
		}
		b.Run(name, func(b *testing.B) {
			const nl, nc = 5000, 10000
			ls := make([]inventory.Socket, nl)
			for i := range ls {
				ls[i] = listener(inventory.TCP, "10.0.0.1:"+itoa(1000+i), uint64(i+1), "", 0)
			}
			// Two sets that differ by 100 connections, taken in turn.
			var sets [2][]Conn
			for h := range sets {
				for j := range nc {
					sets[h] = append(sets[h], conn("10.0.0.1:"+itoa(1000+j%nl), "10.0.0.9:5000", uint64(j+h*100+1), 0, 0))
				}
			}
			counters := make([]localapi.ClosedCounter, nl)
			for i := range counters {
				counters[i] = cc("10.0.0.1:"+itoa(1000+i), 0, 0, 0)
			}
			m := NewModel(Options{})
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				cs := sets[i%2]
				for j := range cs {
					cs[j].BytesIn += 10
				}
				s := sample(time.Duration(i)*time.Second, ls, cs...)
				if withCounters {
					for j := range 100 {
						counters[j].BytesIn += 1000
						counters[j].Closes++
					}
					s = withClosed(s, "a", counters...)
				}
				m.Update(s)
			}
		})
	}
}

package top

import (
	"net/netip"
	"slices"
)

// Closed connections. A sample sees only the connections alive at that
// instant: one that opens and closes between two samples is never seen,
// and one that closes after a sample loses what it moved since. porteirod,
// when it hears the kernel's events, sums at each close the counters of
// the connection that closes, per local end (network namespace, address,
// port); see localapi.ClosedDocument. Between two samples, for each
// listener:
//
//	closed bytes = Σ over its local ends (sum now − sum at the previous sample)
//	             − Σ over its connections alive at the previous sample and
//	                 gone now (their bytes at the previous sample)
//
// A connection alive at the previous sample with b bytes and closed with F
// adds F to the sums and b is taken off: its F − b since the sample is
// counted, once, on top of the b counted up to then. One born and closed
// between the samples adds its whole F. Likewise for the connections:
// closes − gone = those born and closed in between, which count as new.
//
// The counters are read just after the connection dump, so a connection
// that closes between the two is both alive in the dump and in the sums:
// counted once too many now, and its bytes taken off at the next interval,
// which may then go below zero. What goes below zero is carried to the
// following intervals as a debt, so the totals stay exact and no rate is
// negative.

// closedKey is one local end of the daemon's counters. The address keeps
// its form (4 or 16 bytes), which says the family.
type closedKey struct {
	netns uint64
	addr  netip.Addr
	port  uint16
}

type closedSums struct{ in, out, closes uint64 }

// closedDelta is what closed connections add to one listener over an
// interval: bytes each way, and connections born and closed in it.
type closedDelta struct{ in, out, born uint64 }

// closedState is the Model's memory of the daemon's counters.
type closedState struct {
	loadID string
	// prev holds the sums at the previous sample; nil when there is no
	// baseline (the first sample, the daemon was not asked or had no
	// counters, or it restarted).
	prev map[closedKey]closedSums
	next map[closedKey]closedSums
	// debt is what intervals took off beyond what they had, per listener.
	debt map[*rowState]closedDebt
	// Reused from one sample to the next: a host may have thousands of
	// listeners.
	sums []closedAcc
	gone map[*rowState]closedGone
	out  []closedDelta
}

// closedAcc is the change of the sums of one listener's local ends.
type closedAcc struct {
	in, out, closes uint64
	bad             bool // a sum went back: the interval is unknown
}

// closedGone is what one listener's connections that are gone had at the
// previous sample.
type closedGone struct{ in, out, n uint64 }

type closedDebt struct{ in, out, born uint64 }

// wrapLimit tells a counter that wrapped (a small increase, modulo 2^64)
// from one that started again from zero (an LRU eviction in the daemon's
// table): no listener moves 2^62 bytes between two samples.
const wrapLimit = 1 << 62

// closedAvailable reports whether s carries usable counters.
func closedAvailable(s *Sample) bool {
	return s.Closed != nil && s.Closed.Available && s.Closed.LoadID != ""
}

// closedDeltas returns, for each of the n listeners of this sample (rowAt
// gives each one's row), what the connections that closed since the
// previous sample add; nil when the counters of both samples are not
// there to compare. conns is the previous sample's connection map and next
// this sample's, each connection with the row it came through. The slice
// is reused by the next call.
func (m *Model) closedDeltas(s *Sample, idx *portIndex, conns, next *connMap, n int, rowAt func(int) *rowState) []closedDelta {
	cs := &m.closed
	if !closedAvailable(s) {
		cs.prev, cs.loadID = nil, ""
		clear(cs.debt)
		return nil
	}
	covered := func(ns uint64) bool { return s.ConnNetNS == nil || slices.Contains(s.ConnNetNS, ns) }
	cur := cs.next
	clear(cur)
	if cur == nil {
		cur = make(map[closedKey]closedSums, len(s.Closed.Counters))
	}
	for i := range s.Closed.Counters {
		c := &s.Closed.Counters[i]
		if !covered(c.NetNS) {
			continue // no connection of that namespace was seen alive
		}
		cur[closedKey{netns: c.NetNS, addr: c.Address, port: c.Port}] = closedSums{in: c.BytesIn, out: c.BytesOut, closes: c.Closes}
	}
	prev := cs.prev
	baseline := prev == nil || cs.loadID != s.Closed.LoadID
	cs.prev, cs.next, cs.loadID = cur, prev, s.Closed.LoadID
	if baseline {
		// The first counters, or a restarted daemon's: they start a
		// baseline, and this interval counts only what was sampled.
		clear(cs.debt)
		return nil
	}

	sums := slices.Grow(cs.sums[:0], n)[:n]
	clear(sums)
	cs.sums = sums
	for k, c := range cur {
		li := idx.match(&Conn{NetNS: k.netns, Local: netip.AddrPortFrom(k.addr, k.port)})
		if li < 0 {
			continue
		}
		p := prev[k] // absent: the key's first closes since the previous sample
		a := &sums[li]
		dIn, dOut := c.in-p.in, c.out-p.out
		if c.closes < p.closes || dIn >= wrapLimit || dOut >= wrapLimit {
			// Evicted from the daemon's table and counted again from
			// zero: what closed in between is unknown.
			a.bad = true
			continue
		}
		a.in += dIn
		a.out += dOut
		a.closes += c.closes - p.closes
	}
	gone := cs.gone
	if gone == nil {
		gone = map[*rowState]closedGone{}
		cs.gone = gone
	}
	clear(gone)
	goneConn := func(st connState) {
		if st.row == nil {
			return
		}
		// A listener that has closed is not among this sample's rows,
		// and its entry is never read.
		g := gone[st.row]
		g.in += st.in
		g.out += st.out
		g.n++
		gone[st.row] = g
	}
	for ck, st := range conns.byCookie {
		if _, ok := next.byCookie[ck]; !ok {
			goneConn(st)
		}
	}
	for k, st := range conns.byTuple {
		if _, ok := next.byTuple[k]; !ok {
			goneConn(st)
		}
	}

	if cs.debt == nil {
		cs.debt = map[*rowState]closedDebt{}
	}
	out := slices.Grow(cs.out[:0], n)[:n]
	clear(out)
	cs.out = out
	for i := range sums {
		a := &sums[i]
		r := rowAt(i)
		if a.bad {
			delete(cs.debt, r)
			continue
		}
		if *a == (closedAcc{}) && len(gone) == 0 && len(cs.debt) == 0 {
			continue // the common case: nothing closed here
		}
		g := gone[r]
		d := cs.debt[r]
		var nd closedDebt
		out[i].in, nd.in = settle(a.in, g.in+d.in)
		out[i].out, nd.out = settle(a.out, g.out+d.out)
		out[i].born, nd.born = settle(a.closes, g.n+d.born)
		if nd == (closedDebt{}) {
			delete(cs.debt, r)
		} else {
			cs.debt[r] = nd
		}
	}
	// Debts of listeners that are gone go with them.
	if len(cs.debt) > 0 {
		for r := range cs.debt {
			if r.gen != m.gen {
				delete(cs.debt, r)
			}
		}
	}
	return out
}

// settle takes off from add what is owed, and returns what is left and
// what is still owed.
func settle(add, owed uint64) (left, stillOwed uint64) {
	if add >= owed {
		return add - owed, 0
	}
	return 0, owed - add
}

// ClosedNote is said instead of UndercountNote when porteirod's counters
// of closed connections were used.
const ClosedNote = "connections that closed between two samples are counted from porteirod's eBPF close counters"

// RateNote says how far the rates can be trusted: UndercountNote, or
// ClosedNote when the closed connections were counted.
func (v *View) RateNote() string {
	if v.ClosedCounted {
		return ClosedNote
	}
	return UndercountNote
}

// ShortRateNote is RateNote for one line of a screen's footer.
func (v *View) ShortRateNote() string {
	if v.ClosedCounted {
		return "note: closed connections counted by porteirod (eBPF)"
	}
	return "note: short connections may be undercounted (sampled; no eBPF close counters: start porteirod)"
}

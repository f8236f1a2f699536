package watch

import (
	"net/netip"
	"testing"
	"time"

	"github.com/porteiro/porteiro/internal/bpfevents"
	"github.com/porteiro/porteiro/inventory"
)

// The kernel's events, made up here (a seam: the real source is tested
// in internal/bpfevents and end to end in e2e), applied to the view.
func TestLiveViewKeepsShortListeners(t *testing.T) {
	v := newLiveView()
	now := time.Unix(1_700_000_000, 0)
	base := &inventory.Snapshot{Time: now, Source: "sock_diag", Sockets: []inventory.Socket{sock(22, 100, "/usr/sbin/sshd")}}
	ev := func(kind bpfevents.Kind, cookie, inode uint64, port uint16) *bpfevents.Event {
		return &bpfevents.Event{Kind: kind, Proto: inventory.TCP, Family: inventory.IPv4, Addr: netip.MustParseAddr("127.0.0.1"),
			Port: port, Cookie: cookie, Inode: inode, NetNS: 1, PID: 1 << 30, Comm: "nc"}
	}
	// Before the first scan there is nothing to compare with.
	v.apply(ev(bpfevents.Opened, 1, 501, 4444))
	if v.current(now) != nil {
		t.Fatal("a view before the first scan")
	}
	if got := v.reset(base); len(got.Sockets) != 1 {
		t.Fatalf("after reset: %d sockets, want the scan's 1", len(got.Sockets))
	}
	// Opened and closed within one batch: only the transient view has it.
	v.apply(ev(bpfevents.Opened, 2, 502, 5555))
	v.apply(ev(bpfevents.Closed, 2, 502, 5555))
	tv := v.transientView(now)
	if tv == nil || len(tv.Sockets) != 2 || tv.Sockets[1].Local.Port != 5555 {
		t.Fatalf("transient view = %+v, want sshd and the short listener", tv)
	}
	if cur := v.current(now); len(cur.Sockets) != 1 {
		t.Fatalf("current view has %d sockets, want 1", len(cur.Sockets))
	}
	if v.transientView(now) != nil {
		t.Fatal("the transient listener was shown twice")
	}
	// Opened in one batch, closed in the next: the current views show it
	// open, then gone; no transient view is needed.
	v.apply(ev(bpfevents.Opened, 3, 503, 6666))
	if cur := v.current(now); len(cur.Sockets) != 2 {
		t.Fatalf("open listener missing: %+v", cur.Sockets)
	}
	v.apply(ev(bpfevents.Closed, 3, 503, 6666))
	if v.transientView(now) != nil {
		t.Fatal("a listener seen open got a transient view")
	}
	if cur := v.current(now); len(cur.Sockets) != 1 {
		t.Fatalf("closed listener still there: %+v", cur.Sockets)
	}
	// A scan running while events arrive: they are replayed over it.
	v.scanStarted()
	v.apply(ev(bpfevents.Opened, 4, 504, 7777))
	got := v.reset(base)
	if len(got.Sockets) != 2 {
		t.Fatalf("after a scan that predates an event: %d sockets, want 2", len(got.Sockets))
	}
}

// The detector, fed the views, records a listener that lived less than
// one pass as opened and then closed.
func TestShortListenerIsRecorded(t *testing.T) {
	v := newLiveView()
	d := newDetector(0, time.Minute)
	t0 := time.Unix(1_700_000_000, 0)
	base := &inventory.Snapshot{Time: t0, Sockets: []inventory.Socket{sock(22, 100, "/usr/sbin/sshd")}}
	d.step(t0, v.reset(base), nil)
	v.apply(&bpfevents.Event{Kind: bpfevents.Opened, Proto: inventory.TCP, Family: inventory.IPv4, Addr: netip.MustParseAddr("0.0.0.0"), Port: 4444, Cookie: 9, Inode: 900, NetNS: 1, PID: 1 << 30, Comm: "nc"})
	v.apply(&bpfevents.Event{Kind: bpfevents.Closed, Proto: inventory.TCP, Cookie: 9, Inode: 900, NetNS: 1})
	var all []Event
	if tv := v.transientView(t0.Add(time.Second)); tv != nil {
		all = append(all, d.step(t0.Add(time.Second), tv, nil)...)
	}
	all = append(all, d.step(t0.Add(time.Second), v.current(t0.Add(time.Second)), nil)...)
	all = append(all, d.step(t0.Add(2*time.Second), v.current(t0.Add(2*time.Second)), nil)...)
	if got := kinds(all); got != "opened:4444 closed:4444" {
		t.Fatalf("events %q, want opened:4444 closed:4444", got)
	}
}

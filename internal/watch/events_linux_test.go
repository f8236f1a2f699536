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
	b := v.take(now, true)
	if len(b.full) != 2 || len(b.full[0].Sockets) != 2 || b.full[0].Sockets[1].Local.Port != 5555 {
		t.Fatalf("batch views = %+v, want sshd and the short listener, then sshd", b.full)
	}
	if len(b.full[1].Sockets) != 1 || len(b.groups) != 1 || len(b.after) != 0 || len(b.transient) != 1 {
		t.Fatalf("batch = %+v, want one group touched, empty now, with one transient listener", b)
	}
	if b := v.take(now, true); len(b.full) != 1 || len(b.groups) != 0 {
		t.Fatalf("the transient listener was shown twice: %+v", b)
	}
	// Opened in one batch, closed in the next: the views show it open,
	// then gone; no transient view is needed.
	v.apply(ev(bpfevents.Opened, 3, 503, 6666))
	if b := v.take(now, true); len(b.full) != 1 || len(b.full[0].Sockets) != 2 || len(b.after) != 1 {
		t.Fatalf("open listener missing: %+v", b)
	}
	if got := v.latest(now); got == nil || len(got.Sockets) != 2 {
		t.Fatalf("latest view = %+v, want the events' view", got)
	}
	v.apply(ev(bpfevents.Closed, 3, 503, 6666))
	if b := v.take(now, true); len(b.full) != 1 || len(b.full[0].Sockets) != 1 || len(b.before) != 1 || len(b.after) != 0 {
		t.Fatalf("closed listener still there, or a transient view: %+v", b)
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
	for _, view := range v.take(t0.Add(time.Second), true).full {
		all = append(all, d.step(t0.Add(time.Second), view, nil)...)
	}
	for _, view := range v.take(t0.Add(2*time.Second), true).full {
		all = append(all, d.step(t0.Add(2*time.Second), view, nil)...)
	}
	if got := kinds(all); got != "opened:4444 closed:4444" {
		t.Fatalf("events %q, want opened:4444 closed:4444", got)
	}
}

// An event in a namespace that the last scan named gets that name, so the
// listener it announces has the identity the next scan will give it; one
// in a namespace no scan showed is looked up (here: none leads to it, so
// it is an orphan, told apart by its inode).
func TestEventNamesItsNamespace(t *testing.T) {
	v := newLiveView()
	t0 := time.Unix(1_700_000_000, 0)
	web := sock(80, 101, "/usr/sbin/nginx")
	web.NetNS, web.NetNSName = 4026532500, "web-1"
	web.Container = &inventory.Container{Runtime: "docker", Name: "web-1"}
	v.reset(&inventory.Snapshot{Time: t0, Sockets: []inventory.Socket{web}})
	v.apply(&bpfevents.Event{Kind: bpfevents.Opened, Proto: inventory.TCP, Family: inventory.IPv4, Addr: netip.MustParseAddr("0.0.0.0"),
		Port: 8080, Cookie: 1, Inode: 901, NetNS: 4026532500, PID: 1 << 30, Comm: "nginx"})
	v.apply(&bpfevents.Event{Kind: bpfevents.Opened, Proto: inventory.TCP, Family: inventory.IPv4, Addr: netip.MustParseAddr("0.0.0.0"),
		Port: 8081, Cookie: 2, Inode: 902, NetNS: 1, PID: 1 << 30, Comm: "nc"})
	got := map[uint16]inventory.Socket{}
	for _, so := range v.current(t0).Sockets {
		got[so.Local.Port] = so
	}
	if s := got[8080]; s.NetNSName != "web-1" || s.Container == nil || s.ListenerKey().String() != "tcp 0.0.0.0:8080 in web-1" {
		t.Errorf("event in web-1's namespace: netns_name %q, container %+v, key %q", s.NetNSName, s.Container, s.ListenerKey())
	}
	if s := got[8081]; s.NetNSName != "orphan" || s.ListenerKey().String() != "tcp 0.0.0.0:8081 in orphan [1]" {
		t.Errorf("event in an unknown namespace: netns_name %q, key %q", s.NetNSName, s.ListenerKey())
	}
}

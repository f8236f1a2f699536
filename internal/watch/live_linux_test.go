package watch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/porteiro/porteiro/internal/bpfevents"
	"github.com/porteiro/porteiro/internal/metrics"
	"github.com/porteiro/porteiro/internal/notify"
	"github.com/porteiro/porteiro/internal/store"
	"github.com/porteiro/porteiro/inventory"
	"github.com/porteiro/porteiro/policy"
)

// A policy with every kind of finding: owners, binds, an ignore rule,
// require rules (one satisfied by one listener only) and a default deny.
const livePolicy = `
ignore:
  - name: ephemeral
    proto: udp
    port: 32768-60999
allow:
  - name: ssh
    proto: tcp
    port: 22
    process: sshd
    user: root
  - name: postgres
    proto: tcp
    port: 5432
    bind: loopback
    process: postgres
  - name: web
    proto: tcp
    port: [80, 443]
    process: nginx
require:
  - name: dns
    port: 53
  - name: www
    proto: tcp
    port: 80
    process: nginx
`

// judgeDaemon is a daemon reduced to what judging needs: no store, no
// scanner, the clock given. Its recorder queues events and never commits.
func judgeDaemon(pol Checker, now func() time.Time) *Daemon {
	cfg := &Config{GraceRaw: dur(2 * time.Second), FlapWindowRaw: dur(10 * time.Second)}
	d := &Daemon{log: quietLogger(), metrics: metrics.New(""), now: now, cfg: cfg, policy: pol, self: -1, live: newLiveView()}
	d.rec = newRecorder(nil, cfg, nil, d.metrics, d.log, now)
	return d
}

// takeQueued returns the events queued since the last call, as JSON
// without their ids (given at commit).
func takeQueued(t *testing.T, d *Daemon) string {
	t.Helper()
	d.rec.mu.Lock()
	evs := d.rec.queue
	d.rec.queue = nil
	d.rec.mu.Unlock()
	var b bytes.Buffer
	for _, e := range evs {
		e.UID = ""
		js, err := json.Marshal(e)
		if err != nil {
			t.Fatal(err)
		}
		b.Write(js)
		b.WriteByte('\n')
	}
	return b.String()
}

// liveModel makes up kernel events over a small space of listeners, so
// that ports, addresses, namespaces and owners collide often.
type liveModel struct {
	rng    *rand.Rand
	cookie uint64
	open   map[uint64]bpfevents.Event
	// extra are sockets only a scan sees (UDP autobind, missed events).
	extra []inventory.Socket
}

var (
	livePorts = []uint16{22, 53, 80, 443, 4444, 5432, 40000}
	liveAddrs = []string{"0.0.0.0", "127.0.0.1", "::", "::1", "10.0.0.1", "::ffff:127.0.0.1"}
	liveComms = []string{"sshd", "nginx", "nc", "postgres"}
)

func (m *liveModel) openEvent() bpfevents.Event {
	m.cookie++
	addr := netip.MustParseAddr(liveAddrs[m.rng.IntN(len(liveAddrs))])
	fam := inventory.IPv4
	if addr.Is6() {
		fam = inventory.IPv6
	}
	proto := inventory.TCP
	if m.rng.IntN(4) == 0 {
		proto = inventory.UDP
	}
	ev := bpfevents.Event{
		Kind: bpfevents.Opened, Proto: proto, Family: fam, Addr: addr,
		Port:   livePorts[m.rng.IntN(len(livePorts))],
		Cookie: m.cookie, Inode: 10_000 + m.cookie, NetNS: 1 + uint64(m.rng.IntN(2)),
		// No such process: the event's owner is kept as is.
		PID: 1<<30 + m.rng.IntN(3), Comm: liveComms[m.rng.IntN(len(liveComms))], UID: uint32(m.rng.IntN(2) * 1000),
	}
	m.open[ev.Cookie] = ev
	return ev
}

func (m *liveModel) closeEvent() (bpfevents.Event, bool) {
	if len(m.open) == 0 {
		return bpfevents.Event{}, false
	}
	cookies := make([]uint64, 0, len(m.open))
	for c := range m.open {
		cookies = append(cookies, c)
	}
	sort.Slice(cookies, func(i, j int) bool { return cookies[i] < cookies[j] })
	ev := m.open[cookies[m.rng.IntN(len(cookies))]]
	delete(m.open, ev.Cookie)
	ev.Kind = bpfevents.Closed
	ev.PID, ev.Comm = 1, "closer"
	return ev, true
}

// The incremental judging of batches of events (the listener groups they
// touched against the verdicts kept) gives exactly the events that judging
// the whole view gives, batch after batch, through scans that correct
// drift, grace periods, flapping and require rules.
func TestEventBatchesMatchWholeViews(t *testing.T) {
	pol, err := policy.Parse([]byte(livePolicy), "policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	allow, err := policy.Parse([]byte("default: allow\nallow:\n  - port: 5432\n    bind: loopback\n"), "allow.yaml")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		pol  *policy.Policy
	}{{"no policy", nil}, {"policy", pol}, {"default allow", allow}} {
		for seed := uint64(1); seed <= 12; seed++ {
			t.Run(fmt.Sprintf("%s/%d", tc.name, seed), func(t *testing.T) {
				compareBatches(t, tc.pol, seed)
			})
		}
	}
}

func compareBatches(t *testing.T, pol *policy.Policy, seed uint64) {
	now := time.Unix(1_700_000_000, 0)
	clock := func() time.Time { return now }
	// whole is the reference: a Checker that is not a policy file's is
	// always given the whole view.
	var whole, incr *Daemon
	if pol == nil {
		whole, incr = judgeDaemon(nil, clock), judgeDaemon(nil, clock)
	} else {
		whole = judgeDaemon(CheckerFunc(PolicyChecker(pol).Check), clock)
		incr = judgeDaemon(PolicyChecker(pol), clock)
	}
	m := &liveModel{rng: rand.New(rand.NewPCG(seed, 7)), open: map[uint64]bpfevents.Event{}}
	commits := make(chan struct{}, 1)
	scan := func() {
		// The scan sees what the events say is open, and what they
		// missed.
		snap := whole.live.current(now)
		if snap == nil {
			snap = &inventory.Snapshot{Time: now, Source: "test"}
		}
		socks := append([]inventory.Socket(nil), snap.Sockets...)
		if m.rng.IntN(3) == 0 {
			so := sock(livePorts[m.rng.IntN(len(livePorts))], 1<<29+m.rng.IntN(5), "/usr/sbin/"+liveComms[m.rng.IntN(len(liveComms))])
			so.Proto = inventory.UDP
			m.extra = append(m.extra, so)
		}
		socks = append(socks, m.extra...)
		// In the scanner's order, which within a listener is the views'.
		sortSockets(socks)
		for _, d := range []*Daemon{whole, incr} {
			d.procMu.Lock()
			d.judgeLocked(d.live.reset(&inventory.Snapshot{Time: now, Source: "test", Sockets: append([]inventory.Socket(nil), socks...)}))
			d.procMu.Unlock()
		}
	}
	scan()
	if w, i := takeQueued(t, whole), takeQueued(t, incr); w != i {
		t.Fatalf("first scan:\nwhole:\n%s\nincremental:\n%s", w, i)
	}
	for step := 0; step < 300; step++ {
		switch r := m.rng.IntN(20); {
		case r == 0:
			scan()
		case r == 1:
			// A reload: the next batch is judged whole, and the verdicts
			// are kept again from there.
			for _, d := range []*Daemon{whole, incr} {
				d.rec.configure(d.cfg, nil)
			}
		case r <= 4:
			// Time passes; the grace timer judges with no new event.
			now = now.Add(time.Duration(m.rng.IntN(4000)) * time.Millisecond)
			whole.judgeEvents(commits)
			incr.judgeEvents(commits)
		default:
			now = now.Add(time.Duration(m.rng.IntN(300)) * time.Millisecond)
			n := 1 + m.rng.IntN(6)
			var evs []bpfevents.Event
			for i := 0; i < n; i++ {
				switch k := m.rng.IntN(10); {
				case k < 5:
					evs = append(evs, m.openEvent())
				case k < 9:
					if ev, ok := m.closeEvent(); ok {
						evs = append(evs, ev)
					}
				case len(m.extra) > 0:
					// A socket the events never announced closes: its
					// close is matched by inode.
					so := m.extra[0]
					m.extra = m.extra[1:]
					evs = append(evs, bpfevents.Event{Kind: bpfevents.Closed, Proto: so.Proto, Cookie: 1 << 40, Inode: so.Inode, NetNS: so.NetNS})
				}
			}
			for _, d := range []*Daemon{whole, incr} {
				for i := range evs {
					d.live.apply(&evs[i])
				}
				d.judgeEvents(commits)
			}
		}
		w, i := takeQueued(t, whole), takeQueued(t, incr)
		if w != i {
			t.Fatalf("step %d:\nwhole:\n%s\nincremental:\n%s", step, w, i)
		}
	}
	// The verdicts kept are those of a check of the whole view.
	incr.procMu.Lock()
	defer incr.procMu.Unlock()
	if !incr.live.verdicts.valid {
		t.Fatal("the verdicts were dropped")
	}
	if pol != nil {
		view := incr.live.current(now)
		var want, got []string
		for _, f := range allowSelf(PolicyChecker(pol).Check(view), incr.self) {
			want = append(want, f.Key+" "+f.Message)
		}
		for _, f := range incr.live.verdicts.byKey {
			got = append(got, f.Key+" "+f.Message)
		}
		sort.Strings(want)
		sort.Strings(got)
		if fmt.Sprint(want) != fmt.Sprint(got) {
			t.Fatalf("verdicts kept:\n%q\nwhole check:\n%q", got, want)
		}
	}
}

// benchPolicy allows the bench's listeners and requires one of them: a
// policy that checks every listener and finds little, as on a kept host.
const benchPolicy = `
allow:
  - name: services
    proto: tcp
    port: 1024-65535
    process: "srv*"
  - name: ssh
    proto: tcp
    port: 22
    process: sshd
require:
  - name: ssh-up
    proto: tcp
    port: 22
`

// BenchmarkEventBatch is the cost of judging one batch of kernel events
// (one listener opened, or closed) on a host of 8,000 listeners, from the
// view to the events queued for the commit (the commit is not included).
// "whole" judges the whole view, as a Checker other than a policy file's
// is; "touched" judges the groups the batch touched.
//
//	go test ./internal/watch -run '^$' -bench EventBatch -benchmem
func BenchmarkEventBatch(b *testing.B) {
	const listeners = 8000
	pol, err := policy.Parse([]byte(benchPolicy), "bench.yaml")
	if err != nil {
		b.Fatal(err)
	}
	host := make([]inventory.Socket, 0, listeners)
	host = append(host, sock(22, 100, "/usr/sbin/sshd"))
	for i := 1; i < listeners; i++ {
		so := sock(uint16(1024+i%60000), 1000+i/16, fmt.Sprintf("/usr/bin/srv%d", i%50))
		so.Local.Address = netip.AddrFrom4([4]byte{127, byte(i >> 16), byte(i >> 8), byte(i)})
		so.Exposure = inventory.ExposureLoopback
		host = append(host, so)
	}
	for _, tc := range []struct {
		name string
		pol  Checker
	}{
		{"whole/policy", CheckerFunc(PolicyChecker(pol).Check)},
		{"touched/policy", PolicyChecker(pol)},
		{"whole/none", CheckerFunc(func(*inventory.Snapshot) []Finding { return nil })},
		{"touched/none", nil},
	} {
		b.Run(tc.name, func(b *testing.B) {
			now := time.Unix(1_700_000_000, 0)
			d := judgeDaemon(tc.pol, func() time.Time { return now })
			d.procMu.Lock()
			d.judgeLocked(d.live.reset(&inventory.Snapshot{Time: now, Source: "bench", Privileged: true, Sockets: slices.Clone(host)}))
			d.procMu.Unlock()
			commits := make(chan struct{}, 1)
			ev := bpfevents.Event{Kind: bpfevents.Opened, Proto: inventory.TCP, Family: inventory.IPv4,
				Addr: netip.MustParseAddr("127.0.0.1"), Port: 4444, NetNS: 1, PID: 1 << 30, Comm: "nc"}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				now = now.Add(time.Millisecond)
				if i%2 == 0 {
					ev.Kind, ev.Cookie, ev.Inode = bpfevents.Opened, uint64(i), 1<<40+uint64(i)
				} else {
					ev.Kind = bpfevents.Closed
				}
				d.live.apply(&ev)
				d.judgeEvents(commits)
				d.rec.mu.Lock()
				d.rec.queue = d.rec.queue[:0]
				d.rec.mu.Unlock()
			}
		})
	}
}

// chanSource is the kernel's event source made up by the test (a seam:
// the real one is tested in internal/bpfevents and end to end).
type chanSource struct{ ch chan bpfevents.Event }

func (s *chanSource) Read(ctx context.Context) (bpfevents.Event, error) {
	select {
	case ev := <-s.ch:
		return ev, nil
	case <-ctx.Done():
		return bpfevents.Event{}, ctx.Err()
	}
}
func (s *chanSource) Drops() uint64 { return 0 }
func (s *chanSource) Close() error  { return nil }

// storedCheckSink fails the test when an alert goes out before its event
// is in the store.
type storedCheckSink struct {
	recordingSink
	t  *testing.T
	st *store.Store
}

func (s *storedCheckSink) Send(ctx context.Context, batch []notify.Alert) error {
	evs, err := s.st.Events(ctx, store.Filter{Limit: 100000})
	if err != nil {
		return err
	}
	stored := map[string]bool{}
	for _, e := range evs {
		stored[e.UID] = true
	}
	for _, a := range batch {
		if !stored[a.ID] {
			s.t.Errorf("alert %s (%s) sent before its event was stored", a.ID, a.Summary)
		}
	}
	return s.recordingSink.Send(ctx, batch)
}

// Through the daemon's event path (the batches judged by the groups they
// touch, the commits beside them, a real store): every listener of a
// burst is stored as opened and closed, with its violation and its
// resolution, and no alert goes out before its event is stored.
func TestEventPathStoresBeforeAlerting(t *testing.T) {
	pol, err := policy.Parse([]byte("allow:\n  - name: ssh\n    port: 22\n    process: sshd\n"), "policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	host := &fakeHost{}
	host.set(sock(22, 100, "/usr/sbin/sshd"))
	cfg := testConfig(t)
	cfg.GraceRaw, cfg.BurstRaw = dur(200*time.Millisecond), dur(0)
	sink := &storedCheckSink{recordingSink: recordingSink{name: "rec"}, t: t}
	d, err := New(Options{Config: cfg, Source: host, Resolver: host, Policy: PolicyChecker(pol), Sinks: []notify.Sink{sink}, Logger: quietLogger(), Notify: func(string) {}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.store.Close()
	sink.st = d.store
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if err := d.ScanOnce(ctx); err != nil {
		t.Fatal(err)
	}
	src := &chanSource{ch: make(chan bpfevents.Event)}
	done := make(chan struct{}, 2)
	go func() { d.disp.run(ctx, ctx); done <- struct{}{} }()
	go func() { d.runEvents(ctx, src, make(chan struct{}, 1)); done <- struct{}{} }()
	const n = 60
	for i := 0; i < n; i++ {
		ev := bpfevents.Event{Kind: bpfevents.Opened, Proto: inventory.TCP, Family: inventory.IPv4, Addr: netip.MustParseAddr("0.0.0.0"),
			Port: uint16(4000 + i), Cookie: uint64(i + 1), Inode: uint64(90_000 + i), NetNS: 1, PID: 1<<30 + i, Comm: "nc"}
		src.ch <- ev
		if i%3 == 0 {
			// Some close at once (within the batch), some later.
			ev.Kind = bpfevents.Closed
			src.ch <- ev
		}
	}
	for i := 0; i < n; i++ {
		if i%3 != 0 {
			src.ch <- bpfevents.Event{Kind: bpfevents.Closed, Proto: inventory.TCP, Cookie: uint64(i + 1), Inode: uint64(90_000 + i), NetNS: 1}
		}
	}
	count := func() map[string]int {
		evs, err := d.store.Events(ctx, store.Filter{Limit: 100000})
		if err != nil {
			t.Fatal(err)
		}
		m := map[string]int{}
		for _, e := range evs {
			m[e.Kind]++
		}
		return m
	}
	want := map[string]int{KindOpened: n, KindClosed: n, KindViolation: n, KindResolved: n}
	waitFor(t, "every listener stored opened, closed, violation and resolved", 20*time.Second, func() bool {
		return fmt.Sprint(count()) == fmt.Sprint(want)
	})
	waitFor(t, "every alert sent", 20*time.Second, func() bool {
		sent := 0
		for _, b := range sink.sent() {
			sent += len(b)
		}
		return sent == 4*n
	})
	cancel()
	<-done
	<-done
}

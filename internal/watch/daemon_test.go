package watch

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/porteiro/porteiro/internal/localapi"
	"github.com/porteiro/porteiro/internal/notify"
	"github.com/porteiro/porteiro/internal/store"
	"github.com/porteiro/porteiro/inventory"
)

// fakeHost is a fake socket source and owner resolver, for determinism:
// the test decides which listeners the "host" has at each moment, and can
// inject scan failures.
type fakeHost struct {
	mu    sync.Mutex
	socks []inventory.Socket
	err   error
	via   string // the Owners.Via it reports
}

func (f *fakeHost) set(socks ...inventory.Socket) {
	f.mu.Lock()
	f.socks = socks
	f.mu.Unlock()
}

func (f *fakeHost) Name() string { return "fake" }

func (f *fakeHost) Sockets(ctx context.Context, q inventory.Query) ([]inventory.Socket, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.err != nil {
		return nil, f.err
	}
	out := make([]inventory.Socket, len(f.socks))
	for i, so := range f.socks {
		so.Processes = nil
		out[i] = so
	}
	return out, nil
}

func (f *fakeHost) Resolve(ctx context.Context, want map[uint64]struct{}) (*inventory.Owners, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	o := &inventory.Owners{Holders: map[uint64][]inventory.Holder{}, Processes: map[int]*inventory.ProcessInfo{}, Via: f.via}
	for _, so := range f.socks {
		for _, p := range so.Processes {
			o.Holders[so.Inode] = append(o.Holders[so.Inode], inventory.Holder{PID: p.PID, FD: 3})
			o.Processes[p.PID] = p.ProcessInfo
		}
	}
	return o, nil
}

// recordingSink is a fake alert channel that records what it is sent and
// fails on demand (fault injection).
type recordingSink struct {
	name   string
	minSev notify.Severity
	delay  time.Duration

	mu      sync.Mutex
	batches [][]notify.Alert
	calls   int
	fail    []error // returned by successive calls; nil entries succeed
}

func (s *recordingSink) Name() string { return s.name }

func (s *recordingSink) Accepts(a notify.Alert) bool {
	return notify.Filter{MinSeverity: s.minSev}.Accepts(a)
}

func (s *recordingSink) Send(ctx context.Context, batch []notify.Alert) error {
	if s.delay > 0 {
		select {
		case <-time.After(s.delay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	i := s.calls
	s.calls++
	if i < len(s.fail) && s.fail[i] != nil {
		return s.fail[i]
	}
	s.batches = append(s.batches, batch)
	return nil
}

func (s *recordingSink) sent() [][]notify.Alert {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([][]notify.Alert(nil), s.batches...)
}

func (s *recordingSink) callCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.calls
}

func dur(d time.Duration) Duration { return Duration{D: d, set: true} }

func testConfig(t *testing.T) *Config {
	off := ""
	none := ""
	return &Config{
		IntervalRaw: dur(MinInterval), GraceRaw: dur(time.Second), BurstRaw: dur(300 * time.Millisecond),
		Retry:    RetryConfig{Initial: dur(50 * time.Millisecond), Max: dur(200 * time.Millisecond)},
		StateDir: t.TempDir(), HTTP: HTTPConfig{Listen: &off}, Policy: &none, Host: "test-host",
		ShutdownTimeoutRaw: dur(2 * time.Second), Socket: &off,
		// The tests' hosts are fakes: the real kernel's events would
		// bring the machine's own listeners in.
		Events: "off",
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

type running struct {
	d      *Daemon
	cancel context.CancelFunc
	done   chan error
}

func start(t *testing.T, cfg *Config, host *fakeHost, pol Checker, sinks ...notify.Sink) *running {
	t.Helper()
	d, err := New(Options{Config: cfg, Source: host, Resolver: host, Policy: pol, Sinks: sinks,
		Logger: quietLogger(), Notify: func(string) {}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{d: d, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- d.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	return r
}

func (r *running) stop(t *testing.T) error {
	r.cancel()
	select {
	case err, ok := <-r.done:
		if ok {
			close(r.done)
		}
		return err
	case <-time.After(20 * time.Second):
		t.Fatal("daemon did not stop")
	}
	return nil
}

func waitFor(t *testing.T, what string, timeout time.Duration, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func storedKinds(t *testing.T, st *store.Store) string {
	t.Helper()
	evs, err := st.Events(context.Background(), store.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	var k []string
	for _, e := range evs {
		k = append(k, e.Kind)
	}
	return strings.Join(k, " ")
}

func alertKinds(batches [][]notify.Alert) [][]string {
	var out [][]string
	for _, b := range batches {
		var ks []string
		for _, a := range b {
			ks = append(ks, a.Kind)
		}
		out = append(out, ks)
	}
	return out
}

func TestDaemonBurstBatching(t *testing.T) {
	host := &fakeHost{}
	host.set(sock(22, 100, "/usr/sbin/sshd"))
	sink := &recordingSink{name: "rec"}
	cfg := testConfig(t)
	cfg.BurstRaw = dur(3 * time.Second)
	r := start(t, cfg, host, nil, sink)
	waitFor(t, "first scan", 5*time.Second, func() bool { return r.d.Healthy().OK })
	host.set(sock(22, 100, "/usr/sbin/sshd"), sock(4444, 200, "/tmp/nc"))
	time.Sleep(600 * time.Millisecond)
	host.set(sock(22, 100, "/usr/sbin/sshd"), sock(4444, 200, "/tmp/nc"), sock(5555, 201, "/tmp/nc"))
	waitFor(t, "a batch", 5*time.Second, func() bool { return len(sink.sent()) > 0 })
	time.Sleep(300 * time.Millisecond)
	got := sink.sent()
	if len(got) != 1 || len(got[0]) != 2 {
		t.Fatalf("batches = %v, want one batch of two opened alerts", alertKinds(got))
	}
	if got[0][0].Socket.Local.Port != 4444 || got[0][1].Socket.Local.Port != 5555 || got[0][0].Host != "test-host" {
		t.Errorf("batch = %+v", got[0])
	}
	// Alert ids are the stored event uids.
	evs, _ := r.d.Store().Events(context.Background(), store.Filter{Kind: KindOpened})
	if len(evs) != 2 || evs[0].UID != got[0][0].ID {
		t.Errorf("alert id %s does not match event uid (%+v)", got[0][0].ID, evs)
	}
	waitFor(t, "delivered state", 2*time.Second, func() bool {
		n, _ := r.d.Store().PendingCount(context.Background())
		return n == 0
	})
}

func TestDaemonRestartWithinGraceGivesNoAlert(t *testing.T) {
	host := &fakeHost{}
	host.set(sock(80, 100, "/usr/sbin/nginx"))
	warn := &recordingSink{name: "mail", minSev: notify.SeverityWarning}
	all := &recordingSink{name: "log"}
	cfg := testConfig(t)
	cfg.GraceRaw = dur(3 * time.Second)
	cfg.BurstRaw = dur(100 * time.Millisecond)
	r := start(t, cfg, host, nil, warn, all)
	waitFor(t, "first scan", 5*time.Second, func() bool { return r.d.Healthy().OK })
	host.set()
	time.Sleep(700 * time.Millisecond)
	host.set(sock(80, 101, "/usr/sbin/nginx"))
	waitFor(t, "the restarted note", 5*time.Second, func() bool { return storedKinds(t, r.d.Store()) == "restarted" })
	// Past the grace period: still nothing else.
	time.Sleep(3500 * time.Millisecond)
	if k := storedKinds(t, r.d.Store()); k != "restarted" {
		t.Fatalf("events = %q, want only restarted", k)
	}
	if n := warn.callCount(); n != 0 {
		t.Fatalf("warning channel got %d sends for a restart: %v", n, alertKinds(warn.sent()))
	}
	if got := alertKinds(all.sent()); len(got) != 1 || len(got[0]) != 1 || got[0][0] != "restarted" {
		t.Fatalf("accept-all channel got %v, want one restarted note", got)
	}
}

func TestDaemonRetriesTransientFailures(t *testing.T) {
	host := &fakeHost{}
	sink := &recordingSink{name: "rec", fail: []error{errors.New("451 try later"), errors.New("timeout")}}
	cfg := testConfig(t)
	cfg.BurstRaw = dur(50 * time.Millisecond)
	r := start(t, cfg, host, nil, sink)
	waitFor(t, "first scan", 5*time.Second, func() bool { return r.d.Healthy().OK })
	host.set(sock(4444, 200, "/tmp/nc"))
	waitFor(t, "delivery", 5*time.Second, func() bool { return len(sink.sent()) == 1 })
	time.Sleep(300 * time.Millisecond)
	if n := sink.callCount(); n != 3 {
		t.Errorf("%d Send calls, want 3 (two failures, one success)", n)
	}
	rows, _ := r.d.Store().Outbox(context.Background())
	if len(rows) != 1 || rows[0].State != store.StateDelivered || rows[0].Attempts != 3 {
		t.Fatalf("outbox = %+v", rows)
	}
}

func TestDaemonPermanentFailureIsNotRetried(t *testing.T) {
	host := &fakeHost{}
	sink := &recordingSink{name: "rec", fail: []error{notify.Permanent(errors.New("550 mailbox unavailable"))}}
	cfg := testConfig(t)
	cfg.BurstRaw = dur(50 * time.Millisecond)
	r := start(t, cfg, host, nil, sink)
	waitFor(t, "first scan", 5*time.Second, func() bool { return r.d.Healthy().OK })
	host.set(sock(4444, 200, "/tmp/nc"))
	waitFor(t, "failure", 5*time.Second, func() bool {
		rows, _ := r.d.Store().Outbox(context.Background())
		return len(rows) == 1 && rows[0].State == store.StateFailed
	})
	time.Sleep(500 * time.Millisecond)
	if n := sink.callCount(); n != 1 {
		t.Fatalf("%d Send calls after a permanent failure, want 1", n)
	}
	rows, _ := r.d.Store().Outbox(context.Background())
	if !strings.Contains(rows[0].LastError, "550") {
		t.Errorf("last error = %q", rows[0].LastError)
	}
}

func TestDaemonShutdownDrainsInFlight(t *testing.T) {
	host := &fakeHost{}
	sink := &recordingSink{name: "slow", delay: 800 * time.Millisecond}
	cfg := testConfig(t)
	cfg.BurstRaw = dur(10 * time.Millisecond)
	r := start(t, cfg, host, nil, sink)
	waitFor(t, "first scan", 5*time.Second, func() bool { return r.d.Healthy().OK })
	host.set(sock(4444, 200, "/tmp/nc"))
	// Wait until the send is in flight, then stop.
	waitFor(t, "a send in flight", 5*time.Second, func() bool {
		r.d.disp.mu.Lock()
		defer r.d.disp.mu.Unlock()
		return r.d.disp.busy["slow"]
	})
	t0 := time.Now()
	if err := r.stop(t); err != nil {
		t.Fatalf("Run returned %v, want nil", err)
	}
	if len(sink.sent()) != 1 {
		t.Fatal("the delivery in flight did not finish before exit")
	}
	if el := time.Since(t0); el > 1500*time.Millisecond {
		t.Errorf("shutdown took %v", el)
	}
	st, err := store.OpenReadOnly(cfg.StateDirPath())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rows, _ := st.Outbox(context.Background())
	if len(rows) != 1 || rows[0].State != store.StateDelivered {
		t.Fatalf("outbox after shutdown = %+v", rows)
	}
}

func TestDaemonShutdownTimeout(t *testing.T) {
	host := &fakeHost{}
	sink := &recordingSink{name: "stuck", delay: time.Hour}
	cfg := testConfig(t)
	cfg.BurstRaw = dur(10 * time.Millisecond)
	cfg.ShutdownTimeoutRaw = dur(300 * time.Millisecond)
	r := start(t, cfg, host, nil, sink)
	waitFor(t, "first scan", 5*time.Second, func() bool { return r.d.Healthy().OK })
	host.set(sock(4444, 200, "/tmp/nc"))
	waitFor(t, "a send in flight", 5*time.Second, func() bool {
		r.d.disp.mu.Lock()
		defer r.d.disp.mu.Unlock()
		return r.d.disp.busy["stuck"]
	})
	t0 := time.Now()
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(t0); el > 2*time.Second {
		t.Errorf("shutdown with a stuck channel took %v, want about the 300ms timeout", el)
	}
	// The alert is still owed, and due at once at the next start.
	st, err := store.OpenReadOnly(cfg.StateDirPath())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	rows, _ := st.Outbox(context.Background())
	if len(rows) != 1 || rows[0].State != store.StatePending {
		t.Fatalf("outbox after a cut-off send = %+v", rows)
	}
}

func TestDaemonViolationSurvivesRestart(t *testing.T) {
	host := &fakeHost{}
	bad := sock(4444, 200, "/tmp/nc")
	host.set(bad)
	pol := CheckerFunc(func(snap *inventory.Snapshot) []Finding {
		var out []Finding
		for i := range snap.Sockets {
			if snap.Sockets[i].Local.Port == 4444 {
				out = append(out, Finding{Kind: "unexpected", Key: "unexpected tcp 0.0.0.0:4444", Message: "unexpected listener", Socket: &snap.Sockets[i]})
			}
		}
		return out
	})
	sink := &recordingSink{name: "rec", minSev: notify.SeverityCritical}
	cfg := testConfig(t)
	cfg.BurstRaw = dur(10 * time.Millisecond)
	r := start(t, cfg, host, pol, sink)
	waitFor(t, "the violation alert", 5*time.Second, func() bool { return len(sink.sent()) == 1 })
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	// A new daemon on the same state: the violation is known, not news.
	r2 := start(t, cfg, host, pol, sink)
	waitFor(t, "scans", 5*time.Second, func() bool { return r2.d.Healthy().OK })
	time.Sleep(700 * time.Millisecond)
	if n := len(sink.sent()); n != 1 {
		t.Fatalf("after a restart the violation was sent %d times", n)
	}
	if k := storedKinds(t, r2.d.Store()); k != "violation" {
		t.Fatalf("events = %q", k)
	}
	// It ends while the daemon runs: resolved after the grace period.
	host.set()
	waitFor(t, "resolved", 5*time.Second, func() bool { return storedKinds(t, r2.d.Store()) == "violation closed resolved" })
	act, _ := r2.d.Store().ActiveFindings(context.Background())
	if len(act) != 0 {
		t.Fatalf("active after resolve = %+v", act)
	}
}

func TestDaemonReloadBadConfigKeepsOld(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "porteiro.yaml")
	write := func(s string) {
		if err := os.WriteFile(path, []byte(s), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// events: off, as testConfig: the host is a fake, and the kernel's
	// events would bring in the listeners other tests open meanwhile.
	write("interval: 300ms\nstate_dir: " + dir + "\nhttp:\n  listen: ''\npolicy: ''\nevents: off\n")
	rt, err := Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if rt.Config.Events != "off" {
		t.Fatalf("events: off loaded as %q", rt.Config.Events)
	}
	host := &fakeHost{}
	r := start(t, rt.Config, host, rt.Policy, rt.Sinks...)
	waitFor(t, "first scan", 5*time.Second, func() bool { return r.d.Healthy().OK })

	write("interval: 300ms\nstate_dir: " + dir + "\nintreval: 1s\n")
	if err := reloadFrom(r.d, path); err == nil || !strings.Contains(err.Error(), ":3:1:") {
		t.Fatalf("bad reload: %v, want a file:line:col error", err)
	}
	if got := r.d.Config().Interval(); got != 300*time.Millisecond {
		t.Fatalf("after a bad reload the interval is %v", got)
	}
	// Still scanning.
	host.set(sock(4444, 1, "/tmp/nc"))
	waitFor(t, "scans after a bad reload", 5*time.Second, func() bool { return storedKinds(t, r.d.Store()) == "opened" })

	write("interval: 1s\nstate_dir: " + dir + "\nhttp:\n  listen: ''\npolicy: ''\nevents: off\n")
	if err := reloadFrom(r.d, path); err != nil {
		t.Fatal(err)
	}
	if got := r.d.Config().Interval(); got != time.Second {
		t.Fatalf("after a good reload the interval is %v", got)
	}
}

func TestDaemonScanErrorsKeepRunning(t *testing.T) {
	host := &fakeHost{err: errors.New("netlink: permission denied")}
	cfg := testConfig(t)
	r := start(t, cfg, host, nil)
	time.Sleep(600 * time.Millisecond)
	if r.d.Healthy().OK {
		t.Fatal("healthy without a successful scan")
	}
	host.mu.Lock()
	host.err = nil
	host.mu.Unlock()
	waitFor(t, "recovery", 5*time.Second, func() bool { return r.d.Healthy().OK })
}

func TestHTTPAPI(t *testing.T) {
	host := &fakeHost{}
	host.set(sock(22, 100, "/usr/sbin/sshd"))
	cfg := testConfig(t)
	d, err := New(Options{Config: cfg, Source: host, Resolver: host, Logger: quietLogger(), Notify: func(string) {}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.store.Close()
	srv := httptest.NewServer(d.Handler())
	defer srv.Close()
	get := func(path string) (int, map[string]any) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		return resp.StatusCode, body
	}
	if code, _ := get("/healthz"); code != 503 {
		t.Errorf("healthz before a scan = %d, want 503", code)
	}
	ctx := context.Background()
	if err := d.ScanOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if code, _ := get("/healthz"); code != 200 {
		t.Errorf("healthz after a scan = %d, want 200", code)
	}
	code, doc := get("/api/v1/listeners")
	socks, _ := doc["sockets"].([]any)
	if code != 200 || len(socks) != 1 || doc["schema_version"] != float64(1) {
		t.Fatalf("listeners = %d %v", code, doc)
	}
	host.set(sock(22, 100, "/usr/sbin/sshd"), sock(4444, 200, "/tmp/nc"))
	if err := d.ScanOnce(ctx); err != nil {
		t.Fatal(err)
	}
	code, doc = get("/api/v1/events?since=1h&port=4444&kind=opened")
	evs, _ := doc["events"].([]any)
	if code != 200 || len(evs) != 1 {
		t.Fatalf("events = %d %v", code, doc)
	}
	ev := evs[0].(map[string]any)
	payload := ev["payload"].(map[string]any)
	so := payload["socket"].(map[string]any)
	procs := so["processes"].([]any)
	if ev["kind"] != "opened" || procs[0].(map[string]any)["exe"] != "/tmp/nc" || !strings.Contains(ev["summary"].(string), "nc (pid 200") {
		t.Errorf("event = %v", ev)
	}
	if _, doc := get("/api/v1/events?port=22"); len(doc["events"].([]any)) != 0 {
		t.Errorf("port filter: %v", doc)
	}
	if code, doc := get("/api/v1/events?kind=exploded"); code != 400 || !strings.Contains(doc["error"].(string), "unknown event kind") {
		t.Errorf("bad kind = %d %v", code, doc)
	}
}

func TestDaemonReportsChangesWhileDown(t *testing.T) {
	host := &fakeHost{}
	host.set(sock(22, 100, "/usr/sbin/sshd"), sock(25, 101, "/usr/sbin/exim"))
	cfg := testConfig(t)
	r := start(t, cfg, host, nil)
	waitFor(t, "first scan", 5*time.Second, func() bool { return r.d.Healthy().OK })
	// A listener opens; the saved listener set only catches up at
	// shutdown (saves are spaced by saveEvery).
	host.set(sock(22, 100, "/usr/sbin/sshd"), sock(25, 101, "/usr/sbin/exim"), sock(53, 102, "/usr/sbin/named"))
	waitFor(t, "opened", 5*time.Second, func() bool { return storedKinds(t, r.d.Store()) == "opened" })
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}
	// While porteiro is down, exim and named go away and something new
	// listens.
	host.set(sock(22, 100, "/usr/sbin/sshd"), sock(8080, 300, "/usr/bin/app"))
	r2 := start(t, cfg, host, nil)
	waitFor(t, "the changes while down", 5*time.Second, func() bool {
		return storedKinds(t, r2.d.Store()) == "opened opened closed closed"
	})
	evs, _ := r2.d.Store().Events(context.Background(), store.Filter{})
	var ports []uint16
	for _, e := range evs {
		ports = append(ports, e.Port)
	}
	if fmt.Sprint(ports) != "[53 8080 25 53]" {
		t.Fatalf("event ports = %v, want [53 8080 25 53]", ports)
	}
}

func TestDaemonHTTPAddressInUse(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	cfg := testConfig(t)
	addr := l.Addr().String()
	cfg.HTTP.Listen = &addr
	host := &fakeHost{}
	d, err := New(Options{Config: cfg, Source: host, Resolver: host, Logger: quietLogger(), Notify: func(string) {}})
	if err != nil {
		t.Fatal(err)
	}
	err = d.Run(context.Background())
	if err == nil || !strings.Contains(err.Error(), addr) || !strings.Contains(err.Error(), "http.listen") {
		t.Fatalf("Run with the HTTP address taken = %v, want an error naming it", err)
	}
}

func TestDaemonServesHTTP(t *testing.T) {
	cfg := testConfig(t)
	addr := "127.0.0.1:0"
	// Find a free port, then give it to the daemon.
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	addr = l.Addr().String()
	l.Close()
	cfg.HTTP.Listen = &addr
	sockPath := filepath.Join(t.TempDir(), "porteiro.sock")
	cfg.Socket = &sockPath
	host := &fakeHost{}
	host.set(sock(22, 100, "/usr/sbin/sshd"))
	start(t, cfg, host, nil)
	waitFor(t, "healthz 200", 5*time.Second, func() bool {
		resp, err := http.Get("http://" + addr + "/healthz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == 200
	})
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(b), "porteiro_scan_duration_seconds") {
		t.Fatalf("/metrics = %d, %.200s", resp.StatusCode, b)
	}
	// The JSON API is on the local socket, not on TCP (http.api is off).
	resp, err = http.Get("http://" + addr + "/api/v1/listeners")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("/api/v1/listeners on TCP = %d, want 404", resp.StatusCode)
	}
	doc, err := (&localapi.Client{Socket: sockPath}).Events(context.Background(), localapi.EventsQuery{Since: "1h"})
	if err != nil {
		t.Fatalf("events through the socket: %v", err)
	}
	if doc.SchemaVersion != 1 || doc.Events == nil {
		t.Errorf("events through the socket = %+v, want a document (the first scan records no event)", doc)
	}
	_, err = (&localapi.Client{Socket: sockPath}).Events(context.Background(), localapi.EventsQuery{Kind: "nope"})
	var ae *localapi.Error
	if !errors.As(err, &ae) || ae.Status != 400 || !strings.Contains(ae.Message, "nope") {
		t.Errorf("a bad query through the socket = %v, want a 400 naming the kind", err)
	}
}

func TestDaemonFiringAlertFollowsTheListener(t *testing.T) {
	host := &fakeHost{}
	host.set(sock(4444, 200, "/tmp/nc"))
	pol := CheckerFunc(func(snap *inventory.Snapshot) []Finding {
		var out []Finding
		for i := range snap.Sockets {
			so := &snap.Sockets[i]
			out = append(out, Finding{Kind: "unexpected", Key: "unexpected tcp 0.0.0.0:4444", Message: "unexpected, pid " + fmt.Sprint(so.Processes[0].PID), Socket: so})
		}
		return out
	})
	cfg := testConfig(t)
	d, err := New(Options{Config: cfg, Source: host, Resolver: host, Policy: pol, Logger: quietLogger(), Notify: func(string) {}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.store.Close()
	ctx := context.Background()
	if err := d.ScanOnce(ctx); err != nil {
		t.Fatal(err)
	}
	first := d.rec.alerts["unexpected tcp 0.0.0.0:4444"]
	if first.ID == "" || first.Socket.Processes[0].PID != 200 {
		t.Fatalf("firing alert = %+v", first)
	}
	// The offender restarts with a new pid.
	host.set(sock(4444, 201, "/tmp/nc"))
	if err := d.ScanOnce(ctx); err != nil {
		t.Fatal(err)
	}
	now := d.rec.alerts["unexpected tcp 0.0.0.0:4444"]
	if now.ID != first.ID || !now.StartsAt.Equal(first.StartsAt) {
		t.Errorf("the firing alert changed identity: %s/%v, was %s/%v", now.ID, now.StartsAt, first.ID, first.StartsAt)
	}
	if now.Socket.Processes[0].PID != 201 || now.Summary != "unexpected, pid 201" {
		t.Errorf("the firing alert still describes pid %d: %q", now.Socket.Processes[0].PID, now.Summary)
	}
}

// TestLogsResolver: the daemon says once how it finds owners, and again
// when that changes (the iterator dropped, or the walk replaced).
func TestLogsResolver(t *testing.T) {
	host := &fakeHost{via: "procfs"}
	host.set(sock(22, 100, "/usr/sbin/sshd"))
	var logs bytes.Buffer
	d, err := New(Options{Config: testConfig(t), Source: host, Resolver: host,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)), Notify: func(string) {}})
	if err != nil {
		t.Fatal(err)
	}
	defer d.store.Close()
	ctx := context.Background()
	for range 3 {
		if err := d.ScanOnce(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if n := strings.Count(logs.String(), "walking /proc"); n != 1 {
		t.Errorf("%d lines about the /proc walk after three scans, want 1:\n%s", n, logs.String())
	}
	host.mu.Lock()
	host.via = "taskfd"
	host.socks = append(host.socks, sock(80, 200, "/usr/sbin/nginx")) // a new socket: owners are looked up
	host.mu.Unlock()
	if err := d.ScanOnce(ctx); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), "task-file iterator\" resolver=taskfd"); n != 1 {
		t.Errorf("%d lines about the task-file iterator, want 1:\n%s", n, logs.String())
	}
}

// reloadFrom does what porteirod does on SIGHUP: load the file, and apply
// it only when it loads.
func reloadFrom(d *Daemon, path string) error {
	rt, err := Load(path)
	if err != nil {
		return err
	}
	d.Reload(rt.Config, rt.Policy, rt.Sinks)
	return nil
}

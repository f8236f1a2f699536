package watch

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/porteiro/porteiro/internal/audit"
	"github.com/porteiro/porteiro/internal/audit/report"
	"github.com/porteiro/porteiro/internal/localapi"
	"github.com/porteiro/porteiro/internal/notify"
	"github.com/porteiro/porteiro/internal/store"
)

// auditHelperEnv makes the test binary, run again as a child, the process
// that holds a listener in an orphan network namespace.
const auditHelperEnv = "PORTEIRO_WATCH_AUDIT_HELPER"

// TestAuditHelperOrphan is not a test: it is the child of
// TestDaemonAuditOrphanNetNS. It makes a listener in a new network
// namespace, then returns its thread to the original one, so that the
// namespace lives only through the socket (no member, no mount), prints
// the port and the namespace, and holds them until its stdin closes.
func TestAuditHelperOrphan(t *testing.T) {
	if os.Getenv(auditHelperEnv) != "orphan" {
		t.Skip("the helper process of TestDaemonAuditOrphanNetNS")
	}
	runtime.LockOSThread()
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		panic(err)
	}
	if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
		panic(err)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		panic(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{}); err != nil {
		panic(err)
	}
	if err := unix.Listen(fd, 8); err != nil {
		panic(err)
	}
	sa, _ := unix.Getsockname(fd)
	var st unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &st); err != nil {
		panic(err)
	}
	if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
		panic(err)
	}
	fmt.Println(sa.(*unix.SockaddrInet4).Port, st.Ino)
	bufio.NewReader(os.Stdin).ReadByte()
	os.Exit(0)
}

// startOrphan runs the helper and returns its namespace and a function
// that ends it (and, with it, the namespace).
func startOrphan(t *testing.T) (port int, netns uint64, end func()) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestAuditHelperOrphan$")
	cmd.Env = append(os.Environ(), auditHelperEnv+"=orphan")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	end = func() {
		once.Do(func() {
			stdin.Close()
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				cmd.Process.Kill()
				<-done
			}
		})
	}
	t.Cleanup(end)
	if _, err := fmt.Fscanln(bufio.NewReader(stdout), &port, &netns); err != nil {
		t.Fatalf("reading the helper's namespace: %v", err)
	}
	return port, netns, end
}

// alertReceiver is a webhook receiver on loopback: the daemon's real
// webhook channel posts to it.
type alertReceiver struct {
	mu     sync.Mutex
	alerts []notify.Alert
}

func newAlertReceiver(t *testing.T) (*alertReceiver, string) {
	r := &alertReceiver{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		var p notify.Payload
		if err := json.NewDecoder(req.Body).Decode(&p); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		r.mu.Lock()
		r.alerts = append(r.alerts, p.Alerts...)
		r.mu.Unlock()
	}))
	t.Cleanup(srv.Close)
	return r, srv.URL
}

// count returns how many firing and resolved alerts were received for
// the listener (an audit finding's key).
func (r *alertReceiver) count(listener string) (firing, resolved int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, a := range r.alerts {
		if a.Listener != listener {
			continue
		}
		if a.Resolved {
			resolved++
		} else {
			firing++
			if a.Severity != notify.SeverityCritical {
				panic(fmt.Sprintf("audit alert of severity %s", a.Severity))
			}
		}
	}
	return firing, resolved
}

func (a *auditor) finished() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.runs
}

// TestDaemonAuditOrphanNetNS runs porteirod with a short audit interval
// against the real kernel: a listener in an orphan network namespace
// gives one critical event and one alert, later audits do not repeat
// them, and when the namespace goes, a resolved event follows.
func TestDaemonAuditOrphanNetNS(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the audit's kernel views need root")
	}
	hook, url := newAlertReceiver(t)
	sinks, err := notify.Build(notify.ChannelsConfig{Webhook: []notify.WebhookConfig{{Name: "hook", URL: url}}}, "test-host")
	if err != nil {
		t.Fatal(err)
	}
	cfg := testConfig(t)
	sock := filepath.Join(t.TempDir(), "porteiro.sock")
	cfg.Socket = &sock
	_, netns, end := startOrphan(t)
	key := fmt.Sprintf("audit %s netns %d", report.KindOrphanNetNS, netns)

	d, err := New(Options{Config: cfg, Sinks: sinks, Logger: quietLogger(), Notify: func(string) {}})
	if err != nil {
		t.Fatal(err)
	}
	// Below audit_interval's minimum of a minute, which only a test may
	// set. The probe is left out for speed: the orphan namespace is found
	// through the kernel's file tables (the probe has its own tests in
	// internal/audit).
	d.audit.every, d.audit.first = 300*time.Millisecond, 0
	d.audit.opts = audit.Options{NoProbe: true}
	h := d.Handler()
	get := func(path string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		h.ServeHTTP(w, httptest.NewRequest("GET", path, nil))
		return w
	}
	if w := get("/api/v1/audit"); w.Code != http.StatusNotFound || !strings.Contains(w.Body.String(), "no audit has run yet") {
		t.Fatalf("GET /api/v1/audit before any audit: %d %s", w.Code, w.Body)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("the daemon did not stop")
		}
	}()

	waitFor(t, "the orphan namespace's violation event and alert", 60*time.Second, func() bool {
		v, _ := auditEvents(t, d.Store(), key)
		f, _ := hook.count(key)
		return v == 1 && f == 1
	})
	// Later audits still see it, and say nothing more.
	n := d.audit.finished()
	waitFor(t, "two more audits", 60*time.Second, func() bool { return d.audit.finished() >= n+2 })
	time.Sleep(2 * cfg.Burst())
	if v, r := auditEvents(t, d.Store(), key); v != 1 || r != 0 {
		t.Fatalf("after more audits: %d violation and %d resolved events, want 1 and 0", v, r)
	}
	if f, r := hook.count(key); f != 1 || r != 0 {
		t.Fatalf("after more audits: %d firing and %d resolved alerts, want 1 and 0", f, r)
	}

	// The local API: the last report, and one audit run now.
	w := get("/api/v1/audit")
	var last report.Report
	if err := json.Unmarshal(w.Body.Bytes(), &last); w.Code != http.StatusOK || err != nil || !last.Compared {
		t.Fatalf("GET /api/v1/audit: %d %v %s", w.Code, err, w.Body)
	}
	var now report.Report
	if err := (&localapi.Client{Socket: sock}).Audit(context.Background(), &now); err != nil {
		t.Fatalf("POST /api/v1/audit: %v", err)
	}
	found := false
	for _, f := range now.Findings {
		found = found || "audit "+f.ID() == key
	}
	if !found || now.Clean {
		t.Fatalf("the report asked for over the socket lacks %s: %+v", key, now.Findings)
	}
	var health map[string]any
	if err := json.Unmarshal(get("/healthz").Body.Bytes(), &health); err != nil || health["audit"] == nil {
		t.Fatalf("/healthz says nothing of the audit: %v %v", health, err)
	}
	if m := get("/metrics").Body.String(); !strings.Contains(m, `porteiro_audit_runs_total{result="findings"}`) || !strings.Contains(m, "porteiro_audit_findings ") {
		t.Errorf("/metrics lacks the audit's metrics")
	}

	// The namespace goes with its last socket: resolved.
	end()
	waitFor(t, "the resolved event and alert", 60*time.Second, func() bool {
		_, r := auditEvents(t, d.Store(), key)
		_, ra := hook.count(key)
		return r == 1 && ra == 1
	})
	if v, _ := auditEvents(t, d.Store(), key); v != 1 {
		t.Fatalf("%d violation events, want 1", v)
	}
}

// TestDaemonAuditProbeIsNoListener runs an audit, bind() probe included,
// in a daemon that hears the kernel's listener events: the probe binds
// every UDP port in the daemon's own process, and none of that may become
// an event.
func TestDaemonAuditProbeIsNoListener(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the audit's kernel views and the listener events need root")
	}
	cfg := testConfig(t)
	cfg.Events = "auto"
	d, err := New(Options{Config: cfg, Logger: quietLogger(), Notify: func(string) {}})
	if err != nil {
		t.Fatal(err)
	}
	d.audit.every, d.audit.first = time.Hour, 0
	d.audit.opts = audit.Options{ProbeHostOnly: true}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	}()
	waitFor(t, "the first scan", 30*time.Second, func() bool { return d.Healthy().OK })
	if d.EventSource() != "ebpf" {
		t.Skip("the kernel's listener events did not load here")
	}
	// About a second on an idle host; much longer on a loaded one.
	waitFor(t, "an audit", 3*time.Minute, func() bool { return d.audit.finished() >= 1 })
	// Let the last of the probe's events arrive and be judged.
	time.Sleep(3 * time.Second)
	evs, err := d.Store().Events(context.Background(), store.Filter{Limit: 100000})
	if err != nil {
		t.Fatal(err)
	}
	mine := 0
	for _, e := range evs {
		if e.PID == os.Getpid() && e.Proto == "udp" {
			mine++
			if mine < 5 {
				t.Errorf("the audit's probe became an event: %s %s", e.Kind, e.Listener)
			}
		}
	}
	if mine > 0 {
		t.Fatalf("%d events of the probe's own UDP binds", mine)
	}
	var probed bool
	d.audit.mu.Lock()
	probed = d.audit.last != nil && d.audit.last.PortsProbed > 0
	d.audit.mu.Unlock()
	if !probed {
		t.Fatal("the audit probed no port")
	}
}

package watch

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/porteiro/porteiro/internal/audit"
	"github.com/porteiro/porteiro/internal/audit/report"
	"github.com/porteiro/porteiro/internal/notify"
	"github.com/porteiro/porteiro/internal/store"
)

func TestConfigAuditInterval(t *testing.T) {
	for src, want := range map[string]time.Duration{
		"":                      0,
		"audit_interval: 0\n":   0,
		"audit_interval: 1h\n":  time.Hour,
		"audit_interval: 1m\n":  time.Minute,
		"audit_interval: 1d\n":  24 * time.Hour,
		"audit_interval: 90s\n": 90 * time.Second,
	} {
		c, err := ParseConfig("porteiro.yaml", []byte(src))
		if err != nil {
			t.Fatalf("%q: %v", src, err)
		}
		if got := c.AuditInterval(); got != want {
			t.Errorf("%q: AuditInterval() = %s, want %s", src, got, want)
		}
	}
	for src, want := range map[string]string{
		"interval: 1s\naudit_interval: 30s\n": "porteiro.yaml:2:17: audit_interval: 30s is too short: the minimum is 1m0s (0 turns scheduled audits off)",
		"audit_interval: -1h\n":               "porteiro.yaml:1:17: audit_interval: -1h0m0s is too short",
		"audit_interval: often\n":             `porteiro.yaml:1:17: audit_interval: invalid duration "often"`,
	} {
		_, err := ParseConfig("porteiro.yaml", []byte(src))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want %q", src, err, want)
		}
	}
}

// auditEvents counts the stored violation and resolved events of one
// audit finding.
func auditEvents(t *testing.T, st *store.Store, key string) (violations, resolved int) {
	t.Helper()
	evs, err := st.Events(context.Background(), store.Filter{Limit: 100000})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range evs {
		var p Payload
		if err := json.Unmarshal(e.Payload, &p); err != nil {
			t.Fatal(err)
		}
		if p.Finding == nil || p.Finding.Key != key {
			continue
		}
		if p.Audit == nil || p.Audit.Kind != report.KindOrphanNetNS {
			t.Fatalf("event %s of %s carries no audit finding: %s", e.Kind, key, e.Payload)
		}
		switch e.Kind {
		case KindViolation:
			if e.Severity != string(notify.SeverityCritical) {
				t.Errorf("violation of severity %s", e.Severity)
			}
			violations++
		case KindResolved:
			resolved++
		}
	}
	return violations, resolved
}

// TestDaemonAuditRecording checks what the daemon makes of audit reports,
// with the audit replaced by a fake that returns the reports the test
// queues (fault injection: the kernel cannot be made to hide and unhide
// things on cue, nor an audit to fail): one alert per finding while it
// lasts, across a restart; no resolution while the view that saw it did
// not run; a resolved event when it is gone; failures counted, and the
// daemon keeps scanning.
func TestDaemonAuditRecording(t *testing.T) {
	cfg := testConfig(t)
	host := &fakeHost{}
	sink := &recordingSink{name: "rec"}
	orphan := report.Finding{Kind: report.KindOrphanNetNS, Key: "orphan_netns netns 4026532999", NetNS: 4026532999,
		SeenBy: []report.View{report.ViewBPFFile}, MissedBy: []report.View{report.ViewNSMember, report.ViewNSMount},
		Owners: []report.Owner{{PID: 4242, Comm: "evil\x1b[2J"}}, Detail: "network namespace 4026532999 has 1 sockets, but no process is a member and no mount names it"}
	key := "audit " + orphan.ID()
	ran := []report.ViewStatus{{View: report.ViewSockDiag, Ran: true}, {View: report.ViewBPFFile, Ran: true}}
	skipped := []report.ViewStatus{{View: report.ViewSockDiag, Ran: true}, {View: report.ViewProcNet, Ran: true}, {View: report.ViewBPFFile, Skipped: "needs root"}}
	withOrphan := &report.Report{Findings: []report.Finding{orphan}, Views: ran, Compared: true}
	clean := &report.Report{Findings: []report.Finding{}, Views: ran, Compared: true, Clean: true}
	var queue []any
	fake := func(ctx context.Context, o audit.Options) (*report.Report, error) {
		next := queue[0]
		queue = queue[1:]
		if next == "panic" {
			panic("injected panic")
		}
		if err, ok := next.(error); ok {
			return nil, err
		}
		return next.(*report.Report), nil
	}
	post := func(d *Daemon, want int) {
		t.Helper()
		w := httptest.NewRecorder()
		d.Handler().ServeHTTP(w, httptest.NewRequest("POST", "/api/v1/audit", nil))
		if w.Code != want {
			t.Fatalf("POST /api/v1/audit: %d %s, want %d", w.Code, w.Body, want)
		}
	}
	r := start(t, cfg, host, nil, sink)
	r.d.audit.run = fake
	waitFor(t, "the first scan", 30*time.Second, func() bool { return r.d.Healthy().OK })

	queue = append(queue, withOrphan, withOrphan)
	post(r.d, 200)
	post(r.d, 200)
	if v, res := auditEvents(t, r.d.Store(), key); v != 1 || res != 0 {
		t.Fatalf("two audits with the finding: %d violations, %d resolved; want 1, 0", v, res)
	}
	// Its view did not run: not gone, only unseen.
	queue = append(queue, &report.Report{Findings: []report.Finding{}, Views: skipped, Compared: true, Clean: true})
	post(r.d, 200)
	// An audit that fails, and one that compared nothing, change nothing.
	queue = append(queue, errors.New("injected failure"), "panic", &report.Report{Findings: []report.Finding{}, Views: skipped})
	post(r.d, 500)
	post(r.d, 500)
	post(r.d, 200)
	if v, res := auditEvents(t, r.d.Store(), key); v != 1 || res != 0 {
		t.Fatalf("after a skipped view and failures: %d violations, %d resolved; want 1, 0", v, res)
	}
	waitFor(t, "the alert", 30*time.Second, func() bool { return len(sink.sent()) > 0 })
	w := httptest.NewRecorder()
	r.d.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/metrics", nil))
	for _, want := range []string{`porteiro_audit_runs_total{result="error"} 3`, `porteiro_audit_runs_total{result="findings"} 2`, `porteiro_audit_runs_total{result="ok"} 1`} {
		if !strings.Contains(w.Body.String(), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if err := r.stop(t); err != nil {
		t.Fatal(err)
	}

	// A restart remembers the firing finding: no second alert.
	r = start(t, cfg, host, nil, sink)
	r.d.audit.run = fake
	waitFor(t, "the first scan", 30*time.Second, func() bool { return r.d.Healthy().OK })
	queue = append(queue, withOrphan, clean)
	post(r.d, 200)
	if v, res := auditEvents(t, r.d.Store(), key); v != 1 || res != 0 {
		t.Fatalf("after a restart: %d violations, %d resolved; want 1, 0", v, res)
	}
	post(r.d, 200)
	if v, res := auditEvents(t, r.d.Store(), key); v != 1 || res != 1 {
		t.Fatalf("once gone: %d violations, %d resolved; want 1, 1", v, res)
	}
	waitFor(t, "the resolved alert", 30*time.Second, func() bool {
		var firing, resolved int
		for _, b := range sink.sent() {
			for _, a := range b {
				if a.Listener != key {
					continue
				}
				if a.Resolved {
					resolved++
				} else {
					firing++
					if a.Severity != notify.SeverityCritical || a.Finding != report.KindOrphanNetNS || !strings.Contains(a.Detail, "porteiro audit") {
						t.Errorf("firing alert: %+v", a)
					}
				}
			}
		}
		if firing > 1 {
			t.Fatalf("%d firing alerts, want 1", firing)
		}
		return firing == 1 && resolved == 1
	})
	if h := r.d.Healthy(); !h.OK {
		t.Errorf("the daemon is unhealthy after failed audits: %s", h.Problem)
	}
	var health map[string]any
	w = httptest.NewRecorder()
	r.d.Handler().ServeHTTP(w, httptest.NewRequest("GET", "/healthz", nil))
	if err := json.Unmarshal(w.Body.Bytes(), &health); err != nil || w.Code != http.StatusOK {
		t.Fatalf("/healthz: %d %s", w.Code, w.Body)
	}
	if a, _ := health["audit"].(map[string]any); a == nil || a["result"] != "ok" {
		t.Errorf("/healthz audit = %v", health["audit"])
	}
}

package notify

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/porteiro/porteiro/internal/testenv"
)

// startAlertmanager runs a real Alertmanager on a free loopback port,
// without clustering, and returns its base URL.
func startAlertmanager(t *testing.T) string {
	t.Helper()
	return "http://" + testenv.StartAlertmanager(t, t.TempDir())
}

type gettableAlert struct {
	Labels      map[string]string
	Annotations map[string]string
	StartsAt    time.Time
	EndsAt      time.Time
	Status      struct{ State string }
}

// activeAlerts reads GET /api/v2/alerts, which lists only unresolved alerts.
func activeAlerts(t *testing.T, url string) []gettableAlert {
	t.Helper()
	resp, err := http.Get(url + "/api/v2/alerts")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var out []gettableAlert
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatalf("GET /api/v2/alerts: %v: %s", err, b)
	}
	return out
}

func TestAlertmanagerFiringRefreshResolved(t *testing.T) {
	url := startAlertmanager(t)
	sinks, err := Build(ChannelsConfig{Alertmanager: []AlertmanagerConfig{{URL: url + "/", Labels: map[string]string{"env": "test"}}}}, "web1")
	if err != nil {
		t.Fatal(err)
	}
	s := sinks[0].(*alertmanagerSink)
	a := sampleAlert(t, "ev-1", 4444)
	a.StartsAt = time.Now().Add(-time.Minute).UTC()
	a.Time = a.StartsAt
	opened := sampleAlert(t, "ev-2", 8080)
	opened.Kind, opened.Severity, opened.Finding, opened.Summary = "opened", SeverityInfo, "", ""

	before := time.Now()
	if err := s.Send(context.Background(), []Alert{a, opened}); err != nil {
		t.Fatal(err)
	}
	got := activeAlerts(t, url)
	if len(got) != 2 {
		t.Fatalf("%d active alerts, want 2: %+v", len(got), got)
	}
	var fire gettableAlert
	for _, g := range got {
		if g.Labels["alertname"] == "PorteiroUnexpectedListener" {
			fire = g
		}
	}
	want := map[string]string{
		"alertname": "PorteiroUnexpectedListener", "instance": "web1", "listener": "tcp 0.0.0.0:4444",
		"proto": "tcp", "port": "4444", "finding": "unexpected", "severity": "critical", "env": "test",
	}
	for k, v := range want {
		if fire.Labels[k] != v {
			t.Errorf("label %s = %q, want %q (labels %v)", k, fire.Labels[k], v, fire.Labels)
		}
	}
	if len(fire.Labels) != len(want) {
		t.Errorf("labels %v: want exactly %v (no pid, no command line)", fire.Labels, want)
	}
	for k, v := range map[string]string{"cmdline": "nc -lk -p 4444", "process": "nc (pid 31337)", "user": "mallory",
		"summary": "unexpected listener tcp 0.0.0.0:4444 held by nc", "event_id": "ev-1", "who": "porteiro who 4444/tcp", "rule": "default-deny"} {
		if fire.Annotations[k] != v {
			t.Errorf("annotation %s = %q, want %q", k, fire.Annotations[k], v)
		}
	}
	if !strings.Contains(fire.Annotations["description"], "Command:   nc -lk -p 4444") {
		t.Errorf("description = %q", fire.Annotations["description"])
	}
	if fire.Status.State != "active" {
		t.Errorf("state = %q, want active", fire.Status.State)
	}
	if d := fire.StartsAt.Sub(a.StartsAt); d < -time.Second || d > time.Second {
		t.Errorf("startsAt = %v, want %v", fire.StartsAt, a.StartsAt)
	}
	if min := before.Add(3 * DefaultResendInterval).Add(-time.Second); fire.EndsAt.Before(min) {
		t.Errorf("endsAt = %v, want three resend intervals ahead (>= %v)", fire.EndsAt, min)
	}

	// Refresh moves endsAt forward. The sink's clock is moved instead of
	// waiting a minute.
	s.now = func() time.Time { return time.Now().Add(time.Minute) }
	if err := s.Refresh(context.Background(), []Alert{a}); err != nil {
		t.Fatal(err)
	}
	refreshed := false
	for _, g := range activeAlerts(t, url) {
		if g.Labels["alertname"] == "PorteiroUnexpectedListener" {
			refreshed = g.EndsAt.After(fire.EndsAt.Add(30 * time.Second))
			t.Logf("endsAt %v -> %v", fire.EndsAt, g.EndsAt)
		}
	}
	if !refreshed {
		t.Error("Refresh did not move endsAt forward")
	}
	s.now = time.Now

	// The violation ends. The resolution comes with severity info; it must
	// still end the alert that fired as critical.
	res := a
	res.ID, res.Kind, res.Severity, res.Resolved, res.Time = "ev-3", "resolved", SeverityInfo, true, time.Now().UTC()
	if err := s.Send(context.Background(), []Alert{res}); err != nil {
		t.Fatal(err)
	}
	for _, g := range activeAlerts(t, url) {
		if g.Labels["alertname"] == "PorteiroUnexpectedListener" {
			t.Errorf("alert still active after the resolution: %+v", g)
		}
	}
	if n := len(activeAlerts(t, url)); n != 1 {
		t.Errorf("%d active alerts, want only the opened event", n)
	}

	// After a restart the sink no longer knows the firing severity; the
	// resolution must still end the alert.
	b := sampleAlert(t, "ev-4", 5555)
	b.Severity = SeverityWarning
	if err := s.Send(context.Background(), []Alert{b}); err != nil {
		t.Fatal(err)
	}
	if n := len(activeAlerts(t, url)); n != 2 {
		t.Fatalf("%d active alerts, want 2", n)
	}
	sinks, err = Build(ChannelsConfig{Alertmanager: []AlertmanagerConfig{{URL: url, Labels: map[string]string{"env": "test"}}}}, "web1")
	if err != nil {
		t.Fatal(err)
	}
	res = b
	res.ID, res.Kind, res.Severity, res.Resolved = "ev-5", "resolved", SeverityInfo, true
	if err := sinks[0].Send(context.Background(), []Alert{res}); err != nil {
		t.Fatal(err)
	}
	for _, g := range activeAlerts(t, url) {
		if g.Labels["port"] == "5555" {
			t.Errorf("alert still active after a resolution from a restarted sink: %v", g.Labels)
		}
	}
}

func TestAlertmanagerErrors(t *testing.T) {
	url := startAlertmanager(t)
	sinks, err := Build(ChannelsConfig{Alertmanager: []AlertmanagerConfig{{URL: url + "/no/such/prefix"}}}, "web1")
	if err != nil {
		t.Fatal(err)
	}
	err = sinks[0].Send(context.Background(), []Alert{sampleAlert(t, "e", 1)})
	if err == nil || !IsPermanent(err) || !strings.Contains(err.Error(), "404") {
		t.Errorf("wrong path: err = %v, permanent = %v; want a permanent 404", err, IsPermanent(err))
	}
	// Alertmanager refuses an alert that ends before it starts: a 400.
	raw := `[{"labels":{"alertname":"x"},"startsAt":"2026-01-02T00:00:00Z","endsAt":"2026-01-01T00:00:00Z"}]`
	err = postJSON(context.Background(), http.DefaultClient, url+"/api/v2/alerts", []byte(raw), nil)
	if err == nil || !IsPermanent(err) || !strings.Contains(err.Error(), "400") {
		t.Errorf("invalid alert: err = %v, permanent = %v; want a permanent 400", err, IsPermanent(err))
	}
}

func TestAlertNames(t *testing.T) {
	cases := []struct {
		kind, finding, want string
	}{
		{"violation", "unexpected", "PorteiroUnexpectedListener"},
		{"resolved", "unexpected", "PorteiroUnexpectedListener"},
		{"missing", "missing", "PorteiroMissingListener"},
		{"missing", "", "PorteiroMissingListener"},
		{"violation", "wrong_owner", "PorteiroWrongOwner"},
		{"violation", "too_exposed", "PorteiroTooExposed"},
		{"violation", "something_new", "PorteiroListenerViolation"},
		{"resolved", "", "PorteiroListenerViolation"},
		{"opened", "", "PorteiroListenerOpened"},
		{"owner_changed", "", "PorteiroListenerOwnerChanged"},
		{"weird", "", "PorteiroEvent"},
	}
	for _, c := range cases {
		if got := alertName(Alert{Kind: c.kind, Finding: c.finding}); got != c.want {
			t.Errorf("alertName(%s, %s) = %s, want %s", c.kind, c.finding, got, c.want)
		}
	}
}

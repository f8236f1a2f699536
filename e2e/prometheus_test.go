package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/porteiro/porteiro/internal/testenv"
)

// TestPrometheusAlertFires runs the fleet setup on loopback: a real porteiro
// daemon, a real Prometheus (the Debian package) scraping it every second
// with docs/prometheus/porteiro.rules.yml, and a real Alertmanager. An
// unexpected listener must turn into a firing PorteiroPolicyViolation in
// Alertmanager, and closing it must resolve the alert.
//
// The policy ignores every port but one, chosen free beforehand, so the
// listeners that other tests open meanwhile cannot cause or hide a finding.
func TestPrometheusAlertFires(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: takes about 45 seconds")
	}
	promBin := testenv.RequireCommand(t, "prometheus")
	amBin := testenv.RequireCommand(t, "prometheus-alertmanager")
	promtool := testenv.RequireCommand(t, "promtool")
	bin := testenv.DaemonBinary(t)
	dir := t.TempDir()
	rules := filepath.Join(testenv.ModuleRoot(), "docs", "prometheus", "porteiro.rules.yml")

	port := testenv.FreePort(t)
	policy := promWrite(t, dir, "policy.yaml", fmt.Sprintf(`version: 1
default: deny
ignore:
  - name: every-other-port
    reason: only port %[1]d is under test
    netns: "*"
    port: [1-%[2]d, %[3]d-65535]
`, port, port-1, port+1))

	// Alertmanager, clustering off so that it binds nothing else.
	amAddr := testenv.Addr(t)
	amConf := promWrite(t, dir, "alertmanager.yml", `route:
  receiver: blackhole
  group_wait: 1s
  group_interval: 1s
receivers:
  - name: blackhole
`)
	promStart(t, dir, "alertmanager", amBin, "--config.file="+amConf, "--storage.path="+filepath.Join(dir, "am-data"),
		"--web.listen-address="+amAddr, "--cluster.listen-address=")
	promWaitHTTP(t, "http://"+amAddr+"/-/ready", 30*time.Second)

	// The daemon, scanning twice a second.
	daemonAddr := testenv.Addr(t)
	conf := promWrite(t, dir, "porteiro.yaml", fmt.Sprintf(`interval: 500ms
policy: %s
state_dir: %s
socket: %s
http:
  listen: %s
`, policy, filepath.Join(dir, "state"), filepath.Join(dir, "porteiro.sock"), daemonAddr))
	promStart(t, dir, "porteirod", bin, "-c", conf)
	promWaitHTTP(t, "http://"+daemonAddr+"/healthz", 30*time.Second)

	// Its real /metrics page passes promtool's linter.
	page := promGet(t, "http://"+daemonAddr+"/metrics")
	lint := exec.Command(promtool, "check", "metrics")
	lint.Stdin = strings.NewReader(page)
	if out, err := lint.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics on the daemon's /metrics: %v\n%s", err, out)
	}

	// Prometheus, scraping and evaluating every second.
	promAddr := testenv.Addr(t)
	promConf := promWrite(t, dir, "prometheus.yml", fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
rule_files: [%q]
alerting:
  alertmanagers:
    - static_configs:
        - targets: [%q]
scrape_configs:
  - job_name: porteiro
    static_configs:
      - targets: [%q]
`, rules, amAddr, daemonAddr))
	promStart(t, dir, "prometheus", promBin, "--config.file="+promConf, "--storage.tsdb.path="+filepath.Join(dir, "prom-data"),
		"--web.listen-address="+promAddr, "--rules.alert.resend-delay=1s")
	promWaitHTTP(t, "http://"+promAddr+"/-/ready", 60*time.Second)
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		// Gaps in the scrapes reset the rule's 30s wait: say if there were.
		for _, q := range []string{
			`count_over_time(up{job="porteiro"}[10m])`,
			`min_over_time(up{job="porteiro"}[10m])`,
			`max_over_time(scrape_duration_seconds{job="porteiro"}[10m])`,
			`changes(porteiro_policy_violations{job="porteiro",kind="unexpected"}[10m])`,
			`ALERTS{alertname="PorteiroPolicyViolation"}`,
		} {
			resp, err := http.Get("http://" + promAddr + "/api/v1/query?query=" + url.QueryEscape(q))
			if err != nil {
				continue
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			t.Logf("prometheus: %s => %s", q, b)
		}
	})

	// Before: Prometheus sees the daemon, and a clean policy.
	unexpected := `porteiro_policy_violations{job="porteiro",kind="unexpected"}`
	promEventually(t, 30*time.Second, "a clean porteiro_policy_violations in Prometheus", func() (bool, string) {
		v, ok := promQuery(t, promAddr, unexpected)
		return ok && v == 0, fmt.Sprintf("value %v, present %v", v, ok)
	})
	if a := promAlerts(t, amAddr); len(a) != 0 {
		t.Fatalf("alerts before any violation: %v", a)
	}

	// An unexpected listener.
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
	if err != nil {
		t.Fatalf("port %d was taken meanwhile: %v", port, err)
	}
	opened := time.Now()
	defer l.Close()

	promEventually(t, 30*time.Second, "the violation in Prometheus", func() (bool, string) {
		v, ok := promQuery(t, promAddr, unexpected)
		return ok && v == 1, fmt.Sprintf("value %v, present %v", v, ok)
	})
	t.Logf("listener opened -> violation in Prometheus: %v", time.Since(opened).Round(100*time.Millisecond))
	info := fmt.Sprintf(`porteiro_listener_info{job="porteiro",port="%d",allowed="false",proto="tcp",address="127.0.0.1"}`, port)
	if _, ok := promQuery(t, promAddr, info); !ok {
		t.Errorf("Prometheus has no %s", info)
	}

	var fired promAlert
	promEventually(t, 120*time.Second, "PorteiroPolicyViolation in Alertmanager", func() (bool, string) {
		alerts := promAlerts(t, amAddr)
		for _, a := range alerts {
			if a.Labels["alertname"] == "PorteiroPolicyViolation" && a.Labels["kind"] == "unexpected" {
				fired = a
				return true, ""
			}
		}
		return false, fmt.Sprintf("alerts: %v", alerts)
	})
	took := time.Since(opened)
	t.Logf("listener opened -> alert in Alertmanager: %v", took.Round(100*time.Millisecond))
	// The rule waits 30s (for: 30s); an alert much sooner would mean it
	// fired for something else.
	if took < 30*time.Second {
		t.Errorf("the alert arrived %v after the listener opened, before the rule's 30s", took)
	}
	for k, want := range map[string]string{"job": "porteiro", "instance": daemonAddr, "severity": "critical"} {
		if got := fired.Labels[k]; got != want {
			t.Errorf("alert label %s = %q, want %q", k, got, want)
		}
	}
	if s := fired.Annotations["summary"]; s != "1 unexpected listener finding(s) on "+daemonAddr {
		t.Errorf("summary = %q", s)
	}
	if fired.Status.State != "active" {
		t.Errorf("alert state = %q, want active", fired.Status.State)
	}

	// After: the listener closes, the violation clears, and Prometheus
	// resolves the alert in Alertmanager.
	l.Close()
	promEventually(t, 30*time.Second, "the violation to clear in Prometheus", func() (bool, string) {
		v, ok := promQuery(t, promAddr, unexpected)
		return ok && v == 0, fmt.Sprintf("value %v, present %v", v, ok)
	})
	promEventually(t, 30*time.Second, "the alert to be resolved in Alertmanager", func() (bool, string) {
		alerts := promAlerts(t, amAddr)
		for _, a := range alerts {
			if a.Labels["alertname"] == "PorteiroPolicyViolation" {
				return false, fmt.Sprintf("alerts: %v", alerts)
			}
		}
		return true, ""
	})
}

// promWrite writes a file in dir and returns its path.
func promWrite(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// promStart starts a server with its output in dir/name.log, and kills it
// by pid when the test ends. On failure the log is printed.
func promStart(t *testing.T, dir, name, bin string, args ...string) {
	t.Helper()
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		logf.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			if len(b) > 8000 {
				b = b[len(b)-8000:]
			}
			t.Logf("--- %s log (end) ---\n%s", name, b)
		}
	})
}

func promGet(t *testing.T, u string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", u, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("GET %s: %s\n%s", u, resp.Status, b)
	}
	return string(b)
}

// promWaitHTTP waits until u answers 200.
func promWaitHTTP(t *testing.T, u string, timeout time.Duration) {
	t.Helper()
	promEventually(t, timeout, u+" to answer 200", func() (bool, string) {
		resp, err := http.Get(u)
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == 200, resp.Status
	})
}

// promEventually polls cond every 250ms until it holds, or fails the test
// with cond's last explanation.
func promEventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s: %s", timeout, what, why)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// promQuery runs an instant query that must return at most one series, and
// returns its value and whether there was one.
func promQuery(t *testing.T, addr, q string) (float64, bool) {
	t.Helper()
	body := promGet(t, "http://"+addr+"/api/v1/query?query="+url.QueryEscape(q))
	var r struct {
		Status string
		Data   struct {
			Result []struct {
				Value [2]any
			}
		}
	}
	if err := json.Unmarshal([]byte(body), &r); err != nil || r.Status != "success" {
		t.Fatalf("query %s: %v\n%s", q, err, body)
	}
	switch len(r.Data.Result) {
	case 0:
		return 0, false
	case 1:
		s, _ := r.Data.Result[0].Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatalf("query %s: value %q", q, s)
		}
		return v, true
	}
	t.Fatalf("query %s: %d series, want at most 1\n%s", q, len(r.Data.Result), body)
	return 0, false
}

type promAlert struct {
	Labels      map[string]string
	Annotations map[string]string
	Status      struct{ State string }
}

func (a promAlert) String() string {
	return fmt.Sprintf("%s%v(%s)", a.Labels["alertname"], a.Labels, a.Status.State)
}

// promAlerts returns the alerts Alertmanager holds (GET /api/v2/alerts).
func promAlerts(t *testing.T, addr string) []promAlert {
	t.Helper()
	var alerts []promAlert
	body := promGet(t, "http://"+addr+"/api/v2/alerts")
	if err := json.NewDecoder(bytes.NewReader([]byte(body))).Decode(&alerts); err != nil {
		t.Fatalf("decoding /api/v2/alerts: %v\n%s", err, body)
	}
	return alerts
}

package e2e

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/porteiro/porteiro/internal/testenv"
)

// These tests run the real porteiro binary as a daemon against real
// servers on loopback: mailpit for email, Alertmanager for API v2 alerts.
// The policy ignores every port but one, chosen free beforehand, so that
// listeners other tests open meanwhile cannot cause or hide a finding.

// watchEnv is one test's directory, daemon config and policy.
type watchEnv struct {
	t        *testing.T
	dir      string
	bin      string // porteiro
	daemon   string // porteirod
	port     int    // the one port under policy
	smtpPort int
	conf     string
	stateDir string
	httpAddr string
	grace    string
}

func newWatchEnv(t *testing.T) *watchEnv {
	t.Helper()
	w := &watchEnv{t: t, dir: t.TempDir(), bin: testenv.Binary(t), daemon: testenv.DaemonBinary(t), port: testenv.FreePort(t), grace: "2s"}
	w.stateDir = filepath.Join(w.dir, "state")
	w.httpAddr = testenv.Addr(t)
	w.write("policy.yaml", fmt.Sprintf(`version: 1
default: deny
ignore:
  - name: every-other-port
    reason: only port %[1]d is under test
    netns: "*"
    port: [1-%[2]d, %[3]d-65535]
`, w.port, w.port-1, w.port+1))
	return w
}

func (w *watchEnv) write(name, content string) string {
	w.t.Helper()
	p := filepath.Join(w.dir, name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		w.t.Fatal(err)
	}
	return p
}

// config writes the daemon config with the given channels section.
func (w *watchEnv) config(extra, channels string) {
	w.conf = w.write("porteiro.yaml", fmt.Sprintf(`interval: 300ms
grace: %s
burst: 1s
policy: %s
state_dir: %s
socket: %s
http:
  listen: %s
retry:
  initial: 200ms
  max: 1s
shutdown_timeout: 3s
%s
channels:
%s`, w.grace, filepath.Join(w.dir, "policy.yaml"), w.stateDir, w.socket(), w.httpAddr, extra, channels))
}

// socket is the daemon's local API socket.
func (w *watchEnv) socket() string { return filepath.Join(w.dir, "porteiro.sock") }

// emailChannel is a plain SMTP channel to mailpit on smtpPort.
func (w *watchEnv) emailChannel(filter string) string {
	w.smtpPort = testenv.FreePort(w.t)
	return fmt.Sprintf(`  email:
    - name: ops-mail
      host: 127.0.0.1
      port: %d
      tls: none
      from: porteiro@example.com
      to: [ops@example.com]
      timeout: 2s
      filter: %s
`, w.smtpPort, filter)
}

// watchProc is a running daemon.
type watchProc struct {
	cmd  *exec.Cmd
	log  string
	done chan struct{}
	err  error
}

// start runs `porteirod` and waits for its first scan (/healthz).
func (w *watchEnv) start() *watchProc {
	w.t.Helper()
	logf, err := os.CreateTemp(w.dir, "watch-*.log")
	if err != nil {
		w.t.Fatal(err)
	}
	cmd := exec.Command(w.daemon, "-c", w.conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	p := &watchProc{cmd: cmd, log: logf.Name(), done: make(chan struct{})}
	go func() { p.err = cmd.Wait(); logf.Close(); close(p.done) }()
	w.t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
		if w.t.Failed() {
			b, _ := os.ReadFile(p.log)
			w.t.Logf("daemon log (%s):\n%s", p.log, b)
		}
	})
	watchEventually(w.t, 30*time.Second, "the daemon's first scan", func() (bool, string) {
		select {
		case <-p.done:
			b, _ := os.ReadFile(p.log)
			w.t.Fatalf("porteirod exited: %v\n%s", p.err, b)
		default:
		}
		code, body := watchGet("http://" + w.httpAddr + "/healthz")
		return code == 200, fmt.Sprintf("healthz %d %s", code, body)
	})
	return p
}

func (p *watchProc) logText() string {
	b, _ := os.ReadFile(p.log)
	return string(b)
}

// kill9 kills the daemon without warning, as a crash or the OOM killer would.
func (p *watchProc) kill9(t *testing.T) {
	t.Helper()
	if err := syscall.Kill(p.cmd.Process.Pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
}

// signalAndWait sends sig and returns the exit status.
func (p *watchProc) signalAndWait(t *testing.T, sig syscall.Signal, timeout time.Duration) (int, time.Duration) {
	t.Helper()
	t0 := time.Now()
	if err := syscall.Kill(p.cmd.Process.Pid, sig); err != nil {
		t.Fatal(err)
	}
	select {
	case <-p.done:
	case <-time.After(timeout):
		t.Fatalf("porteirod did not exit within %v of %v", timeout, sig)
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode(), time.Since(t0)
	}
	return 0, time.Since(t0)
}

func watchGet(u string) (int, string) {
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(u)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func watchEventually(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, s := cond()
		if ok {
			return
		}
		last = s
		time.Sleep(150 * time.Millisecond)
	}
	t.Fatalf("timed out after %v waiting for %s; last: %s", timeout, what, last)
}

// watchEvent is one event of `porteiro events -o json`.
type watchEvent struct {
	ID       int64  `json:"id"`
	UID      string `json:"uid"`
	Kind     string `json:"kind"`
	Severity string `json:"severity"`
	Listener string `json:"listener"`
	Port     int    `json:"port"`
	PID      int    `json:"pid"`
	Summary  string `json:"summary"`
	Payload  struct {
		Socket *struct {
			Processes []struct {
				PID     int      `json:"pid"`
				Name    string   `json:"name"`
				Cmdline []string `json:"cmdline"`
			} `json:"processes"`
		} `json:"socket"`
		Finding *struct {
			Kind string `json:"kind"`
			Key  string `json:"key"`
		} `json:"finding"`
	} `json:"payload"`
}

// events runs `porteirod events` on the state directory for our port: it
// reads the database, whether or not the daemon runs.
func (w *watchEnv) events(args ...string) ([]watchEvent, int) {
	w.t.Helper()
	all := append([]string{"events", "--state-dir", w.stateDir, "--port", strconv.Itoa(w.port), "-o", "json"}, args...)
	return w.runEvents(w.daemon, all)
}

// clientEvents runs `porteiro events`, which asks the running daemon
// through its socket (found from the configuration).
func (w *watchEnv) clientEvents(args ...string) ([]watchEvent, int) {
	w.t.Helper()
	all := append([]string{"events", "-c", w.conf, "--port", strconv.Itoa(w.port), "-o", "json"}, args...)
	return w.runEvents(w.bin, all)
}

func (w *watchEnv) runEvents(bin string, all []string) ([]watchEvent, int) {
	w.t.Helper()
	cmd := exec.Command(bin, all...)
	var out, errb strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		w.t.Fatal(err)
	}
	var doc struct {
		Events []watchEvent `json:"events"`
	}
	if code != 2 {
		if err := json.Unmarshal([]byte(out.String()), &doc); err != nil {
			w.t.Fatalf("porteiro %v: %v\n%s\n%s", all, err, out.String(), errb.String())
		}
	}
	// The test's listeners are on 127.0.0.1. Other tests running at the
	// same time may open the same port elsewhere (an audit's bind probe
	// takes every free wildcard port for a moment): those are theirs.
	mine := doc.Events[:0]
	for _, e := range doc.Events {
		if e.Listener == "" || strings.Contains(e.Listener, " 127.0.0.1:"+strconv.Itoa(w.port)) {
			mine = append(mine, e)
		}
	}
	return mine, code
}

func eventKinds(evs []watchEvent) string {
	var k []string
	for _, e := range evs {
		k = append(k, e.Kind)
	}
	return strings.Join(k, " ")
}

// --- mailpit ---

// startMailpit runs mailpit with its SMTP server on smtpPort.
func (w *watchEnv) startMailpit(extra ...string) *testenv.Mailpit {
	w.t.Helper()
	return testenv.StartMailpit(w.t, w.dir, w.smtpPort, extra...)
}

// metric reads one sample of the daemon's /metrics, -1 when absent.
func (w *watchEnv) metric(series string) float64 {
	w.t.Helper()
	code, body := watchGet("http://" + w.httpAddr + "/metrics")
	if code != 200 {
		w.t.Fatalf("/metrics: %d", code)
	}
	for _, line := range strings.Split(body, "\n") {
		if strings.HasPrefix(line, series+" ") {
			v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, series)), 64)
			if err == nil {
				return v
			}
		}
	}
	return -1
}

// about keeps the messages that mention port (":4123", not ":41234").
func about(msgs []testenv.MailpitMessage, port int) []testenv.MailpitMessage {
	re := regexp.MustCompile(`:` + strconv.Itoa(port) + `\b`)
	var out []testenv.MailpitMessage
	for _, m := range msgs {
		if re.MatchString(m.Subject) || re.MatchString(m.Text) {
			out = append(out, m)
		}
	}
	return out
}

// listenOn opens the unexpected listener in this test process.
func (w *watchEnv) listenOn() net.Listener {
	w.t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(w.port))
	if err != nil {
		w.t.Fatalf("port %d was taken meanwhile: %v", w.port, err)
	}
	return l
}

// TestWatchEmailOnce: an unexpected listener gives exactly one email, which
// names the host, the port, the process and what to do next.
func TestWatchEmailOnce(t *testing.T) {
	w := newWatchEnv(t)
	w.config("host: e2e-host", w.emailChannel("{kinds: [violation]}"))
	mp := w.startMailpit()
	d := w.start()

	l := w.listenOn()
	defer l.Close()
	opened := time.Now()
	watchEventually(t, 30*time.Second, "the violation email", func() (bool, string) {
		return len(mp.Messages(t)) > 0, ""
	})
	t.Logf("listen() -> email in mailpit: %v", time.Since(opened).Round(10*time.Millisecond))
	// Scans go on; the violation lasts; no second email.
	time.Sleep(3 * time.Second)
	msgs := mp.Messages(t)
	if len(msgs) != 1 {
		t.Fatalf("%d emails, want exactly 1: %+v", len(msgs), msgs)
	}
	m := msgs[0]
	t.Logf("Subject: %s\n%s", m.Subject, m.Text)
	self := filepath.Base(os.Args[0])
	if len(self) > 15 {
		self = self[:15] // comm
	}
	for _, want := range []string{strconv.Itoa(w.port), "e2e-host", "porteiro who", strconv.Itoa(os.Getpid()), self} {
		if !strings.Contains(m.Subject+"\n"+m.Text, want) {
			t.Errorf("the email lacks %q:\nSubject: %s\n%s", want, m.Subject, m.Text)
		}
	}
	// The history has it, with the owner as seen at the time.
	evs, code := w.events("--kind", "violation")
	if code != 0 || len(evs) != 1 {
		t.Fatalf("porteiro events --kind violation: exit %d, %+v", code, evs)
	}
	if evs[0].PID != os.Getpid() || evs[0].Payload.Finding == nil || evs[0].Payload.Finding.Kind != "unexpected" {
		t.Errorf("stored violation = %+v", evs[0])
	}
	if _, code := w.events("--kind", "missing"); code != 1 {
		t.Errorf("porteiro events with no match: exit %d, want 1", code)
	}
	// The same history from the running daemon, through its socket, as
	// porteiro asks for it.
	cevs, code := w.clientEvents("--kind", "violation")
	if code != 0 || len(cevs) != 1 || cevs[0].UID != evs[0].UID {
		t.Errorf("porteiro events through the socket: exit %d, %+v; want the event %s", code, cevs, evs[0].UID)
	}
	if st, err := os.Lstat(w.socket()); err != nil || st.Mode().Type() != os.ModeSocket || st.Mode().Perm() != 0o660 {
		t.Errorf("the local API socket: %v, %v; want a socket with mode 0660", st, err)
	}
	// The JSON API is not served on TCP by default (http.api), and TCP
	// requests that name another host are refused (DNS rebinding).
	code, body := watchGet(fmt.Sprintf("http://%s/api/v1/events?since=1h&port=%d&kind=violation", w.httpAddr, w.port))
	if code != 404 || !strings.Contains(body, w.socket()) {
		t.Errorf("/api/v1/events on TCP = %d %s; want 404 naming the socket", code, body)
	}
	req, _ := http.NewRequest("GET", "http://"+w.httpAddr+"/metrics", nil)
	req.Host = "attacker.example:9466"
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusMisdirectedRequest {
		t.Errorf("a request with Host attacker.example: %v %v; want 421", resp, err)
	} else {
		resp.Body.Close()
	}
	if code, _ := watchGet("http://" + w.httpAddr + "/metrics"); code != 200 {
		t.Errorf("/metrics by address: %d", code)
	}
	if st, el := d.signalAndWait(t, syscall.SIGTERM, 10*time.Second); st != 0 {
		t.Errorf("SIGTERM: exit %d after %v, want 0", st, el)
	}
	// Stopped, the daemon cannot answer: porteiro says so and names the
	// way to read the history offline.
	out, err := exec.Command(w.bin, "events", "-c", w.conf).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "porteirod is not running") || !strings.Contains(string(out), "porteirod events") {
		t.Errorf("porteiro events with the daemon stopped: %v\n%s", err, out)
	}
	if _, code := w.events("--kind", "violation"); code != 0 {
		t.Errorf("porteirod events with the daemon stopped: exit %d", code)
	}
}

// TestWatchDurability: with SMTP down, a violation happens; the daemon is
// killed with SIGKILL and started again; then SMTP comes up. The email
// arrives, once.
func TestWatchDurability(t *testing.T) {
	w := newWatchEnv(t)
	w.config("", w.emailChannel("{kinds: [violation]}"))
	d := w.start()

	l := w.listenOn()
	defer l.Close()
	watchEventually(t, 30*time.Second, "the stored violation", func() (bool, string) {
		evs, _ := w.events("--kind", "violation")
		return len(evs) == 1, eventKinds(evs)
	})
	// Let it try and fail at least once (SMTP refused).
	watchEventually(t, 30*time.Second, "a failed delivery attempt", func() (bool, string) {
		return strings.Contains(d.logText(), "will retry"), ""
	})
	d.kill9(t)

	w.start()
	mp := w.startMailpit()
	watchEventually(t, 30*time.Second, "the email after the crash", func() (bool, string) {
		return len(mp.Messages(t)) > 0, ""
	})
	time.Sleep(3 * time.Second)
	if msgs := mp.Messages(t); len(msgs) != 1 || len(about(msgs, w.port)) != 1 {
		t.Fatalf("%d emails after kill -9 and restart, want exactly 1: %+v", len(msgs), msgs)
	}
	// The restarted daemon knew the violation: it was not recorded twice.
	if evs, _ := w.events("--kind", "violation"); len(evs) != 1 {
		t.Fatalf("violation recorded %d times", len(evs))
	}
}

// TestWatchRestartSuppression: a listener that closes and reopens within
// the grace period gives a restarted note and no alert.
func TestWatchRestartSuppression(t *testing.T) {
	w := newWatchEnv(t)
	// A generous grace, so that a slow scan on a busy machine cannot
	// stretch the 700ms gap beyond it.
	w.grace = "5s"
	w.config("", w.emailChannel("{min_severity: warning}"))
	mp := w.startMailpit()
	w.start()

	l := w.listenOn()
	watchEventually(t, 30*time.Second, "the violation email", func() (bool, string) {
		return len(about(mp.Messages(t), w.port)) > 0, ""
	})
	time.Sleep(1500 * time.Millisecond) // the burst window, for late batches
	before := len(about(mp.Messages(t), w.port))

	// A restart: closed, and back 700ms later (grace is 5s).
	l.Close()
	time.Sleep(700 * time.Millisecond)
	l2 := w.listenOn()
	defer l2.Close()
	watchEventually(t, 30*time.Second, "the restarted note", func() (bool, string) {
		evs, _ := w.events()
		return strings.Contains(eventKinds(evs), "restarted"), eventKinds(evs)
	})
	// Well past the grace period and the burst window.
	time.Sleep(6 * time.Second)
	evs, _ := w.events()
	if k := eventKinds(evs); k != "opened violation restarted" {
		t.Fatalf("events for port %d = %q, want opened, violation, restarted (no closed, no resolved)", w.port, k)
	}
	if after := len(about(mp.Messages(t), w.port)); after != before {
		t.Fatalf("the restart sent %d more email(s) about port %d", after-before, w.port)
	}
}

// startAlertmanager runs Alertmanager on loopback, clustering off, and
// returns its address.
func (w *watchEnv) startAlertmanager() string {
	w.t.Helper()
	return testenv.StartAlertmanager(w.t, w.dir)
}

type amAlert struct {
	Labels map[string]string `json:"labels"`
	EndsAt time.Time         `json:"endsAt"`
	Status struct {
		State string `json:"state"`
	} `json:"status"`
}

// amAlerts returns Alertmanager's alerts about our port from e2e-host.
func (w *watchEnv) amAlerts(amAddr string) []amAlert {
	w.t.Helper()
	code, body := watchGet("http://" + amAddr + "/api/v2/alerts")
	if code != 200 {
		w.t.Fatalf("GET /api/v2/alerts: %d %s", code, body)
	}
	var all, out []amAlert
	if err := json.Unmarshal([]byte(body), &all); err != nil {
		w.t.Fatal(err)
	}
	for _, a := range all {
		if a.Labels["port"] == strconv.Itoa(w.port) && a.Labels["instance"] == "e2e-host" {
			out = append(out, a)
		}
	}
	return out
}

// TestWatchAlertmanager: the violation is an alert in Alertmanager while it
// lasts (re-sent so that it stays), and is resolved when the listener
// closes.
func TestWatchAlertmanager(t *testing.T) {
	w := newWatchEnv(t)
	amAddr := w.startAlertmanager()

	w.config("host: e2e-host", fmt.Sprintf(`  alertmanager:
    - url: http://%s
      resend_interval: 1s
      filter: {kinds: [violation, resolved]}
`, amAddr))
	w.start()

	ours := func() []amAlert { return w.amAlerts(amAddr) }
	if a := ours(); len(a) != 0 {
		t.Fatalf("alerts before the violation: %+v", a)
	}
	l := w.listenOn()
	watchEventually(t, 30*time.Second, "the alert in Alertmanager", func() (bool, string) {
		a := ours()
		return len(a) == 1 && a[0].Status.State == "active", fmt.Sprintf("%+v", a)
	})
	a := ours()[0]
	if a.Labels["alertname"] != "PorteiroUnexpectedListener" || a.Labels["pid"] != "" {
		t.Errorf("labels = %v", a.Labels)
	}
	// While it lasts it stays firing: the daemon re-sends it.
	time.Sleep(4 * time.Second)
	if a := ours(); len(a) != 1 || a[0].Status.State != "active" || !a[0].EndsAt.After(time.Now()) {
		t.Fatalf("the alert did not stay firing: %+v", a)
	}
	// The listener closes: resolved after the grace period.
	l.Close()
	closed := time.Now()
	watchEventually(t, 30*time.Second, "the alert resolved", func() (bool, string) {
		for _, a := range ours() {
			if a.EndsAt.After(time.Now()) {
				return false, fmt.Sprintf("%+v", a)
			}
		}
		return true, ""
	})
	t.Logf("listener closed -> alert resolved in Alertmanager: %v", time.Since(closed).Round(10*time.Millisecond))
	evs, _ := w.events()
	if k := eventKinds(evs); k != "opened violation closed resolved" {
		t.Errorf("events = %q", k)
	}
}

// TestWatchSignalsAndConfig: SIGHUP with a broken file keeps the running
// config; SIGHUP with a good one applies it; SIGTERM exits 0; `config
// validate` reports file:line:column and exit 2.
func TestWatchSignalsAndConfig(t *testing.T) {
	w := newWatchEnv(t)
	w.config("", "  {}\n")
	good, _ := os.ReadFile(w.conf)
	out, err := exec.Command(w.daemon, "validate", "-c", w.conf).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "ok") {
		t.Fatalf("porteirod validate on a good file: %v\n%s", err, out)
	}
	d := w.start()

	bad := strings.Replace(string(good), "grace: 2s", "grace: 2s\ngarce: 3s", 1)
	if err := os.WriteFile(w.conf, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(w.daemon, "validate", "-c", w.conf)
	out, err = cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), w.conf+":3:1: unknown field \"garce\"") {
		t.Fatalf("porteirod validate on a bad file: %v\n%s", err, out)
	}
	if err := syscall.Kill(d.cmd.Process.Pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	watchEventually(t, 10*time.Second, "the rejected reload in the log", func() (bool, string) {
		return strings.Contains(d.logText(), "reload rejected"), ""
	})
	if code, body := watchGet("http://" + w.httpAddr + "/healthz"); code != 200 {
		t.Fatalf("after a bad reload: healthz %d %s", code, body)
	}
	if err := os.WriteFile(w.conf, []byte(strings.Replace(string(good), "interval: 300ms", "interval: 400ms", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(d.cmd.Process.Pid, syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	watchEventually(t, 10*time.Second, "the reload in the log", func() (bool, string) {
		return strings.Contains(d.logText(), "configuration reloaded") && strings.Contains(d.logText(), "interval=400ms"), ""
	})
	st, el := d.signalAndWait(t, syscall.SIGTERM, 10*time.Second)
	if st != 0 {
		t.Fatalf("SIGTERM: exit %d", st)
	}
	t.Logf("SIGTERM -> exit 0 in %v", el.Round(time.Millisecond))
}

// TestWatchSystemdNotify: under systemd (Type=notify, WatchdogSec) the
// daemon says READY=1 after its first scan, WATCHDOG=1 at every scan and
// STOPPING=1 on SIGTERM. The test plays systemd's notify socket.
func TestWatchSystemdNotify(t *testing.T) {
	w := newWatchEnv(t)
	w.config("", "  {}\n")
	sockPath := filepath.Join(w.dir, "notify.sock")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sockPath, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	got := make(chan string, 100)
	go func() {
		buf := make([]byte, 4096)
		for {
			n, _, err := conn.ReadFromUnix(buf)
			if err != nil {
				close(got)
				return
			}
			got <- string(buf[:n])
		}
	}()
	cmd := exec.Command(w.daemon, "-c", w.conf)
	cmd.Env = append(os.Environ(), "NOTIFY_SOCKET="+sockPath, "WATCHDOG_USEC=5000000")
	var logb strings.Builder
	cmd.Stdout, cmd.Stderr = &logb, &logb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer func() {
		_ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL)
	}()
	want := []string{"READY=1", "WATCHDOG=1", "WATCHDOG=1"}
	var seen []string
	deadline := time.After(20 * time.Second)
	for len(want) > 0 {
		select {
		case m := <-got:
			seen = append(seen, m)
			if m == want[0] {
				want = want[1:]
			}
		case <-deadline:
			t.Fatalf("notifications so far %q, still waiting for %q\n%s", seen, want, logb.String())
		}
	}
	if err := syscall.Kill(cmd.Process.Pid, syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, logb.String())
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no exit after SIGTERM")
	}
	for {
		select {
		case m := <-got:
			if m == "STOPPING=1" {
				return
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("no STOPPING=1 after SIGTERM")
		}
	}
}

// TestWatchTransientAndPermanentSMTP: a 451 from the server is retried
// until it clears, and the email then arrives once; a 550 is not retried.
func TestWatchTransientAndPermanentSMTP(t *testing.T) {
	w := newWatchEnv(t)
	w.config("", w.emailChannel("{kinds: [violation, resolved]}"))
	mp := w.startMailpit("--enable-chaos")
	mp.Chaos(t, "Sender", 451, 100)
	d := w.start()

	l := w.listenOn()
	retry := `porteiro_notifications_total{channel="ops-mail",result="retry"}`
	sent := `porteiro_notifications_total{channel="ops-mail",result="sent"}`
	failed := `porteiro_notifications_total{channel="ops-mail",result="failed"}`
	watchEventually(t, 30*time.Second, "two retried attempts", func() (bool, string) {
		v := w.metric(retry)
		return v >= 2, fmt.Sprintf("%s = %v", retry, v)
	})
	if n := len(mp.Messages(t)); n != 0 {
		t.Fatalf("%d emails while the server answers 451", n)
	}
	mp.Chaos(t, "Sender", 451, 0)
	watchEventually(t, 30*time.Second, "the email after the 451 cleared", func() (bool, string) {
		return len(mp.Messages(t)) > 0, ""
	})
	time.Sleep(2 * time.Second)
	if n := len(mp.Messages(t)); n != 1 {
		t.Fatalf("%d emails, want exactly 1", n)
	}
	if v := w.metric(sent); v != 1 {
		t.Errorf("%s = %v, want 1", sent, v)
	}

	// Now the server refuses for good: the resolution fails, once.
	mp.Chaos(t, "Recipient", 550, 100)
	l.Close()
	watchEventually(t, 30*time.Second, "the permanent failure", func() (bool, string) {
		v := w.metric(failed)
		return v == 1, fmt.Sprintf("%s = %v", failed, v)
	})
	before := w.metric(retry)
	time.Sleep(2 * time.Second)
	if v := w.metric(failed); v != 1 {
		t.Errorf("%s = %v after waiting, want 1 (no retries)", failed, v)
	}
	if v := w.metric(retry); v != before {
		t.Errorf("a permanent failure was retried (%s went from %v to %v)", retry, before, v)
	}
	if !strings.Contains(d.logText(), "failed permanently") {
		t.Errorf("no error logged for the permanent failure")
	}
	if v := w.metric("porteiro_outbox_pending"); v != 0 {
		t.Errorf("porteiro_outbox_pending = %v, want 0", v)
	}
}

// TestWatchCheckNotify: `porteirod once` from cron sends a finding
// once, however often it runs, and sends its resolution once.
func TestWatchCheckNotify(t *testing.T) {
	w := newWatchEnv(t)
	w.config("", w.emailChannel("{kinds: [violation, resolved]}"))
	mp := w.startMailpit()
	check := func() (int, string) {
		cmd := exec.Command(w.daemon, "once", "-c", w.conf)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), string(out)
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0, string(out)
	}
	if code, out := check(); code != 0 {
		t.Fatalf("clean check: exit %d\n%s", code, out)
	}
	l := w.listenOn()
	for i := 0; i < 3; i++ {
		if code, out := check(); code != 1 {
			t.Fatalf("check with a finding: exit %d, want 1\n%s", code, out)
		}
	}
	if msgs := mp.Messages(t); len(msgs) != 1 || len(about(msgs, w.port)) != 1 {
		t.Fatalf("three runs with one finding sent %d emails, want 1", len(msgs))
	}
	l.Close()
	for i := 0; i < 2; i++ {
		if code, out := check(); code != 0 {
			t.Fatalf("check after the listener closed: exit %d\n%s", code, out)
		}
	}
	msgs := mp.Messages(t)
	if len(msgs) != 2 {
		t.Fatalf("%d emails, want 2 (the finding, then its resolution)", len(msgs))
	}
	evs, _ := w.events()
	if k := eventKinds(evs); k != "violation resolved" {
		t.Errorf("events = %q", k)
	}
}

// TestWatchCheckNotifyAlertmanager: from cron, a finding that lasts is
// re-sent to Alertmanager at every run, so it stays firing between runs.
func TestWatchCheckNotifyAlertmanager(t *testing.T) {
	w := newWatchEnv(t)
	amAddr := w.startAlertmanager()
	w.config("host: e2e-host", fmt.Sprintf(`  alertmanager:
    - url: http://%s
      resend_interval: 2s
      filter: {kinds: [violation, resolved]}
`, amAddr))
	check := func() {
		t.Helper()
		out, err := exec.Command(w.daemon, "once", "-c", w.conf).CombinedOutput()
		var ee *exec.ExitError
		if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) {
			t.Fatalf("once: %v\n%s", err, out)
		}
	}
	l := w.listenOn()
	defer l.Close()
	check()
	var first time.Time
	watchEventually(t, 20*time.Second, "the alert in Alertmanager", func() (bool, string) {
		a := w.amAlerts(amAddr)
		if len(a) == 1 && a[0].Status.State == "active" {
			first = a[0].EndsAt
			return true, ""
		}
		return false, fmt.Sprintf("%+v", a)
	})
	time.Sleep(2 * time.Second)
	check()
	watchEventually(t, 20*time.Second, "endsAt moved forward by the second run", func() (bool, string) {
		a := w.amAlerts(amAddr)
		return len(a) == 1 && a[0].EndsAt.After(first.Add(time.Second)), fmt.Sprintf("%+v, first endsAt %v", a, first)
	})
}

// TestWatchTwoDaemons: a second porteirod on the same state directory
// exits 2 and names the pid of the first, instead of recording and
// alerting everything twice.
func TestWatchTwoDaemons(t *testing.T) {
	w := newWatchEnv(t)
	w.config("", "  {}\n")
	d := w.start()
	cmd := exec.Command(w.daemon, "-c", w.conf, "--http", "off")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	want := fmt.Sprintf("pid %d", d.cmd.Process.Pid)
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), want) {
		t.Fatalf("second daemon: %v\n%s\nwant exit 2 naming %q", err, out, want)
	}
	if st, el := d.signalAndWait(t, syscall.SIGTERM, 10*time.Second); st != 0 {
		t.Errorf("SIGTERM: exit %d after %v", st, el)
	}
}

// TestWatchKernelEvents: with the kernel's listener events, a TCP listener
// that lives 20 ms and a UDP socket bound for 20 ms are each recorded as
// opened, a violation, closed and resolved, with the pid that held them,
// although the daemon scans only every 30 s. Without CAP_BPF the same
// daemon polls and says so.
func TestWatchKernelEvents(t *testing.T) {
	testenv.RequireRoot(t)
	w := newWatchEnv(t)
	w.grace = "0s"
	w.config("", "  {}\n")
	b, _ := os.ReadFile(w.conf)
	os.WriteFile(w.conf, []byte(strings.Replace(string(b), "interval: 300ms", "interval: 30s", 1)), 0o600)
	d := w.start()
	_, body := watchGet("http://" + w.httpAddr + "/healthz")
	if !strings.Contains(body, `"event_source": "ebpf"`) {
		t.Fatalf("/healthz = %s; want event_source ebpf (the kernel has the hooks here)", body)
	}
	if !strings.Contains(d.logText(), "listener events from the kernel (eBPF)") {
		t.Errorf("the log does not say that events are in use:\n%s", d.logText())
	}
	l := w.listenOn()
	time.Sleep(20 * time.Millisecond)
	l.Close()
	u, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(w.port))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	u.Close()
	// Per listener, in order; the two listeners' events may interleave.
	want := "opened violation closed resolved"
	watchEventually(t, 10*time.Second, "both short-lived listeners recorded", func() (bool, string) {
		evs, _ := w.events("--since", "1h")
		by := map[string][]watchEvent{}
		for _, e := range evs {
			by[e.Listener] = append(by[e.Listener], e)
		}
		tcp, udp := by["tcp 127.0.0.1:"+strconv.Itoa(w.port)], by["udp 127.0.0.1:"+strconv.Itoa(w.port)]
		return eventKinds(tcp) == want && eventKinds(udp) == want, eventKinds(evs)
	})
	evs, _ := w.events("--since", "1h")
	for _, e := range evs {
		if (e.Kind == "opened" || e.Kind == "violation") && e.PID != os.Getpid() {
			t.Errorf("%s event with pid %d, want %d (the test, which listened)", e.Kind, e.PID, os.Getpid())
		}
	}

	// porteiro trace streams the same events from the daemon's socket.
	tr := exec.Command(w.bin, "trace", "-c", w.conf, "-o", "ndjson", "--port", strconv.Itoa(w.port))
	trOut, _ := tr.StdoutPipe()
	var trErr testenv.Buffer
	tr.Stderr = &trErr
	if err := tr.Start(); err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(trOut)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	// Listen until the stream has started (the first listeners may come
	// before the trace is connected), then want an opened line followed
	// by its closed line.
	var opened string
	deadline := time.Now().Add(10 * time.Second)
	for done := false; !done; {
		if time.Now().After(deadline) {
			t.Fatalf("porteiro trace: no opened and closed pair; stderr %s", trErr.String())
		}
		l := w.listenOn()
		time.Sleep(50 * time.Millisecond)
		l.Close()
		for waiting := true; waiting; {
			select {
			case ln, ok := <-lines:
				if !ok {
					t.Fatalf("porteiro trace ended: %s", trErr.String())
				}
				if !strings.Contains(ln, fmt.Sprintf(`"port":%d`, w.port)) {
					t.Errorf("trace line for another port: %s", ln)
				}
				switch {
				case strings.Contains(ln, `"kind":"opened"`):
					opened = ln
				case strings.Contains(ln, `"kind":"closed"`) && opened != "":
					done, waiting = true, false
				}
			case <-time.After(500 * time.Millisecond):
				waiting = false
			}
		}
	}
	if !strings.Contains(opened, fmt.Sprintf(`"pid":%d`, os.Getpid())) {
		t.Errorf("opened line %s lacks pid %d", opened, os.Getpid())
	}
	tr.Process.Signal(syscall.SIGINT)
	if err := tr.Wait(); err != nil {
		t.Errorf("porteiro trace after SIGINT: %v %s; want exit 0", err, trErr.String())
	}

	if st, _ := d.signalAndWait(t, syscall.SIGTERM, 10*time.Second); st != 0 {
		t.Errorf("SIGTERM: exit %d", st)
	}
	// With the daemon stopped, trace says so and names porteirod trace.
	out, err := exec.Command(w.bin, "trace", "-c", w.conf).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), "porteirod trace") {
		t.Errorf("porteiro trace without the daemon: %v %s", err, out)
	}

	// Without CAP_BPF (nor CAP_SYS_ADMIN): polling, said in the log and in
	// /healthz.
	setpriv := testenv.RequireCommand(t, "setpriv")
	// CAP_SYS_ADMIN stands in for CAP_BPF in the kernel: drop both.
	cmd := exec.Command(setpriv, "--inh-caps=-bpf,-perfmon,-sys_admin", "--bounding-set=-bpf,-perfmon,-sys_admin", w.daemon, "-c", w.conf)
	var logb testenv.Buffer
	cmd.Stdout, cmd.Stderr = &logb, &logb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	watchEventually(t, 20*time.Second, "the daemon without CAP_BPF to answer", func() (bool, string) {
		code, body := watchGet("http://" + w.httpAddr + "/healthz")
		return code == 200 && strings.Contains(body, `"event_source": "poll"`), body
	})
	if !strings.Contains(logb.String(), "polling every interval") {
		t.Errorf("the log does not say it polls:\n%s", logb.String())
	}
}

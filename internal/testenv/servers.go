package testenv

import (
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// StartAlertmanager starts a real Alertmanager on a free loopback port,
// with its storage and log in dir and one receiver that drops everything,
// grouping within a second. It returns "127.0.0.1:PORT" once /-/ready
// answers, and kills the process (by its pid) when the test ends.
func StartAlertmanager(t testing.TB, dir string) string {
	t.Helper()
	name := "prometheus-alertmanager" // Debian's name
	if _, err := exec.LookPath(name); err != nil {
		if _, err := exec.LookPath("alertmanager"); err == nil {
			name = "alertmanager"
		}
	}
	bin := RequireCommand(t, name)
	cfg := filepath.Join(dir, "alertmanager.yml")
	conf := "route:\n  receiver: blackhole\n  group_wait: 1s\n  group_interval: 1s\nreceivers:\n  - name: blackhole\n"
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := Addr(t)
	logf, err := os.Create(filepath.Join(dir, "alertmanager.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.path="+filepath.Join(dir, "am-data"),
		"--web.listen-address="+addr, "--cluster.listen-address=", "--log.level=warn")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting alertmanager: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	t.Cleanup(func() { _ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL); <-done })
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return addr
			}
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("alertmanager did not come up: %v\n%s", err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// MailpitChaos sets a fault trigger of a mailpit started with
// --enable-chaos: stage is Sender, Recipient or Authentication, code the SMTP
// error to answer, probability a percentage (0 clears it).
func MailpitChaos(t testing.TB, api, stage string, code, probability int) {
	t.Helper()
	body := fmt.Sprintf(`{%q:{"ErrorCode":%d,"Probability":%d}}`, stage, code, probability)
	req, _ := http.NewRequest(http.MethodPut, api+"/api/v1/chaos", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("setting mailpit chaos: %s: %s", resp.Status, b)
	}
}

// Mailpit is a real SMTP server for one test, read through its HTTP API.
type Mailpit struct {
	SMTPPort int
	api      string
}

// StartMailpit starts mailpit with its SMTP server on 127.0.0.1:smtpPort and
// its API on a free loopback port, its database and log in dir, and the
// extra arguments (--enable-chaos, TLS and auth options) appended. The port
// is the caller's so that a daemon can be configured, and even run, before
// its SMTP server exists. It returns once both the API and SMTP answer, and
// kills the process (by its pid) when the test ends.
func StartMailpit(t testing.TB, dir string, smtpPort int, extraArgs ...string) *Mailpit {
	t.Helper()
	bin := RequireCommand(t, "mailpit")
	addr := Addr(t)
	smtpAddr := "127.0.0.1:" + strconv.Itoa(smtpPort)
	logf, err := os.Create(filepath.Join(dir, "mailpit.log"))
	if err != nil {
		t.Fatal(err)
	}
	// No reverse DNS of loopback clients and no release check, since a
	// machine without DNS would wait on them; errors only in the log, which
	// is read when mailpit does not come up.
	args := append([]string{"--smtp", smtpAddr, "--listen", addr,
		"--database", filepath.Join(dir, "mailpit.db"),
		"--disable-version-check", "--smtp-disable-rdns", "--quiet"}, extraArgs...)
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("starting mailpit: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	t.Cleanup(func() { _ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL); <-done })
	m := &Mailpit{SMTPPort: smtpPort, api: "http://" + addr}
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := m.ready(smtpAddr)
		if err == nil {
			return m
		}
		select {
		case <-done:
			// An SMTP port taken meanwhile ends mailpit at once: say so now
			// rather than at the deadline.
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("mailpit exited: %v\n%s", cmd.ProcessState, log)
		default:
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("mailpit did not come up: %v\n%s", err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// ready says why mailpit cannot take a message and show it yet, if so.
func (m *Mailpit) ready(smtpAddr string) error {
	resp, err := mailpitClient.Get(m.api + "/api/v1/messages")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		return fmt.Errorf("api: %s", resp.Status)
	}
	c, err := net.DialTimeout("tcp", smtpAddr, time.Second)
	if err != nil {
		return err
	}
	return c.Close()
}

// mailpitClient bounds every API call, so that a stuck mailpit fails the
// test instead of hanging it.
var mailpitClient = &http.Client{Timeout: 10 * time.Second}

// API returns the base URL of mailpit's HTTP API.
func (m *Mailpit) API() string { return m.api }

// MailpitAddress is one recipient of a message.
type MailpitAddress struct {
	Name    string
	Address string
}

// MailpitMessage is one message as mailpit stored it: envelope, text body
// and every header.
type MailpitMessage struct {
	ID        string
	MessageID string
	Subject   string
	To        []MailpitAddress
	Text      string
	Headers   map[string][]string `json:"-"`
}

// Messages returns every message mailpit holds, newest first, each with its
// text body and headers.
func (m *Mailpit) Messages(t testing.TB) []MailpitMessage {
	t.Helper()
	var list struct {
		Messages []struct{ ID string }
	}
	m.getJSON(t, "/api/v1/messages?limit=500", &list)
	var out []MailpitMessage
	for _, s := range list.Messages {
		out = append(out, m.Message(t, s.ID))
	}
	return out
}

// Message returns one message with its text body and headers.
func (m *Mailpit) Message(t testing.TB, id string) MailpitMessage {
	t.Helper()
	var msg MailpitMessage
	m.getJSON(t, "/api/v1/message/"+id, &msg)
	m.getJSON(t, "/api/v1/message/"+id+"/headers", &msg.Headers)
	return msg
}

// Chaos sets a fault trigger of a mailpit started with --enable-chaos; see
// MailpitChaos.
func (m *Mailpit) Chaos(t testing.TB, stage string, code, probability int) {
	t.Helper()
	MailpitChaos(t, m.api, stage, code, probability)
}

func (m *Mailpit) getJSON(t testing.TB, path string, v any) {
	t.Helper()
	resp, err := mailpitClient.Get(m.api + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("mailpit GET %s: %s: %s", path, resp.Status, b)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("mailpit GET %s: %v", path, err)
	}
}

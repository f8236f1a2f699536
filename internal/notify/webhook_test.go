package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

func newWebhook(t *testing.T, c WebhookConfig) Sink {
	t.Helper()
	sinks, err := Build(ChannelsConfig{Webhook: []WebhookConfig{c}}, "web1")
	if err != nil {
		t.Fatal(err)
	}
	return sinks[0]
}

func TestWebhookSignedBatch(t *testing.T) {
	const secret = "hook-secret"
	t.Setenv("PORTEIRO_TEST_HOOK_SECRET", secret)
	type got struct {
		header http.Header
		body   []byte
	}
	var (
		mu   sync.Mutex
		reqs []got
	)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		reqs = append(reqs, got{r.Header.Clone(), b})
		mu.Unlock()
		if r.Method != http.MethodPost {
			w.WriteHeader(http.StatusMethodNotAllowed)
		}
	}))
	defer srv.Close()

	s := newWebhook(t, WebhookConfig{URL: srv.URL + "/hook", SecretEnv: "PORTEIRO_TEST_HOOK_SECRET", Headers: map[string]string{"X-Team": "ops"}})
	a, b := sampleAlert(t, "ev-1", 4444), sampleAlert(t, "ev-2", 5555)
	b.Host = ""
	if err := s.Send(context.Background(), []Alert{a, b}); err != nil {
		t.Fatal(err)
	}
	if len(reqs) != 1 {
		t.Fatalf("%d requests for one batch, want 1", len(reqs))
	}
	r := reqs[0]
	// Verify the HMAC independently of Sign/VerifySignature.
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(r.body)
	if want := "sha256=" + hex.EncodeToString(m.Sum(nil)); r.header.Get("X-Porteiro-Signature") != want {
		t.Errorf("signature = %q, want %q", r.header.Get("X-Porteiro-Signature"), want)
	}
	if !VerifySignature([]byte(secret), r.body, r.header.Get(SignatureHeader)) {
		t.Error("VerifySignature rejects a good signature")
	}
	if VerifySignature([]byte("other"), r.body, r.header.Get(SignatureHeader)) {
		t.Error("VerifySignature accepts the wrong secret")
	}
	if r.header.Get("X-Team") != "ops" || r.header.Get("Content-Type") != "application/json" {
		t.Errorf("headers = %v", r.header)
	}

	// The schema, read as a receiver would: generic JSON, not our types.
	var p map[string]any
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatal(err)
	}
	if p["version"] != float64(1) || p["host"] != "web1" || p["channel"] != "webhook" || p["batch_id"] != r.header.Get(BatchIDHeader) {
		t.Errorf("envelope = %v", p)
	}
	alerts := p["alerts"].([]any)
	if len(alerts) != 2 {
		t.Fatalf("%d alerts in payload, want 2", len(alerts))
	}
	first := alerts[0].(map[string]any)
	if first["id"] != "ev-1" || first["kind"] != "violation" || first["severity"] != "critical" || first["listener"] != "tcp 0.0.0.0:4444" || first["finding"] != "unexpected" {
		t.Errorf("alert = %v", first)
	}
	proc := first["socket"].(map[string]any)["processes"].([]any)[0].(map[string]any)
	if proc["pid"] != float64(31337) || proc["name"] != "nc" || proc["user"] != "mallory" {
		t.Errorf("process = %v", proc)
	}
	if second := alerts[1].(map[string]any); second["host"] != "web1" {
		t.Errorf("host not filled in: %v", second["host"])
	}

	// A retry of the same batch has the same batch id.
	if err := s.Send(context.Background(), []Alert{a, b}); err != nil {
		t.Fatal(err)
	}
	if reqs[1].header.Get(BatchIDHeader) != reqs[0].header.Get(BatchIDHeader) {
		t.Error("batch id changed between retries")
	}
}

func TestWebhookErrorClasses(t *testing.T) {
	var status int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "nope: "+http.StatusText(status), status)
	}))
	defer srv.Close()
	s := newWebhook(t, WebhookConfig{URL: srv.URL})
	batch := []Alert{sampleAlert(t, "e", 1)}
	for _, c := range []struct {
		status    int
		permanent bool
	}{
		{500, false}, {503, false}, {429, false}, {408, false},
		{400, true}, {401, true}, {404, true}, {302, true},
	} {
		status = c.status
		err := s.Send(context.Background(), batch)
		if err == nil {
			t.Errorf("HTTP %d: no error", c.status)
			continue
		}
		if IsPermanent(err) != c.permanent {
			t.Errorf("HTTP %d: permanent = %v, want %v (%v)", c.status, IsPermanent(err), c.permanent, err)
		}
		if !strings.Contains(err.Error(), "HTTP "+strconv.Itoa(c.status)) {
			t.Errorf("HTTP %d: error %q does not name the status", c.status, err)
		}
	}
}

func TestWebhookTimeoutAndRefusedAreTransient(t *testing.T) {
	release := make(chan struct{})
	slow := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)
	s := newWebhook(t, WebhookConfig{URL: slow.URL, Timeout: 200 * time.Millisecond})
	start := time.Now()
	err := s.Send(context.Background(), []Alert{sampleAlert(t, "e", 1)})
	if err == nil || IsPermanent(err) || !isTimeout(err) {
		t.Errorf("slow server: err = %v, permanent = %v; want a transient timeout", err, IsPermanent(err))
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("timeout took %v", d)
	}

	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens there now
	s = newWebhook(t, WebhookConfig{URL: "http://hook:topsecret@" + addr + "/"})
	err = s.Send(context.Background(), []Alert{sampleAlert(t, "e", 1)})
	if err == nil || IsPermanent(err) || !strings.Contains(err.Error(), "refused") {
		t.Errorf("refused: err = %v, permanent = %v", err, IsPermanent(err))
	}
	if err != nil && strings.Contains(err.Error(), "topsecret") {
		t.Errorf("the URL's password leaked into the error: %v", err)
	}
}

func TestWebhookUnknownCAIsPermanent(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	err := newWebhook(t, WebhookConfig{URL: srv.URL}).Send(context.Background(), []Alert{sampleAlert(t, "e", 1)})
	if err == nil || !IsPermanent(err) || !strings.Contains(err.Error(), "ca_file") {
		t.Errorf("self-signed server: %v (permanent %v)", err, IsPermanent(err))
	}
	if err := newWebhook(t, WebhookConfig{URL: srv.URL, TLSSkipVerify: true}).Send(context.Background(), []Alert{sampleAlert(t, "e", 1)}); err != nil {
		t.Errorf("tls_skip_verify: %v", err)
	}
}

package notify

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/porteiro/porteiro/internal/testenv"
)

// startMailpit runs mailpit for one test, on an SMTP port of its own.
func startMailpit(t *testing.T, args ...string) *testenv.Mailpit {
	t.Helper()
	return testenv.StartMailpit(t, t.TempDir(), testenv.FreePort(t), args...)
}

func newEmail(t *testing.T, c EmailConfig) Sink {
	t.Helper()
	if c.From == "" {
		c.From = "porteiro@web1.example"
	}
	if len(c.To) == 0 {
		c.To = []string{"ops@example.com"}
	}
	sinks, err := Build(ChannelsConfig{Email: []EmailConfig{c}}, "web1")
	if err != nil {
		t.Fatal(err)
	}
	return sinks[0]
}

func TestEmailOneBatchIsOneMessage(t *testing.T) {
	mp := startMailpit(t)
	s := newEmail(t, EmailConfig{Host: "127.0.0.1", Port: mp.SMTPPort, TLS: "none", To: []string{"ops@example.com", "Night Shift <night@example.com>"}, From: "porteiro on web1 <porteiro@web1.example>"})
	a, b, c := sampleAlert(t, "ev-1", 4444), sampleAlert(t, "ev-2", 5555), sampleAlert(t, "ev-3", 6666)
	c.Kind, c.Severity, c.Resolved, c.Summary = "resolved", SeverityInfo, true, "resolved: tcp 0.0.0.0:6666 is gone"
	if err := s.Send(context.Background(), []Alert{a, b, c}); err != nil {
		t.Fatal(err)
	}
	msgs := mp.Messages(t)
	if len(msgs) != 1 {
		t.Fatalf("%d messages for one batch, want 1", len(msgs))
	}
	if len(msgs[0].To) != 2 || msgs[0].To[0].Address != "ops@example.com" || msgs[0].To[1].Address != "night@example.com" {
		t.Errorf("recipients = %v", msgs[0].To)
	}
	msg := mp.Message(t, msgs[0].ID)
	headers := msg.Headers
	if want := "[porteiro] web1: 3 alerts (1 resolved, 2 violation): unexpected listener tcp 0.0.0.0:4444 held by nc"; msg.Subject != want {
		t.Errorf("subject = %q, want %q", msg.Subject, want)
	}
	for _, want := range []string{
		"porteiro on web1 reports 3 alerts",
		"Port:      4444/tcp on 0.0.0.0 (all interfaces)",
		"Process:   nc (pid 31337, unit session-4.scope)",
		"User:      mallory (uid 1001)",
		"Command:   nc -lk -p 4444",
		`Policy:    rule "default-deny"`,
		"porteiro who 4444/tcp", "porteiro who 5555/tcp",
		"Event id:  ev-1", "Event id:  ev-2", "Event id:  ev-3",
		"RESOLVED [info] resolved: tcp 0.0.0.0:6666 is gone",
	} {
		if !strings.Contains(msg.Text, want) {
			t.Errorf("body lacks %q:\n%s", want, msg.Text)
		}
	}
	ids := strings.Join(headers["X-Porteiro-Event-Id"], ",")
	for _, id := range []string{"ev-1", "ev-2", "ev-3"} {
		if !strings.Contains(ids, id) {
			t.Errorf("X-Porteiro-Event-Id %q lacks %s", ids, id)
		}
	}
	if got := headers["X-Porteiro-Batch-Id"]; len(got) != 1 || !strings.HasPrefix(msg.MessageID, got[0]+"@") {
		t.Errorf("Message-ID %q is not derived from batch id %v", msg.MessageID, got)
	}
}

// selfSigned writes a certificate for 127.0.0.1 and its key.
func selfSigned(t *testing.T, dir string) (certFile, keyFile string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "porteiro test smtp"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IPAddresses:           []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kb}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile
}

func TestEmailStartTLSWithAuth(t *testing.T) {
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	const password = "correct-horse-battery"
	authFile := filepath.Join(dir, "smtp-users")
	os.WriteFile(authFile, []byte("porteiro:"+password+"\n"), 0o600)
	pwFile := filepath.Join(dir, "pw")
	os.WriteFile(pwFile, []byte(password+"\n"), 0o600)
	mp := startMailpit(t, "--smtp-auth-file", authFile, "--smtp-require-starttls", "--smtp-tls-cert", cert, "--smtp-tls-key", key)

	base := EmailConfig{Host: "127.0.0.1", Port: mp.SMTPPort, TLS: "starttls", Username: "porteiro", PasswordFile: pwFile, CAFile: cert}
	for _, auth := range []string{"", "plain", "login"} {
		c := base
		c.Auth = auth
		if err := newEmail(t, c).Send(context.Background(), []Alert{sampleAlert(t, "ev-"+auth, 4444)}); err != nil {
			t.Fatalf("auth %q over STARTTLS: %v", auth, err)
		}
	}
	// The password may come from the environment instead.
	t.Setenv("PORTEIRO_TEST_SMTP_PASSWORD", password)
	c := base
	c.PasswordFile, c.PasswordEnv = "", "PORTEIRO_TEST_SMTP_PASSWORD"
	if err := newEmail(t, c).Send(context.Background(), []Alert{sampleAlert(t, "ev-env", 4444)}); err != nil {
		t.Fatalf("password_env: %v", err)
	}
	if n := len(mp.Messages(t)); n != 4 {
		t.Errorf("%d messages, want 4", n)
	}

	// tls_skip_verify also gets through a certificate nobody signed.
	c = base
	c.CAFile, c.TLSSkipVerify = "", true
	if err := newEmail(t, c).Send(context.Background(), []Alert{sampleAlert(t, "ev-skip", 4444)}); err != nil {
		t.Errorf("tls_skip_verify: %v", err)
	}

	// Without the CA the certificate does not verify: permanent, with a hint.
	c = base
	c.CAFile = ""
	err := newEmail(t, c).Send(context.Background(), []Alert{sampleAlert(t, "ev-x", 4444)})
	t.Logf("without ca_file: %v", err)
	if err == nil || !IsPermanent(err) || !strings.Contains(err.Error(), "ca_file") {
		t.Errorf("unverified certificate: err = %v, permanent = %v", err, IsPermanent(err))
	}

	// A wrong password is a 535: permanent, and never in the error.
	wrong := filepath.Join(dir, "wrong")
	os.WriteFile(wrong, []byte("hunter2-not-it"), 0o600)
	c = base
	c.PasswordFile = wrong
	err = newEmail(t, c).Send(context.Background(), []Alert{sampleAlert(t, "ev-y", 4444)})
	t.Logf("wrong password: %v", err)
	if err == nil || !IsPermanent(err) {
		t.Errorf("wrong password: err = %v, permanent = %v", err, IsPermanent(err))
	} else if strings.Contains(err.Error(), "hunter2") || strings.Contains(err.Error(), password) {
		t.Errorf("the password leaked into the error: %v", err)
	}

	// Plain SMTP to a server that requires STARTTLS is refused for good.
	c = base
	c.TLS, c.Username, c.PasswordFile = "none", "", ""
	err = newEmail(t, c).Send(context.Background(), []Alert{sampleAlert(t, "ev-z", 4444)})
	t.Logf("plain to a STARTTLS-only server: %v", err)
	if err == nil || !IsPermanent(err) {
		t.Errorf("plain to a STARTTLS-only server: err = %v, permanent = %v", err, IsPermanent(err))
	}
	if n := len(mp.Messages(t)); n != 5 {
		t.Errorf("%d messages after the failures, want 5", n)
	}
}

func TestEmailImplicitTLS(t *testing.T) {
	dir := t.TempDir()
	cert, key := selfSigned(t, dir)
	mp := startMailpit(t, "--smtp-require-tls", "--smtp-tls-cert", cert, "--smtp-tls-key", key)
	s := newEmail(t, EmailConfig{Host: "127.0.0.1", Port: mp.SMTPPort, TLS: "implicit", CAFile: cert})
	if err := s.Send(context.Background(), []Alert{sampleAlert(t, "ev-1", 4444)}); err != nil {
		t.Fatal(err)
	}
	if n := len(mp.Messages(t)); n != 1 {
		t.Errorf("%d messages, want 1", n)
	}
}

func TestEmailTransient451IsRetriedOnce(t *testing.T) {
	mp := startMailpit(t, "--enable-chaos")
	s := newEmail(t, EmailConfig{Host: "127.0.0.1", Port: mp.SMTPPort, TLS: "none"})
	batch := []Alert{sampleAlert(t, "ev-1", 4444)}

	mp.Chaos(t, "Sender", 451, 100)
	err := s.Send(context.Background(), batch)
	t.Logf("451: %v", err)
	if err == nil || IsPermanent(err) || !strings.Contains(err.Error(), "451") {
		t.Fatalf("451: err = %v, permanent = %v; want transient", err, IsPermanent(err))
	}
	if n := len(mp.Messages(t)); n != 0 {
		t.Fatalf("%d messages stored despite the 451", n)
	}
	mp.Chaos(t, "Sender", 451, 0)
	if err := s.Send(context.Background(), batch); err != nil {
		t.Fatalf("retry after the 451 cleared: %v", err)
	}
	msgs := mp.Messages(t)
	if len(msgs) != 1 {
		t.Fatalf("%d messages after the retry, want exactly 1", len(msgs))
	}
	if h := mp.Message(t, msgs[0].ID).Headers; strings.Join(h["X-Porteiro-Event-Id"], "") != "ev-1" {
		t.Errorf("event id header = %v", h["X-Porteiro-Event-Id"])
	}
}

func TestEmail5xxIsPermanent(t *testing.T) {
	mp := startMailpit(t, "--enable-chaos")
	s := newEmail(t, EmailConfig{Host: "127.0.0.1", Port: mp.SMTPPort, TLS: "none"})
	mp.Chaos(t, "Recipient", 550, 100)
	err := s.Send(context.Background(), []Alert{sampleAlert(t, "ev-1", 4444)})
	t.Logf("550: %v", err)
	if err == nil || !IsPermanent(err) || !strings.Contains(err.Error(), "550") {
		t.Errorf("550: err = %v, permanent = %v; want permanent", err, IsPermanent(err))
	}
}

func TestEmailConnectionRefusedIsTransient(t *testing.T) {
	port := testenv.FreePort(t) // nothing listens there
	s := newEmail(t, EmailConfig{Host: "127.0.0.1", Port: port, TLS: "none", Timeout: 2 * time.Second})
	err := s.Send(context.Background(), []Alert{sampleAlert(t, "ev-1", 4444)})
	t.Logf("refused: %v", err)
	if err == nil || IsPermanent(err) {
		t.Errorf("refused: err = %v, permanent = %v; want transient", err, IsPermanent(err))
	}
}

func TestEmailTLSModesAgainstAPlainServer(t *testing.T) {
	mp := startMailpit(t)
	// starttls (the default) refuses a server that does not offer it.
	err := newEmail(t, EmailConfig{Host: "127.0.0.1", Port: mp.SMTPPort}).Send(context.Background(), []Alert{sampleAlert(t, "ev-1", 4444)})
	t.Logf("starttls to a plain server: %v", err)
	if err == nil || !IsPermanent(err) || !strings.Contains(err.Error(), "tls: opportunistic") {
		t.Errorf("starttls to a plain server: err = %v, permanent = %v; want permanent with a hint", err, IsPermanent(err))
	}
	// opportunistic falls back to clear text.
	if err := newEmail(t, EmailConfig{Host: "127.0.0.1", Port: mp.SMTPPort, TLS: "opportunistic"}).Send(context.Background(), []Alert{sampleAlert(t, "ev-2", 4444)}); err != nil {
		t.Errorf("opportunistic: %v", err)
	}
	if n := len(mp.Messages(t)); n != 1 {
		t.Errorf("%d messages, want 1", n)
	}
}

func TestEmailSilentServerTimesOutTransiently(t *testing.T) {
	// A server that accepts the connection and never greets, like a
	// relay stuck under load.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	port := l.Addr().(*net.TCPAddr).Port
	s := newEmail(t, EmailConfig{Host: "127.0.0.1", Port: port, TLS: "none", Timeout: 300 * time.Millisecond})
	start := time.Now()
	err = s.Send(context.Background(), []Alert{sampleAlert(t, "ev-1", 4444)})
	t.Logf("silent server: %v after %v", err, time.Since(start))
	if err == nil || IsPermanent(err) || !isTimeout(err) {
		t.Errorf("silent server: err = %v, permanent = %v; want a transient timeout", err, IsPermanent(err))
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("gave up after %v, want about the 300ms timeout", d)
	}
}

// TestEmailLostQuitIsStillDelivered: a relay that accepts the message and
// then drops the connection instead of answering QUIT has the email; a
// retry would send it twice. The server here is a fake, for the fault
// injection only (mailpit always answers QUIT).
func TestEmailLostQuitIsStillDelivered(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan string, 1)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		r := bufio.NewReader(c)
		fmt.Fprint(c, "220 fake ESMTP\r\n")
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			switch cmd := strings.ToUpper(strings.TrimSpace(line)); {
			case strings.HasPrefix(cmd, "EHLO"):
				fmt.Fprint(c, "250-fake\r\n250 8BITMIME\r\n")
			case cmd == "DATA":
				fmt.Fprint(c, "354 go ahead\r\n")
				var body strings.Builder
				for {
					l, err := r.ReadString('\n')
					if err != nil || l == ".\r\n" {
						break
					}
					body.WriteString(l)
				}
				fmt.Fprint(c, "250 queued\r\n")
				got <- body.String()
			case cmd == "QUIT":
				return // the fault: no 221, the connection just drops
			default:
				fmt.Fprint(c, "250 ok\r\n")
			}
		}
	}()
	s := newEmail(t, EmailConfig{Host: "127.0.0.1", Port: l.Addr().(*net.TCPAddr).Port, TLS: "none", Timeout: 2 * time.Second})
	if err := s.Send(context.Background(), []Alert{sampleAlert(t, "ev-1", 4444)}); err != nil {
		t.Errorf("message accepted but Send failed (the daemon would send it again): %v", err)
	}
	select {
	case body := <-got:
		if !strings.Contains(body, "X-Porteiro-Event-Id: ev-1") {
			t.Errorf("the fake server got no porteiro message:\n%s", body)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the message never reached the server")
	}
}

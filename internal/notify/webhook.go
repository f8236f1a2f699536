package notify

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// SignatureHeader carries the HMAC-SHA256 of a webhook body.
const SignatureHeader = "X-Porteiro-Signature"

// BatchIDHeader carries Payload.BatchID, for receivers that deduplicate
// before parsing the body.
const BatchIDHeader = "X-Porteiro-Batch-Id"

// base holds what every sink has: its name and its filter.
type base struct {
	name   string
	filter Filter
}

func (b *base) Name() string         { return b.name }
func (b *base) Accepts(a Alert) bool { return b.filter.Accepts(a) }

type webhookSink struct {
	base
	host    string
	url     string
	header  http.Header
	secret  []byte
	client  *http.Client
	timeout time.Duration
	now     func() time.Time
}

func newWebhookSink(c WebhookConfig, host string) (*webhookSink, error) {
	secret, err := readSecret(c.SecretFile, c.SecretEnv)
	if err != nil {
		return nil, &FieldError{Path: secretField("secret", c.SecretFile), Err: fmt.Errorf("loading the webhook secret: %w", err)}
	}
	tlsCfg, err := tlsConfig("", c.CAFile, c.TLSSkipVerify)
	if err != nil {
		return nil, &FieldError{Path: "ca_file", Err: err}
	}
	h := http.Header{}
	for k, v := range c.Headers {
		h.Set(k, v)
	}
	timeout := orDefault(c.Timeout, DefaultTimeout)
	return &webhookSink{
		base:    base{name: effectiveName("webhook", c.Name), filter: c.Filter},
		host:    host,
		url:     c.URL,
		header:  h,
		secret:  []byte(secret),
		client:  httpClient(tlsCfg, timeout),
		timeout: timeout,
		now:     time.Now,
	}, nil
}

// Send POSTs the whole batch as one Payload.
func (s *webhookSink) Send(ctx context.Context, batch []Alert) error {
	if len(batch) == 0 {
		return nil
	}
	body, err := marshalPayload(s.host, s.name, s.now(), batch)
	if err != nil {
		return Permanent(fmt.Errorf("encoding webhook payload: %w", err))
	}
	for k, vs := range s.header {
		for _, v := range vs {
			if !validHeaderValue(v) {
				// Config validation refuses this; should one get through,
				// no retry can succeed, so the alert must not be retried
				// forever as if the receiver were down.
				return Permanent(fmt.Errorf("webhook channel %q: header %s has a value net/http refuses (a newline or control character): fix the config", s.name, k))
			}
		}
	}
	h := s.header.Clone()
	h.Set(BatchIDHeader, batchID(batch))
	if len(s.secret) > 0 {
		h.Set(SignatureHeader, Sign(s.secret, body))
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := postJSON(ctx, s.client, s.url, body, h); err != nil {
		return fmt.Errorf("webhook channel %q: %w", s.name, err)
	}
	return nil
}

// Sign returns the X-Porteiro-Signature value for body: "sha256=" and the
// hex HMAC-SHA256 of the exact body bytes under secret.
func Sign(secret, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

// VerifySignature checks an X-Porteiro-Signature header value against
// body, in constant time. Receivers written in Go can use it.
func VerifySignature(secret, body []byte, header string) bool {
	algo, sig, ok := strings.Cut(strings.TrimSpace(header), "=")
	if !ok || !strings.EqualFold(algo, "sha256") || len(sig) != 2*sha256.Size {
		return false
	}
	got, err := hex.DecodeString(sig)
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return hmac.Equal(got, m.Sum(nil))
}

package notify

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"
)

// readSecret returns a password or key from a file (trailing newline
// dropped) or an environment variable. The error names the source, never
// the value.
func readSecret(file, env string) (string, error) {
	switch {
	case file != "":
		b, err := os.ReadFile(file)
		if err != nil {
			return "", fmt.Errorf("reading secret file: %w", err)
		}
		s := strings.TrimRight(string(b), "\r\n")
		if s == "" {
			return "", fmt.Errorf("secret file %s is empty", file)
		}
		return s, nil
	case env != "":
		s, ok := os.LookupEnv(env)
		if !ok || s == "" {
			return "", fmt.Errorf("environment variable %s is not set or empty", env)
		}
		return s, nil
	}
	return "", nil
}

// tlsConfig builds a client TLS config trusting the system roots plus
// caFile, or anything at all when skipVerify is set.
func tlsConfig(serverName, caFile string, skipVerify bool) (*tls.Config, error) {
	cfg := &tls.Config{ServerName: serverName, MinVersion: tls.VersionTLS12}
	if skipVerify {
		cfg.InsecureSkipVerify = true // the admin asked for it: tls_skip_verify
	}
	if caFile != "" {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("reading ca_file: %w", err)
		}
		pool, err := x509.SystemCertPool()
		if err != nil || pool == nil {
			pool = x509.NewCertPool()
		}
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("ca_file %s holds no PEM certificate", caFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

func orDefault(d, def time.Duration) time.Duration {
	if d <= 0 {
		return def
	}
	return d
}

// httpClient builds a client for one channel. Redirects are not followed:
// a POST that is redirected is a configuration problem worth reporting.
func httpClient(tlsCfg *tls.Config, timeout time.Duration) *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = tlsCfg
	tr.Proxy = nil // alerts go straight to the configured receiver
	return &http.Client{
		Transport: tr,
		Timeout:   timeout,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
}

// postJSON POSTs body and classifies the outcome: network failures,
// timeouts, 5xx, 408 and 429 are transient; other non-2xx answers and
// certificate errors are permanent.
func postJSON(ctx context.Context, c *http.Client, url string, body []byte, header http.Header) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return Permanent(fmt.Errorf("building request: %w", err))
	}
	for k, v := range header {
		req.Header[k] = v
	}
	req.Header.Set("Content-Type", "application/json")
	if req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", "porteiro")
	}
	resp, err := c.Do(req)
	if err != nil {
		err = fmt.Errorf("posting to %s: %w", req.URL.Redacted(), stripURLError(err))
		if isCertError(err) {
			return Permanent(fmt.Errorf("%w (set ca_file to the server's CA, or tls_skip_verify for a test server)", err))
		}
		return err
	}
	defer resp.Body.Close()
	snippet, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20)) // lets the connection be reused
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	err = &StatusError{URL: req.URL.Redacted(), Code: resp.StatusCode, Body: oneLine(strings.TrimSpace(string(snippet)))}
	if retryableStatus(resp.StatusCode) {
		return err
	}
	return Permanent(err)
}

// StatusError is a non-2xx HTTP answer.
type StatusError struct {
	URL  string
	Code int
	Body string // the start of the response body, one line
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("posting to %s: HTTP %d %s", e.URL, e.Code, http.StatusText(e.Code))
	if e.Body != "" {
		msg += ": " + e.Body
	}
	return msg
}

func retryableStatus(code int) bool {
	return code >= 500 || code == http.StatusRequestTimeout || code == http.StatusTooManyRequests || code == http.StatusTooEarly
}

// stripURLError drops the *url.Error wrapper, whose message repeats the
// URL unredacted; the caller names the redacted URL instead.
func stripURLError(err error) error {
	var ue *url.Error
	if errors.As(err, &ue) && ue.Err != nil {
		return ue.Err
	}
	return err
}

func isCertError(err error) bool {
	var (
		unknown  x509.UnknownAuthorityError
		hostname x509.HostnameError
		invalid  x509.CertificateInvalidError
		verify   *tls.CertificateVerificationError
	)
	return errors.As(err, &unknown) || errors.As(err, &hostname) || errors.As(err, &invalid) || errors.As(err, &verify)
}

// isTimeout reports whether err is a timeout of any kind.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
}

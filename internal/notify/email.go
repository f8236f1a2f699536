package notify

import (
	"context"
	"errors"
	"fmt"
	"net/textproto"
	"strings"
	"time"

	mail "github.com/wneessen/go-mail"
)

// EventIDHeader lists the event ids of the alerts in an email.
const EventIDHeader = "X-Porteiro-Event-Id"

type emailSink struct {
	base
	host    string
	server  string
	port    int
	prefix  string
	from    string
	to      []string
	opts    []mail.Option
	timeout time.Duration
}

func newEmailSink(c EmailConfig, host string) (*emailSink, error) {
	s := &emailSink{
		base:    base{name: effectiveName("email", c.Name), filter: c.Filter},
		host:    host,
		server:  c.Host,
		port:    c.Port,
		prefix:  c.SubjectPrefix,
		from:    c.From,
		to:      append([]string(nil), c.To...),
		timeout: orDefault(c.Timeout, DefaultTimeout),
	}
	if s.prefix == "" {
		s.prefix = DefaultSubjectPrefix
	}
	mode := c.TLS
	if mode == "" {
		mode = "starttls"
	}
	opts := []mail.Option{mail.WithTimeout(s.timeout)}
	switch mode {
	case "none":
		opts = append(opts, mail.WithTLSPolicy(mail.NoTLS))
		s.port = portOr(s.port, 25)
	case "opportunistic":
		opts = append(opts, mail.WithTLSPolicy(mail.TLSOpportunistic))
		s.port = portOr(s.port, 25)
	case "starttls":
		opts = append(opts, mail.WithTLSPolicy(mail.TLSMandatory))
		s.port = portOr(s.port, 587)
	case "implicit":
		opts = append(opts, mail.WithSSL())
		s.port = portOr(s.port, 465)
	}
	opts = append(opts, mail.WithPort(s.port))
	tlsCfg, err := tlsConfig(c.Host, c.CAFile, c.TLSSkipVerify)
	if err != nil {
		return nil, &FieldError{Path: "ca_file", Err: err}
	}
	opts = append(opts, mail.WithTLSConfig(tlsCfg))
	if c.HELO != "" {
		opts = append(opts, mail.WithHELO(c.HELO))
	}
	if c.Username != "" {
		pw, err := readSecret(c.PasswordFile, c.PasswordEnv)
		if err != nil {
			return nil, &FieldError{Path: secretField("password", c.PasswordFile), Err: fmt.Errorf("loading the smtp password: %w", err)}
		}
		auth := mail.SMTPAuthAutoDiscover
		switch strings.ToLower(c.Auth) {
		case "plain":
			auth = mail.SMTPAuthPlain
		case "login":
			auth = mail.SMTPAuthLogin
		}
		opts = append(opts, mail.WithSMTPAuth(auth), mail.WithUsername(c.Username), mail.WithPassword(pw))
	}
	s.opts = opts
	// Fail on a bad option now rather than on the first alert.
	if _, err := mail.NewClient(s.server, s.opts...); err != nil {
		return nil, fmt.Errorf("configuring the smtp client: %w", err)
	}
	return s, nil
}

func portOr(p, def int) int {
	if p == 0 {
		return def
	}
	return p
}

// Send delivers the batch as one email to every recipient.
func (s *emailSink) Send(ctx context.Context, batch []Alert) error {
	if len(batch) == 0 {
		return nil
	}
	msg, err := s.message(batch)
	if err != nil {
		return Permanent(fmt.Errorf("email channel %q: building the message: %w", s.name, err))
	}
	client, err := mail.NewClient(s.server, s.opts...)
	if err != nil {
		return Permanent(fmt.Errorf("email channel %q: configuring the smtp client: %w", s.name, err))
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	conn, err := client.DialToSMTPClientWithContext(ctx)
	if err != nil {
		return classifySMTP(fmt.Errorf("email channel %q: connecting to %s:%d: %w", s.name, s.server, s.port, err))
	}
	defer func() {
		// Once the server has answered 250 to the message, it is delivered:
		// a failed QUIT must not make the daemon send the email again.
		if err := client.CloseWithSMTPClient(conn); err != nil {
			conn.Close()
		}
	}()
	if err := client.SendWithSMTPClient(conn, msg); err != nil {
		return classifySMTP(fmt.Errorf("email channel %q: sending via %s:%d: %w", s.name, s.server, s.port, err))
	}
	return nil
}

func (s *emailSink) message(batch []Alert) (*mail.Msg, error) {
	batch = withHost(batch, s.host)
	m := mail.NewMsg()
	if err := m.From(s.from); err != nil {
		return nil, fmt.Errorf("setting from: %w", err)
	}
	if err := m.To(s.to...); err != nil {
		return nil, fmt.Errorf("setting to: %w", err)
	}
	m.Subject(subjectLine(s.prefix, s.host, batch))
	m.SetBodyString(mail.TypeTextPlain, bodyText(s.host, batch))
	ids := make([]string, 0, len(batch))
	for _, a := range batch {
		if a.ID != "" {
			ids = append(ids, oneLine(a.ID))
		}
	}
	if len(ids) > 0 {
		m.SetGenHeader(EventIDHeader, ids...)
	}
	bid := batchID(batch)
	m.SetGenHeader(BatchIDHeader, bid)
	// A retry of the same batch gets the same Message-ID, so mail systems
	// that deduplicate by it show the alert once.
	m.SetMessageIDWithValue(bid + "@" + messageIDHost(s.host))
	m.SetDate()
	m.SetGenHeader("Auto-Submitted", "auto-generated")
	if batch[0].Severity == SeverityCritical {
		m.SetImportance(mail.ImportanceHigh)
	}
	return m, nil
}

func messageIDHost(h string) string {
	var b strings.Builder
	for i := 0; i < len(h); i++ {
		c := h[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '-' {
			b.WriteByte(c)
		}
	}
	if b.Len() == 0 {
		return "porteiro.invalid"
	}
	return b.String()
}

// classifySMTP marks err permanent when retrying cannot help: a 5xx reply,
// an address the library rejects, a certificate that does not verify, or a
// server without STARTTLS or the AUTH mechanism the config asks for. 4xx
// replies, network errors and timeouts stay transient.
func classifySMTP(err error) error {
	var se *mail.SendError
	if errors.As(err, &se) {
		switch code := se.ErrorCode(); {
		case code >= 500:
			return Permanent(err)
		case code >= 400:
			return err
		}
		switch se.Reason {
		case mail.ErrGetSender, mail.ErrGetRcpts, mail.ErrNoUnencoded:
			return Permanent(err)
		}
		return err
	}
	var te *textproto.Error
	if errors.As(err, &te) {
		if te.Code >= 500 {
			return Permanent(err)
		}
		return err
	}
	if isCertError(err) {
		return Permanent(fmt.Errorf("%w (set ca_file to the server's CA, or tls_skip_verify for a test server)", err))
	}
	for _, target := range []error{
		mail.ErrPlainAuthNotSupported, mail.ErrLoginAuthNotSupported, mail.ErrNoSupportedAuthDiscovered,
		mail.ErrCramMD5AuthNotSupported, mail.ErrXOauth2AuthNotSupported, mail.ErrSCRAMSHA1AuthNotSupported,
		mail.ErrSCRAMSHA256AuthNotSupported, mail.ErrNTLMAuthNotSupported,
	} {
		if errors.Is(err, target) {
			return Permanent(fmt.Errorf("%w (check auth:, and use tls: starttls or implicit: PLAIN and LOGIN are not sent unencrypted)", err))
		}
	}
	msg := err.Error()
	if strings.Contains(msg, "does not support STARTTLS") {
		return Permanent(fmt.Errorf("%w (set tls: opportunistic or none for a server without STARTTLS)", err))
	}
	if strings.Contains(msg, "does not support SMTP AUTH") || strings.Contains(msg, "unencrypted connection") {
		return Permanent(err)
	}
	return err
}

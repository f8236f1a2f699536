package notify

import (
	"errors"
	"fmt"
	"net/mail"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/porteiro/porteiro/internal/yamlx"
)

// Defaults applied to zero config fields.
const (
	DefaultTimeout        = 10 * time.Second
	DefaultResendInterval = time.Minute
	DefaultSubjectPrefix  = "[porteiro]"
	DefaultSyslogAddress  = "/dev/log"
	DefaultSyslogNetwork  = "unixgram"
	DefaultSyslogFacility = "daemon"
	DefaultSyslogTag      = "porteiro"
)

// ChannelsConfig is the "channels:" section of the daemon's config. Every
// list may be empty; several channels of one type may run at once.
type ChannelsConfig struct {
	Email        []EmailConfig        `yaml:"email,omitempty" json:"email,omitempty"`
	Webhook      []WebhookConfig      `yaml:"webhook,omitempty" json:"webhook,omitempty"`
	Alertmanager []AlertmanagerConfig `yaml:"alertmanager,omitempty" json:"alertmanager,omitempty"`
	Syslog       []SyslogConfig       `yaml:"syslog,omitempty" json:"syslog,omitempty"`
	Exec         []ExecConfig         `yaml:"exec,omitempty" json:"exec,omitempty"`
}

// Filter selects the alerts a channel takes. The zero Filter takes all.
type Filter struct {
	// Kinds lists the event kinds to deliver; empty means every kind.
	Kinds []string `yaml:"kinds,omitempty" json:"kinds,omitempty"`
	// MinSeverity drops alerts below it; empty means info.
	MinSeverity Severity `yaml:"min_severity,omitempty" json:"min_severity,omitempty"`
}

// Kinds is every event kind an Alert may have.
var Kinds = []string{"opened", "closed", "owner_changed", "restarted", "violation", "resolved", "missing"}

// Accepts reports whether the filter takes a.
func (f Filter) Accepts(a Alert) bool {
	r := a.Severity.rank()
	if r < 0 {
		// An unknown severity is a bug upstream; deliver rather than
		// silently drop what may be important.
		r = SeverityCritical.rank()
	}
	if r < f.MinSeverity.rank() {
		return false
	}
	if len(f.Kinds) == 0 {
		return true
	}
	for _, k := range f.Kinds {
		if k == a.Kind {
			return true
		}
	}
	return false
}

func (f Filter) validate(path string) error {
	var errs []error
	for i, k := range f.Kinds {
		if !knownKind(k) {
			errs = append(errs, fieldErrorf(fmt.Sprintf("%s.filter.kinds[%d]", path, i),
				"unknown event kind %q: want one of %s", k, strings.Join(Kinds, ", ")))
		}
	}
	if f.MinSeverity != "" && f.MinSeverity.rank() < 0 {
		errs = append(errs, fieldErrorf(path+".filter.min_severity",
			"unknown severity %q: want info, warning or critical", f.MinSeverity))
	}
	return errors.Join(errs...)
}

func knownKind(k string) bool {
	for _, known := range Kinds {
		if k == known {
			return true
		}
	}
	return false
}

// ParseSeverity parses "info", "warning" or "critical".
func ParseSeverity(s string) (Severity, error) {
	sev := Severity(s)
	if sev.rank() < 0 || s == "" {
		return "", fmt.Errorf("unknown severity %q: want info, warning or critical", s)
	}
	return sev, nil
}

// rank orders severities; an empty severity counts as info so that an
// unset filter takes everything, and an unknown one is -1.
func (s Severity) rank() int {
	switch s {
	case "", SeverityInfo:
		return 0
	case SeverityWarning:
		return 1
	case SeverityCritical:
		return 2
	}
	return -1
}

// FieldError is a validation error on one config field. Path is relative to
// the channels section, in the form "email[0].host", so that the config
// loader can point at the line and column of "$.channels.email[0].host".
type FieldError struct {
	Path string
	Err  error
}

func (e *FieldError) Error() string { return e.Path + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

func fieldErrorf(path, format string, a ...any) error {
	return &FieldError{Path: path, Err: fmt.Errorf(format, a...)}
}

// EmailConfig is one SMTP channel.
type EmailConfig struct {
	Name   string `yaml:"name,omitempty" json:"name,omitempty"`
	Filter Filter `yaml:"filter,omitempty" json:"filter,omitempty"`
	// Host and Port of the SMTP server. Port defaults by TLS mode: 25 for
	// none and opportunistic, 587 for starttls, 465 for implicit.
	Host string `yaml:"host" json:"host"`
	Port int    `yaml:"port,omitempty" json:"port,omitempty"`
	// TLS is none, opportunistic (STARTTLS when offered), starttls
	// (STARTTLS required, the default) or implicit (TLS from the first byte).
	TLS string `yaml:"tls,omitempty" json:"tls,omitempty"`
	// TLSSkipVerify accepts any server certificate. Prefer CAFile.
	TLSSkipVerify bool `yaml:"tls_skip_verify,omitempty" json:"tls_skip_verify,omitempty"`
	// CAFile is a PEM bundle trusted in addition to the system roots.
	CAFile string `yaml:"ca_file,omitempty" json:"ca_file,omitempty"`
	// Username turns on SMTP AUTH. The password comes from PasswordFile or
	// PasswordEnv, never from the config itself.
	Username     string `yaml:"username,omitempty" json:"username,omitempty"`
	PasswordFile string `yaml:"password_file,omitempty" json:"password_file,omitempty"`
	PasswordEnv  string `yaml:"password_env,omitempty" json:"password_env,omitempty"`
	// Auth is the mechanism: plain, login, or empty to pick the best one
	// the server offers.
	Auth string `yaml:"auth,omitempty" json:"auth,omitempty"`
	// From is the sender address; To lists the recipients.
	From string   `yaml:"from" json:"from"`
	To   []string `yaml:"to" json:"to"`
	// SubjectPrefix starts every subject; "[porteiro]" by default.
	SubjectPrefix string `yaml:"subject_prefix,omitempty" json:"subject_prefix,omitempty"`
	// HELO is the name sent in EHLO; the host name by default.
	HELO    string        `yaml:"helo,omitempty" json:"helo,omitempty"`
	Timeout time.Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
}

// WebhookConfig is one webhook channel: a JSON POST per batch.
type WebhookConfig struct {
	Name   string `yaml:"name,omitempty" json:"name,omitempty"`
	Filter Filter `yaml:"filter,omitempty" json:"filter,omitempty"`
	URL    string `yaml:"url" json:"url"`
	// Headers are added to every request (for example an Authorization).
	Headers map[string]string `yaml:"headers,omitempty" json:"headers,omitempty"`
	// SecretFile or SecretEnv holds the HMAC-SHA256 key; when set, every
	// request carries X-Porteiro-Signature: sha256=<hex>.
	SecretFile    string        `yaml:"secret_file,omitempty" json:"secret_file,omitempty"`
	SecretEnv     string        `yaml:"secret_env,omitempty" json:"secret_env,omitempty"`
	TLSSkipVerify bool          `yaml:"tls_skip_verify,omitempty" json:"tls_skip_verify,omitempty"`
	CAFile        string        `yaml:"ca_file,omitempty" json:"ca_file,omitempty"`
	Timeout       time.Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
}

// AlertmanagerConfig is one Alertmanager (API v2) channel.
type AlertmanagerConfig struct {
	Name   string `yaml:"name,omitempty" json:"name,omitempty"`
	Filter Filter `yaml:"filter,omitempty" json:"filter,omitempty"`
	// URL is Alertmanager's base URL, such as http://127.0.0.1:9093.
	URL string `yaml:"url" json:"url"`
	// ResendInterval is how often still-firing alerts are sent again; an
	// alert's endsAt is three intervals ahead, so it stays firing while
	// porteiro runs and expires on its own if porteiro stops.
	ResendInterval time.Duration `yaml:"resend_interval,omitempty" json:"resend_interval,omitempty"`
	// Labels are added to every alert (for example env: prod). Keep them
	// constant: they are part of every alert's identity.
	Labels map[string]string `yaml:"labels,omitempty" json:"labels,omitempty"`
	// GeneratorURL is a link shown in Alertmanager, such as the daemon's
	// /api/v1/events.
	GeneratorURL string `yaml:"generator_url,omitempty" json:"generator_url,omitempty"`
	// Username turns on HTTP basic auth, with the password from
	// PasswordFile or PasswordEnv.
	Username      string        `yaml:"username,omitempty" json:"username,omitempty"`
	PasswordFile  string        `yaml:"password_file,omitempty" json:"password_file,omitempty"`
	PasswordEnv   string        `yaml:"password_env,omitempty" json:"password_env,omitempty"`
	TLSSkipVerify bool          `yaml:"tls_skip_verify,omitempty" json:"tls_skip_verify,omitempty"`
	CAFile        string        `yaml:"ca_file,omitempty" json:"ca_file,omitempty"`
	Timeout       time.Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
}

// SyslogConfig is one channel to the local syslog daemon.
type SyslogConfig struct {
	Name   string `yaml:"name,omitempty" json:"name,omitempty"`
	Filter Filter `yaml:"filter,omitempty" json:"filter,omitempty"`
	// Network is unixgram (the default), unix, udp or tcp.
	Network string `yaml:"network,omitempty" json:"network,omitempty"`
	// Address is the socket path or host:port; /dev/log by default.
	Address string `yaml:"address,omitempty" json:"address,omitempty"`
	// Facility is a syslog facility name: daemon (the default), auth,
	// authpriv, user, local0..local7, ...
	Facility string `yaml:"facility,omitempty" json:"facility,omitempty"`
	// Tag is the program name in each line; porteiro by default.
	Tag string `yaml:"tag,omitempty" json:"tag,omitempty"`
	// Format is rfc3164 (the default, what /dev/log readers expect) or rfc5424.
	Format  string        `yaml:"format,omitempty" json:"format,omitempty"`
	Timeout time.Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
}

// ExecConfig is one channel that runs a command per batch.
type ExecConfig struct {
	Name   string `yaml:"name,omitempty" json:"name,omitempty"`
	Filter Filter `yaml:"filter,omitempty" json:"filter,omitempty"`
	// Command is the argv, run without a shell; the batch JSON is on stdin.
	Command []string `yaml:"command" json:"command"`
	// Env is added to the command's minimal environment.
	Env map[string]string `yaml:"env,omitempty" json:"env,omitempty"`
	// Dir is the working directory; / by default.
	Dir string `yaml:"dir,omitempty" json:"dir,omitempty"`
	// PermanentExitCodes are exit codes that mean "do not retry"; any
	// other non-zero exit is retried.
	PermanentExitCodes []int `yaml:"permanent_exit_codes,omitempty" json:"permanent_exit_codes,omitempty"`
	// Timeout kills the command (and its process group) when it expires.
	Timeout time.Duration `yaml:"timeout,omitempty" json:"timeout,omitempty"`
}

// Validate checks the config without touching the file system or the
// network. It returns every problem found, each a *FieldError.
func (c *ChannelsConfig) Validate() error {
	var errs []error
	names := map[string]string{}
	checkName := func(typ string, n int, name, path string, f Filter) {
		switch {
		case name == "" && n > 1:
			errs = append(errs, fieldErrorf(path+".name", "a name is required when there are several %s channels", typ))
		case !validChannelName(effectiveName(typ, name)):
			errs = append(errs, fieldErrorf(path+".name", "name %q may hold only letters, digits, '.', '_' and '-'", name))
		default:
			eff := effectiveName(typ, name)
			if prev, ok := names[eff]; ok {
				errs = append(errs, fieldErrorf(path+".name", "channel name %q is already used by %s", eff, prev))
			} else {
				names[eff] = path
			}
		}
		if err := f.validate(path); err != nil {
			errs = append(errs, err)
		}
	}
	for i, e := range c.Email {
		p := fmt.Sprintf("email[%d]", i)
		checkName("email", len(c.Email), e.Name, p, e.Filter)
		errs = append(errs, e.validate(p))
	}
	for i, w := range c.Webhook {
		p := fmt.Sprintf("webhook[%d]", i)
		checkName("webhook", len(c.Webhook), w.Name, p, w.Filter)
		errs = append(errs, validateHTTPURL(p+".url", w.URL), validateTimeout(p, w.Timeout),
			validateSecretSource(p, "secret", w.SecretFile, w.SecretEnv))
		for k, v := range w.Headers {
			if !validHeaderName(k) {
				errs = append(errs, fieldErrorf(p+".headers", "invalid header name %s", yamlx.Quote(k)))
			} else if !validHeaderValue(v) {
				// net/http refuses such a request at every delivery, and
				// the alert would be retried forever.
				errs = append(errs, fieldErrorf(p+".headers."+k, "header %s: the value must be one line, without control characters", k))
			}
		}
	}
	for i, a := range c.Alertmanager {
		p := fmt.Sprintf("alertmanager[%d]", i)
		checkName("alertmanager", len(c.Alertmanager), a.Name, p, a.Filter)
		errs = append(errs, validateHTTPURL(p+".url", a.URL), validateTimeout(p, a.Timeout),
			validateSecretSource(p, "password", a.PasswordFile, a.PasswordEnv))
		if a.ResendInterval < 0 || a.ResendInterval > 0 && a.ResendInterval < time.Second {
			errs = append(errs, fieldErrorf(p+".resend_interval", "resend_interval %s is too short: use at least 1s", a.ResendInterval))
		}
		if a.Username == "" && (a.PasswordFile != "" || a.PasswordEnv != "") {
			errs = append(errs, fieldErrorf(p+".username", "a password is set but no username"))
		}
		for k := range a.Labels {
			if !validLabelName(k) {
				errs = append(errs, fieldErrorf(p+".labels", "invalid label name %q: use [a-zA-Z_][a-zA-Z0-9_]*", k))
			} else if reservedLabel(k) {
				errs = append(errs, fieldErrorf(p+".labels", "label %q is set by porteiro itself", k))
			}
		}
	}
	for i, s := range c.Syslog {
		p := fmt.Sprintf("syslog[%d]", i)
		checkName("syslog", len(c.Syslog), s.Name, p, s.Filter)
		errs = append(errs, s.validate(p))
	}
	for i, x := range c.Exec {
		p := fmt.Sprintf("exec[%d]", i)
		checkName("exec", len(c.Exec), x.Name, p, x.Filter)
		switch {
		case len(x.Command) == 0 || x.Command[0] == "":
			errs = append(errs, fieldErrorf(p+".command", "command is required: a list such as [/usr/local/bin/page-oncall, --team, ops]"))
		case strings.Contains(x.Command[0], "/") && !filepath.IsAbs(x.Command[0]):
			errs = append(errs, fieldErrorf(p+".command", "command %q is a relative path, which depends on the daemon's working directory: give an absolute path", x.Command[0]))
		}
		if x.Dir != "" && !filepath.IsAbs(x.Dir) {
			errs = append(errs, fieldErrorf(p+".dir", "dir %q is a relative path: give an absolute path", x.Dir))
		}
		errs = append(errs, validateTimeout(p, x.Timeout))
		for _, code := range x.PermanentExitCodes {
			if code <= 0 || code > 255 {
				errs = append(errs, fieldErrorf(p+".permanent_exit_codes", "exit code %d is out of range 1..255", code))
			}
		}
	}
	return errors.Join(errs...)
}

// validChannelName keeps names fit for a metrics label and a log line.
func validChannelName(n string) bool {
	if n == "" || len(n) > 64 {
		return false
	}
	for i := 0; i < len(n); i++ {
		c := n[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-' {
			continue
		}
		return false
	}
	return true
}

func effectiveName(typ, name string) string {
	if name == "" {
		return typ
	}
	return name
}

func (e *EmailConfig) validate(p string) error {
	var errs []error
	if e.Host == "" {
		errs = append(errs, fieldErrorf(p+".host", "host is required: the SMTP server, such as smtp.example.com"))
	}
	if e.Port < 0 || e.Port > 65535 {
		errs = append(errs, fieldErrorf(p+".port", "port %d is out of range", e.Port))
	}
	switch e.TLS {
	case "", "none", "opportunistic", "starttls", "implicit":
	default:
		errs = append(errs, fieldErrorf(p+".tls", "unknown tls mode %q: want none, opportunistic, starttls or implicit", e.TLS))
	}
	switch strings.ToLower(e.Auth) {
	case "", "plain", "login":
	default:
		errs = append(errs, fieldErrorf(p+".auth", "unknown auth mechanism %q: want plain or login", e.Auth))
	}
	if e.Username == "" && (e.PasswordFile != "" || e.PasswordEnv != "") {
		errs = append(errs, fieldErrorf(p+".username", "a password is set but no username"))
	}
	if e.Username != "" && e.PasswordFile == "" && e.PasswordEnv == "" {
		errs = append(errs, fieldErrorf(p+".password_file", "username is set: give password_file or password_env"))
	}
	errs = append(errs, validateSecretSource(p, "password", e.PasswordFile, e.PasswordEnv))
	if _, err := mail.ParseAddress(e.From); err != nil {
		errs = append(errs, fieldErrorf(p+".from", "from %q is not an email address: %w", e.From, err))
	}
	if len(e.To) == 0 {
		errs = append(errs, fieldErrorf(p+".to", "at least one recipient is required"))
	}
	for i, to := range e.To {
		if _, err := mail.ParseAddress(to); err != nil {
			errs = append(errs, fieldErrorf(fmt.Sprintf("%s.to[%d]", p, i), "%q is not an email address: %w", to, err))
		}
	}
	if strings.ContainsAny(e.SubjectPrefix+e.HELO, "\r\n") {
		errs = append(errs, fieldErrorf(p+".subject_prefix", "subject_prefix and helo must be one line"))
	}
	errs = append(errs, validateTimeout(p, e.Timeout))
	return errors.Join(errs...)
}

func (s *SyslogConfig) validate(p string) error {
	var errs []error
	switch s.Network {
	case "", "unixgram", "unix", "udp", "tcp":
	default:
		errs = append(errs, fieldErrorf(p+".network", "unknown network %q: want unixgram, unix, udp or tcp", s.Network))
	}
	if (s.Network == "udp" || s.Network == "tcp") && s.Address == "" {
		errs = append(errs, fieldErrorf(p+".address", "address is required for network %s: host:port", s.Network))
	}
	if s.Facility != "" {
		if _, ok := facilities[s.Facility]; !ok {
			errs = append(errs, fieldErrorf(p+".facility", "unknown facility %q: want daemon, auth, authpriv, user, local0..local7, ...", s.Facility))
		}
	}
	switch s.Format {
	case "", "rfc3164", "rfc5424":
	default:
		errs = append(errs, fieldErrorf(p+".format", "unknown format %q: want rfc3164 or rfc5424", s.Format))
	}
	if s.Tag != "" && !validSyslogTag(s.Tag) {
		errs = append(errs, fieldErrorf(p+".tag", "tag %q must be 1 to 48 printable characters without spaces or colons", s.Tag))
	}
	errs = append(errs, validateTimeout(p, s.Timeout))
	return errors.Join(errs...)
}

func validateTimeout(p string, d time.Duration) error {
	if d < 0 {
		return fieldErrorf(p+".timeout", "timeout %s is negative", d)
	}
	return nil
}

func validateSecretSource(p, what, file, env string) error {
	if file != "" && env != "" {
		return fieldErrorf(p+"."+what+"_file", "give %s_file or %s_env, not both", what, what)
	}
	return nil
}

func validateHTTPURL(p, raw string) error {
	if raw == "" {
		return fieldErrorf(p, "url is required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Error repeats the URL, password included.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fieldErrorf(p, "invalid url %s: %v", yamlx.Quote(yamlx.Redact(raw)), err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return fieldErrorf(p, "url %q must be http:// or https:// with a host", u.Redacted())
	}
	if port := u.Port(); port != "" {
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return fieldErrorf(p, "url %q: port %s is out of range 1-65535", u.Redacted(), port)
		}
	}
	return nil
}

func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("()<>@,;:\\\"/[]?={}", c) >= 0 {
			return false
		}
	}
	return true
}

// validHeaderValue is net/http's rule: no control characters but tab.
func validHeaderValue(v string) bool {
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return false
		}
	}
	return true
}

func validLabelName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || i > 0 && c >= '0' && c <= '9' {
			continue
		}
		return false
	}
	return true
}

func validSyslogTag(t string) bool {
	if len(t) == 0 || len(t) > 48 {
		return false
	}
	for i := 0; i < len(t); i++ {
		if t[i] <= ' ' || t[i] >= 0x7f || t[i] == ':' || t[i] == '[' || t[i] == ']' {
			return false
		}
	}
	return true
}

// Build validates c, applies defaults, reads secrets and CA files, and
// returns one Sink per channel: email, webhook, alertmanager, syslog, exec,
// each in config order. host names this machine in every message.
func Build(c ChannelsConfig, host string) ([]Sink, error) {
	if err := c.Validate(); err != nil {
		return nil, err
	}
	var sinks []Sink
	for i, e := range c.Email {
		s, err := newEmailSink(e, host)
		if err != nil {
			return nil, underPath(fmt.Sprintf("email[%d]", i), err)
		}
		sinks = append(sinks, s)
	}
	for i, w := range c.Webhook {
		s, err := newWebhookSink(w, host)
		if err != nil {
			return nil, underPath(fmt.Sprintf("webhook[%d]", i), err)
		}
		sinks = append(sinks, s)
	}
	for i, a := range c.Alertmanager {
		s, err := newAlertmanagerSink(a, host)
		if err != nil {
			return nil, underPath(fmt.Sprintf("alertmanager[%d]", i), err)
		}
		sinks = append(sinks, s)
	}
	for _, sc := range c.Syslog {
		sinks = append(sinks, newSyslogSink(sc, host))
	}
	for i, x := range c.Exec {
		if err := x.checkFiles(); err != nil {
			return nil, underPath(fmt.Sprintf("exec[%d]", i), err)
		}
		sinks = append(sinks, newExecSink(x, host))
	}
	return sinks, nil
}

// execPATH is the PATH an exec channel's command runs with, and where a
// command given by name alone is looked up.
const execPATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// checkFiles checks that the command is an executable file and that dir
// is a directory, when the channel is built: a missing one would
// otherwise show only at the first alert, as a delivery retried forever.
func (x ExecConfig) checkFiles() error {
	cmd := x.Command[0]
	path := cmd
	if !strings.Contains(cmd, "/") {
		path = ""
		for _, d := range filepath.SplitList(execPATH) {
			if executable(filepath.Join(d, cmd)) == nil {
				path = filepath.Join(d, cmd)
				break
			}
		}
		if path == "" {
			return fieldErrorf("command", "command %q is not found in %s: give an absolute path", cmd, execPATH)
		}
	}
	if err := executable(path); err != nil {
		return fieldErrorf("command", "command %q: %v", cmd, err)
	}
	if x.Dir != "" {
		st, err := os.Stat(x.Dir)
		switch {
		case err != nil:
			return fieldErrorf("dir", "dir: %w", err)
		case !st.IsDir():
			return fieldErrorf("dir", "dir %q is not a directory", x.Dir)
		}
	}
	return nil
}

func executable(path string) error {
	st, err := os.Stat(path)
	switch {
	case err != nil:
		return err
	case !st.Mode().IsRegular():
		return fmt.Errorf("%s is not a regular file", path)
	case st.Mode().Perm()&0o111 == 0:
		return fmt.Errorf("%s is not executable", path)
	}
	return nil
}

// underPath places a sink constructor's error under the channel's path:
// a *FieldError naming a field gets "email[0].ca_file", anything else
// "email[0]".
func underPath(prefix string, err error) error {
	var fe *FieldError
	if errors.As(err, &fe) {
		return &FieldError{Path: prefix + "." + fe.Path, Err: fe.Err}
	}
	return &FieldError{Path: prefix, Err: err}
}

// secretField names the config field a secret came from.
func secretField(what, file string) string {
	if file != "" {
		return what + "_file"
	}
	return what + "_env"
}

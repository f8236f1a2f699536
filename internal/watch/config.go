package watch

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/goccy/go-yaml/ast"

	"github.com/porteiro/porteiro/internal/localapi"
	"github.com/porteiro/porteiro/internal/notify"
	"github.com/porteiro/porteiro/internal/target"
	"github.com/porteiro/porteiro/internal/yamlx"
)

// Defaults of the daemon's config; docs/config.md lists them for users.
const (
	DefaultConfigFile      = "/etc/porteiro/porteiro.yaml"
	DefaultInterval        = 2 * time.Second
	MinInterval            = 250 * time.Millisecond
	DefaultGrace           = 10 * time.Second
	DefaultBurst           = 5 * time.Second
	DefaultFlapWindow      = time.Minute
	DefaultPolicyFile      = "/etc/porteiro/policy.yaml"
	DefaultStateDir        = "/var/lib/porteiro"
	DefaultMaxAge          = 30 * 24 * time.Hour
	DefaultMaxEvents       = 100000
	DefaultListen          = "127.0.0.1:9466"
	DefaultRetryInitial    = 5 * time.Second
	DefaultRetryMax        = 5 * time.Minute
	DefaultShutdownTimeout = 10 * time.Second
	// MinAuditInterval bounds audit_interval: an audit probes every port
	// and loads BPF programs, so it is not a thing to run every second.
	MinAuditInterval = time.Minute
)

// Duration is a YAML duration: Go syntax ("90s", "1h30m") plus days ("30d").
// It keeps the raw text so that a bad value is reported with its line and
// column by the validation pass, which knows where it is.
type Duration struct {
	D   time.Duration
	raw string
	set bool
}

// NewDuration returns a Duration that counts as set (a flag override).
func NewDuration(d time.Duration) Duration { return Duration{D: d, raw: d.String(), set: true} }

// UnmarshalYAML records the raw value; Config.validate parses it.
func (d *Duration) UnmarshalYAML(b []byte) error {
	d.raw = strings.Trim(strings.TrimSpace(string(b)), `"'`)
	d.set = true
	return nil
}

// MarshalYAML writes the duration in Go syntax.
func (d Duration) MarshalYAML() ([]byte, error) { return []byte(d.D.String()), nil }

var dayRE = regexp.MustCompile(`^(\d+)d(.*)$`)

// ParseDuration parses Go durations and a leading number of days ("30d",
// "1d12h").
func ParseDuration(s string) (time.Duration, error) {
	var days time.Duration
	if m := dayRE.FindStringSubmatch(s); m != nil {
		n, err := strconv.Atoi(m[1])
		if err != nil || n > 100000 {
			return 0, fmt.Errorf("invalid duration %q", s)
		}
		days = time.Duration(n) * 24 * time.Hour
		s = m[2]
		if s == "" {
			return days, nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, fmt.Errorf("invalid duration %q: want a number and a unit, such as 500ms, 2s, 5m, 30d", s)
	}
	return days + d, nil
}

// Retention bounds the event history.
type Retention struct {
	MaxAge    Duration `yaml:"max_age"`
	MaxEvents *int     `yaml:"max_events"`
}

// HTTPConfig is the daemon's HTTP listener.
type HTTPConfig struct {
	// Listen is host:port; an explicit empty string turns HTTP off.
	Listen *string `yaml:"listen"`
	// API also serves /api/v1 on the TCP listener (off by default: the
	// local socket serves it to those its permissions allow).
	API bool `yaml:"api"`
}

// LogConfig sets the daemon's log output.
type LogConfig struct {
	// Format is text (the default) or json.
	Format string `yaml:"format"`
	// Level is debug, info (the default), warn or error.
	Level string `yaml:"level"`
}

// RetryConfig sets the outbox backoff: the first retry after Initial, then
// doubling up to Max.
type RetryConfig struct {
	Initial Duration `yaml:"initial"`
	Max     Duration `yaml:"max"`
}

// Config is the daemon's configuration file. The zero value (an empty
// file) works: every field has a default.
type Config struct {
	IntervalRaw        Duration    `yaml:"interval"`
	GraceRaw           Duration    `yaml:"grace"`
	BurstRaw           Duration    `yaml:"burst"`
	FlapWindowRaw      Duration    `yaml:"flap_window"`
	Policy             *string     `yaml:"policy"`
	StateDir           string      `yaml:"state_dir"`
	Retention          Retention   `yaml:"retention"`
	HTTP               HTTPConfig  `yaml:"http"`
	Log                LogConfig   `yaml:"log"`
	Retry              RetryConfig `yaml:"retry"`
	ShutdownTimeoutRaw Duration    `yaml:"shutdown_timeout"`
	Host               string      `yaml:"host"`
	// Socket is the local API socket; an explicit empty string turns it
	// off.
	Socket *string `yaml:"socket"`
	// Events is "auto" (the default: listener events from the kernel when
	// they load, polling otherwise) or "off" (polling only).
	Events   string                `yaml:"events"`
	Channels notify.ChannelsConfig `yaml:"channels"`
	// AuditIntervalRaw is how often porteirod runs an audit (docs/audit.md);
	// unset or 0 means never.
	AuditIntervalRaw Duration `yaml:"audit_interval"`

	// File is where the config was read from ("" for defaults).
	File string `yaml:"-"`
	src  []byte
}

// The effective values, with defaults applied.

// IntervalD is the scan interval.
func (c *Config) Interval() time.Duration { return orDur(c.IntervalRaw, DefaultInterval) }

// GraceD is the restart grace period.
func (c *Config) Grace() time.Duration { return orDur(c.GraceRaw, DefaultGrace) }

// BurstD is the alert grouping window.
func (c *Config) Burst() time.Duration { return orDur(c.BurstRaw, DefaultBurst) }

// FlapWindowD is the window in which restarts of one listener are grouped.
func (c *Config) FlapWindow() time.Duration { return orDur(c.FlapWindowRaw, DefaultFlapWindow) }

// MaxAgeD is the retention age; 0 keeps events forever.
func (c *Config) MaxAge() time.Duration { return orDur(c.Retention.MaxAge, DefaultMaxAge) }

// MaxEventsN is the retention count; 0 keeps every event.
func (c *Config) MaxEvents() int {
	if c.Retention.MaxEvents == nil {
		return DefaultMaxEvents
	}
	return *c.Retention.MaxEvents
}

// RetryInitialD is the first retry delay.
func (c *Config) RetryInitial() time.Duration { return orDur(c.Retry.Initial, DefaultRetryInitial) }

// RetryMaxD caps the retry delay.
func (c *Config) RetryMax() time.Duration { return orDur(c.Retry.Max, DefaultRetryMax) }

// ShutdownTimeoutD bounds how long SIGTERM waits for deliveries.
func (c *Config) ShutdownTimeout() time.Duration {
	return orDur(c.ShutdownTimeoutRaw, DefaultShutdownTimeout)
}

// PolicyPath returns the policy file and whether it was set explicitly. The
// default file is optional; an explicit one must exist. An explicit empty
// string means "no policy".
func (c *Config) PolicyPath() (string, bool) {
	if c.Policy == nil {
		return DefaultPolicyFile, false
	}
	return *c.Policy, true
}

// StateDirPath is the directory of the event database.
func (c *Config) StateDirPath() string {
	if c.StateDir == "" {
		return DefaultStateDir
	}
	return c.StateDir
}

// Listen is the HTTP address, "" when HTTP is off.
func (c *Config) Listen() string {
	if c.HTTP.Listen == nil {
		return DefaultListen
	}
	return *c.HTTP.Listen
}

// DefaultReconcile is the interval of the reconciliation scans when the
// kernel reports listeners as they open (events), unless interval is set.
const DefaultReconcile = 30 * time.Second

// AuditInterval is the time between scheduled audits; 0 means none.
func (c *Config) AuditInterval() time.Duration { return orDur(c.AuditIntervalRaw, 0) }

// ReconcileInterval is the scan interval when kernel events are in use:
// interval when the file sets it, else DefaultReconcile.
func (c *Config) ReconcileInterval() time.Duration {
	if c.IntervalRaw.set {
		return c.IntervalRaw.D
	}
	return DefaultReconcile
}

// EventsWanted reports whether porteirod should try kernel events.
func (c *Config) EventsWanted() bool { return c.Events != "off" }

// SocketPath is the local API socket's path; "" when turned off.
func (c *Config) SocketPath() string {
	if c.Socket == nil {
		return localapi.DefaultSocket
	}
	return *c.Socket
}

// HostName is the host name put in alerts.
func (c *Config) HostName() string {
	if c.Host != "" {
		return c.Host
	}
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
}

// SlogLevel is the log level.
func (c *Config) SlogLevel() slog.Level {
	switch strings.ToLower(c.Log.Level) {
	case "debug":
		return slog.LevelDebug
	case "warn", "warning":
		return slog.LevelWarn
	case "error":
		return slog.LevelError
	}
	return slog.LevelInfo
}

// NewLogger returns the logger the config asks for, writing to w.
func (c *Config) NewLogger(w interface{ Write([]byte) (int, error) }) *slog.Logger {
	o := &slog.HandlerOptions{Level: c.SlogLevel()}
	if strings.ToLower(c.Log.Format) == "json" {
		return slog.New(slog.NewJSONHandler(w, o))
	}
	return slog.New(slog.NewTextHandler(w, o))
}

func orDur(d Duration, def time.Duration) time.Duration {
	if !d.set {
		return def
	}
	return d.D
}

// ConfigError is one problem in a config file, located by line and column
// when they are known. It is the policy's error type too (yamlx.Error).
type ConfigError = yamlx.Error

// LoadConfig reads and validates a config file. It must be a regular file
// within yamlx's limits. Errors are ConfigErrors (several joined with
// errors.Join), each as "file:line:col: message".
func LoadConfig(path string) (*Config, error) {
	b, err := yamlx.ReadFile(path, "config")
	if err != nil {
		return nil, err
	}
	return ParseConfig(path, b)
}

// ParseConfig parses and validates a config held in b; name is used in
// error messages.
func ParseConfig(name string, b []byte) (*Config, error) {
	cfg := &Config{File: name}
	file, err := yamlx.Decode(name, b, cfg, "a config")
	if err != nil {
		return nil, err
	}
	cfg.File = name
	cfg.src = b
	errs := wholeNumbers(file, cfg)
	errs = append(errs, cfg.validate()...)
	if len(errs) > 0 {
		out := make([]error, len(errs))
		for i, fe := range errs {
			ce := &ConfigError{File: name, Msg: yamlx.Redact(fe.msg)}
			ce.Line, ce.Column = yamlx.Locate(file, fe.path)
			out[i] = ce
		}
		return nil, errors.Join(out...)
	}
	return cfg, nil
}

// wholeNumbers checks that the integer fields were written as decimal
// integers: go-yaml reads "max_events: 1.5" as 1 and 0x10 as 16, without a
// word.
func wholeNumbers(file *ast.File, c *Config) []fieldErr {
	var errs []fieldErr
	check := func(path, name string) {
		n := yamlx.Lookup(file, path)
		if n == nil {
			return
		}
		tk := n.GetToken()
		if _, ok := n.(*ast.IntegerNode); ok && tk != nil && isDecimal(tk.Value) {
			return
		}
		v := ""
		if tk != nil {
			v = tk.Value
		}
		errs = append(errs, fieldErr{path, fmt.Sprintf("%s: %s is not a whole number", name, yamlx.Quote(v))})
	}
	check("$.retention.max_events", "retention.max_events")
	for i := range c.Channels.Email {
		check(fmt.Sprintf("$.channels.email[%d].port", i), fmt.Sprintf("channels.email[%d].port", i))
	}
	for i, x := range c.Channels.Exec {
		for j := range x.PermanentExitCodes {
			check(fmt.Sprintf("$.channels.exec[%d].permanent_exit_codes[%d]", i, j), fmt.Sprintf("channels.exec[%d].permanent_exit_codes[%d]", i, j))
		}
	}
	return errs
}

func isDecimal(s string) bool { return target.IsDigits(strings.TrimPrefix(s, "-")) }

// Locate turns a channel error (a *notify.FieldError, such as an unreadable
// password file found when the channels are built) into a ConfigError at
// the field's line and column. Other errors are returned with the
// passwords of URLs hidden.
func (c *Config) Locate(err error) error {
	var fe *notify.FieldError
	if err == nil || !errors.As(err, &fe) {
		return yamlx.RedactError(err)
	}
	ce := &ConfigError{File: c.File, Msg: yamlx.Redact("channels." + fe.Error())}
	if c.src != nil {
		if file, perr := yamlx.Parse(c.File, c.src); perr == nil {
			ce.Line, ce.Column = yamlx.Locate(file, "$.channels."+fe.Path)
		}
	}
	return ce
}

type fieldErr struct {
	path string // "$.retention.max_age"
	msg  string
}

func (c *Config) validate() []fieldErr {
	var errs []fieldErr
	dur := func(d *Duration, path, name string, min time.Duration) {
		if !d.set {
			return
		}
		v, err := ParseDuration(d.raw)
		if err != nil {
			errs = append(errs, fieldErr{path, name + ": " + err.Error()})
			return
		}
		if v < min {
			errs = append(errs, fieldErr{path, fmt.Sprintf("%s: %s is too short: the minimum is %s", name, v, min)})
			return
		}
		d.D = v
	}
	dur(&c.IntervalRaw, "$.interval", "interval", MinInterval)
	dur(&c.GraceRaw, "$.grace", "grace", 0)
	dur(&c.BurstRaw, "$.burst", "burst", 0)
	dur(&c.FlapWindowRaw, "$.flap_window", "flap_window", 0)
	dur(&c.Retention.MaxAge, "$.retention.max_age", "retention.max_age", 0)
	dur(&c.Retry.Initial, "$.retry.initial", "retry.initial", 10*time.Millisecond)
	dur(&c.Retry.Max, "$.retry.max", "retry.max", 10*time.Millisecond)
	dur(&c.ShutdownTimeoutRaw, "$.shutdown_timeout", "shutdown_timeout", 0)
	dur(&c.AuditIntervalRaw, "$.audit_interval", "audit_interval", 0)
	if d := c.AuditIntervalRaw; d.set && d.D != 0 && d.D < MinAuditInterval {
		errs = append(errs, fieldErr{"$.audit_interval", fmt.Sprintf("audit_interval: %s is too short: the minimum is %s (0 turns scheduled audits off)", d.D, MinAuditInterval)})
	}
	if c.Retry.Initial.set && c.Retry.Max.set && c.Retry.Max.D < c.Retry.Initial.D && c.Retry.Max.D > 0 {
		errs = append(errs, fieldErr{"$.retry.max", fmt.Sprintf("retry.max (%s) is shorter than retry.initial (%s)", c.Retry.Max.D, c.Retry.Initial.D)})
	}
	if c.Retention.MaxEvents != nil && *c.Retention.MaxEvents < 0 {
		errs = append(errs, fieldErr{"$.retention.max_events", "retention.max_events: must be 0 (keep all) or more"})
	}
	switch c.Events {
	case "", "auto", "off":
	default:
		errs = append(errs, fieldErr{"$.events", fmt.Sprintf("events: %q: want auto or off", c.Events)})
	}
	switch strings.ToLower(c.Log.Format) {
	case "", "text", "json":
	default:
		errs = append(errs, fieldErr{"$.log.format", fmt.Sprintf("log.format: unknown format %q: want text or json", c.Log.Format)})
	}
	switch strings.ToLower(c.Log.Level) {
	case "", "debug", "info", "warn", "warning", "error":
	default:
		errs = append(errs, fieldErr{"$.log.level", fmt.Sprintf("log.level: unknown level %q: want debug, info, warn or error", c.Log.Level)})
	}
	if l := c.Listen(); l != "" {
		if err := checkListen(l); err != nil {
			errs = append(errs, fieldErr{"$.http.listen", fmt.Sprintf("http.listen: %s is not host:port: %v (use \"\" to turn HTTP off)", yamlx.Quote(l), err)})
		}
	}
	if c.StateDir != "" {
		// A state directory that does not exist yet is made at start; one
		// that is a file would fail only then, or be written through.
		if st, err := os.Stat(c.StateDir); err == nil && !st.IsDir() {
			errs = append(errs, fieldErr{"$.state_dir", fmt.Sprintf("state_dir: %s is not a directory", yamlx.Quote(c.StateDir))})
		}
	}
	if err := c.Channels.Validate(); err != nil {
		for _, e := range unjoin(err) {
			var fe *notify.FieldError
			if errors.As(e, &fe) {
				errs = append(errs, fieldErr{"$.channels." + fe.Path, "channels." + fe.Error()})
			} else {
				errs = append(errs, fieldErr{"$.channels", "channels: " + e.Error()})
			}
		}
	}
	return errs
}

// checkListen checks http.listen: host:port, where the host is empty, an
// IP address or a host name, and the port a number 0-65535.
func checkListen(l string) error {
	i := strings.LastIndex(l, ":")
	if i < 0 {
		return fmt.Errorf("missing port")
	}
	host, port := l[:i], l[i+1:]
	if !isDecimal(port) || strings.HasPrefix(port, "-") {
		return fmt.Errorf("bad port %s", yamlx.Quote(port))
	}
	if n, err := strconv.Atoi(port); err != nil || n > 65535 {
		return fmt.Errorf("port %s is out of range 0-65535", port)
	}
	switch {
	case host == "":
		return nil
	case strings.HasPrefix(host, "[") && strings.HasSuffix(host, "]"):
		a, err := netip.ParseAddr(host[1 : len(host)-1])
		if err != nil || !a.Is6() {
			return fmt.Errorf("bad IPv6 address %s", yamlx.Quote(host))
		}
		return nil
	case strings.Contains(host, ":"):
		return fmt.Errorf("write an IPv6 address in brackets, as [::1]:9466")
	}
	if strings.Trim(host, "0123456789.") == "" {
		// All digits and dots: an IPv4 address, or a mistake such as
		// 999.1.1.1 that the resolver would take for a name.
		if _, err := netip.ParseAddr(host); err != nil {
			return fmt.Errorf("bad IPv4 address %s", yamlx.Quote(host))
		}
		return nil
	}
	for _, label := range strings.Split(host, ".") {
		if label == "" || len(label) > 63 || strings.Trim(label, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-") != "" {
			return fmt.Errorf("bad host name %s", yamlx.Quote(host))
		}
	}
	return nil
}

func unjoin(err error) []error {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []error
		for _, e := range j.Unwrap() {
			out = append(out, unjoin(e)...)
		}
		return out
	}
	return []error{err}
}

package notify

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/goccy/go-yaml"
)

const fullConfig = `
email:
  - name: ops-mail
    host: smtp.example.com
    tls: starttls
    username: porteiro
    password_file: /etc/porteiro/smtp-password
    from: porteiro@example.com
    to: [ops@example.com, "Night Shift <night@example.com>"]
    filter:
      kinds: [violation, missing]
      min_severity: warning
webhook:
  - url: https://hooks.example.com/porteiro
    secret_env: PORTEIRO_WEBHOOK_SECRET
    headers: {X-Team: ops}
    timeout: 5s
alertmanager:
  - url: http://127.0.0.1:9093
    resend_interval: 2m
    labels: {env: prod}
syslog:
  - facility: auth
    tag: porteiro
exec:
  - name: pager
    command: [/usr/local/bin/page, --team, ops]
    permanent_exit_codes: [2]
    timeout: 30s
`

func TestDecodeAndValidate(t *testing.T) {
	var c ChannelsConfig
	if err := yaml.UnmarshalWithOptions([]byte(fullConfig), &c, yaml.DisallowUnknownField()); err != nil {
		t.Fatal(err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("valid config rejected: %v", err)
	}
	if got := c.Email[0].Filter.MinSeverity; got != SeverityWarning {
		t.Errorf("min_severity = %q", got)
	}
	if got := c.Webhook[0].Timeout; got != 5*time.Second {
		t.Errorf("webhook timeout = %v", got)
	}
	if got := c.Alertmanager[0].ResendInterval; got != 2*time.Minute {
		t.Errorf("resend_interval = %v", got)
	}
	if got := c.Exec[0].Command; len(got) != 3 || got[2] != "ops" {
		t.Errorf("command = %q", got)
	}
}

func TestValidateReportsEveryProblemWithItsPath(t *testing.T) {
	c := ChannelsConfig{
		Email: []EmailConfig{
			{Name: "a", Host: "", From: "not an address", To: nil, TLS: "sometimes", Username: "u"},
			{Name: "a", Host: "h", From: "x@y", To: []string{"z@y"}},
		},
		Webhook:      []WebhookConfig{{URL: "ftp://x"}, {URL: "http://x"}},
		Alertmanager: []AlertmanagerConfig{{URL: "http://am", Labels: map[string]string{"severity": "x", "0bad": "y"}, ResendInterval: time.Millisecond}},
		Syslog:       []SyslogConfig{{Network: "udp", Facility: "local9", Format: "json", Tag: "has space"}},
		Exec:         []ExecConfig{{Command: nil, PermanentExitCodes: []int{0, 300}, Filter: Filter{Kinds: []string{"opened", "exploded"}, MinSeverity: "loud"}}},
	}
	err := c.Validate()
	if err == nil {
		t.Fatal("invalid config accepted")
	}
	want := []string{
		"email[0].host:", "email[0].from:", "email[0].to:", "email[0].tls:", "email[0].password_file:",
		"email[1].name: channel name \"a\" is already used by email[0]",
		"webhook[0].name: a name is required", "webhook[0].url:",
		"alertmanager[0].labels: label \"severity\" is set by porteiro", "alertmanager[0].labels: invalid label name \"0bad\"",
		"alertmanager[0].resend_interval:",
		"syslog[0].address:", "syslog[0].facility:", "syslog[0].format:", "syslog[0].tag:",
		"exec[0].command:", "exec[0].permanent_exit_codes: exit code 0", "exec[0].permanent_exit_codes: exit code 300",
		"exec[0].filter.kinds[1]: unknown event kind \"exploded\"", "exec[0].filter.min_severity:",
	}
	for _, w := range want {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error lacks %q:\n%v", w, err)
		}
	}
	var fe *FieldError
	if !errors.As(err, &fe) || fe.Path == "" {
		t.Errorf("errors.As(*FieldError) failed on %v", err)
	}
}

func TestBuildReadsSecretsAndFailsClearly(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "pw")
	if err := os.WriteFile(pw, []byte("s3cret-value\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := ChannelsConfig{
		Email:   []EmailConfig{{Host: "127.0.0.1", From: "a@b", To: []string{"c@d"}, Username: "u", PasswordFile: pw}},
		Webhook: []WebhookConfig{{URL: "http://127.0.0.1:1/x", SecretEnv: "PORTEIRO_TEST_UNSET_SECRET"}},
	}
	_, err := Build(c, "web1")
	if err == nil || !strings.HasPrefix(err.Error(), "webhook[0].secret_env: ") || !strings.Contains(err.Error(), "PORTEIRO_TEST_UNSET_SECRET") {
		t.Fatalf("Build with a missing secret: %v", err)
	}
	t.Setenv("PORTEIRO_TEST_SECRET", "k")
	c.Webhook[0].SecretEnv = "PORTEIRO_TEST_SECRET"
	c.Syslog = []SyslogConfig{{Name: "local"}}
	c.Exec = []ExecConfig{{Command: []string{"true"}}}
	c.Alertmanager = []AlertmanagerConfig{{URL: "http://127.0.0.1:9093", ResendInterval: 30 * time.Second}}
	sinks, err := Build(c, "web1")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, s := range sinks {
		names = append(names, s.Name())
	}
	if got := strings.Join(names, ","); got != "email,webhook,alertmanager,local,exec" {
		t.Errorf("sink names = %s", got)
	}
	if got := sinks[0].(*emailSink).port; got != 587 {
		t.Errorf("default starttls port = %d, want 587", got)
	}
	if RefreshInterval(sinks[2]) != 30*time.Second || RefreshInterval(sinks[0]) != 0 {
		t.Errorf("RefreshInterval: alertmanager %v, email %v", RefreshInterval(sinks[2]), RefreshInterval(sinks[0]))
	}
	if _, ok := sinks[2].(Refresher); !ok {
		t.Error("the alertmanager sink is not a Refresher")
	}

	// A bad CA file is reported with its path, not silently ignored.
	bad := filepath.Join(dir, "ca.pem")
	os.WriteFile(bad, []byte("not pem"), 0o600)
	_, err = Build(ChannelsConfig{Webhook: []WebhookConfig{{URL: "https://x", CAFile: bad}}}, "h")
	if err == nil || !strings.HasPrefix(err.Error(), "webhook[0].ca_file: ") || !strings.Contains(err.Error(), bad) {
		t.Errorf("bad ca_file: %v", err)
	}
}

func TestFilter(t *testing.T) {
	a := Alert{Kind: "opened", Severity: SeverityWarning}
	cases := []struct {
		f    Filter
		want bool
	}{
		{Filter{}, true},
		{Filter{MinSeverity: SeverityInfo}, true},
		{Filter{MinSeverity: SeverityWarning}, true},
		{Filter{MinSeverity: SeverityCritical}, false},
		{Filter{Kinds: []string{"violation"}}, false},
		{Filter{Kinds: []string{"violation", "opened"}}, true},
		{Filter{Kinds: []string{"opened"}, MinSeverity: SeverityCritical}, false},
	}
	for _, c := range cases {
		if got := c.f.Accepts(a); got != c.want {
			t.Errorf("%+v.Accepts(%+v) = %v, want %v", c.f, a, got, c.want)
		}
	}
	// An alert without a severity counts as info.
	if (Filter{MinSeverity: SeverityWarning}).Accepts(Alert{Kind: "opened"}) {
		t.Error("severity-less alert passed a warning filter")
	}
	if !(Filter{MinSeverity: SeverityCritical}).Accepts(Alert{Kind: "opened", Severity: "bogus"}) {
		t.Error("an alert of unknown severity was dropped")
	}
	if _, err := ParseSeverity("loud"); err == nil {
		t.Error("ParseSeverity accepted loud")
	}
	if s, err := ParseSeverity("critical"); err != nil || s != SeverityCritical {
		t.Errorf("ParseSeverity(critical) = %q, %v", s, err)
	}
}

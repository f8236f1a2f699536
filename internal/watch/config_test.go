package watch

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConfigDefaults(t *testing.T) {
	for _, src := range []string{"", "# nothing\n", "{}\n"} {
		c, err := ParseConfig("porteiro.yaml", []byte(src))
		if err != nil {
			t.Fatalf("%q: %v", src, err)
		}
		if c.Interval() != 2*time.Second || c.Grace() != 10*time.Second || c.Burst() != 5*time.Second ||
			c.StateDirPath() != "/var/lib/porteiro" || c.MaxAge() != 30*24*time.Hour || c.MaxEvents() != 100000 ||
			c.Listen() != "127.0.0.1:9466" || c.RetryMax() != 5*time.Minute || c.ShutdownTimeout() != 10*time.Second {
			t.Errorf("%q: defaults wrong: %+v", src, c)
		}
		if p, explicit := c.PolicyPath(); p != "/etc/porteiro/policy.yaml" || explicit {
			t.Errorf("policy = %q %v", p, explicit)
		}
		if c.HostName() == "" {
			t.Error("empty host name")
		}
	}
	var zero Config
	if zero.Interval() != DefaultInterval || zero.Listen() != DefaultListen {
		t.Error("the zero Config does not give the defaults")
	}
}

func TestConfigFull(t *testing.T) {
	src := `
interval: 500ms
grace: 3s
burst: 1s
flap_window: 2m
policy: /etc/porteiro/strict.yaml
state_dir: /srv/porteiro
retention:
  max_age: 7d
  max_events: 500
http:
  listen: ""
log:
  format: json
  level: debug
retry:
  initial: 100ms
  max: 2s
shutdown_timeout: 3s
host: web-1
channels:
  email:
    - host: 127.0.0.1
      port: 1025
      from: porteiro@example.com
      to: [ops@example.com]
`
	c, err := ParseConfig("p.yaml", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if c.Interval() != 500*time.Millisecond || c.Grace() != 3*time.Second || c.Burst() != time.Second ||
		c.FlapWindow() != 2*time.Minute || c.StateDirPath() != "/srv/porteiro" || c.MaxAge() != 7*24*time.Hour ||
		c.MaxEvents() != 500 || c.Listen() != "" || c.Log.Format != "json" || c.RetryInitial() != 100*time.Millisecond ||
		c.RetryMax() != 2*time.Second || c.ShutdownTimeout() != 3*time.Second || c.HostName() != "web-1" {
		t.Errorf("parsed %+v", c)
	}
	if p, explicit := c.PolicyPath(); p != "/etc/porteiro/strict.yaml" || !explicit {
		t.Errorf("policy = %q %v", p, explicit)
	}
	if len(c.Channels.Email) != 1 || c.Channels.Email[0].Port != 1025 {
		t.Errorf("channels = %+v", c.Channels)
	}
}

func TestConfigErrorsHavePositions(t *testing.T) {
	for _, tc := range []struct{ src, want string }{
		{"interval: 2s\nintreval: 3s\n", `c.yaml:2:1: unknown field "intreval"`},
		{"interval: 100ms\n", "c.yaml:1:11: interval: 100ms is too short: the minimum is 250ms"},
		{"grace: soon\n", `c.yaml:1:8: grace: invalid duration "soon"`},
		{"retention:\n  max_age: 3 days\n", `c.yaml:2:12: retention.max_age: invalid duration "3 days"`},
		{"retention:\n  max_events: -1\n", "c.yaml:2:15: retention.max_events"},
		{"log:\n  format: xml\n", `c.yaml:2:11: log.format: unknown format "xml"`},
		{"http:\n  listen: localhost\n", `c.yaml:2:11: http.listen: "localhost" is not host:port`},
		{"interval: [\n", "c.yaml:1:11:"},
		{"channels:\n  email:\n    - host: \"\"\n      to: [a@b.c]\n", "c.yaml:3:"},
		{"channels:\n  webhook:\n    - url: http://x\n      timeout: 5 parsecs\n", "c.yaml:4:16:"},
	} {
		_, err := ParseConfig("c.yaml", []byte(tc.src))
		if err == nil {
			t.Errorf("%q: accepted", tc.src)
			continue
		}
		if !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q:\n got  %v\n want %s", tc.src, err, tc.want)
		}
	}
}

func TestConfigSeveralErrors(t *testing.T) {
	_, err := ParseConfig("c.yaml", []byte("interval: 1ms\ngrace: x\n"))
	if err == nil || !strings.Contains(err.Error(), "c.yaml:1:") || !strings.Contains(err.Error(), "c.yaml:2:") {
		t.Fatalf("want both errors, got %v", err)
	}
}

func TestParseDuration(t *testing.T) {
	for in, want := range map[string]time.Duration{
		"2s": 2 * time.Second, "30d": 30 * 24 * time.Hour, "1d12h": 36 * time.Hour, "250ms": 250 * time.Millisecond, "0": 0,
	} {
		got, err := ParseDuration(in)
		if err != nil || got != want {
			t.Errorf("ParseDuration(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "d", "3 days", "1x", "99999999d"} {
		if _, err := ParseDuration(in); err == nil {
			t.Errorf("ParseDuration(%q) accepted", in)
		}
	}
}

func TestLoadMissingPolicy(t *testing.T) {
	dir := t.TempDir()
	// An explicit policy must exist.
	p := filepath.Join(dir, "c.yaml")
	if err := os.WriteFile(p, []byte("policy: "+filepath.Join(dir, "nope.yaml")+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(p); err == nil || !strings.Contains(err.Error(), "nope.yaml") {
		t.Fatalf("explicit missing policy: %v", err)
	}
	// "policy: ''" means none.
	if err := os.WriteFile(p, []byte("policy: ''\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rt, err := Load(p)
	if err != nil || rt.Policy != nil {
		t.Fatalf("no policy: %+v %v", rt, err)
	}
}

func FuzzParseConfig(f *testing.F) {
	f.Add([]byte("interval: 2s\ngrace: 10s\n"))
	f.Add([]byte("retention:\n  max_age: 30d\n  max_events: 10\nhttp:\n  listen: ''\n"))
	f.Add([]byte("channels:\n  email:\n    - host: h\n      to: [a@b.c]\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := ParseConfig("f.yaml", b)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "f.yaml") {
				t.Fatalf("error without the file name: %v", err)
			}
			return
		}
		if c.Interval() < MinInterval {
			t.Fatalf("accepted interval %v", c.Interval())
		}
		if c.MaxEvents() < 0 {
			t.Fatalf("accepted max_events %d", c.MaxEvents())
		}
	})
}

func FuzzParseDuration(f *testing.F) {
	for _, s := range []string{"2s", "30d", "1d12h", "", "d", "-5m", "9999999999d"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDuration(s)
		if err == nil && strings.HasSuffix(s, "d") && d < 0 {
			t.Fatalf("ParseDuration(%q) = %v", s, d)
		}
	})
}

func FuzzParseFilter(f *testing.F) {
	f.Add("24h", "22", "opened", "10")
	f.Add("2026-01-02T03:04:05Z", "", "", "")
	f.Add("x", "0", "nope", "-1")
	now := time.Unix(1_700_000_000, 0)
	f.Fuzz(func(t *testing.T, since, port, kind, limit string) {
		flt, err := ParseFilter(since, port, kind, limit, now)
		if err != nil {
			return
		}
		if flt.Port < 0 || flt.Port > 65535 || flt.Limit < 0 {
			t.Fatalf("accepted %+v", flt)
		}
	})
}

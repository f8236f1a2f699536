package watch

import (
	"strings"
	"testing"
	"time"
)

func TestConfigAuditInterval(t *testing.T) {
	for src, want := range map[string]time.Duration{
		"":                      0,
		"audit_interval: 0\n":   0,
		"audit_interval: 1h\n":  time.Hour,
		"audit_interval: 1m\n":  time.Minute,
		"audit_interval: 1d\n":  24 * time.Hour,
		"audit_interval: 90s\n": 90 * time.Second,
	} {
		c, err := ParseConfig("porteiro.yaml", []byte(src))
		if err != nil {
			t.Fatalf("%q: %v", src, err)
		}
		if got := c.AuditInterval(); got != want {
			t.Errorf("%q: AuditInterval() = %s, want %s", src, got, want)
		}
	}
	for src, want := range map[string]string{
		"interval: 1s\naudit_interval: 30s\n": "porteiro.yaml:2:17: audit_interval: 30s is too short: the minimum is 1m0s (0 turns scheduled audits off)",
		"audit_interval: -1h\n":               "porteiro.yaml:1:17: audit_interval: -1h0m0s is too short",
		"audit_interval: often\n":             `porteiro.yaml:1:17: audit_interval: invalid duration "often"`,
	} {
		_, err := ParseConfig("porteiro.yaml", []byte(src))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: err = %v, want %q", src, err, want)
		}
	}
}

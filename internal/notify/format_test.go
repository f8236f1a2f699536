package notify

import (
	"strconv"
	"strings"
	"testing"
)

func TestParseListener(t *testing.T) {
	cases := []struct {
		in   string
		want string // "proto addr port" or "" for invalid
	}{
		{"tcp 0.0.0.0:4444", "tcp 0.0.0.0 4444"},
		{"udp [::1]:53", "udp [::1] 53"},
		{"tcp *:80", "tcp * 80"},
		{"tcp [fe80::1%eth0]:22", "tcp [fe80::1%eth0] 22"},
		{"sctp 0.0.0.0:1", ""},
		{"tcp 0.0.0.0:0", ""},
		{"tcp 0.0.0.0:65536", ""},
		{"tcp nothost:80", ""},
		{"tcp0.0.0.0:80", ""},
		{"", ""},
	}
	for _, c := range cases {
		l := parseListener(c.in)
		got := ""
		if l.ok {
			got = string(l.proto) + " " + l.addr + " " + strconv.Itoa(int(l.port))
		}
		if got != c.want {
			t.Errorf("parseListener(%q) = %q, want %q", c.in, got, c.want)
		}
	}
}

func TestOneLine(t *testing.T) {
	cases := map[string]string{
		"plain text":       "plain text",
		"evil\r\nBcc: x@y": `evil\r\nBcc: x@y`,
		"tab\there":        "tab here",
		"bad\xffutf8":      `bad\xffutf8`,
		"sep\u2028line":    `sep\u2028line`,
		"ünïcode (ok) [x]": "ünïcode (ok) [x]",
	}
	for in, want := range cases {
		if got := oneLine(in); got != want {
			t.Errorf("oneLine(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestSubjectAndBody(t *testing.T) {
	a := sampleAlert(t, "ev-1", 4444)
	subj := subjectLine("[porteiro]", "web1", []Alert{a})
	if subj != "[porteiro] web1: CRITICAL unexpected listener tcp 0.0.0.0:4444 held by nc" {
		t.Errorf("subject = %q", subj)
	}
	body := bodyText("web1", []Alert{a})
	for _, want := range []string{
		"porteiro on web1 reports:",
		"VIOLATION [critical] unexpected listener tcp 0.0.0.0:4444 held by nc",
		"Port:      4444/tcp on 0.0.0.0 (all interfaces)",
		"Process:   nc (pid 31337, unit session-4.scope)",
		"User:      mallory (uid 1001)",
		"Command:   nc -lk -p 4444",
		"Exe:       /usr/bin/nc.openbsd",
		`Policy:    rule "default-deny": nothing else may listen on all interfaces`,
		"Finding:   unexpected",
		"Event id:  ev-1",
		"porteiro who 4444/tcp",
		"porteiro events --since 24h --port 4444",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("body lacks %q:\n%s", want, body)
		}
	}

	b := sampleAlert(t, "ev-2", 53)
	b.Kind, b.Severity, b.Summary, b.Finding = "opened", SeverityInfo, "", ""
	b.Socket.Proto = "udp"
	b.Listener = "udp 0.0.0.0:53"
	batch := []Alert{a, b, a}
	subj = subjectLine("[porteiro]", "web1", batch)
	if !strings.HasPrefix(subj, "[porteiro] web1: 3 alerts (1 opened, 2 violation): ") {
		t.Errorf("batch subject = %q", subj)
	}
	body = bodyText("web1", batch)
	for _, want := range []string{"reports 3 alerts", "\n1. VIOLATION", "\n2. OPENED [info] opened udp 0.0.0.0:53 nc", "porteiro who 53/udp", "\n3. VIOLATION"} {
		if !strings.Contains(body, want) {
			t.Errorf("batch body lacks %q:\n%s", want, body)
		}
	}
}

func TestSubjectCannotInjectHeaders(t *testing.T) {
	a := sampleAlert(t, "x", 1)
	a.Summary = "owned\r\nBcc: victim@example.com"
	s := subjectLine("[p]", "h", []Alert{a})
	if strings.ContainsAny(s, "\r\n") {
		t.Fatalf("subject holds a line break: %q", s)
	}
	long := sampleAlert(t, "x", 1)
	long.Summary = strings.Repeat("é", 500)
	if s := subjectLine("[p]", "h", []Alert{long}); len(s) > 200 || !strings.HasSuffix(s, "...") {
		t.Errorf("long subject not cut: %d bytes", len(s))
	}
}

func TestNextStepByFinding(t *testing.T) {
	a := sampleAlert(t, "x", 8080)
	for finding, want := range map[string]string{
		"unexpected":  "add a rule for it to the policy",
		"too_exposed": "Bind it to the allowed address",
		"wrong_owner": "A process other than the one the policy names holds 8080/tcp",
		"missing":     "A listener the policy requires is not there",
	} {
		a.Finding = finding
		if got := nextStep(a, listenerOf(a)); !strings.Contains(got, want) {
			t.Errorf("nextStep(%s) = %q, want it to contain %q", finding, got, want)
		}
	}
	a.Detail = "call Bob"
	if got := nextStep(a, listenerOf(a)); got != "call Bob" {
		t.Errorf("Detail not used: %q", got)
	}
}

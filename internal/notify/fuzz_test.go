package notify

import (
	"fmt"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/goccy/go-yaml"
)

// FuzzParseListener: any input either fails or yields a listener whose
// formatted form parses back to the same thing.
func FuzzParseListener(f *testing.F) {
	for _, s := range []string{"tcp 0.0.0.0:4444", "udp [::1]:53", "tcp *:80", "tcp [fe80::1%eth0]:22", "tcp :80", "udp 1.2.3.4:"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		l := parseListener(s)
		if !l.ok {
			return
		}
		if l.port == 0 || (l.proto != "tcp" && l.proto != "udp") {
			t.Fatalf("parseListener(%q) = %+v", s, l)
		}
		again := parseListener(string(l.proto) + " " + l.addr + ":" + strconv.Itoa(int(l.port)))
		if again != l {
			t.Fatalf("round trip of %q: %+v != %+v", s, again, l)
		}
		if who := whoCommand(l); !strings.HasPrefix(who, "porteiro who ") || strings.ContainsAny(who, "\r\n") {
			t.Fatalf("who line %q", who)
		}
	})
}

// FuzzVerifySignature: a header never verifies unless it is the HMAC of
// the body, and Sign's own output always does.
func FuzzVerifySignature(f *testing.F) {
	f.Add([]byte("k"), []byte(`{"version":1}`), "sha256=00")
	f.Add([]byte(""), []byte(""), "sha256=b613679a0814d9ec772f95d778c35fc5ff1697c493715653c6c712144292c5ad")
	f.Add([]byte("secret"), []byte("body"), "SHA256=zz")
	f.Fuzz(func(t *testing.T, secret, body []byte, header string) {
		good := Sign(secret, body)
		if !VerifySignature(secret, body, good) {
			t.Fatal("Sign output does not verify")
		}
		if VerifySignature(secret, body, header) && !strings.EqualFold(strings.TrimSpace(header), good) {
			t.Fatalf("header %q verified but differs from %q", header, good)
		}
	})
}

// FuzzOneLine: the output is valid UTF-8 on one line, and clean input is
// left alone.
func FuzzOneLine(f *testing.F) {
	for _, s := range []string{"nc -l 4444", "a\r\nBcc: x", "\xff\xfe", "tab\t", "\u2028", "é"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := oneLine(s)
		if strings.ContainsAny(out, "\r\n\u2028\u2029\x00") || !utf8.ValidString(out) {
			t.Fatalf("oneLine(%q) = %q", s, out)
		}
		if out != s && utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool {
			return r < 0x20 || r == 0x7f || r >= 0x80 && r < 0xa0 || r == '\u2028' || r == '\u2029'
		}) {
			t.Fatalf("clean input %q changed to %q", s, out)
		}
	})
}

// FuzzRender: whatever a process calls itself, the email subject, the
// syslog record and the Alertmanager labels stay single-line and bounded.
func FuzzRender(f *testing.F) {
	f.Add("nc", "nc -l 4444", "tcp 0.0.0.0:4444", "summary", "ev-1")
	f.Add("a\nb", "x\r\nBcc: y", "udp [::1]:53", "", "id\n2")
	f.Add("", "", "", strings.Repeat("é", 300), "")
	f.Fuzz(func(t *testing.T, name, cmdline, listener, summary, id string) {
		a := sampleAlert(t, id, 4444)
		a.Socket.Processes[0].Name = name
		a.Socket.Processes[0].Cmdline = strings.Fields(cmdline)
		a.Listener, a.Summary = listener, summary
		subj := subjectLine("[porteiro]", "h", []Alert{a, a})
		if strings.ContainsAny(subj, "\r\n") || len(subj) > 200 {
			t.Fatalf("subject %q", subj)
		}
		s := newSyslogSink(SyslogConfig{}, "h")
		rec := s.frame(a)
		if strings.ContainsAny(string(rec), "\r\n") || len(rec) > syslogMaxLine {
			t.Fatalf("syslog record %q", rec)
		}
		for k, v := range amLabels(a, nil) {
			if strings.ContainsAny(v, "\r\n") || !utf8.ValidString(v) || v == "" {
				t.Fatalf("label %s=%q", k, v)
			}
		}
		body := bodyText("h", []Alert{a})
		if !strings.Contains(body, "Event id:") && id != "" {
			t.Fatalf("body lacks the event id:\n%s", body)
		}
	})
}

// FuzzChannelsConfig: decoding and validating any YAML never panics, and
// a config that validates also builds (secrets and files aside).
func FuzzChannelsConfig(f *testing.F) {
	f.Add([]byte(fullConfig))
	f.Add([]byte("syslog:\n  - {}\nexec:\n  - command: [true]\n"))
	f.Add([]byte("email:\n  - {host: h, from: a@b, to: [c@d], tls: none}\n"))
	f.Add([]byte("webhook: [{url: 'http://x', timeout: -1s}]"))
	f.Add([]byte("webhook: [{url: 'http://x', headers: {X-A: \"a\\nb\"}}]"))
	f.Add([]byte("exec:\n  - command: [bin/page]\n    dir: tmp\n"))
	f.Add([]byte("alertmanager: [{url: 'http://user:S3cret@h:99999'}]"))
	f.Fuzz(func(t *testing.T, data []byte) {
		var c ChannelsConfig
		if err := unmarshalNoPanic(data, &c); err != nil {
			return
		}
		if err := c.Validate(); err != nil {
			return
		}
		for i := range c.Email {
			c.Email[i].PasswordFile, c.Email[i].PasswordEnv, c.Email[i].CAFile = "", "", ""
			c.Email[i].Username = ""
		}
		for i := range c.Webhook {
			c.Webhook[i].SecretFile, c.Webhook[i].SecretEnv, c.Webhook[i].CAFile = "", "", ""
		}
		for i := range c.Alertmanager {
			c.Alertmanager[i].PasswordFile, c.Alertmanager[i].PasswordEnv, c.Alertmanager[i].CAFile = "", "", ""
			c.Alertmanager[i].Username = ""
		}
		for i := range c.Exec {
			c.Exec[i].Command[0], c.Exec[i].Dir = "/bin/sh", ""
		}
		if _, err := Build(c, "h"); err != nil {
			t.Fatalf("valid config does not build: %v\n%s", err, data)
		}
	})
}

// unmarshalNoPanic turns a panic inside goccy/go-yaml v1.19.2 into an
// error: some malformed documents (testdata/fuzz/FuzzChannelsConfig)
// crash its decoder, and this target tests porteiro's code, not the
// decoder's. Config loaders must recover the same way.
func unmarshalNoPanic(data []byte, v any) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("yaml decoder panicked: %v", r)
		}
	}()
	return yaml.Unmarshal(data, v)
}

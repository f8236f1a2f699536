package notify

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
)

// Config that passed validation and then failed at every delivery, or
// printed a password (issue 10, items 7 and 12).
func TestValidateRefuses(t *testing.T) {
	for _, tc := range []struct {
		name string
		c    ChannelsConfig
		want string
	}{
		{"header value with a newline", ChannelsConfig{Webhook: []WebhookConfig{{URL: "http://h/", Headers: map[string]string{"X-Team": "ops\r\nX-Evil: 1"}}}},
			"webhook[0].headers.X-Team: header X-Team: the value must be one line"},
		{"header value with a NUL", ChannelsConfig{Webhook: []WebhookConfig{{URL: "http://h/", Headers: map[string]string{"X-A": "a\x00"}}}},
			"webhook[0].headers.X-A:"},
		{"relative command", ChannelsConfig{Exec: []ExecConfig{{Command: []string{"bin/page"}}}},
			`exec[0].command: command "bin/page" is a relative path`},
		{"relative dir", ChannelsConfig{Exec: []ExecConfig{{Command: []string{"/bin/sh"}, Dir: "tmp"}}},
			`exec[0].dir: dir "tmp" is a relative path`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestInvalidURLHidesThePassword(t *testing.T) {
	for _, u := range []string{"http://user:S3cret@host:99999/", "http://user:S3cret@host:12ab/", "http://user:S3cret@ho st/", "http://user:S3cret@[::1/"} {
		err := (&ChannelsConfig{Alertmanager: []AlertmanagerConfig{{URL: u}}}).Validate()
		if err == nil {
			t.Fatalf("%s accepted", u)
		}
		if strings.Contains(err.Error(), "S3cret") {
			t.Errorf("the error shows the password: %v", err)
		}
	}
}

func TestBuildChecksExecFiles(t *testing.T) {
	dir := t.TempDir()
	notExec := filepath.Join(dir, "script")
	os.WriteFile(notExec, []byte("#!/bin/sh\n"), 0o644)
	file := filepath.Join(dir, "file")
	os.WriteFile(file, nil, 0o644)
	for _, tc := range []struct {
		x    ExecConfig
		want string
	}{
		{ExecConfig{Command: []string{filepath.Join(dir, "missing")}}, "exec[0].command: command"},
		{ExecConfig{Command: []string{"porteiro-no-such-command"}}, `exec[0].command: command "porteiro-no-such-command" is not found in /usr/local/sbin:`},
		{ExecConfig{Command: []string{notExec}}, "is not executable"},
		{ExecConfig{Command: []string{dir}}, "is not a regular file"},
		{ExecConfig{Command: []string{"/bin/sh"}, Dir: filepath.Join(dir, "nodir")}, "exec[0].dir: dir: stat"},
		{ExecConfig{Command: []string{"/bin/sh"}, Dir: file}, "exec[0].dir: dir " + `"` + file + `" is not a directory`},
	} {
		_, err := Build(ChannelsConfig{Exec: []ExecConfig{tc.x}}, "h")
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Build(%+v) = %v, want %q", tc.x, err, tc.want)
		}
	}
	// A name alone is looked up in the PATH the command runs with.
	if _, err := Build(ChannelsConfig{Exec: []ExecConfig{{Command: []string{"sh"}, Dir: dir}}}, "h"); err != nil {
		t.Errorf("sh: %v", err)
	}
}

// A header that net/http refuses can only fail again: the delivery is a
// permanent failure, not one retried forever.
func TestWebhookBadHeaderIsPermanent(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	s := newWebhook(t, WebhookConfig{URL: srv.URL})
	// Validation refuses such a header; this is the fault it guards
	// against, injected past it.
	s.(*webhookSink).header.Set("X-Team", "ops\nX-Evil: 1")
	err := s.Send(context.Background(), []Alert{sampleAlert(t, "e", 1)})
	if err == nil || !IsPermanent(err) || !strings.Contains(err.Error(), "header X-Team") {
		t.Fatalf("err = %v, permanent = %v", err, IsPermanent(err))
	}
	if hits.Load() != 0 {
		t.Error("the request was sent")
	}
}

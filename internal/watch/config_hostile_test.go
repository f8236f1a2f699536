package watch

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/porteiro/porteiro/internal/yamlx/yamlxtest"
)

// Config that was accepted silently (issue 10, item 12), or printed a
// password (item 7).
func TestConfigRefusesSilentlyAcceptedInput(t *testing.T) {
	file := filepath.Join(t.TempDir(), "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ name, src, want string }{
		{"second document", "interval: 2s\n---\ninterval: 1h\n", "c.yaml:3:1: a config is one YAML document; this is a second one"},
		{"fractional max_events", "retention:\n  max_events: 1.5\n", `c.yaml:2:15: retention.max_events: "1.5" is not a whole number`},
		{"hex max_events", "retention:\n  max_events: 0x10\n", `c.yaml:2:15: retention.max_events: "0x10" is not a whole number`},
		{"fractional email port", "channels:\n  email:\n    - {host: h, port: 25.5, from: a@b.c, to: [d@e.f]}\n", "c.yaml:3:23: channels.email[0].port: \"25.5\" is not a whole number"},
		{"state_dir is a file", "state_dir: " + file + "\n", "c.yaml:1:12: state_dir: " + `"` + file[:min(len(file), 40)]},
		{"listen on a bad IPv4", "http:\n  listen: 999.1.1.1:9466\n", `c.yaml:2:11: http.listen: "999.1.1.1:9466" is not host:port: bad IPv4 address "999.1.1.1"`},
		{"listen with a bad port", "http:\n  listen: \"127.0.0.1:+1\"\n", `c.yaml:2:11: http.listen: "127.0.0.1:+1" is not host:port: bad port "+1"`},
		{"listen on a bad name", "http:\n  listen: \"bad_name!:9466\"\n", `c.yaml:2:11: http.listen: "bad_name!:9466" is not host:port: bad host name "bad_name!"`},
		{"listen on bare IPv6", "http:\n  listen: \"::1:9466\"\n", "c.yaml:2:11: http.listen: \"::1:9466\" is not host:port: write an IPv6 address in brackets"},
		{"webhook header with a newline", "channels:\n  webhook:\n    - url: http://h/\n      headers:\n        X-Team: \"ops\\nX-Evil: 1\"\n", "c.yaml:5:17: channels.webhook[0].headers.X-Team: header X-Team: the value must be one line"},
		{"relative exec command", "channels:\n  exec:\n    - command: [bin/page]\n", `c.yaml:3:16: channels.exec[0].command: command "bin/page" is a relative path`},
		{"URL with a password", "channels:\n  alertmanager:\n    - url: http://user:S3cret@h:12ab/\n", "c.yaml:3:12: channels.alertmanager[0].url: invalid url"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseConfig("c.yaml", []byte(tc.src))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("ParseConfig(%q):\n got  %v\n want %s...", tc.src, err, tc.want)
			}
			if strings.Contains(err.Error(), "S3cret") {
				t.Errorf("the error shows the password: %v", err)
			}
		})
	}
	for _, src := range []string{
		"http:\n  listen: \"[::1]:9466\"\n", "http:\n  listen: \"localhost:9466\"\n", "http:\n  listen: \":0\"\n",
		"state_dir: " + t.TempDir() + "\n", "state_dir: /nonexistent/porteiro\n", "retention:\n  max_events: 0\n",
	} {
		if _, err := ParseConfig("c.yaml", []byte(src)); err != nil {
			t.Errorf("ParseConfig(%q): %v", src, err)
		}
	}
}

// Channel files are checked when the config is loaded (config validate,
// start, reload), with the position of the field.
func TestLoadChecksExecFiles(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "porteiro.yaml")
	src := "policy: \"\"\nchannels:\n  exec:\n    - command: [" + filepath.Join(dir, "missing") + "]\n      dir: " + filepath.Join(dir, "nodir") + "\n"
	os.WriteFile(cfg, []byte(src), 0o600)
	_, err := Load(cfg)
	if err == nil || !strings.HasPrefix(err.Error(), cfg+":4:16: channels.exec[0].command: command") {
		t.Fatalf("missing command: %v", err)
	}
	src = "policy: \"\"\nchannels:\n  exec:\n    - command: [/bin/sh]\n      dir: " + filepath.Join(dir, "nodir") + "\n"
	os.WriteFile(cfg, []byte(src), 0o600)
	if _, err := Load(cfg); err == nil || !strings.HasPrefix(err.Error(), cfg+":5:12: channels.exec[0].dir:") {
		t.Fatalf("missing dir: %v", err)
	}
}

// The bombs of issue 10, item 1, against the config: each answers within
// a second and 100 MB, at a position.
func TestLoadConfigRefusesBombs(t *testing.T) {
	dir := t.TempDir()
	fifo := yamlxtest.Fifo(t, dir)
	for _, tc := range []struct{ name, path, want string }{
		// The 682-byte config of the issue: 8 levels of 9 aliases.
		{"aliases", yamlxtest.Write(t, dir, "a.yaml", yamlxtest.AliasBomb("", "host", 8)), "a.yaml:5:"},
		{"brackets", yamlxtest.Write(t, dir, "b.yaml", yamlxtest.NestedBrackets("host", 100000)), "b.yaml:1:70: nested more than 64 levels"},
		{"mappings", yamlxtest.Write(t, dir, "m.yaml", yamlxtest.NestedMappings("channels", 100000)), "m.yaml:1:"},
		{"/dev/zero", "/dev/zero", "/dev/zero: not a regular file (a character device)"},
		{"fifo", fifo, fifo + ": not a regular file (a FIFO)"},
		{"directory", dir, dir + ": not a regular file (a directory)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			yamlxtest.Bounded(t, "LoadConfig", func() { _, err = LoadConfig(tc.path) })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("LoadConfig = %v, want %q", err, tc.want)
			}
			var ce *ConfigError
			if !errors.As(err, &ce) {
				t.Errorf("error %T is not a ConfigError", err)
			}
		})
	}
}

// A reload (SIGHUP) loads through Load: the 8-level alias bomb took 33 s
// there.
func TestReloadRefusesAliasBomb(t *testing.T) {
	path := yamlxtest.Write(t, t.TempDir(), "porteiro.yaml", yamlxtest.AliasBomb("policy: \"\"\n", "host", 8))
	var err error
	yamlxtest.Bounded(t, "Load", func() { _, err = Load(path) })
	if err == nil || !strings.HasPrefix(err.Error(), path+":6:") {
		t.Fatalf("Load = %v", err)
	}
}

func TestLocateRedactsURLs(t *testing.T) {
	c, err := ParseConfig("c.yaml", []byte("host: h\n"))
	if err != nil {
		t.Fatal(err)
	}
	got := c.Locate(errors.New(`dial "http://u:S3cret@h/": refused`))
	if strings.Contains(got.Error(), "S3cret") {
		t.Errorf("Locate = %v", got)
	}
}

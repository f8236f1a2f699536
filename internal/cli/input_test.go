package cli

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/porteiro/porteiro/internal/yamlx/yamlxtest"
)

// Command lines that were accepted silently (issue 10, item 12): each is a
// one-line error and exit 2, before anything is scanned.
func TestBadCommandLines(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"list", "-p", ""}, "--port: empty value"},
		{[]string{"-p", ""}, "--port: empty value"},
		{[]string{"list", "--user", ""}, "--user: empty value"},
		{[]string{"list", "--user", ","}, "--user: empty user name"},
		{[]string{"list", "--state", ""}, "--state: empty value"},
		{[]string{"list", "--pid="}, "--pid: empty value"},
		{[]string{"list", "--pid", "+5"}, `--pid: "+5" is not a process id`},
		{[]string{"list", "-p", "22,"}, "--port: empty item in port list"},
		{[]string{"list", "-p", ",22"}, "--port: empty item in port list"},
		{[]string{"list", "-p", "0x16"}, `--port: bad port "0x16"`},
		{[]string{"pid", "+5"}, `"+5" is not a process id`},
		{[]string{"pid", "0x10"}, `"0x10" is not a process id`},
		{[]string{"pid", ""}, `"" is not a process id`},
		{[]string{"who", ":22"}, "missing address before ':'"},
		{[]string{"who", "[fe80::1%eth0]:22"}, `zone "eth0"`},
		{[]string{"who", "+22"}, `bad port "+22"`},
		{[]string{"who", "22/sctp"}, "unknown protocol"},
		{[]string{"policy", "validate", "-p", ""}, "empty policy file name"},
		{[]string{"policy", "validate", ""}, "empty policy file name"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			out, errs, code := runCLI(t, tc.args...)
			if code != ExitUsage {
				t.Fatalf("exit %d, want 2; stdout %q stderr %q", code, out, errs)
			}
			if !strings.HasPrefix(errs, "porteiro: ") || !strings.Contains(errs, tc.want) {
				t.Errorf("stderr %q, want it to contain %q", errs, tc.want)
			}
			if out != "" {
				t.Errorf("stdout %q: nothing should be listed", out)
			}
		})
	}
}

// "who ssh/udp" resolves, though Debian's /etc/services lists ssh for tcp
// only: the exit code is 0 or 1 (found or not), never 2.
func TestWhoServiceForTheOtherProtocol(t *testing.T) {
	_, errs, code := runCLI(t, "who", "ssh/udp")
	if code == ExitUsage || strings.Contains(errs, "not in /etc/services") {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
}

// Broken and hostile policy files through the command line: exit 2, with
// FILE:LINE:COL, within a second and 100 MB (issue 10, items 1 and 12).
func TestPolicyValidateHostileFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, src string) string { return yamlxtest.Write(t, dir, name, src) }
	fifo := yamlxtest.Fifo(t, dir)
	brackets := write("brackets.yaml", yamlxtest.NestedBrackets("allow", 100000))
	for _, tc := range []struct{ file, want string }{
		{brackets, brackets + ":1:71: nested more than 64 levels"},
		{write("mappings.yaml", yamlxtest.NestedMappings("allow", 100000)), "mappings.yaml:1:"},
		{write("aliases.yaml", yamlxtest.AliasBomb("version: 1\n", "x0", 8)), "aliases.yaml:6:"},
		{"/dev/zero", "/dev/zero: not a regular file"},
		{fifo, fifo + ": not a regular file (a FIFO)"},
		{dir, dir + ": not a regular file (a directory)"},
		{write("null.yaml", "allow: ~\n"), "null.yaml:1:8: allow is null"},
		{write("uid.yaml", "allow:\n  - port: 22\n    user: 4294967296\n"), `uid.yaml:3:11: bad user "4294967296"`},
		{write("neg.yaml", "allow:\n  - port: 22\n    user: -1\n"), `neg.yaml:3:11: bad user "-1"`},
		{write("hex.yaml", "allow:\n  - port: 0x16\n"), `hex.yaml:2:11: bad port "0x16"`},
		{write("utf8.yaml", "allow:\n  - process: \xff\n"), "utf8.yaml:2:14: invalid UTF-8"},
		{write("empty.yaml", "allow:\n  - {}\n"), "empty.yaml:2:5: allow rule \"allow[1]\" has no conditions"},
		{write("two.yaml", "allow: []\n---\nallow: []\n"), "two.yaml:3:1: a policy is one YAML document"},
		{write("alias.yaml", "allow:\n  - *nope\n"), "alias.yaml:2:5: unknown alias *nope"},
	} {
		t.Run(filepath.Base(tc.file), func(t *testing.T) {
			var errs string
			var code int
			yamlxtest.Bounded(t, "policy validate", func() { _, errs, code = runCLI(t, "policy", "validate", "-p", tc.file) })
			if code != ExitUsage || !strings.Contains(errs, tc.want) {
				t.Fatalf("exit %d, stderr %q; want 2 and %q", code, errs, tc.want)
			}
			if strings.Contains(errs, ":1:1:") && !strings.Contains(tc.want, ":1:1:") {
				t.Errorf("an extra error at 1:1: %q", errs)
			}
		})
	}
}

// The policy file of check is read the same bounded way.
func TestCheckRefusesDevZero(t *testing.T) {
	_, errs, code := runCLI(t, "check", "-p", "/dev/zero")
	if code != ExitUsage || !strings.Contains(errs, "/dev/zero: not a regular file") {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
}

package policy

import (
	"errors"
	"strings"
	"testing"

	"github.com/porteiro/porteiro/internal/yamlx/yamlxtest"
)

// Inputs that were accepted silently (issue 10, item 12): each is an
// error with its position now.
func TestParseRefusesSilentlyAcceptedInput(t *testing.T) {
	for _, tc := range []struct{ name, src, want string }{
		{"allow null", "allow: ~\n", "p.yaml:1:8: allow is null: write allow: [] for an empty list"},
		{"require null word", "require: null\n", "p.yaml:1:10: require is null"},
		{"uid beyond 32 bits", "allow:\n  - port: 22\n    user: 4294967296\n", `p.yaml:3:11: bad user "4294967296": want a user name or a uid 0-4294967295`},
		{"negative uid", "allow:\n  - port: 22\n    user: -1\n", `p.yaml:3:11: bad user "-1"`},
		{"signed uid in a list", "allow:\n  - port: 22\n    user: [root, \"+0\"]\n", `p.yaml:3:18: bad user "+0"`},
		{"hex port", "allow:\n  - port: 0x16\n", `p.yaml:2:11: bad port "0x16": want a number 1-65535`},
		{"octal port", "allow:\n  - port: 0o26\n", `p.yaml:2:11: bad port "0o26"`},
		{"signed port", "allow:\n  - port: +22\n", `p.yaml:2:11: bad port "+22"`},
		{"invalid UTF-8", "allow:\n  - process: \"ss\xffhd\"\n", "p.yaml:2:17: invalid UTF-8 (byte 0xff)"},
		{"empty rule", "allow:\n  - {}\n", `p.yaml:2:5: allow rule "allow[1]" has no conditions and would match every socket`},
		{"rule with a name only", "ignore:\n  - name: all\n    reason: oops\n", `p.yaml:2:5: ignore rule "all" has no conditions`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.src), "p.yaml")
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("Parse(%q):\n got  %v\n want %s...", tc.src, err, tc.want)
			}
		})
	}
	// What stays valid.
	for _, src := range []string{
		"allow:\n", "allow: []\n", "allow:\n  - port: 22\n    user: 4294967295\n", "allow:\n  - port: 22\n    user: \"0\"\n",
		"allow:\n  - port: 022\n", "allow:\n  - user: www-data\n",
	} {
		if _, err := Parse([]byte(src), "p.yaml"); err != nil {
			t.Errorf("Parse(%q): %v", src, err)
		}
	}
}

// An undefined alias is one error, at the alias: not a second one at 1:1.
func TestUnknownAliasIsOneError(t *testing.T) {
	for _, src := range []string{"*nope\n", "allow:\n  - *nope\n", "allow: *nope\n", "allow:\n  - port: 22\n    user: *nope\n"} {
		_, err := Parse([]byte(src), "p.yaml")
		var l ErrorList
		if !errors.As(err, &l) || len(l) != 1 || !strings.Contains(l[0].Msg, "unknown alias *nope") {
			t.Errorf("Parse(%q) = %v; want exactly one error, the unknown alias", src, err)
		}
	}
}

// A file read by mistake is not echoed: a value is quoted as a short
// escaped excerpt.
func TestErrorsQuoteShortExcerpts(t *testing.T) {
	shadow := "root:$6$salt$" + strings.Repeat("A", 80) + ":19000:0:99999:7:::\n" +
		"version: 1\n\x1b[2Jwide: \u202eevil\n"
	_, err := Parse([]byte(shadow), "shadow")
	if err == nil {
		t.Fatal("accepted")
	}
	msg := err.Error()
	if strings.Contains(msg, "AAAA") || strings.Contains(msg, "root") || strings.ContainsAny(msg, "\x1b\u202e") {
		t.Errorf("the error echoes the file:\n%s", msg)
	}
	// /etc/shadow itself: one "key" per line, none of them shown, and a
	// few lines of errors, not one per line of the file.
	var shadowFile strings.Builder
	for i := 0; i < 30; i++ {
		shadowFile.WriteString("user" + strings.Repeat("x", i) + ":$6$salt$hash" + strings.Repeat("H", 50) + ":19000:0:99999:7:::\n")
	}
	_, err = Parse([]byte(shadowFile.String()), "/etc/shadow")
	if err == nil || strings.Contains(err.Error(), "user") || strings.Contains(err.Error(), "$6$") || strings.Count(err.Error(), "\n") > 3 {
		t.Errorf("shadow:\n%v", err)
	}
	for _, line := range strings.Split(msg, "\n") {
		if len(line) > 300 {
			t.Errorf("line of %d bytes: %s", len(line), line)
		}
	}
}

// The bombs of issue 10, item 1, through Load: each answers within a
// second and 100 MB, at a position.
func TestLoadRefusesBombs(t *testing.T) {
	dir := t.TempDir()
	fifo := yamlxtest.Fifo(t, dir)
	for _, tc := range []struct{ name, path, want string }{
		{"brackets", yamlxtest.Write(t, dir, "b.yaml", yamlxtest.NestedBrackets("allow", 100000)), "b.yaml:1:71: nested more than 64 levels"},
		{"mappings", yamlxtest.Write(t, dir, "m.yaml", yamlxtest.NestedMappings("allow", 100000)), "m.yaml:1:"},
		{"aliases", yamlxtest.Write(t, dir, "a.yaml", yamlxtest.AliasBomb("version: 1\n", "x0", 8)), "a.yaml:6:"},
		{"/dev/zero", "/dev/zero", "/dev/zero: not a regular file (a character device)"},
		{"fifo", fifo, fifo + ": not a regular file (a FIFO)"},
		{"directory", dir, dir + ": not a regular file (a directory)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			yamlxtest.Bounded(t, "Load", func() { _, err = Load(tc.path) })
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Load = %v, want %q", err, tc.want)
			}
			var l ErrorList
			if !errors.As(err, &l) {
				t.Errorf("error %T is not an ErrorList", err)
			}
		})
	}
}

package cli

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/porteiro/porteiro/internal/version"
)

func runCLI(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Main(args, strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), code
}

func withLinkerVersion(t *testing.T) {
	old := [3]string{version.Version, version.Commit, version.Date}
	t.Cleanup(func() { version.Version, version.Commit, version.Date = old[0], old[1], old[2] })
	version.Version, version.Commit, version.Date = "1.2.3", "0123456789abcdef0123", "2026-01-02T03:04:05Z"
}

func TestVersionCommand(t *testing.T) {
	withLinkerVersion(t)
	out, errs, code := runCLI(t, "version")
	if code != ExitOK {
		t.Fatalf("exit %d, stderr %q", code, errs)
	}
	for _, want := range []string{"porteiro 1.2.3\n", "commit:   0123456789abcdef0123\n", "built:    2026-01-02T03:04:05Z\n", "go:       go1."} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestVersionJSON(t *testing.T) {
	withLinkerVersion(t)
	out, _, code := runCLI(t, "version", "-o", "json")
	if code != ExitOK {
		t.Fatalf("exit %d", code)
	}
	var got version.Info
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if got.Version != "1.2.3" || got.Commit != "0123456789abcdef0123" || got.Platform == "" {
		t.Errorf("got %+v", got)
	}
}

func TestVersionBadOutput(t *testing.T) {
	_, errs, code := runCLI(t, "version", "-o", "yaml")
	if code != ExitUsage || !strings.Contains(errs, `unknown output format "yaml"`) {
		t.Errorf("exit %d, stderr %q; want 2 and a one-line error", code, errs)
	}
}

func TestRootVersionFlag(t *testing.T) {
	withLinkerVersion(t)
	out, errs, code := runCLI(t, "--version")
	if code != ExitOK {
		t.Fatalf("--version: exit %d, stderr %q", code, errs)
	}
	want := "porteiro 1.2.3 (commit 0123456789ab, built 2026-01-02T03:04:05Z, "
	if !strings.HasPrefix(out, want) || strings.Count(out, "\n") != 1 {
		t.Errorf("--version printed %q, want one line starting %q", out, want)
	}
}

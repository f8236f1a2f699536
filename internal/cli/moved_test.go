package cli

import (
	"strings"
	"testing"
)

// The daemon's former commands say where they went, and exit 2.
func TestMovedCommands(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"watch", "-c", "/etc/porteiro/porteiro.yaml"}, "run porteirod"},
		{[]string{"config", "validate"}, "porteirod validate"},
		{[]string{"check", "--notify"}, "porteirod once"},
		{[]string{"events", "--state-dir", "/var/lib/porteiro"}, "porteirod events --state-dir /var/lib/porteiro"},
	} {
		out, errs, code := runCLI(t, tc.args...)
		if code != ExitUsage || !strings.Contains(errs, tc.want) || out != "" {
			t.Errorf("porteiro %v: exit %d, stdout %q, stderr %q; want 2 naming %q", tc.args, code, out, errs, tc.want)
		}
	}
	help, _, _ := runCLI(t, "--help")
	for _, hidden := range []string{"watch", "config", "gen-docs"} {
		if strings.Contains(help, "\n  "+hidden+" ") {
			t.Errorf("--help lists %q:\n%s", hidden, help)
		}
	}
}

// porteiro events with no daemon says so, names the offline reader, and
// exits 2.
func TestEventsWithoutDaemon(t *testing.T) {
	sock := t.TempDir() + "/porteiro.sock"
	_, errs, code := runCLI(t, "events", "--socket", sock)
	if code != ExitUsage || !strings.Contains(errs, "porteirod is not running") || !strings.Contains(errs, "porteirod events") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
	_, errs, code = runCLI(t, "events", "--port", "70000")
	if code != ExitUsage || !strings.Contains(errs, "70000") {
		t.Errorf("--port 70000: exit %d, stderr %q", code, errs)
	}
}

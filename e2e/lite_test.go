package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/porteiro/porteiro/internal/testenv"
)

// TestLiteBuild checks the package's /usr/bin/porteiro: the lite build
// answers list and who itself and hands the daemon's commands, with their
// arguments, to porteiro-full beside it; without porteiro-full it says what
// to install.
func TestLiteBuild(t *testing.T) {
	dir := t.TempDir()
	lite := filepath.Join(dir, "porteiro")
	build := exec.Command("go", "build", "-tags", "porteiro_lite", "-o", lite, "./cmd/porteiro")
	build.Dir = testenv.ModuleRoot()
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building the lite porteiro: %v\n%s", err, out)
	}
	run := func(args ...string) (int, string, string) {
		cmd := exec.Command(lite, args...)
		cmd.Env = append(os.Environ(), "PORTEIRO_FULL=") // only the copy beside it counts
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		return code, out.String(), errb.String()
	}

	_, port := listen(t, "127.0.0.1:0")
	if code, out, _ := run("list", "--port", strconv.Itoa(port)); code != 0 || !strings.Contains(out, "127.0.0.1:"+strconv.Itoa(port)) {
		t.Errorf("lite list: exit %d\n%s", code, out)
	}
	if _, out, _ := run("--help"); !strings.Contains(out, "watch") || !strings.Contains(out, "events") {
		t.Errorf("lite --help does not list the daemon's commands:\n%s", out)
	}
	// Without porteiro-full: a clear error, exit 2.
	if code, _, errOut := run("events", "--since", "1h"); code != 2 || !strings.Contains(errOut, "porteiro-full") {
		t.Errorf("events without porteiro-full: exit %d %q", code, errOut)
	}

	// With porteiro-full beside it, the daemon's commands work, flags and all.
	full := testenv.Binary(t)
	data, err := os.ReadFile(full)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "porteiro-full"), data, 0o755); err != nil {
		t.Fatal(err)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("interval: 2s\nbogus: 1\n"), 0o644)
	if code, _, errOut := run("config", "validate", "-c", bad); code != 2 || !strings.Contains(errOut, "bad.yaml:2:1") {
		t.Errorf("config validate through porteiro-full: exit %d %q; want 2 and bad.yaml:2:1", code, errOut)
	}
	if code, out, _ := run("events", "--help"); code != 0 || !strings.Contains(out, "--since") {
		t.Errorf("events --help through porteiro-full: exit %d\n%s", code, out)
	}
	if code, _, errOut := run("check", "--notify", "-p", filepath.Join(dir, "none.yaml")); code != 2 || !strings.Contains(errOut, "no policy") {
		t.Errorf("check --notify through porteiro-full: exit %d %q", code, errOut)
	}
}

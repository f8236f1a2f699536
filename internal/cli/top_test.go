package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTopUsage: porteiro checks the options of "porteiro top" itself, and
// says so when porteiro-top, which runs it, is nowhere to be found.
func TestTopUsage(t *testing.T) {
	for _, args := range [][]string{
		{"top", "-b", "-d", "0"},
		{"top", "-b", "-d", "NaN"},
		{"top", "-b", "-n", "-1"},
		{"top", "-b", "-o", "json"},
		{"top"}, // stdin is not a terminal
		{"top", "extra"},
	} {
		if _, errs, code := runCLI(t, args...); code != ExitUsage || errs == "" {
			t.Errorf("%v: exit %d, stderr %q; want 2 and a message", args, code, errs)
		}
	}
	noTopBeside(t)
	t.Setenv("PATH", t.TempDir())
	_, errs, code := runCLI(t, "top", "-b", "-n", "1", "-p", "")
	if code != ExitUsage || !strings.Contains(errs, TopProgram) {
		t.Errorf("without %s: exit %d, stderr %q; want 2 and a message naming it", TopProgram, code, errs)
	}
}

// TestTopRunsTheProgram: "porteiro top" runs porteiro-top with the
// options given, and its output and exit status are porteiro's. A stand-in
// script (fault injection: the real program is tested in
// internal/topcmd and e2e) prints its arguments.
func TestTopRunsTheProgram(t *testing.T) {
	dir := t.TempDir()
	script := "#!/bin/sh\necho \"$@\"\nexit 3\n"
	if err := os.WriteFile(filepath.Join(dir, TopProgram), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	noTopBeside(t)
	t.Setenv("PATH", dir)
	out, _, code := runCLI(t, "top", "-b", "-n", "2", "-d", "0.5", "-p", "")
	if code != 3 {
		t.Errorf("exit %d, want the program's 3", code)
	}
	for _, want := range []string{"--batch=true", "--iterations=2", "--delay=0.5", "--policy="} {
		if !strings.Contains(out, want) {
			t.Errorf("the program got %q, without %s", out, want)
		}
	}
}

// noTopBeside skips the test when TopProgram is beside the test binary,
// where porteiro would find it before PATH.
func noTopBeside(t *testing.T) {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(self), TopProgram)); err == nil {
		t.Skipf("%s is beside the test binary", TopProgram)
	}
}

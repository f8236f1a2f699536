//go:build !porteiro_lite

package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestGenDocs(t *testing.T) {
	t.Setenv("SOURCE_DATE_EPOCH", "1767323045") // 2026-01-02
	man, compl := filepath.Join(t.TempDir(), "man"), filepath.Join(t.TempDir(), "completions")
	_, errs, code := runCLI(t, "gen-docs", "--man", man, "--completions", compl)
	if code != ExitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}

	// One page per visible command, none for hidden ones.
	root := NewRoot(&Env{Stdin: strings.NewReader(""), Stdout: os.Stdout, Stderr: os.Stderr})
	for _, c := range root.Commands() {
		page := filepath.Join(man, "porteiro-"+c.Name()+".1")
		_, err := os.Stat(page)
		if c.IsAvailableCommand() && err != nil {
			t.Errorf("no man page for %q: %v", c.Name(), err)
		}
		if c.Hidden && err == nil {
			t.Errorf("hidden command %q got a man page", c.Name())
		}
	}
	page, err := os.ReadFile(filepath.Join(man, "porteiro.1"))
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`.TH "PORTEIRO" "1" "Jan 2026" "porteiro `, `\fBporteiro-version(1)\fP`} {
		if !strings.Contains(string(page), want) {
			t.Errorf("porteiro.1 lacks %q", want)
		}
	}
	if strings.Contains(string(page), "Auto generated") {
		t.Error("porteiro.1 carries the generator footer")
	}
	// The page must render without warnings.
	if groff, err := exec.LookPath("groff"); err == nil {
		out, err := exec.Command(groff, "-man", "-Tutf8", "-ww", "-z", filepath.Join(man, "porteiro-version.1")).CombinedOutput()
		if err != nil || len(out) > 0 {
			t.Errorf("groff: %v\n%s", err, out)
		}
	}

	for name, want := range map[string]string{
		bashCompletionFile: "__start_porteiro",
		zshCompletionFile:  "#compdef porteiro",
		fishCompletionFile: "complete -c porteiro",
	} {
		b, err := os.ReadFile(filepath.Join(compl, name))
		if err != nil {
			t.Error(err)
			continue
		}
		if !strings.Contains(string(b), want) {
			t.Errorf("%s lacks %q", name, want)
		}
	}
	if bash, err := exec.LookPath("bash"); err == nil {
		if out, err := exec.Command(bash, "-n", filepath.Join(compl, bashCompletionFile)).CombinedOutput(); err != nil {
			t.Errorf("bash -n: %v\n%s", err, out)
		}
	}
}

func TestGenDocsNeedsADirectory(t *testing.T) {
	_, errs, code := runCLI(t, "gen-docs")
	if code != ExitUsage || !strings.Contains(errs, "--man DIR") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
}

func TestGenDocsIsHidden(t *testing.T) {
	out, _, _ := runCLI(t, "--help")
	if strings.Contains(out, "gen-docs") {
		t.Errorf("--help lists gen-docs:\n%s", out)
	}
}

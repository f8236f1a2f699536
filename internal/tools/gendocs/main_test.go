package main

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
	if err := generate(man, compl); err != nil {
		t.Fatal(err)
	}

	// One page per visible command, none for hidden ones, for both
	// programs.
	for _, p := range programs() {
		name := p.root.Name()
		for _, c := range p.root.Commands() {
			page := filepath.Join(man, name+"-"+c.Name()+"."+p.section)
			_, err := os.Stat(page)
			if c.IsAvailableCommand() && err != nil {
				t.Errorf("no man page for %s %q: %v", name, c.Name(), err)
			}
			if c.Hidden && err == nil {
				t.Errorf("hidden command %s %q got a man page", name, c.Name())
			}
		}
		b, err := os.ReadFile(filepath.Join(man, name+"."+p.section))
		if err != nil {
			t.Fatal(err)
		}
		page := string(b)
		for _, want := range []string{`.TH "` + strings.ToUpper(name) + `" "` + p.section + `" "Jan 2026" "` + name + ` `, `\fB` + name + `-version(` + p.section + `)\fP`} {
			if !strings.Contains(page, want) {
				t.Errorf("%s.%s lacks %q", name, p.section, want)
			}
		}
		if strings.Contains(page, "Auto generated") {
			t.Errorf("%s.%s carries the generator footer", name, p.section)
		}
		// The pages must render without warnings.
		if groff, err := exec.LookPath("groff"); err == nil {
			for _, f := range []string{name + "." + p.section, name + "-version." + p.section} {
				out, err := exec.Command(groff, "-man", "-Tutf8", "-ww", "-z", filepath.Join(man, f)).CombinedOutput()
				if err != nil || len(out) > 0 {
					t.Errorf("groff %s: %v\n%s", f, err, out)
				}
			}
		}
		bash, zsh, fish := completionFiles(name)
		for file, want := range map[string]string{
			bash: "__start_" + name,
			zsh:  "#compdef " + name,
			fish: "complete -c " + name,
		} {
			b, err := os.ReadFile(filepath.Join(compl, file))
			if err != nil {
				t.Error(err)
				continue
			}
			if !strings.Contains(string(b), want) {
				t.Errorf("%s lacks %q", file, want)
			}
		}
		if sh, err := exec.LookPath("bash"); err == nil {
			if out, err := exec.Command(sh, "-n", filepath.Join(compl, bash)).CombinedOutput(); err != nil {
				t.Errorf("bash -n %s: %v\n%s", bash, err, out)
			}
		}
	}
}

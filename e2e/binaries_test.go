package e2e

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/porteiro/porteiro/internal/testenv"
)

// maxClientSize is the size budget of the stripped porteiro binary, 7 MiB
// ("7.0M" to ls -lh): the client admins type must stay small and quick to
// start. (It was 9 MiB until the terminal interface of "porteiro top"
// moved to porteiro-top, which took 2 MB out; the client was then 6.95e6
// bytes.)
const maxClientSize = 7 << 20

// TestClientLinksNoDaemonCode builds porteiro as the package does
// (stripped) and checks that none of the daemon's libraries, nor those of
// porteiro-top's terminal interface, are in it, and that it fits its size
// budget. porteirod and porteiro-top have theirs.
func TestClientLinksNoDaemonCode(t *testing.T) {
	gobin := testenv.RequireCommand(t, "go")
	dir := t.TempDir()
	build := func(name string) string {
		out := filepath.Join(dir, name)
		cmd := exec.Command(gobin, "build", "-trimpath", "-ldflags=-s -w", "-o", out, "./cmd/"+name)
		cmd.Dir = testenv.ModuleRoot()
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("building %s: %v\n%s", name, err, b)
		}
		return out
	}
	modules := func(bin string) string {
		b, err := exec.Command(gobin, "version", "-m", bin).CombinedOutput()
		if err != nil {
			t.Fatalf("go version -m %s: %v\n%s", bin, err, b)
		}
		return string(b)
	}
	daemonOnly := []string{"modernc.org/sqlite", "github.com/wneessen/go-mail", "github.com/prometheus/client_golang", "github.com/russross/blackfriday", "github.com/cpuguy83/go-md2man"}

	client := build("porteiro")
	mods := modules(client)
	for _, m := range daemonOnly {
		if strings.Contains(mods, m) {
			t.Errorf("porteiro links %s, which only porteirod needs", m)
		}
	}
	st, err := os.Stat(client)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("porteiro: %d bytes stripped (budget %d)", st.Size(), maxClientSize)
	if st.Size() > maxClientSize {
		t.Errorf("porteiro is %d bytes stripped, over its budget of %d", st.Size(), maxClientSize)
	}

	daemon := build("porteirod")
	mods = modules(daemon)
	for _, m := range daemonOnly[:3] {
		if !strings.Contains(mods, m) {
			t.Errorf("porteirod does not link %s: is the check above still meaningful?", m)
		}
	}

	// The terminal interface of "porteiro top" is porteiro-top's alone.
	mods = modules(client)
	for _, m := range topOnly {
		if strings.Contains(mods, m) {
			t.Errorf("porteiro links %s, which only porteiro-top needs", m)
		}
	}
	mods = modules(build("porteiro-top"))
	for _, m := range topOnly {
		if !strings.Contains(mods, m) {
			t.Errorf("porteiro-top does not link %s: is the check above still meaningful?", m)
		}
	}
}

// topOnly are the modules of porteiro-top's terminal interface.
var topOnly = []string{"charm.land/bubbletea/v2", "charm.land/lipgloss/v2", "github.com/charmbracelet/ultraviolet"}

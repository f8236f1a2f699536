package policy

import (
	"os"
	"strings"
	"testing"

	"github.com/porteiro/porteiro/inventory"
)

// The example in docs/policy.md must be a valid policy that behaves as the
// text around it says.
func TestDocsExample(t *testing.T) {
	data, err := os.ReadFile("../docs/policy.md")
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(data), "```yaml\n")
	if !ok {
		t.Fatal("no yaml example in docs/policy.md")
	}
	example, _, _ := strings.Cut(rest, "```")
	p, err := Parse([]byte(example), "docs/policy.md")
	if err != nil {
		t.Fatal(err)
	}
	resolved := proc{pid: 500, name: "systemd-resolve", user: "systemd-resolve", unit: "systemd-resolved.service"}
	rep := p.Check(snapOf(
		sock(inventory.TCP, "0.0.0.0", 22, 1, sshd),
		sock(inventory.TCP, "0.0.0.0", 5432, 2, pg),
		sock(inventory.UDP, "127.0.0.53", 53, 3, resolved),
		sock(inventory.UDP, "0.0.0.0", 45000, 4, ncat),
	))
	if got := kinds(rep); len(got) != 1 || got[0] != "too_exposed too_exposed tcp 0.0.0.0:5432" {
		t.Errorf("findings = %q, want postgres too_exposed only", got)
	}
}

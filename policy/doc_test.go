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

// Every YAML block in docs/policy.md parses, and the namespaces example
// behaves as the text after it says.
func TestDocsNamespacesExample(t *testing.T) {
	data, err := os.ReadFile("../docs/policy.md")
	if err != nil {
		t.Fatal(err)
	}
	var blocks []string
	for rest := string(data); ; {
		var ok bool
		if _, rest, ok = strings.Cut(rest, "```yaml\n"); !ok {
			break
		}
		var block string
		block, rest, _ = strings.Cut(rest, "```")
		blocks = append(blocks, block)
	}
	var ns *Policy
	for i, b := range blocks {
		p, err := Parse([]byte(b), "docs/policy.md")
		if err != nil {
			t.Fatalf("yaml block %d: %v", i+1, err)
		}
		if strings.Contains(b, "netns:") {
			ns = p
		}
	}
	if ns == nil {
		t.Fatal("no namespaces example in docs/policy.md")
	}
	web1Sshd := inCtr(sock(inventory.TCP, "0.0.0.0", 22, 1, sshd), web1Ino, web1)
	hostNginx := inNS(sock(inventory.TCP, "0.0.0.0", 80, 2, nginx), hostIno, "host")
	rep := ns.Check(snapOf(
		inNS(sock(inventory.TCP, "0.0.0.0", 22, 3, sshd), hostIno, "host"),
		inCtr(sock(inventory.TCP, "0.0.0.0", 80, 4, nginx1), web1Ino, web1),
		inCtr(sock(inventory.TCP, "::", 8080, 5, apiP), apiAIno, apiA),
		inCtr(sock(inventory.TCP, "::", 8080, 6, apiP2), apiBIno, apiB),
		inNS(sock(inventory.UDP, "10.8.0.1", 53, 7, dnsmq), blueIno, "vpn"),
		inNS(sock(inventory.TCP, "127.0.0.1", 9100, 8, python), blueIno, "vpn"),
		inNS(sock(inventory.TCP, "127.0.0.1", 9100, 9, python), hostIno, "host"),
		web1Sshd, hostNginx,
	))
	want := []string{"unexpected unexpected tcp 0.0.0.0:22 in container web-1", "unexpected unexpected tcp 0.0.0.0:80"}
	if got := kinds(rep); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("findings %q, want %q", got, want)
	}
}

package daemoncli

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/porteiro/porteiro/internal/audit"
	"github.com/porteiro/porteiro/internal/cmdkit"
)

func TestAuditUsage(t *testing.T) {
	for _, args := range [][]string{{"audit", "-o", "yaml"}, {"audit", "--rounds", "2"}, {"audit", "extra"}} {
		var out, errb bytes.Buffer
		if rc := Main(args, nil, &out, &errb); rc != cmdkit.ExitUsage {
			t.Errorf("%v: exit %d, want %d (%s)", args, rc, cmdkit.ExitUsage, errb.String())
		}
	}
}

func TestAuditHelpHasExampleAndExitCodes(t *testing.T) {
	var out, errb bytes.Buffer
	Main([]string{"audit", "--help"}, nil, &out, &errb)
	for _, want := range []string{"Exit status: 0", "porteirod audit -o json", "hidden_socket", "docs/audit.md"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("--help lacks %q", want)
		}
	}
}

func TestAuditJSONOnThisHost(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the audit's kernel views need root")
	}
	var out, errb bytes.Buffer
	rc := Main([]string{"audit", "-o", "json", "--no-probe"}, nil, &out, &errb)
	var rep audit.Report
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("exit %d, %v:\n%s\n%s", rc, err, out.String(), errb.String())
	}
	if rc != 0 || !rep.Clean || rep.SchemaVersion != audit.SchemaVersion || rep.Findings == nil {
		t.Fatalf("exit %d: %s\n%s", rc, out.String(), errb.String())
	}
	if !strings.Contains(errb.String(), "bind_probe skipped: --no-probe") {
		t.Errorf("stderr should say the probe was skipped: %q", errb.String())
	}
}

func TestAuditTableEscapesAndAligns(t *testing.T) {
	rep := &audit.Report{
		Rounds: 3,
		Findings: []audit.Finding{
			{Kind: audit.KindHiddenProcess, PID: 4242, SeenBy: []audit.View{audit.ViewBPFTask}, MissedBy: []audit.View{audit.ViewProc},
				Owners:  []audit.Owner{{PID: 4242, Comm: "evil\x1b[2J\u202e", UID: 0}},
				Sockets: []audit.SockRef{{Proto: "tcp4", Local: "0.0.0.0:31337", State: "LISTEN"}},
				Detail:  "the kernel runs pid 4242;\nnewline"},
			{Kind: audit.KindViewMismatch, NetNS: 4026531840, Proto: "tcp6", Local: "[::1]:80", State: "LISTEN",
				SeenBy: []audit.View{audit.ViewSockDiag}, MissedBy: []audit.View{audit.ViewProcNet}, Owners: []audit.Owner{}},
		},
	}
	var out bytes.Buffer
	if err := auditTable(&Env{Stdout: &out}, rep); err != nil {
		t.Fatal(err)
	}
	s := out.String()
	if strings.ContainsAny(s, "\x1b\u202e") || strings.Contains(s, ";\nnewline") {
		t.Fatalf("control bytes reached the terminal:\n%q", s)
	}
	lines := strings.Split(s, "\n")
	if len(lines) < 4 || strings.Index(lines[1], "-") != strings.Index(lines[0], "NETNS") ||
		strings.Index(lines[2], "4026531840") != strings.Index(lines[0], "NETNS") {
		t.Fatalf("columns do not line up:\n%s", s)
	}
	if !strings.Contains(s, "tcp4 0.0.0.0:31337") || !strings.Contains(lines[len(lines)-2], "2 findings") {
		t.Fatalf("table:\n%s", s)
	}
}

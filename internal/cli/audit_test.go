package cli

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"

	"github.com/porteiro/porteiro/internal/audit"
)

func TestAuditUsage(t *testing.T) {
	for _, args := range [][]string{{"audit", "-o", "yaml"}, {"audit", "--rounds", "2"}, {"audit", "extra"}} {
		var out, errb bytes.Buffer
		if rc := Main(args, nil, &out, &errb); rc != ExitUsage {
			t.Errorf("%v: exit %d, want %d (%s)", args, rc, ExitUsage, errb.String())
		}
	}
}

func TestAuditHelpHasExampleAndExitCodes(t *testing.T) {
	var out, errb bytes.Buffer
	Main([]string{"audit", "--help"}, nil, &out, &errb)
	for _, want := range []string{"Exit status: 0", "porteiro audit -o json", "hidden_socket", "docs/audit.md"} {
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

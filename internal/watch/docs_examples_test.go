package watch

import (
	"bytes"
	"encoding/json"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/porteiro/porteiro/internal/audit/report"
	"github.com/porteiro/porteiro/internal/notify"
	"github.com/porteiro/porteiro/internal/store"
	"github.com/porteiro/porteiro/internal/testenv"
	"github.com/porteiro/porteiro/inventory"
	"github.com/porteiro/porteiro/policy"
)

var updateDocs = flag.Bool("update-docs", false, "rewrite the generated examples in docs/")

// TestDocsExamples generates the examples of output in docs/alerts.md and
// docs/watch.md from the real code: a real policy judges a listener, the
// daemon's event becomes the stored event and the alert, and the channels'
// encoder writes the payload. Each block follows a marker line
//
//	<!-- generated: NAME (go test ./internal/watch -run TestDocsExamples -update-docs) -->
//
// and must be what the code writes, so the documentation cannot drift.
func TestDocsExamples(t *testing.T) {
	ex := docsExamples(t)
	for _, file := range []string{"alerts.md", "watch.md", "audit.md"} {
		path := filepath.Join(testenv.ModuleRoot(), "docs", file)
		doc, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		out, n, err := replaceGenerated(string(doc), ex)
		if err != nil {
			t.Fatalf("%s: %v", file, err)
		}
		if n == 0 {
			t.Errorf("%s has no generated example", file)
		}
		if out == string(doc) {
			continue
		}
		if *updateDocs {
			if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
				t.Fatal(err)
			}
			continue
		}
		t.Errorf("docs/%s: an example differs from what porteiro writes; run go test ./internal/watch -run TestDocsExamples -update-docs and review the diff", file)
	}
}

const generatedMarker = "<!-- generated: "

// replaceGenerated puts ex[NAME] in the fenced block after each marker.
func replaceGenerated(doc string, ex map[string]string) (string, int, error) {
	var b strings.Builder
	n := 0
	for {
		i := strings.Index(doc, generatedMarker)
		if i < 0 {
			b.WriteString(doc)
			return b.String(), n, nil
		}
		end := strings.Index(doc[i:], "-->")
		if end < 0 {
			return "", n, errUnclosed
		}
		name := strings.Fields(doc[i+len(generatedMarker) : i+end])[0]
		body, ok := ex[name]
		if !ok {
			return "", n, &unknownExample{name}
		}
		// The fence: ```lang\n ... \n```
		rest := doc[i+end:]
		open := strings.Index(rest, "```")
		nl := strings.Index(rest[open:], "\n")
		close := strings.Index(rest[open+nl+1:], "```")
		if open < 0 || nl < 0 || close < 0 {
			return "", n, errUnclosed
		}
		start := i + end + open + nl + 1
		b.WriteString(doc[:start])
		b.WriteString(body)
		doc = doc[start+close:]
		n++
	}
}

type unknownExample struct{ name string }

func (e *unknownExample) Error() string { return "no generated example named " + e.name }

var errUnclosed = &unknownExample{"(unclosed marker or fence)"}

// docsExamples runs the real code on one fixed scene: nc listening on all
// interfaces under a default-deny policy.
func docsExamples(t *testing.T) map[string]string {
	t.Helper()
	at := time.Date(2026, 11, 26, 1, 0, 0, 0, time.UTC)
	nc := inventory.Socket{
		Proto: inventory.TCP, Family: inventory.IPv4, State: "LISTEN", Listening: true,
		Local:  inventory.Endpoint{Address: netip.MustParseAddr("0.0.0.0"), Port: 4444},
		Remote: inventory.Endpoint{Address: netip.MustParseAddr("0.0.0.0")},
		Inode:  4242, UID: 1001, NetNS: 4026531840, Exposure: inventory.ExposureAll,
		Processes: []inventory.Process{{ProcessInfo: &inventory.ProcessInfo{
			PID:        31337,
			PPID:       1,
			Name:       "nc",
			Exe:        "/usr/bin/nc.openbsd",
			Cmdline:    []string{"nc", "-lk", "-p", "4444"},
			User:       "mallory",
			UID:        1001,
			StartTime:  at.Add(-time.Minute),
			StartTicks: 123456,
			Unit:       "session-4.scope",
			RSSBytes:   1200000,
			State:      "S",
		}, FDs: []int{3}}},
	}
	snap := &inventory.Snapshot{Time: at, Sockets: []inventory.Socket{nc}, Source: "sock_diag", Privileged: true}
	polFile := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(polFile, []byte("version: 1\ndefault: deny\nallow:\n  - name: ssh\n    port: 22\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	pol, err := policy.Load(polFile)
	if err != nil {
		t.Fatal(err)
	}
	findings := FromReport(pol.Check(snap))
	if len(findings) != 1 {
		t.Fatalf("findings: %+v", findings)
	}
	f := findings[0]
	e := Event{Kind: KindViolation, Time: at, Finding: &f, Socket: f.Socket, Listener: f.Socket.ListenerKey(), UID: "07b79387403a962f5b0cde86e407a094"}
	prepare(&e)
	ne, err := e.record("web1", nil)
	if err != nil {
		t.Fatal(err)
	}
	ev := ne.Event
	ev.ID = 42
	evDoc := NewEventsDocument([]store.Event{ev})
	evJSON, err := json.MarshalIndent(evDoc, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	payload, err := notify.MarshalPayload("web1", "chatops", at.Add(2500*time.Millisecond), []notify.Alert{e.Alert("web1")})
	if err != nil {
		t.Fatal(err)
	}
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, payload, "", "  "); err != nil {
		t.Fatal(err)
	}
	// An audit finding, as the daemon records it (audit.go).
	fd := 3
	af := report.Finding{Kind: report.KindOrphanNetNS, Key: "orphan_netns netns 4026532512", NetNS: 4026532512,
		SeenBy: []report.View{report.ViewBPFFile}, MissedBy: []report.View{report.ViewNSMember, report.ViewNSMount},
		Owners:  []report.Owner{{PID: 4242, Comm: "sleep", UID: 0, CgroupID: 5213, FD: &fd}},
		Sockets: []report.SockRef{{Proto: "tcp4", Local: "0.0.0.0:41231", State: "LISTEN", Inode: 1104451}},
		Detail:  "network namespace 4026532512 has 1 sockets, but no process is a member and no mount names it"}
	apf := auditFinding(&af)
	ae := Event{Kind: KindViolation, Time: at, Finding: &apf, Audit: &af, UID: "5c0d1e4f2a7b3c9d8e6f0a1b2c3d4e5f"}
	prepare(&ae)
	ane, err := ae.record("web1", nil)
	if err != nil {
		t.Fatal(err)
	}
	aev := ane.Event
	aev.ID = 43
	auditJSON, err := json.MarshalIndent(NewEventsDocument([]store.Event{aev}), "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{
		"audit_event": string(auditJSON) + "\n",
		"event":       string(evJSON) + "\n",
		"payload":     pretty.String() + "\n",
		"summary":     e.Summary() + "\n",
	}
}

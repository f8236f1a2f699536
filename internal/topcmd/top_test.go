package topcmd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/porteiro/porteiro/internal/cli"
	"github.com/porteiro/porteiro/internal/cmdkit"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/porteiro/porteiro/internal/testenv"
	"github.com/porteiro/porteiro/internal/top"
	"github.com/porteiro/porteiro/inventory"
	"github.com/porteiro/porteiro/policy"
)

// porteiro-top checks its options as "porteiro top" does (TestTopUsage in
// internal/cli).
func TestTopUsageErrors(t *testing.T) {
	for _, args := range [][]string{
		{"-b", "-d", "0"},
		{"-b", "-d", "NaN"},
		{"-b", "-n", "-1"},
		{"-b", "-o", "json"},
		{}, // stdin is not a terminal
		{"extra"},
	} {
		if _, errs, code := runTop(t, args...); code != cmdkit.ExitUsage || errs == "" {
			t.Errorf("%v: exit %d, stderr %q; want 2 and a message", args, code, errs)
		}
	}
}

// The batch run in-process, on the real kernel: a listener of this test
// shows with its owner, and ndjson lines decode.
func TestTopBatchInProcess(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	out, errs, code := runTop(t, "-b", "-n", "2", "-d", "0.2", "-o", "ndjson")
	if code != cmdkit.ExitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d lines, want 2", len(lines))
	}
	var doc top.SnapshotJSON
	if err := json.Unmarshal([]byte(lines[1]), &doc); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, l := range doc.Listeners {
		if int(l.Local.Port) == port {
			found = true
			if l.Connections != 0 || l.BytesInPerSec != 0 || l.TopPeer != nil {
				t.Errorf("idle listener: %+v", l)
			}
		}
	}
	if !found {
		t.Errorf("listener %d missing", port)
	}
	out, _, code = runTop(t, "-b", "-n", "1", "-d", "0.2")
	if code != cmdkit.ExitOK || !strings.Contains(out, "127.0.0.1:"+strconv.Itoa(port)) || !strings.Contains(out, "CONNS") {
		t.Errorf("text batch: exit %d\n%s", code, out)
	}
}

// A real policy file and real listeners: the listener no rule allows is
// marked with the finding, the allowed one is not, and the required port
// that nothing listens on is reported missing. A policy file given with
// -p that is absent or broken is exit 2; -p ” turns the marks off.
func TestTopPolicyMarks(t *testing.T) {
	bad, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer bad.Close()
	good, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer good.Close()
	badPort, goodPort := bad.Addr().(*net.TCPAddr).Port, good.Addr().(*net.TCPAddr).Port
	free := testenv.FreePort(t)
	dir := t.TempDir()
	file := filepath.Join(dir, "policy.yaml")
	pol := fmt.Sprintf(`version: 1
default: deny
allow:
  - name: this-test
    reason: the test's allowed listener
    proto: tcp
    port: %d
require:
  - name: never-up
    reason: nothing listens here
    proto: tcp
    port: %d
`, goodPort, free)
	if err := os.WriteFile(file, []byte(pol), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errs, code := runTop(t, "-b", "-n", "1", "-d", "0.2", "-o", "ndjson", "-p", file)
	if code != cmdkit.ExitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var doc top.SnapshotJSON
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Policy == nil || doc.Policy.File != file || doc.Policy.Violations == 0 {
		t.Fatalf("policy summary %+v", doc.Policy)
	}
	if len(doc.Policy.Missing) != 1 || doc.Policy.Missing[0].Rule != "never-up" || doc.Policy.Missing[0].RuleReason != "nothing listens here" {
		t.Errorf("missing: %+v", doc.Policy.Missing)
	}
	seen := 0
	for _, l := range doc.Listeners {
		switch int(l.Local.Port) {
		case badPort:
			seen++
			if l.Policy == nil || l.Policy.Kind != "unexpected" || !strings.Contains(l.Policy.Message, "no rule allows it") {
				t.Errorf("the listener no rule allows: %+v", l.Policy)
			}
		case goodPort:
			seen++
			if l.Policy != nil {
				t.Errorf("the allowed listener is marked: %+v", l.Policy)
			}
		}
	}
	if seen != 2 {
		t.Fatalf("%d of the test's 2 listeners seen", seen)
	}
	// The raw line has the field names docs/top.md gives.
	if !strings.Contains(out, `"policy":{"kind":"unexpected","key":"unexpected tcp 127.0.0.1:`+strconv.Itoa(badPort)+`"`) {
		t.Errorf("no policy object on the listener in the ndjson line")
	}
	// The text table: a "!" column, and the bad listener's row has it.
	out, _, code = runTop(t, "-b", "-n", "1", "-d", "0.2", "-p", file)
	if code != cmdkit.ExitOK {
		t.Fatalf("text: exit %d", code)
	}
	rows := 0
	for _, l := range strings.Split(out, "\n") {
		switch {
		case strings.Contains(l, "127.0.0.1:"+strconv.Itoa(badPort)+" "):
			rows++
			if !strings.HasPrefix(l, "! ") {
				t.Errorf("the bad listener's row has no mark: %q", l)
			}
		case strings.Contains(l, "127.0.0.1:"+strconv.Itoa(goodPort)+" "):
			rows++
			if strings.HasPrefix(l, "!") {
				t.Errorf("the allowed listener's row is marked: %q", l)
			}
		}
	}
	if rows != 2 || !strings.HasPrefix(strings.Split(out, "\n")[2], "! PROTO") {
		t.Errorf("%d rows of the test's listeners, or no ! column:\n%.1500s", rows, out)
	}
	if !strings.Contains(out, "note: policy: tcp port "+strconv.Itoa(free)) || !strings.Contains(out, "policy: ") {
		t.Errorf("no note of the missing service, or no policy count:\n%.2000s", out)
	}
	// Exit 2: an explicit file that is absent, or broken.
	broken := filepath.Join(dir, "broken.yaml")
	os.WriteFile(broken, []byte("version: 1\nallow:\n  - port: [\n"), 0o644)
	for _, p := range []string{filepath.Join(dir, "absent.yaml"), broken, dir} {
		if _, errs, code := runTop(t, "-b", "-n", "1", "-d", "0.2", "-p", p); code != cmdkit.ExitUsage || errs == "" {
			t.Errorf("-p %s: exit %d, stderr %q; want 2 and a message", p, code, errs)
		}
	}
	// No policy: no mark, no summary.
	out, _, code = runTop(t, "-b", "-n", "1", "-d", "0.2", "-o", "ndjson", "-p", "")
	if code != cmdkit.ExitOK || strings.Contains(out, `"policy"`) {
		t.Errorf("-p '': exit %d, policy in the output", code)
	}
}

func sampleView() *top.View {
	hostile := inventory.Process{ProcessInfo: &inventory.ProcessInfo{PID: 42, Name: "evil\x1b[31m", User: "root", Cmdline: []string{"evil\x1b]0;x\x07", "--flag\r"}}}
	ls := []top.Listener{
		{Socket: inventory.Socket{Proto: inventory.TCP, Family: inventory.IPv4, NetNS: 7, Listening: true, Exposure: inventory.ExposureAll,
			Local: inventory.Endpoint{Address: netip.MustParseAddr("0.0.0.0"), Port: 443}, Processes: []inventory.Process{hostile}},
			Conns: 3, InPerSec: 3 << 20, TopPeer: &top.Peer{Address: netip.MustParseAddr("10.0.0.7"), Connections: 3}},
		{Socket: inventory.Socket{Proto: inventory.UDP, Family: inventory.IPv6, NetNS: 7, Listening: true, Exposure: inventory.ExposureLoopback,
			Local: inventory.Endpoint{Address: netip.MustParseAddr("::1"), Port: 53}, UnattributedReason: inventory.ReasonNotPermitted}},
	}
	return &top.View{Time: time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC), Interval: time.Second, Listeners: ls, Conns: 3, InPerSec: 3 << 20}
}

func TestTopTextEscapesAndColumns(t *testing.T) {
	var b bytes.Buffer
	if err := writeTopText(&b, sampleView(), "web\x1b01", 7, 0); err != nil {
		t.Fatal(err)
	}
	s := b.String()
	if strings.ContainsAny(s, "\x1b\x07\r") {
		t.Errorf("raw control characters in the output:\n%q", s)
	}
	for _, want := range []string{`evil\x1b]0;x\x07 --flag\r`, "10.0.0.7 (3)", "3.0M", "(not permitted)", "undercounted", `web\x1b01`} {
		if !strings.Contains(s, want) {
			t.Errorf("output lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "NETNS") {
		t.Errorf("NETNS shown though every listener is in the host namespace:\n%s", s)
	}
	b.Reset()
	writeTopText(&b, sampleView(), "web01", 1, 0)
	if !strings.Contains(b.String(), "NETNS") {
		t.Errorf("NETNS missing for listeners outside the host namespace:\n%s", b.String())
	}
}

func TestTopLayoutFitsWidth(t *testing.T) {
	v := sampleView()
	rows := [][]string{listenerCells(&v.Listeners[0]), listenerCells(&v.Listeners[1])}
	for _, w := range []int{80, 60, 120, 200} {
		for _, l := range layoutTable(topColumns(v, 1), rows, w) {
			if n := cellWidth(l); n > w {
				t.Errorf("width %d: line of %d cells: %q", w, n, l)
			}
		}
	}
	lines := layoutTable(topColumns(v, 7), rows, 80)
	for _, h := range []string{"PROTO", "LOCAL", "COMMAND", "CONNS", "IN/s", "OUT/s"} {
		if !strings.Contains(lines[0], h) {
			t.Errorf("80 columns: header lacks %s: %q", h, lines[0])
		}
	}
}

// The interactive model, driven with key messages: sort, filter, group,
// details and the kill refusal for a process porteiro never signals.
func TestTopUIKeys(t *testing.T) {
	u := newTopUI(&topFlags{Delay: 1, ProcRoot: "/proc"})
	defer u.sampler.Close()
	u.width, u.height, u.hostNS = 100, 20, 7
	u.Update(sampleMsg{view: sampleView()})
	press := func(k string) {
		var msg tea.KeyPressMsg
		switch k {
		case "enter":
			msg = tea.KeyPressMsg{Code: tea.KeyEnter}
		case "esc":
			msg = tea.KeyPressMsg{Code: tea.KeyEscape}
		default:
			msg = tea.KeyPressMsg{Code: []rune(k)[0], Text: k}
		}
		u.Update(msg)
	}
	if s := u.render(); !strings.Contains(s, "sort TRAFFIC▼") || strings.Index(s, ":443") > strings.Index(s, ":53") {
		t.Errorf("default view:\n%s", s)
	}
	press("s")
	press("s")
	if s := u.render(); !strings.Contains(s, "sort LOCAL▼") || strings.Index(s, ":53") < strings.Index(s, ":443") {
		t.Errorf("sorted by LOCAL (tcp first, as list does):\n%s", s)
	}
	press("r")
	if s := u.render(); !strings.Contains(s, "sort LOCAL▲") || strings.Index(s, ":53") > strings.Index(s, ":443") {
		t.Errorf("sorted by LOCAL, reversed:\n%s", s)
	}
	press("r")
	press("/")
	for _, r := range "port:443" {
		press(string(r))
	}
	press("enter")
	if s := u.render(); strings.Contains(s, ":53 ") || !strings.Contains(s, "1 of 2 listeners") {
		t.Errorf("filtered:\n%s", s)
	}
	press("p")
	if s := u.render(); !strings.Contains(s, "by process") || !strings.Contains(s, "tcp/443") {
		t.Errorf("grouped:\n%s", s)
	}
	press("p")
	press("enter")
	if s := u.render(); !strings.Contains(s, "details: tcp 0.0.0.0:443") || !strings.Contains(s, "pid 42") || strings.Contains(s, "\x1b]0;") {
		t.Errorf("details:\n%q", s)
	}
	press("esc")
	// PID 1 is refused before any confirmation.
	u.view.Listeners[0].Socket.Processes[0].PID = 1
	press("k")
	if u.mode == modeConfirm || !strings.Contains(u.status, "refusing to signal PID 1") {
		t.Errorf("kill of PID 1: mode %v status %q", u.mode, u.status)
	}
	u.view.Listeners[0].Socket.Processes[0].PID = 42
	press("k")
	if u.mode != modeConfirm || !strings.Contains(u.status, "send SIGTERM to pid 42") || strings.Contains(u.status, "\x1b") {
		t.Errorf("kill asks first: mode %v status %q", u.mode, u.status)
	}
	press("n")
	if u.mode != modeTable || u.status != "nothing signalled" {
		t.Errorf("after n: mode %v status %q", u.mode, u.status)
	}
	// 80x24: nothing wider, nothing taller.
	u.Update(tea.WindowSizeMsg{Width: 80, Height: 24})
	lines := strings.Split(u.render(), "\n")
	if len(lines) > 24 {
		t.Errorf("%d lines at 80x24", len(lines))
	}
	for _, l := range lines {
		if cellWidth(stripANSI(l)) > 80 {
			t.Errorf("line wider than 80: %q", l)
		}
	}
}

func stripANSI(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == 0x1b && i+1 < len(s) && s[i+1] == '[' {
			j := i + 2
			for j < len(s) && (s[j] < 0x40 || s[j] > 0x7e) {
				j++
			}
			i = j
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// The interactive view with a policy, under NO_COLOR: the "!" column marks
// the listener that breaks it, sorting reaches POLICY, and the details
// show the finding. A new listener is bold, a closed one faint: attributes
// that NO_COLOR keeps.
func TestTopUIPolicyAndNewGone(t *testing.T) {
	u := newTopUI(&topFlags{Delay: 1, ProcRoot: "/proc", Policy: &policy.Policy{}})
	defer u.sampler.Close()
	u.width, u.height, u.hostNS, u.noColor = 120, 20, 7, true
	v := sampleView()
	v.Policy = &top.PolicyView{File: "p.yaml", Violations: 1}
	v.Listeners[0].Violation = &top.Violation{Kind: "unexpected", Message: "tcp 0.0.0.0:443 is listening and no rule allows it"}
	v.Listeners[0].New = true
	v.Listeners[1].Gone = true
	u.Update(sampleMsg{view: v})
	s := u.render()
	lines := strings.Split(s, "\n")
	if !strings.Contains(lines[1], "policy: 1 !") || !strings.HasPrefix(stripANSI(lines[2]), "! PROTO") {
		t.Errorf("no policy count or ! column:\n%s", s)
	}
	var row443, row53 string
	for _, l := range lines {
		switch {
		case strings.Contains(l, ":443 "):
			row443 = l
		case strings.Contains(l, ":53 "):
			row53 = l
		}
	}
	if !strings.HasPrefix(stripANSI(row443), "! ") || strings.HasPrefix(stripANSI(row53), "!") {
		t.Errorf("marks: %q / %q", row443, row53)
	}
	// The first row is selected (reverse); the closed one is faint.
	if !strings.Contains(row53, "\x1b[2m") {
		t.Errorf("closed listener not faint: %q", row53)
	}
	u.Update(tea.KeyPressMsg{Code: tea.KeyDown})
	s = u.render()
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, ":443 ") && !strings.Contains(l, "\x1b[1m") {
			t.Errorf("new listener not bold: %q", l)
		}
	}
	if strings.ContainsAny(stripANSI(s), "\x1b") || strings.Contains(s, "[3") {
		t.Errorf("colours under NO_COLOR:\n%q", s)
	}
	for range top.NumColumns {
		if u.sortCol == top.ColPolicy {
			break
		}
		u.Update(tea.KeyPressMsg{Code: 's', Text: "s"})
	}
	if s := u.render(); !strings.Contains(s, "sort POLICY▼") {
		t.Errorf("sort never reaches POLICY:\n%s", s)
	}
	u.selected = 0
	u.Update(tea.KeyPressMsg{Code: tea.KeyEnter})
	if s := u.render(); !strings.Contains(s, "! policy unexpected: tcp 0.0.0.0:443 is listening") {
		t.Errorf("details without the finding:\n%s", s)
	}
}

// runTop runs porteiro-top in this process, as its main does.
func runTop(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	code = cli.MainTop(args, strings.NewReader(""), &out, &errb, Run)
	return out.String(), errb.String(), code
}

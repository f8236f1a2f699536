package cli

import (
	"bytes"
	"encoding/json"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"

	"github.com/porteiro/porteiro/internal/top"
	"github.com/porteiro/porteiro/inventory"
)

func TestTopUsageErrors(t *testing.T) {
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
	out, errs, code := runCLI(t, "top", "-b", "-n", "2", "-d", "0.2", "-o", "ndjson")
	if code != ExitOK {
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
	out, _, code = runCLI(t, "top", "-b", "-n", "1", "-d", "0.2")
	if code != ExitOK || !strings.Contains(out, "127.0.0.1:"+strconv.Itoa(port)) || !strings.Contains(out, "CONNS") {
		t.Errorf("text batch: exit %d\n%s", code, out)
	}
}

func sampleView() *top.View {
	hostile := inventory.Process{PID: 42, Name: "evil\x1b[31m", User: "root", Cmdline: []string{"evil\x1b]0;x\x07", "--flag\r"}}
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
		for _, l := range layoutTable(topColumns(v.Listeners, 1), rows, w) {
			if n := cellWidth(l); n > w {
				t.Errorf("width %d: line of %d cells: %q", w, n, l)
			}
		}
	}
	lines := layoutTable(topColumns(v.Listeners, 7), rows, 80)
	for _, h := range []string{"PROTO", "LOCAL", "COMMAND", "CONNS", "IN/s", "OUT/s"} {
		if !strings.Contains(lines[0], h) {
			t.Errorf("80 columns: header lacks %s: %q", h, lines[0])
		}
	}
}

// The interactive model, driven with key messages: sort, filter, group,
// details and the kill refusal for a process porteiro never signals.
func TestTopUIKeys(t *testing.T) {
	u := newTopUI(&topFlags{delay: 1, procRoot: "/proc"})
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

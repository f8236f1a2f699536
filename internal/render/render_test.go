package render

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/porteiro/porteiro/inventory"
)

func sample() (*inventory.Snapshot, []inventory.Socket) {
	socks := []inventory.Socket{
		{Proto: inventory.TCP, Family: inventory.IPv6, State: "LISTEN", DualStack: true, Exposure: inventory.ExposureAll, Listening: true,
			Local: inventory.Endpoint{Address: netip.MustParseAddr("::"), Port: 22}, Remote: inventory.Endpoint{Address: netip.MustParseAddr("::")},
			Inode: 10, Processes: []inventory.Process{
				{ProcessInfo: &inventory.ProcessInfo{PID: 812, Name: "sshd", User: "root", Cmdline: []string{"/usr/sbin/sshd", "-D"}}, FDs: []int{3}},
				{ProcessInfo: &inventory.ProcessInfo{PID: 9000, Name: "sshd", User: "root", Cmdline: []string{"sshd: admin [priv]"}}, FDs: []int{3}},
			}},
		{Proto: inventory.UDP, Family: inventory.IPv4, State: "UNCONN", Exposure: inventory.ExposureLoopback, Listening: true,
			Local: inventory.Endpoint{Address: netip.MustParseAddr("127.0.0.1"), Port: 53}, Inode: 11,
			UnattributedReason: inventory.ReasonNotPermitted},
		{Proto: inventory.TCP, Family: inventory.IPv6, State: "LISTEN", Exposure: inventory.ExposureLoopback,
			Local: inventory.Endpoint{Address: netip.MustParseAddr("::1"), Port: 8080}, Inode: 12,
			Processes: []inventory.Process{{ProcessInfo: &inventory.ProcessInfo{PID: 5, Name: "evil\x1b[2J", User: "www-data", Cmdline: []string{"a,b", "c\nd"}}}}},
	}
	return &inventory.Snapshot{Time: time.Unix(1700000000, 0).UTC(), Source: "netlink", Privileged: false}, socks
}

func TestTableAligned(t *testing.T) {
	snap, socks := sample()
	var b bytes.Buffer
	if err := Sockets(&b, "table", snap, socks, Options{}); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	if len(lines) != 4 {
		t.Fatalf("want header + 3 rows:\n%s", b.String())
	}
	for _, col := range []string{"LOCAL", "STATE", "PID", "COMMAND"} {
		at := strings.Index(lines[0], col)
		for _, ln := range lines[1:] {
			if ln[at-1] != ' ' || ln[at] == ' ' {
				t.Errorf("column %s not aligned at %d in %q", col, at, ln)
			}
		}
	}
	out := b.String()
	for _, want := range []string{"*:22", "812,9000", "/usr/sbin/sshd -D | sshd: admin [priv]", "127.0.0.1:53", "(not permitted)", "[::1]:8080"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.ContainsAny(out, "\x1b") || strings.Contains(out, "c\nd") {
		t.Errorf("control characters reached the terminal:\n%q", out)
	}
}

func TestTableTruncatesToWidth(t *testing.T) {
	snap, socks := sample()
	var b bytes.Buffer
	Sockets(&b, "table", snap, socks, Options{Width: 90})
	for _, ln := range strings.Split(strings.TrimRight(b.String(), "\n"), "\n") {
		if n := len([]rune(ln)); n > 90 {
			t.Errorf("line of %d runes exceeds width 90: %q", n, ln)
		}
	}
}

func TestJSONDocument(t *testing.T) {
	snap, socks := sample()
	var b bytes.Buffer
	if err := Sockets(&b, "json", snap, socks, Options{}); err != nil {
		t.Fatal(err)
	}
	var doc map[string]any
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc["schema_version"].(float64) != 1 || doc["privileged"].(bool) {
		t.Errorf("envelope: %v", doc)
	}
	s0 := doc["sockets"].([]any)[0].(map[string]any)
	if s0["local"].(map[string]any)["port"].(float64) != 22 || s0["dual_stack"] != true || s0["exposure"] != "all" {
		t.Errorf("socket: %v", s0)
	}
	s1 := doc["sockets"].([]any)[1].(map[string]any)
	if procs, ok := s1["processes"].([]any); !ok || len(procs) != 0 || s1["unattributed_reason"] != "not_permitted" {
		t.Errorf("unattributed socket: processes must be [] with a reason: %v", s1)
	}
}

func TestCSV(t *testing.T) {
	snap, socks := sample()
	var b bytes.Buffer
	Sockets(&b, "csv", snap, socks, Options{})
	lines := strings.Split(strings.TrimRight(b.String(), "\n"), "\n")
	// header, two processes of sshd, the unattributed one, then a quoted
	// multi-line command line.
	if !strings.HasPrefix(lines[0], "proto,family,state") || lines[1][:3] != "tcp" || !strings.Contains(b.String(), `"a,b c`) {
		t.Errorf("csv:\n%s", b.String())
	}
}

func TestCheckFormat(t *testing.T) {
	for _, f := range Formats {
		if CheckFormat(f) != nil {
			t.Errorf("%s rejected", f)
		}
	}
	if CheckFormat("yaml") == nil {
		t.Error("yaml accepted")
	}
}

// Stream prints what a Table holding every row prints, whether a call
// adds one row or several, and when the last cell is left out while
// measuring.
func TestStreamIsTable(t *testing.T) {
	rows := [][]string{
		{"tcp", "0.0.0.0:22", "all", "sshd: admin [priv] \x1b[31m"},
		{"udp", "[fe80::1%eth0]:5353", "-", "avahi"},
		{"tcp", "*:80", "loopback", "nginx: worker process\nfake line"},
		{"tcp6", "x", "名前", ""},
	}
	header := []string{"PROTO", "LOCAL", "EXPOSURE", "COMMAND"}
	for _, o := range []Options{{}, {Width: 40}, {Bold: true}} {
		tb := NewTable(header...)
		for _, r := range rows {
			tb.Row(r...)
		}
		var want bytes.Buffer
		if err := tb.Write(&want, o); err != nil {
			t.Fatal(err)
		}
		for _, per := range []int{1, 2} {
			var got bytes.Buffer
			err := Stream(&got, o, header, (len(rows)+per-1)/per, func(i int, t *Table) {
				for _, r := range rows[i*per : min(len(rows), (i+1)*per)] {
					if t.Measuring() {
						r = r[:len(r)-1]
					}
					t.Row(r...)
				}
			})
			if err != nil {
				t.Fatal(err)
			}
			if got.String() != want.String() {
				t.Errorf("options %+v, %d rows a call:\n got %q\nwant %q", o, per, got.String(), want.String())
			}
		}
	}
}

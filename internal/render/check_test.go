package render

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/porteiro/porteiro/inventory"
	"github.com/porteiro/porteiro/policy"
)

// checkSample checks a policy against a host where a process with a
// hostile name listens on an allowed port, and nothing listens on a
// required one.
func checkSample(t *testing.T) Check {
	t.Helper()
	pol, err := policy.Parse([]byte(`
allow:
  - name: web
    port: 8080
    process: nginx
require:
  - name: ssh
    port: 22
`), "policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	evil := "ng\x1b[2K\rinx\u202e"
	socks := []inventory.Socket{
		{Proto: inventory.TCP, Family: inventory.IPv4, State: "LISTEN", Listening: true, Exposure: inventory.ExposureAll, Inode: 7,
			Local:     inventory.Endpoint{Address: netip.MustParseAddr("0.0.0.0"), Port: 8080},
			Processes: []inventory.Process{{ProcessInfo: &inventory.ProcessInfo{PID: 4242, Name: evil, User: "mallory", Cmdline: []string{evil, "--\nfake line"}}}}},
		{Proto: inventory.TCP, Family: inventory.IPv4, State: "LISTEN", Listening: true, Exposure: inventory.ExposureAll, Inode: 8,
			Local:              inventory.Endpoint{Address: netip.MustParseAddr("0.0.0.0"), Port: 4444},
			UnattributedReason: inventory.ReasonNotPermitted},
	}
	snap := &inventory.Snapshot{Time: time.Unix(1700000000, 0).UTC(), Sockets: socks, Privileged: true, Source: "netlink",
		Notes: []string{"1 socket(s) without a process: " + inventory.ReasonNotPermitted.Hint()}}
	return Check{Policy: "policy\x1b[31m.yaml", Rules: len(pol.Rules), Snap: snap, Report: pol.Check(snap)}
}

func TestCheckTable(t *testing.T) {
	c := checkSample(t)
	var b bytes.Buffer
	if err := CheckTable(&b, c, Options{}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	if ok, r := safe(strings.ReplaceAll(out, "\n", "")); !ok {
		t.Fatalf("%U reached the terminal:\n%q", r, out)
	}
	for _, want := range []string{
		"KIND ", "wrong_owner", "unexpected", "missing",
		`ng\x1b[2K\rinx\u202e`, "(not permitted)",
		"3 finding(s): 1 unexpected, 1 missing, 1 wrong_owner (2 listening socket(s), 2 rule(s) in policy\\x1b[31m.yaml)",
		"held by " + inventory.ReasonNotPermitted.Holder(),
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q:\n%s", want, out)
		}
	}
	// Three table rows, a blank line, the summary and three messages: a
	// newline in a command line adds none.
	if n := strings.Count(out, "\n"); n != 1+3+1+1+3 {
		t.Errorf("%d lines:\n%s", n, out)
	}
	if strings.Contains(out, "\x1b") {
		t.Error("colour without Options.Color")
	}

	b.Reset()
	CheckTable(&b, c, Options{Width: 200, Bold: true, Color: true})
	for _, want := range []string{"\x1b[1mKIND", "\x1b[31mwrong_owner\x1b[0m  tcp", "\x1b[35mmissing\x1b[0m ", "\x1b[31munexpected\x1b[0m "} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("coloured report lacks %q:\n%q", want, b.String())
		}
	}
}

func TestCheckTableClean(t *testing.T) {
	c := checkSample(t)
	c.Report = &policy.Report{Checked: 3}
	var b bytes.Buffer
	CheckTable(&b, c, Options{})
	if want := "clean: 3 listening socket(s) match the 2 rule(s) of policy\\x1b[31m.yaml\n"; b.String() != want {
		t.Errorf("clean report %q, want %q", b.String(), want)
	}
}

func TestCheckJSON(t *testing.T) {
	c := checkSample(t)
	var b bytes.Buffer
	if err := CheckJSON(&b, c); err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(b.String(), "\x1b\r") {
		t.Error("raw control characters in JSON")
	}
	var doc CheckDocument
	if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
		t.Fatal(err)
	}
	if doc.SchemaVersion != CheckSchemaVersion || doc.Clean || doc.Listeners != 2 || doc.Rules != 2 || len(doc.Findings) != 3 ||
		doc.Counts["wrong_owner"] != 1 || doc.Policy != c.Policy || len(doc.Notes) != 1 {
		t.Errorf("document: %+v", doc)
	}
	for _, f := range doc.Findings {
		if f.Kind == policy.WrongOwner && f.Socket.Processes[0].Name != c.Snap.Sockets[0].Processes[0].Name {
			t.Errorf("JSON changed the name to %q", f.Socket.Processes[0].Name)
		}
		if f.Kind == policy.Unexpected && (f.Socket.Processes == nil || len(f.Socket.Processes) != 0) {
			t.Errorf("processes of an unattributed socket: %v, want []", f.Socket.Processes)
		}
	}
	// The report the caller owns is untouched.
	for _, f := range c.Report.Findings {
		if f.Kind == policy.Unexpected && f.Socket.Processes != nil {
			t.Error("CheckJSON wrote into the caller's report")
		}
	}
	c.Report, c.Snap.Notes = &policy.Report{}, nil
	b.Reset()
	CheckJSON(&b, c)
	if !strings.Contains(b.String(), `"findings": []`) || !strings.Contains(b.String(), `"notes": []`) {
		t.Errorf("empty lists must be [], not null:\n%s", b.String())
	}
}

// A finding inside a container names it in the row (a NETNS column, as in
// list) and in its message; a report with host findings only has no NETNS
// column, as before.
func TestCheckTableContainer(t *testing.T) {
	pol, err := policy.Parse([]byte("allow:\n  - port: 22\n"), "policy.yaml")
	if err != nil {
		t.Fatal(err)
	}
	so := inventory.Socket{Proto: inventory.TCP, Family: inventory.IPv4, State: "LISTEN", Listening: true, Exposure: inventory.ExposureLoopback, Inode: 9,
		Local:     inventory.Endpoint{Address: netip.MustParseAddr("127.0.0.1"), Port: 6379},
		NetNS:     4026532401,
		Container: &inventory.Container{Runtime: "docker", ID: "3f2a9c1b2d3e4f5a", Name: "web-1"},
		Processes: []inventory.Process{{ProcessInfo: &inventory.ProcessInfo{PID: 31, Name: "redis-server", User: "redis", Cmdline: []string{"redis-server"}}}}}
	so.NetNSName = so.ContainerName()
	host := so
	host.NetNS, host.NetNSName, host.Container, host.Local.Port = 4026531840, "host", nil, 6380
	snap := &inventory.Snapshot{Sockets: []inventory.Socket{so, host}, Privileged: true}
	var b bytes.Buffer
	if err := CheckTable(&b, Check{Policy: "policy.yaml", Rules: 1, Snap: snap, Report: pol.Check(snap)}, Options{}); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	lines := strings.Split(out, "\n")
	if f := strings.Fields(lines[0]); len(f) < 4 || f[3] != "NETNS" {
		t.Errorf("header %q: no NETNS column", lines[0])
	}
	if f := strings.Fields(lines[1]); len(f) < 4 || f[3] != "web-1" || f[2] != "127.0.0.1:6379" {
		t.Errorf("row %q does not name the container", lines[1])
	}
	if f := strings.Fields(lines[2]); len(f) < 4 || f[3] != "host" {
		t.Errorf("host row %q", lines[2])
	}
	if !strings.Contains(out, "unexpected: tcp 127.0.0.1:6379 in container web-1 is listening and no rule allows it") {
		t.Errorf("message does not name the container:\n%s", out)
	}

	snap.Sockets = snap.Sockets[1:]
	b.Reset()
	CheckTable(&b, Check{Policy: "policy.yaml", Rules: 1, Snap: snap, Report: pol.Check(snap)}, Options{})
	if strings.Contains(b.String(), "NETNS") {
		t.Errorf("NETNS column with host findings only:\n%s", b.String())
	}
}

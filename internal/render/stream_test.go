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

// The streamed document is byte for byte what json.Encoder writes for the
// whole document at once.
func TestStreamedJSONIsTheSameDocument(t *testing.T) {
	sock := func(port uint16, procs int) inventory.Socket {
		s := inventory.Socket{Proto: inventory.TCP, Family: inventory.IPv4, State: "LISTEN",
			Local: inventory.Endpoint{Address: netip.MustParseAddr("127.0.0.1"), Port: port}, Inode: uint64(port), Listening: true}
		for i := 0; i < procs; i++ {
			s.Processes = append(s.Processes, inventory.Process{ProcessInfo: &inventory.ProcessInfo{PID: 100 + i, Name: "a<b>&\x1b\u202e", Cmdline: []string{"x", "--y=\"z\""}}, FDs: []int{3, 4}})
		}
		if procs == 0 {
			s.UnattributedReason = inventory.ReasonExited
		}
		return s
	}
	snap := &inventory.Snapshot{Time: time.Date(2026, 1, 2, 3, 4, 5, 6, time.UTC), Source: "sock_diag", Resolver: "taskfd", Privileged: true}
	for name, socks := range map[string][]inventory.Socket{
		"none":  nil,
		"one":   {sock(22, 1)},
		"many":  {sock(22, 2), sock(80, 0), sock(443, 3)},
		"notes": {sock(53, 1)},
	} {
		t.Run(name, func(t *testing.T) {
			sn := *snap
			if name == "notes" {
				sn.Notes = []string{"a note", "another \"one\""}
			}
			var want bytes.Buffer
			enc := json.NewEncoder(&want)
			enc.SetIndent("", "  ")
			if err := enc.Encode(NewDocument(&sn, append([]inventory.Socket(nil), socks...))); err != nil {
				t.Fatal(err)
			}
			var got bytes.Buffer
			if err := Sockets(&got, "json", &sn, append([]inventory.Socket(nil), socks...), Options{}); err != nil {
				t.Fatal(err)
			}
			if got.String() != want.String() {
				t.Errorf("streamed:\n%s\nwhole:\n%s", got.String(), want.String())
			}
			if !json.Valid(got.Bytes()) || !strings.HasSuffix(got.String(), "}\n") {
				t.Errorf("not one JSON document")
			}
		})
	}
}

package cli

import (
	"encoding/json"
	"os"
	"reflect"
	"strconv"
	"testing"

	"github.com/porteiro/porteiro/internal/sockfd/sockfdtest"
	"github.com/porteiro/porteiro/internal/testenv"
)

// `porteiro pid PID` (pidfd) prints what `porteiro list --all --pid PID`
// (the dump of the host, filtered) prints for the same process, in every
// format: the holder of TCP and UDP, v4 and v6 listeners and connections,
// and processes with hostile names.
func TestPIDOutputMatchesTheDump(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: pidfd_getfd of another process")
	}
	h := sockfdtest.Start(t)
	pids := []string{strconv.Itoa(h.PID)}
	for _, x := range testenv.StartHostile(t) {
		pids = append(pids, strconv.Itoa(x.PID))
	}
	for _, pid := range pids {
		for _, format := range []string{"table", "wide", "csv"} {
			got, gerr, gcode := runCLI(t, "pid", pid, "-o", format)
			want, _, wcode := runCLI(t, "list", "--all", "--pid", pid, "-o", format)
			if gcode != 0 || gcode != wcode || got != want {
				t.Errorf("pid %s -o %s: exit %d (list: %d), stderr %q\n got:\n%s\nwant:\n%s", pid, format, gcode, wcode, gerr, got, want)
			}
		}
		got, _, _ := runCLI(t, "pid", pid, "--listening", "-o", "table")
		want, _, _ := runCLI(t, "list", "--pid", pid, "-o", "table")
		if got != want {
			t.Errorf("pid %s --listening:\n got:\n%s\nwant:\n%s", pid, got, want)
		}
		g := pidDoc(t, "pid", pid, "-o", "json")
		w := pidDoc(t, "list", "--all", "--pid", pid, "-o", "json")
		if g["source"] != "pidfd" || g["resolver"] != "pidfd" {
			t.Errorf("pid %s: source %v, resolver %v", pid, g["source"], g["resolver"])
		}
		// The time differs, the source and resolver say how the sockets
		// were found, and the dump's notes speak of the host's other
		// sockets: the rest is the same.
		for _, k := range []string{"time", "source", "resolver", "notes"} {
			delete(g, k)
			delete(w, k)
		}
		if !reflect.DeepEqual(g, w) {
			gb, _ := json.MarshalIndent(g, "", " ")
			wb, _ := json.MarshalIndent(w, "", " ")
			t.Errorf("pid %s -o json:\n got %s\nwant %s", pid, gb, wb)
		}
	}
}

// pidDoc runs porteiro and decodes its JSON document, with what changes
// between two reads of a process (%CPU, RSS, run state) left out.
func pidDoc(t *testing.T, args ...string) map[string]any {
	t.Helper()
	out, errs, code := runCLI(t, args...)
	if code != 0 {
		t.Fatalf("porteiro %v: exit %d: %s", args, code, errs)
	}
	var doc map[string]any
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("porteiro %v: %v\n%s", args, err, out)
	}
	socks, _ := doc["sockets"].([]any)
	if len(socks) == 0 {
		t.Fatalf("porteiro %v: no sockets", args)
	}
	for _, s := range socks {
		for _, p := range s.(map[string]any)["processes"].([]any) {
			pm := p.(map[string]any)
			delete(pm, "cpu_percent")
			delete(pm, "rss_bytes")
			delete(pm, "state")
		}
	}
	return doc
}

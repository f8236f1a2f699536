package render

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/porteiro/porteiro/inventory"
	"github.com/porteiro/porteiro/policy"
)

// CheckSchemaVersion is the version of the JSON that "check -o json" writes
// (docs/check-json.md).
const CheckSchemaVersion = 1

// Check is one policy check to print: the policy file, the scan and what
// the policy made of it.
type Check struct {
	Policy string
	Rules  int
	Snap   *inventory.Snapshot
	Report *policy.Report
}

// CheckDocument is the JSON that "check -o json" writes.
type CheckDocument struct {
	SchemaVersion int              `json:"schema_version"`
	Time          time.Time        `json:"time"`
	Host          string           `json:"host"`
	Policy        string           `json:"policy"`
	Clean         bool             `json:"clean"`
	Listeners     int              `json:"listeners"`
	Rules         int              `json:"rules"`
	Privileged    bool             `json:"privileged"`
	Counts        map[string]int   `json:"counts"`
	Findings      []policy.Finding `json:"findings"`
	Notes         []string         `json:"notes"`
}

// CheckJSON writes the report as JSON. Strings are the raw data: this is
// for programs, and encoding/json escapes control characters itself.
func CheckJSON(w io.Writer, c Check) error {
	host, _ := os.Hostname()
	rep := c.Report
	doc := CheckDocument{
		SchemaVersion: CheckSchemaVersion,
		Time:          c.Snap.Time,
		Host:          host,
		Policy:        c.Policy,
		Clean:         rep.Clean(),
		Listeners:     rep.Checked,
		Rules:         c.Rules,
		Privileged:    c.Snap.Privileged,
		Counts:        rep.Counts(),
		Findings:      rep.Findings,
		Notes:         c.Snap.Notes,
	}
	// Never null; and a copy, so that filling in empty process lists below
	// does not write into the report the caller owns.
	doc.Findings = append([]policy.Finding{}, doc.Findings...)
	for i := range doc.Findings {
		if s := doc.Findings[i].Socket; s != nil && s.Processes == nil {
			cp := *s
			cp.Processes = []inventory.Process{}
			doc.Findings[i].Socket = &cp
		}
	}
	if doc.Notes == nil {
		doc.Notes = []string{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

// checkColors marks each finding kind on a terminal.
var checkColors = map[string]string{
	policy.Unexpected: "\x1b[31m", // red
	policy.WrongOwner: "\x1b[31m",
	policy.Missing:    "\x1b[35m", // magenta
	policy.TooExposed: "\x1b[33m", // yellow
}

// CheckTable writes the report for a person: a table of findings, a
// summary line and one message per finding, every name escaped. With
// o.Color the KIND cells are coloured.
func CheckTable(out io.Writer, c Check, o Options) error {
	w := bufio.NewWriter(out)
	if err := checkTable(w, c, o); err != nil {
		return err
	}
	return w.Flush()
}

func checkTable(w io.Writer, c Check, o Options) error {
	rep := c.Report
	path := Escape(c.Policy)
	if rep.Clean() {
		_, err := fmt.Fprintf(w, "clean: %d listening socket(s) match the %d rule(s) of %s\n", rep.Checked, c.Rules, path)
		return err
	}
	// A NETNS column, as in list, when a finding is in another namespace
	// than the host's: a container's loopback listener says so nowhere
	// else in the row.
	withNS := false
	for _, f := range rep.Findings {
		withNS = withNS || (f.Socket != nil && Foreign(f.Socket))
	}
	header := []string{"KIND", "PROTO", "LOCAL", "EXPOSURE", "PID", "USER", "PROCESS", "RULE", "EXPECTED", "COMMAND"}
	if withNS {
		header = slices.Insert(header, 3, "NETNS")
	}
	t := NewTable(header...)
	row := func(netns string, cells ...string) {
		if withNS {
			cells = slices.Insert(cells, 3, netns)
		}
		t.Row(cells...)
	}
	for _, f := range rep.Findings {
		rule, expected := dash(f.Rule), dash(f.Expected)
		if f.Socket == nil {
			row("-", f.Kind, "-", "-", "-", "-", "-", "-", rule, expected, "-")
			continue
		}
		s := f.Socket
		pids, users, names, cmd := "-", "-", Unattributed(s.UnattributedReason), "-"
		if len(s.Processes) > 0 {
			ps := make([]string, len(s.Processes))
			for i := range s.Processes {
				ps[i] = strconv.Itoa(s.Processes[i].PID)
			}
			pids = strings.Join(ps, ",")
			users = dash(joinUnique(s.Processes, func(p *inventory.Process) string { return p.User }))
			names = joinUnique(s.Processes, func(p *inventory.Process) string { return p.Name })
			cmd = s.Processes[0].CommandLine()
		}
		row(NetNS(s), f.Kind, string(s.Proto), Local(s), Exposure(s), pids, users, names, rule, expected, cmd)
	}
	var buf bytes.Buffer
	if err := t.Write(&buf, o); err != nil {
		return err
	}
	lines := strings.SplitAfter(buf.String(), "\n")
	for i, line := range lines {
		// Colour only the KIND cell, after the table is lined up, so the
		// escape codes do not count as width.
		if o.Color && i > 0 && i <= len(rep.Findings) {
			k := rep.Findings[i-1].Kind
			if col, ok := checkColors[k]; ok && strings.HasPrefix(line, k) {
				line = col + k + "\x1b[0m" + line[len(k):]
			}
		}
		if _, err := io.WriteString(w, line); err != nil {
			return err
		}
	}
	counts := rep.Counts()
	var parts []string
	for _, k := range policy.Kinds {
		if counts[k] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[k], k))
		}
	}
	fmt.Fprintf(w, "\n%d finding(s): %s (%d listening socket(s), %d rule(s) in %s)\n", len(rep.Findings), strings.Join(parts, ", "), rep.Checked, c.Rules, path)
	for _, f := range rep.Findings {
		// The message quotes process names and command lines.
		fmt.Fprintf(w, "  %s: %s\n", f.Kind, Escape(f.Message))
	}
	if rep.Unverified > 0 {
		fmt.Fprintf(w, "%d listening socket(s) could not be checked against owner conditions: their processes are not visible\n", rep.Unverified)
	}
	return nil
}

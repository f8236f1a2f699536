package e2e

import (
	"bytes"
	"encoding/csv"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/porteiro/porteiro/internal/render"
	"github.com/porteiro/porteiro/internal/testenv"
)

// terminalSafe reports the first rune in s, other than the newlines that
// end lines, that a terminal would act on instead of showing.
func terminalSafe(s string) (bool, rune) {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, n := utf8.DecodeRuneInString(s[i:]); n == 1 {
				return false, r
			}
		}
		if (r < 0x20 && r != '\n') || (r >= 0x7f && r <= 0x9f) || r == 0x2028 || r == 0x2029 || unicode.Is(unicode.Cf, r) {
			return false, r
		}
	}
	return true, 0
}

func hostilePorts(hs []testenv.Hostile) string {
	var ps []string
	for _, h := range hs {
		ps = append(ps, strconv.Itoa(h.TCPPort), strconv.Itoa(h.UDPPort))
	}
	return strings.Join(ps, ",")
}

// Processes whose names and command lines hold escape sequences, CR, LF,
// bidi controls and invalid UTF-8 show escaped in the table, lined up,
// one line each; escaped and formula-safe in CSV; raw in JSON.
func TestHostileNamesInList(t *testing.T) {
	hs := testenv.StartHostile(t)
	ports := hostilePorts(hs)
	cmdline := render.Escape(strings.Join(testenv.HostileArgs, " "))

	r := porteiro(t, "list", "--port", ports)
	if r.code != 0 {
		t.Fatalf("list: exit %d\n%s", r.code, r.stderr)
	}
	if ok, c := terminalSafe(r.stdout + r.stderr); !ok {
		t.Fatalf("list printed %U:\n%q", c, r.stdout)
	}
	lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
	if len(lines) != 1+2*len(hs) {
		t.Fatalf("%d lines for %d sockets: a name broke a line:\n%s", len(lines), 2*len(hs), r.stdout)
	}
	at := strings.Index(lines[0], "COMMAND")
	for _, h := range hs {
		name := render.Escape(h.Comm)
		n := 0
		for _, ln := range lines[1:] {
			if !strings.Contains(ln, " "+strconv.Itoa(h.PID)+" ") {
				continue
			}
			n++
			if !strings.Contains(ln, "  "+name+"  ") {
				t.Errorf("the line of pid %d lacks the escaped name %q: %q", h.PID, name, ln)
			}
			// Escaped names are ASCII, so bytes are columns up to COMMAND.
			if i := strings.Index(ln, cmdline); i != at {
				t.Errorf("the command of pid %d starts at column %d, want %d:\n%s\n%s", h.PID, i, at, lines[0], ln)
			}
		}
		if n != 2 {
			t.Errorf("pid %d (%q) on %d lines, want 2 (tcp and udp):\n%s", h.PID, h.Comm, n, r.stdout)
		}
	}

	r = porteiro(t, "list", "--port", ports, "-o", "csv")
	if ok, c := terminalSafe(r.stdout); !ok || r.code != 0 {
		t.Fatalf("list -o csv: exit %d, printed %U:\n%q", r.code, c, r.stdout)
	}
	rows, err := csv.NewReader(strings.NewReader(r.stdout)).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1+2*len(hs) || strings.Count(r.stdout, "\n") != len(rows) {
		t.Fatalf("csv: %d rows on %d lines for %d sockets:\n%s", len(rows), strings.Count(r.stdout, "\n"), 2*len(hs), r.stdout)
	}
	// Columns by their header, so that a new column does not move them.
	col := map[string]int{}
	for i, h := range rows[0] {
		col[h] = i
	}
	pidC, nameC, cmdC := col["pid"], col["name"], col["cmdline"]
	if pidC == 0 || nameC == 0 || cmdC == 0 {
		t.Fatalf("csv header %q lacks pid, name or cmdline", rows[0])
	}
	byPID := map[string]string{}
	for _, row := range rows[1:] {
		byPID[row[pidC]] = row[nameC]
		for _, cell := range row {
			if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
				t.Errorf("csv cell %q would run as a formula", cell)
			}
		}
		if row[cmdC] != cmdline {
			t.Errorf("csv cmdline %q, want %q", row[cmdC], cmdline)
		}
	}
	for _, h := range hs {
		want := render.Escape(h.Comm)
		if strings.ContainsRune("=+-@", rune(want[0])) {
			want = "'" + want
		}
		if got := byPID[strconv.Itoa(h.PID)]; got != want {
			t.Errorf("csv name of pid %d: %q, want %q", h.PID, got, want)
		}
	}

	r = porteiro(t, "list", "--port", ports, "-o", "json")
	d := decode(t, r.stdout)
	for _, s := range d.Sockets {
		for _, h := range hs {
			if len(s.Processes) == 1 && s.Processes[0].PID == h.PID {
				if want := string([]rune(h.Comm)); s.Processes[0].Name != want {
					t.Errorf("json name of pid %d: %q, want the raw %q", h.PID, s.Processes[0].Name, want)
				}
			}
		}
	}
}

// The kill confirmation names each process escaped, so that a name cannot
// erase the prompt and write another one.
func TestHostileNameInKillPrompt(t *testing.T) {
	hs := testenv.StartHostile(t)
	master, tty := testenv.OpenPTY(t)
	for _, h := range hs {
		if _, err := master.Write([]byte("n\n")); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(testenv.Binary(t), "kill", strconv.Itoa(h.TCPPort)+"/tcp")
		var out, errb bytes.Buffer
		cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, &out, &errb
		err := cmd.Run()
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 2 {
			t.Fatalf("kill answered no: %v, want exit 2\n%s%s", err, out.String(), errb.String())
		}
		if ok, c := terminalSafe(out.String() + errb.String()); !ok {
			t.Errorf("kill prompt printed %U:\n%q", c, out.String())
		}
		want := "will send SIGTERM to pid " + strconv.Itoa(h.PID) + " (" + render.Escape(h.Comm) + ", user "
		if !strings.Contains(out.String(), want) || !strings.Contains(out.String(), render.Escape(strings.Join(testenv.HostileArgs, " "))+"\nProceed? [y/N] nothing signalled\n") {
			t.Errorf("kill prompt for %q:\n%q\nwant %q", h.Comm, out.String(), want)
		}
		if err := syscall.Kill(h.PID, 0); err != nil {
			t.Errorf("pid %d was signalled after the answer no: %v", h.PID, err)
		}
	}
}

// check's findings name the hostile processes escaped, in the table and
// in the summary lines.
func TestHostileNamesInCheck(t *testing.T) {
	hs := testenv.StartHostile(t)
	pol := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(pol, []byte("allow:\n  - port: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := porteiro(t, "check", "-p", pol)
	if r.code != 1 {
		t.Fatalf("check: exit %d, want 1 (findings)\n%s%s", r.code, r.stdout, r.stderr)
	}
	if ok, c := terminalSafe(r.stdout + r.stderr); !ok {
		t.Fatalf("check printed %U:\n%q", c, r.stdout)
	}
	for _, h := range hs {
		name := render.Escape(h.Comm)
		for _, want := range []string{
			"  " + name + "  ",
			"unexpected: tcp 127.0.0.1:" + strconv.Itoa(h.TCPPort) + " is listening and no rule allows it; held by " + name + " (pid " + strconv.Itoa(h.PID),
		} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("check output lacks %q", want)
			}
		}
	}
}

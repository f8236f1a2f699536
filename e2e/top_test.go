package e2e

import (
	"bufio"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/porteiro/porteiro/internal/testenv"
)

// topBinary builds porteiro into the test's own directory, with
// porteiro-top beside it, which "porteiro top" runs.
func topBinary(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	bin := filepath.Join(dir, "porteiro")
	cmd := exec.Command("go", "build", "-o", dir+"/", "./cmd/porteiro", "./cmd/porteiro-top")
	cmd.Dir = testenv.ModuleRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building porteiro: %v\n%s", err, out)
	}
	return bin
}

type topLine struct {
	Time      time.Time `json:"time"`
	Notes     []string  `json:"notes"`
	Listeners []struct {
		Proto string `json:"proto"`
		Local struct {
			Address string `json:"address"`
			Port    int    `json:"port"`
		} `json:"local"`
		Processes []struct {
			PID     int      `json:"pid"`
			Cmdline []string `json:"cmdline"`
		} `json:"processes"`
		Connections    int     `json:"connections"`
		NewPerSec      float64 `json:"new_per_sec"`
		BytesInPerSec  float64 `json:"bytes_in_per_sec"`
		BytesOutPerSec float64 `json:"bytes_out_per_sec"`
		TopPeer        *struct {
			Address     string `json:"address"`
			Connections int    `json:"connections"`
		} `json:"top_peer"`
	} `json:"listeners"`
}

// sink is a loopback server that reads and discards everything.
func sink(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	testenv.Drain(ln)
	return ln
}

// pusher writes rate bytes per second to addr, in chunks every 50 ms,
// counting what it wrote, until stop is closed.
func pusher(t *testing.T, addr string, rate int, written *atomic.Int64, stop <-chan struct{}, wg *sync.WaitGroup) {
	c, err := net.Dial("tcp4", addr)
	if err != nil {
		t.Error(err)
		wg.Done()
		return
	}
	go func() {
		defer wg.Done()
		testenv.Push(c, make([]byte, rate/20), 50*time.Millisecond, written, stop)
	}()
}

// Three clients push a known rate into a loopback server: its row comes
// first, with 3 connections and the rate the clients measured, within 20%.
// An idle listener shows 0 and 0.
func TestTopBatchRates(t *testing.T) {
	bin := topBinary(t)
	busy := sink(t)
	idle := sink(t)
	const rate = 400 << 10 // per client
	var written atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 3 {
		wg.Add(1)
		pusher(t, busy.Addr().String(), rate, &written, stop, &wg)
	}
	defer func() { close(stop); wg.Wait() }()
	time.Sleep(300 * time.Millisecond)

	cmd := exec.Command(bin, "top", "-b", "-n", "3", "-d", "1", "-o", "ndjson")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	startBytes := written.Load()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var lines []topLine
	sc := bufio.NewScanner(out)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var l topLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("line %d is not JSON: %v\n%s", len(lines)+1, err, sc.Bytes())
		}
		lines = append(lines, l)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("porteiro top: %v", err)
	}
	measured := float64(written.Load()-startBytes) / time.Since(start).Seconds()
	if len(lines) != 3 {
		t.Fatalf("%d snapshots, want 3", len(lines))
	}
	busyPort := busy.Addr().(*net.TCPAddr).Port
	idlePort := idle.Addr().(*net.TCPAddr).Port
	for i, l := range lines {
		if len(l.Listeners) == 0 {
			t.Fatalf("snapshot %d has no listeners", i)
		}
		first := l.Listeners[0]
		if first.Local.Port != busyPort {
			t.Errorf("snapshot %d: first row is port %d, want the busy one %d", i, first.Local.Port, busyPort)
			continue
		}
		if first.Connections != 3 {
			t.Errorf("snapshot %d: %d connections, want 3", i, first.Connections)
		}
		if got := first.BytesInPerSec; got < 0.8*measured || got > 1.2*measured {
			t.Errorf("snapshot %d: bytes_in_per_sec %.0f, the clients measured %.0f (not within 20%%)", i, got, measured)
		}
		if first.TopPeer == nil || first.TopPeer.Address != "127.0.0.1" || first.TopPeer.Connections != 3 {
			t.Errorf("snapshot %d: top_peer %+v, want 127.0.0.1 with 3 connections", i, first.TopPeer)
		}
		if len(first.Processes) == 0 || first.Processes[0].PID != os.Getpid() {
			t.Errorf("snapshot %d: owner %+v, want this test (pid %d)", i, first.Processes, os.Getpid())
		}
		found := false
		for _, x := range l.Listeners {
			if x.Local.Port == idlePort {
				found = true
				if x.Connections != 0 || x.BytesInPerSec != 0 || x.BytesOutPerSec != 0 || x.NewPerSec != 0 || x.TopPeer != nil {
					t.Errorf("snapshot %d: idle listener %+v", i, x)
				}
			}
		}
		if !found {
			t.Errorf("snapshot %d: idle listener %d missing", i, idlePort)
		}
		if !strings.Contains(strings.Join(l.Notes, "\n"), "undercounted") {
			t.Errorf("snapshot %d: no note that short connections may be undercounted: %q", i, l.Notes)
		}
	}
	t.Logf("clients measured %.0f B/s; top saw %.0f, %.0f, %.0f", measured,
		lines[0].Listeners[0].BytesInPerSec, lines[1].Listeners[0].BytesInPerSec, lines[2].Listeners[0].BytesInPerSec)
}

// A command line full of terminal escapes is printed escaped in the text
// output, never raw.
func TestTopBatchHostileCommandLine(t *testing.T) {
	bin := topBinary(t)
	listenerChild(t, "evil\x1b[2J\x1b]0;owned\x07\r\u202etxt.exe", testenv.FreePort(t))
	out, err := exec.Command(bin, "top", "-b", "-n", "1", "-d", "0.2").Output()
	if err != nil {
		t.Fatalf("porteiro top: %v", err)
	}
	s := string(out)
	if strings.ContainsAny(s, "\x1b\x07\r\u202e") {
		t.Errorf("raw control or bidi characters in the output:\n%q", s)
	}
	if !strings.Contains(s, `evil\x1b[2J`) {
		t.Errorf("escaped command line not shown:\n%s", s)
	}
}

// tmuxPane drives porteiro top in a real terminal.
type tmuxPane struct {
	t    *testing.T
	name string
}

func newTmux(t *testing.T, w, h int) *tmuxPane {
	t.Helper()
	testenv.RequireCommand(t, "tmux")
	p := &tmuxPane{t: t, name: fmt.Sprintf("porteiro-top-%d-%d", os.Getpid(), time.Now().UnixNano())}
	// A plain shell with a known prompt: after quitting, the prompt must
	// come back on the normal screen.
	p.tmux("new-session", "-d", "-s", p.name, "-x", strconv.Itoa(w), "-y", strconv.Itoa(h),
		"env", "-i", "PATH="+os.Getenv("PATH"), "TERM=xterm-256color", "PS1=ready$ ", "HOME="+t.TempDir(), "sh")
	t.Cleanup(func() { exec.Command("tmux", "kill-session", "-t", p.name).Run() })
	p.waitFor("the shell prompt", func(s string) bool { return strings.Contains(s, "ready$") })
	return p
}

func (p *tmuxPane) tmux(args ...string) string {
	p.t.Helper()
	out, err := exec.Command("tmux", args...).CombinedOutput()
	if err != nil {
		p.t.Fatalf("tmux %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func (p *tmuxPane) capture() string { return p.tmux("capture-pane", "-p", "-t", p.name) }

func (p *tmuxPane) keys(k ...string) { p.tmux(append([]string{"send-keys", "-t", p.name}, k...)...) }

func (p *tmuxPane) altScreen() bool {
	return strings.TrimSpace(p.tmux("display-message", "-p", "-t", p.name, "#{alternate_on}")) == "1"
}

func (p *tmuxPane) waitFor(what string, ok func(string) bool) string {
	p.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var s string
	for time.Now().Before(deadline) {
		s = p.capture()
		if ok(s) {
			return s
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.t.Fatalf("timed out waiting for %s; the screen:\n%s", what, s)
	return ""
}

// quit presses key and checks that the shell prompt is back on the normal
// screen: the terminal was restored.
func (p *tmuxPane) quit(key string) {
	p.t.Helper()
	p.keys(key)
	s := p.waitFor("the shell prompt after "+key, func(s string) bool {
		return !strings.Contains(s, "CONNS") && strings.Count(s, "ready$") >= 2
	})
	if p.altScreen() {
		p.t.Errorf("still on the alternate screen after %s:\n%s", key, s)
	}
}

// listenerChild starts this test binary as a process that listens on
// 127.0.0.1:port (see TestMain), with argv[0] set to name.
func listenerChild(t *testing.T, name string, port int) *exec.Cmd {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	child := exec.Command(self)
	child.Args = []string{name}
	child.Env = append(os.Environ(), "PORTEIRO_E2E_LISTEN=127.0.0.1:"+strconv.Itoa(port))
	stdout, _ := child.StdoutPipe()
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { child.Process.Kill(); child.Wait() })
	if l, _ := bufio.NewReader(stdout).ReadString('\n'); !strings.HasPrefix(l, "ready") {
		t.Fatalf("listener child: %q", l)
	}
	return child
}

// rowIndex is the screen line that shows port, or -1.
func rowIndex(screen string, port int) int {
	for i, l := range strings.Split(screen, "\n") {
		if strings.Contains(l, "127.0.0.1:"+strconv.Itoa(port)+" ") {
			return i
		}
	}
	return -1
}

func TestTopInteractive(t *testing.T) {
	bin := topBinary(t)
	busy := sink(t)
	idle := sink(t)
	var written atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	pusher(t, busy.Addr().String(), 200<<10, &written, stop, &wg)
	defer func() { close(stop); wg.Wait() }()
	bp, ip := busy.Addr().(*net.TCPAddr).Port, idle.Addr().(*net.TCPAddr).Port

	p := newTmux(t, 120, 30)
	p.keys(bin+" top -d 0.5", "Enter")
	s := p.waitFor("the table", func(s string) bool { return strings.Contains(s, "PROTO") && strings.Contains(s, "CONNS") })
	if !p.altScreen() {
		t.Error("not on the alternate screen while running")
	}
	owners := "owners complete"
	if os.Geteuid() != 0 {
		owners = "owners incomplete (not root)"
	}
	if !strings.Contains(s, "TOP PEER") || !strings.Contains(s, owners) {
		t.Errorf("header incomplete, or without %q:\n%s", owners, s)
	}
	// A busy host has more listeners than the screen has rows: keep this
	// test's own, by the path of its executable, unique to this run.
	mine := "proc:" + os.Args[0]
	p.keys("/")
	p.keys("-l", mine)
	p.keys("Enter")
	p.waitFor("both listeners of this test", func(s string) bool {
		return rowIndex(s, bp) >= 0 && rowIndex(s, ip) >= 0 && strings.Contains(s, "filter: proc:")
	})
	// The busy listener is above the idle one: traffic is the default sort.
	p.waitFor("the busy listener above the idle one", func(s string) bool {
		b, i := rowIndex(s, bp), rowIndex(s, ip)
		return b >= 0 && i >= 0 && b < i
	})

	// Filter: only the idle listener's port, then back to this test's.
	p.keys("Escape")
	p.waitFor("the filter cleared", func(s string) bool { return !strings.Contains(s, "filter: ") })
	p.keys("/")
	p.keys("-l", "port:"+strconv.Itoa(ip))
	p.keys("Enter")
	p.waitFor("the filter to keep only the idle listener", func(s string) bool {
		return rowIndex(s, ip) >= 0 && rowIndex(s, bp) < 0 && strings.Contains(s, "filter: port:")
	})
	// A lone Esc is told from the start of an escape sequence by a pause:
	// each Esc is sent once the screen shows the state before it.
	p.keys("Escape")
	p.waitFor("the filter cleared", func(s string) bool { return !strings.Contains(s, "filter: ") })
	p.keys("/")
	p.keys("-l", mine)
	p.keys("Enter")
	p.waitFor("both listeners again", func(s string) bool {
		return rowIndex(s, ip) >= 0 && rowIndex(s, bp) >= 0 && strings.Contains(s, "filter: proc:")
	})

	// Sort by LOCAL (two steps from TRAFFIC), then reversed.
	p.keys("s", "s")
	lower, higher := min(bp, ip), max(bp, ip)
	p.waitFor("sort by LOCAL, ascending", func(s string) bool {
		return strings.Contains(s, "sort LOCAL▼") && rowIndex(s, lower) < rowIndex(s, higher)
	})
	p.keys("r")
	p.waitFor("sort by LOCAL, reversed", func(s string) bool {
		return strings.Contains(s, "sort LOCAL▲") && rowIndex(s, lower) > rowIndex(s, higher)
	})

	// Resize to 80x24: every line fits.
	p.tmux("resize-window", "-t", p.name, "-x", "80", "-y", "24")
	p.waitFor("the table redrawn at 80 columns", func(s string) bool {
		for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
			if len([]rune(l)) > 80 {
				return false
			}
		}
		return strings.Contains(s, "PROTO") && strings.Contains(s, "CONNS") && rowIndex(s, bp) >= 0
	})

	p.quit("q")
}

// In 80x24 from the start, the table renders and Ctrl-C restores the
// terminal.
func TestTopInteractiveSmallCtrlC(t *testing.T) {
	bin := topBinary(t)
	ln := sink(t)
	port := ln.Addr().(*net.TCPAddr).Port
	p := newTmux(t, 80, 24)
	p.keys("NO_COLOR=1 "+bin+" top", "Enter")
	s := p.waitFor("the table at 80x24", func(s string) bool {
		return strings.Contains(s, "PROTO") && strings.Contains(s, "CONNS") && strings.Contains(s, "q quit")
	})
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > 24 {
		t.Errorf("%d lines on a 24-line screen", len(lines))
	}
	// NO_COLOR: bold, faint and reverse only; no colour is ever set.
	styled := p.tmux("capture-pane", "-e", "-p", "-t", p.name)
	for _, m := range regexp.MustCompile(`\x1b\[([0-9;]*)m`).FindAllStringSubmatch(styled, -1) {
		for _, param := range strings.Split(m[1], ";") {
			if n, err := strconv.Atoi(param); err == nil && (n >= 30 && n <= 38 || n >= 40 && n <= 48 || n >= 90 && n <= 107) {
				t.Errorf("colour %q on the screen with NO_COLOR set", m[0])
			}
		}
	}
	// Details of the first row, then back.
	p.keys("/")
	p.keys("-l", "port:"+strconv.Itoa(port))
	p.keys("Enter", "Enter")
	p.waitFor("the details view", func(s string) bool {
		return strings.Contains(s, "details: tcp 127.0.0.1:"+strconv.Itoa(port)) && strings.Contains(s, "pid "+strconv.Itoa(os.Getpid()))
	})
	// A lone Esc is told from the start of an escape sequence by a pause;
	// wait for it to land before the next key.
	p.keys("Escape")
	p.waitFor("the table again", func(s string) bool { return strings.Contains(s, "CONNS") })
	p.quit("C-c")
}

// k signals the owner of the selected listener after y, and only then.
func TestTopInteractiveKill(t *testing.T) {
	bin := topBinary(t)
	port := testenv.FreePort(t)
	child := listenerChild(t, "listener", port)
	exited := make(chan *os.ProcessState, 1)
	go func() { st, _ := child.Process.Wait(); exited <- st }()

	p := newTmux(t, 120, 30)
	p.keys(bin+" top -d 0.5", "Enter")
	p.waitFor("the table", func(s string) bool { return strings.Contains(s, "CONNS") })
	p.keys("/")
	p.keys("-l", "port:"+strconv.Itoa(port))
	p.keys("Enter")
	p.waitFor("the child's listener alone", func(s string) bool {
		return rowIndex(s, port) >= 0 && strings.Contains(s, "1 of ")
	})
	p.keys("k")
	p.waitFor("the confirmation", func(s string) bool {
		return strings.Contains(s, fmt.Sprintf("send SIGTERM to pid %d", child.Process.Pid)) && strings.Contains(s, "[y/N]")
	})
	p.keys("n")
	p.waitFor("nothing signalled", func(s string) bool { return strings.Contains(s, "nothing signalled") })
	select {
	case st := <-exited:
		t.Fatalf("the child exited after n: %v", st)
	case <-time.After(300 * time.Millisecond):
	}
	p.keys("k")
	p.waitFor("the confirmation again", func(s string) bool { return strings.Contains(s, "[y/N]") })
	p.keys("y")
	p.waitFor("the report", func(s string) bool {
		return strings.Contains(s, fmt.Sprintf("sent SIGTERM to pid %d", child.Process.Pid))
	})
	select {
	case st := <-exited:
		if ws, ok := st.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGTERM {
			t.Errorf("child ended with %v, want SIGTERM", st)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the child did not get SIGTERM")
	}
	p.quit("q")
}

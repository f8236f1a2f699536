package daemoncli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/porteiro/porteiro/internal/bpfevents"
	"github.com/porteiro/porteiro/internal/cmdkit"
	"github.com/porteiro/porteiro/internal/testenv"
)

func TestTraceBadInput(t *testing.T) {
	for _, args := range [][]string{
		{"trace", "-o", "csv"},
		{"trace", "--port", "70000"},
		{"trace", "--port", "nosuchservice"},
		{"trace", "extra"},
	} {
		_, errs, code := run(t, args...)
		if code != cmdkit.ExitUsage || errs == "" {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 and a message", args, code, errs)
		}
	}
}

// requireEvents skips the test where the kernel or sandbox cannot run the
// programs; bpfevents' own tests fail where they should load and don't.
func requireEvents(t *testing.T) {
	t.Helper()
	s, err := bpfevents.Open(bpfevents.Options{})
	if errors.Is(err, bpfevents.ErrNotSupported) {
		t.Skipf("listener events are not available here: %v", err)
	}
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
}

// syncBuffer is a bytes.Buffer that the trace goroutine writes while the
// test reads.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// startTrace runs trace in-process until the returned stop is called.
func startTrace(t *testing.T, args ...string) (out *syncBuffer, stop func() error) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("trace needs root (CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN)")
	}
	requireEvents(t)
	out = &syncBuffer{}
	errb := &syncBuffer{}
	env := &Env{Stdin: strings.NewReader(""), Stdout: out, Stderr: errb}
	f := &traceFlags{output: "table"}
	c := newTraceCmd(env)
	if err := c.ParseFlags(args); err != nil {
		t.Fatal(err)
	}
	f.output, _ = c.Flags().GetString("output")
	f.ports, _ = c.Flags().GetStringSlice("port")
	ctx, cancel := context.WithCancel(context.Background())
	res := make(chan error, 1)
	ready := make(chan struct{})
	f.ready = func() { close(ready) }
	go func() { res <- runTrace(ctx, env, f, bpfevents.Options{}) }()
	select {
	case <-ready:
	case err := <-res:
		cancel()
		t.Fatalf("trace ended at start: %v; stderr %q", err, errb.String())
	}
	return out, func() error {
		cancel()
		select {
		case err := <-res:
			if errb.String() != "" {
				t.Logf("stderr: %s", errb.String())
			}
			return err
		case <-time.After(5 * time.Second):
			t.Fatal("trace did not stop after its context ended")
			return nil
		}
	}
}

func listenAndClose(t *testing.T, network, addr string) int {
	t.Helper()
	if strings.HasPrefix(network, "udp") {
		u, err := net.ListenPacket(network, addr)
		if err != nil {
			t.Fatal(err)
		}
		defer u.Close()
		return u.LocalAddr().(*net.UDPAddr).Port
	}
	l, err := net.Listen(network, addr)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

func waitFor(t *testing.T, out *syncBuffer, cond func(string) bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond(out.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("trace output:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestTraceTable(t *testing.T) {
	out, stop := startTrace(t)
	tcp := listenAndClose(t, "tcp4", "127.0.0.1:0")
	udp := listenAndClose(t, "udp6", "[::1]:0")
	pid := strconv.Itoa(os.Getpid())
	waitFor(t, out, func(s string) bool { return strings.Count(s, ":"+strconv.Itoa(udp)) >= 2 })
	if err := stop(); err != nil {
		t.Fatalf("trace ended with %v", err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	if !strings.HasPrefix(lines[0], "TIME") {
		t.Fatalf("no header: %q", lines[0])
	}
	col := strings.Index(lines[0], "LOCAL")
	want := map[string]bool{
		"opened tcp 127.0.0.1:" + strconv.Itoa(tcp): false, "closed tcp 127.0.0.1:" + strconv.Itoa(tcp): false,
		"opened udp [::1]:" + strconv.Itoa(udp): false, "closed udp [::1]:" + strconv.Itoa(udp): false,
	}
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) < 8 {
			t.Errorf("short line %q", l)
			continue
		}
		k := f[1] + " " + f[2] + " " + f[3]
		if _, ok := want[k]; ok {
			if want[k] {
				t.Errorf("%s twice", k)
			}
			want[k] = true
			if f[5] != pid {
				t.Errorf("%s: pid %s, want %s", k, f[5], pid)
			}
			if l[col:col+len(f[3])] != f[3] {
				t.Errorf("LOCAL not aligned with its header in %q", l)
			}
		}
	}
	for k, seen := range want {
		if !seen {
			t.Errorf("no line %q in\n%s", k, out.String())
		}
	}
}

func TestTraceNDJSONPortFilter(t *testing.T) {
	// Two ports we know: one to show, one to leave out.
	keep, skip := reservePort(t), reservePort(t)
	out, stop := startTrace(t, "-o", "ndjson", "--port", strconv.Itoa(keep), "--port", "1,2")
	listenAndClose(t, "tcp4", "127.0.0.1:"+strconv.Itoa(skip))
	listenAndClose(t, "tcp4", "127.0.0.1:"+strconv.Itoa(keep))
	waitFor(t, out, func(s string) bool { return strings.Count(s, "\n") >= 2 })
	time.Sleep(100 * time.Millisecond)
	if err := stop(); err != nil {
		t.Fatalf("trace ended with %v", err)
	}
	var kinds []string
	sc := bufio.NewScanner(strings.NewReader(out.String()))
	for sc.Scan() {
		var ev struct {
			Kind, Proto, Address, User string
			Port, PID                  int
			Cookie                     uint64
		}
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("line %q: %v", sc.Text(), err)
		}
		if ev.Port != keep {
			t.Errorf("--port %d let port %d through", keep, ev.Port)
		}
		if ev.PID != os.Getpid() || ev.Proto != "tcp" || ev.Address != "127.0.0.1" || ev.User == "" || ev.Cookie == 0 {
			t.Errorf("event %s", sc.Text())
		}
		kinds = append(kinds, ev.Kind)
	}
	if strings.Join(kinds, ",") != "opened,closed" {
		t.Errorf("kinds %v, want opened, closed", kinds)
	}
}

// reservePort finds a free TCP port on 127.0.0.1.
func reservePort(t *testing.T) int {
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// The built binary: Ctrl-C ends it with exit 0, and without CAP_BPF it
// names the capability and exits 2.
func TestTraceBinary(t *testing.T) {
	testenv.RequireRoot(t)
	requireEvents(t)
	bin := testenv.DaemonBinary(t)
	t.Run("ctrl-c", func(t *testing.T) {
		cmd := exec.Command(bin, "trace")
		stdout, _ := cmd.StdoutPipe()
		var errb bytes.Buffer
		cmd.Stderr = &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil || !strings.HasPrefix(line, "TIME") {
			cmd.Process.Kill()
			t.Fatalf("first line %q, %v; stderr %q", line, err, errb.String())
		}
		cmd.Process.Signal(syscall.SIGINT)
		go func() { time.Sleep(5 * time.Second); cmd.Process.Kill() }()
		if err := cmd.Wait(); err != nil {
			t.Fatalf("after SIGINT: %v, stderr %q; want exit 0", err, errb.String())
		}
	})
	t.Run("without CAP_BPF", func(t *testing.T) {
		setpriv := testenv.RequireCommand(t, "setpriv")
		drop := "-bpf,-sys_admin"
		cmd := exec.Command(setpriv, "--inh-caps="+drop, "--bounding-set="+drop, bin, "trace")
		var errb bytes.Buffer
		cmd.Stderr = &errb
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != cmdkit.ExitUsage {
			t.Fatalf("exit: %v; want 2", err)
		}
		if !strings.Contains(errb.String(), "CAP_BPF") {
			t.Errorf("stderr %q does not name CAP_BPF", errb.String())
		}
	})
}

package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func newExec(t *testing.T, c ExecConfig) Sink {
	t.Helper()
	sinks, err := Build(ChannelsConfig{Exec: []ExecConfig{c}}, "web1")
	if err != nil {
		t.Fatal(err)
	}
	return sinks[0]
}

func TestExecWritesBatchJSONToStdin(t *testing.T) {
	dir := t.TempDir()
	out := filepath.Join(dir, "payload.json")
	envOut := filepath.Join(dir, "env")
	t.Setenv("PORTEIRO_TEST_LEAK", "smtp-password")
	s := newExec(t, ExecConfig{
		Name:    "hook",
		Command: []string{"sh", "-c", `cat > "$1"; env > "$2"`, "sh", out, envOut},
		Env:     map[string]string{"TEAM": "ops"},
	})
	if err := s.Send(context.Background(), []Alert{sampleAlert(t, "ev-1", 4444), sampleAlert(t, "ev-2", 22)}); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	var p Payload
	if err := json.Unmarshal(b, &p); err != nil {
		t.Fatalf("stdin is not the payload JSON: %v\n%s", err, b)
	}
	if p.Version != 1 || p.Host != "web1" || p.Channel != "hook" || len(p.Alerts) != 2 || p.Alerts[1].ID != "ev-2" || p.Alerts[0].Socket.Processes[0].PID != 31337 {
		t.Errorf("payload = %+v", p)
	}
	env, _ := os.ReadFile(envOut)
	for _, want := range []string{"TEAM=ops", "PORTEIRO_CHANNEL=hook", "PORTEIRO_HOST=web1", "PORTEIRO_ALERT_COUNT=2", "PORTEIRO_BATCH_ID=" + p.BatchID} {
		if !strings.Contains(string(env), want+"\n") {
			t.Errorf("environment lacks %s:\n%s", want, env)
		}
	}
	if strings.Contains(string(env), "smtp-password") {
		t.Error("the daemon's environment leaked into the hook")
	}
}

func TestExecExitCodes(t *testing.T) {
	s := newExec(t, ExecConfig{Command: []string{"sh", "-c", `cat >/dev/null; echo "relay down: try later" >&2; exit $CODE`}, Env: map[string]string{"CODE": "1"}, PermanentExitCodes: []int{3}})
	err := s.Send(context.Background(), []Alert{sampleAlert(t, "e", 1)})
	var xe *ExitError
	if !errors.As(err, &xe) || xe.Code != 1 || IsPermanent(err) {
		t.Fatalf("exit 1: err = %v, permanent = %v; want a transient *ExitError", err, IsPermanent(err))
	}
	if !strings.Contains(err.Error(), "relay down: try later") {
		t.Errorf("stderr not in the error: %v", err)
	}

	s = newExec(t, ExecConfig{Command: []string{"sh", "-c", "exit 3"}, PermanentExitCodes: []int{3}})
	if err := s.Send(context.Background(), []Alert{sampleAlert(t, "e", 1)}); !IsPermanent(err) {
		t.Errorf("exit 3 listed as permanent: err = %v, permanent = %v", err, IsPermanent(err))
	}

	s = newExec(t, ExecConfig{Command: []string{"sh", "-c", "head -c 100000 /dev/zero | tr '\\0' x >&2; exit 1"}})
	if err := s.Send(context.Background(), []Alert{sampleAlert(t, "e", 1)}); err == nil || len(err.Error()) > 1024 {
		t.Errorf("long stderr: error of %d bytes", len(err.Error()))
	}

	// A program removed after the channel was built (Build refuses a
	// missing one).
	gone := filepath.Join(t.TempDir(), "gone")
	if err := os.WriteFile(gone, []byte("#!/bin/sh\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	s = newExec(t, ExecConfig{Command: []string{gone}})
	os.Remove(gone)
	if err := s.Send(context.Background(), []Alert{sampleAlert(t, "e", 1)}); !IsPermanent(err) {
		t.Errorf("missing program: err = %v, permanent = %v", err, IsPermanent(err))
	}
}

func TestExecTimeoutKillsTheProcessGroup(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "pid")
	// The shell starts a background sleep that would outlive a kill of
	// the shell alone.
	s := newExec(t, ExecConfig{
		Command: []string{"sh", "-c", `sleep 30 & echo $! > "$1"; wait`, "sh", pidFile},
		Timeout: 300 * time.Millisecond,
	})
	start := time.Now()
	err := s.Send(context.Background(), []Alert{sampleAlert(t, "e", 1)})
	if err == nil || IsPermanent(err) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("timeout: err = %v, permanent = %v; want a transient deadline error", err, IsPermanent(err))
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("Send returned after %v", d)
	}
	b, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	var pid int
	if _, err := fmt.Sscan(strings.TrimSpace(string(b)), &pid); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for alive(pid) {
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("the background sleep (pid %d) survived the timeout", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// alive reports whether pid runs. A zombie counts as dead: it was killed
// and only waits for its new parent (init, which may be slow) to reap it.
func alive(pid int) bool {
	if syscall.Kill(pid, 0) != nil {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(b), ')')
	return i < 0 || i+2 >= len(b) || b[i+2] != 'Z'
}

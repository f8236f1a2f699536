package testenv

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// StartAlertmanager starts a real Alertmanager on a free loopback port,
// with its storage and log in dir and one receiver that drops everything,
// grouping within a second. It returns "127.0.0.1:PORT" once /-/ready
// answers, and kills the process (by its pid) when the test ends.
func StartAlertmanager(t testing.TB, dir string) string {
	t.Helper()
	name := "prometheus-alertmanager" // Debian's name
	if _, err := exec.LookPath(name); err != nil {
		if _, err := exec.LookPath("alertmanager"); err == nil {
			name = "alertmanager"
		}
	}
	bin := RequireCommand(t, name)
	cfg := filepath.Join(dir, "alertmanager.yml")
	conf := "route:\n  receiver: blackhole\n  group_wait: 1s\n  group_interval: 1s\nreceivers:\n  - name: blackhole\n"
	if err := os.WriteFile(cfg, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := Addr(t)
	logf, err := os.Create(filepath.Join(dir, "alertmanager.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "--config.file="+cfg, "--storage.path="+filepath.Join(dir, "am-data"),
		"--web.listen-address="+addr, "--cluster.listen-address=", "--log.level=warn")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting alertmanager: %v", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); logf.Close(); close(done) }()
	t.Cleanup(func() { _ = syscall.Kill(cmd.Process.Pid, syscall.SIGKILL); <-done })
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/-/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return addr
			}
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("alertmanager did not come up: %v\n%s", err, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// MailpitChaos sets a fault trigger of a mailpit started with
// --enable-chaos: stage is Sender, Recipient or Authentication, code the SMTP
// error to answer, probability a percentage (0 clears it).
func MailpitChaos(t testing.TB, api, stage string, code, probability int) {
	t.Helper()
	body := fmt.Sprintf(`{%q:{"ErrorCode":%d,"Probability":%d}}`, stage, code, probability)
	req, _ := http.NewRequest(http.MethodPut, api+"/api/v1/chaos", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("setting mailpit chaos: %s: %s", resp.Status, b)
	}
}

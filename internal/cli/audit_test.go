package cli

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/porteiro/porteiro/internal/audit/report"
	"github.com/porteiro/porteiro/internal/localapi"
	"github.com/porteiro/porteiro/internal/watch"
)

func TestAuditNoDaemon(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "porteiro.sock")
	out, errs, code := runCLI(t, "audit", "--socket", sock)
	if code != ExitUsage || out != "" {
		t.Fatalf("exit %d, stdout %q; want 2 and nothing", code, out)
	}
	for _, want := range []string{"porteirod is not running", sock, "systemctl start porteiro", "sudo porteirod audit"} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr lacks %q: %s", want, errs)
		}
	}
}

func TestAuditUsage(t *testing.T) {
	if _, errs, code := runCLI(t, "audit", "-o", "yaml", "--socket", "/nonexistent"); code != ExitUsage || !strings.Contains(errs, "want table or json") {
		t.Errorf("-o yaml: exit %d, %s", code, errs)
	}
	out, _, code := runCLI(t, "audit", "--help")
	if code != ExitOK {
		t.Fatalf("--help: exit %d", code)
	}
	for _, want := range []string{"Exit status: 0", "hidden_socket", "orphan_netns", "sudo porteirod audit", "porteiro audit -o json", "docs/audit.md", localapi.DefaultSocket} {
		if !strings.Contains(out, want) {
			t.Errorf("--help lacks %q", want)
		}
	}
}

// fakeDaemon answers POST /api/v1/audit on a real unix socket with a canned
// answer: a stand-in for porteirod that lets the exit codes be checked
// without root. TestAuditAgainstDaemon runs the real one.
func fakeDaemon(t *testing.T, status int, body string) string {
	t.Helper()
	sock := filepath.Join(t.TempDir(), "porteiro.sock")
	ln, err := localapi.Listen(sock)
	if err != nil {
		t.Fatal(err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/audit", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		io.WriteString(w, body)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return sock
}

func TestAuditExitCodes(t *testing.T) {
	finding := `{"kind":"hidden_process","key":"hidden_process pid 4242 comm \"x\"","pid":4242,"seen_by":["bpf_iter_task"],"missed_by":["proc"],` +
		`"owners":[{"pid":4242,"comm":"evil\u001b[2J\u202e","uid":0,"cgroup_id":1}],"detail":"the kernel runs pid 4242"}`
	for _, tc := range []struct {
		name, body string
		status     int
		code       int
		stdout     string
		stderr     string
	}{
		{"clean", `{"schema_version":1,"clean":true,"findings":[],"views":[{"view":"sock_diag","ran":true}],"compared":true}`, 200, 0, "clean: the views agree", ""},
		{"findings", `{"schema_version":1,"clean":false,"findings":[` + finding + `],"views":[],"compared":true}`, 200, 1, "1 findings", ""},
		{"nothing compared", `{"schema_version":1,"clean":true,"findings":[],"views":[{"view":"bpf_iter_file","ran":false,"skipped":"needs root"}],"compared":false}`, 200, 2, "clean", "view bpf_iter_file skipped: needs root"},
		{"daemon error", `{"error":"audit: reading the audit's own network namespace: permission denied"}`, 500, 2, "", "porteirod: audit: reading"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sock := fakeDaemon(t, tc.status, tc.body)
			out, errs, code := runCLI(t, "audit", "--socket", sock)
			if code != tc.code || !strings.Contains(out, tc.stdout) || !strings.Contains(errs, tc.stderr) {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, out, errs)
			}
			if strings.ContainsAny(out, "\x1b\u202e") {
				t.Errorf("the table lets control or bidi characters through: %q", out)
			}
			if tc.status != 200 {
				return
			}
			out, _, code = runCLI(t, "audit", "--socket", sock, "-o", "json")
			var rep report.Report
			if err := json.Unmarshal([]byte(out), &rep); err != nil || code != tc.code {
				t.Fatalf("-o json: exit %d, %v: %s", code, err, out)
			}
		})
	}
}

// TestAuditAgainstDaemon asks a real porteirod, on a socket of its own, to
// audit this host.
func TestAuditAgainstDaemon(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the audit's kernel views need root")
	}
	dir := t.TempDir()
	sock, off, none := filepath.Join(dir, "porteiro.sock"), "", ""
	cfg := &watch.Config{StateDir: filepath.Join(dir, "state"), Socket: &sock, HTTP: watch.HTTPConfig{Listen: &off}, Policy: &none, Events: "off"}
	d, err := watch.New(watch.Options{Config: cfg, Logger: slog.New(slog.NewTextHandler(io.Discard, nil)), Notify: func(string) {}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("porteirod: %v", err)
		}
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("porteirod did not open its socket")
		}
		time.Sleep(20 * time.Millisecond)
	}
	out, errs, code := runCLI(t, "audit", "--socket", sock, "-o", "json")
	var rep report.Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("exit %d, stderr %s: %v\n%s", code, errs, err, out)
	}
	// Other tests on this machine may leave namespaces behind as it runs:
	// findings are possible, but the exit status must say so.
	want := 0
	if !rep.Clean {
		want = 1
	}
	if code != want || !rep.Compared || rep.SchemaVersion != report.SchemaVersion || rep.PortsProbed == 0 {
		t.Fatalf("exit %d (want %d), compared %v, schema %d, %d ports probed\nstderr: %s", code, want, rep.Compared, rep.SchemaVersion, rep.PortsProbed, errs)
	}
	for _, f := range rep.Findings {
		t.Logf("finding on this host: %s", f.Detail)
	}
	// The table of the same daemon.
	out, _, code = runCLI(t, "audit", "--socket", sock)
	if code > 1 || !strings.Contains(out, "network namespaces") {
		t.Fatalf("table: exit %d\n%s", code, out)
	}
}

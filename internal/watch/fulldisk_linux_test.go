package watch

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/porteiro/porteiro/internal/notify"
	"github.com/porteiro/porteiro/inventory"
)

// tinyDisk mounts a real 4 MiB tmpfs for the state directory, and returns
// it with a function that fills it up (ENOSPC for every write after) and
// one that frees it again.
func tinyDisk(t *testing.T) (dir string, fill, free func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a tmpfs needs root; run the suite as root, as CI does")
	}
	dir = t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=4m,mode=0700"); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(dir, syscall.MNT_DETACH) })
	filler := filepath.Join(dir, "filler")
	fill = func() {
		f, err := os.Create(filler)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		buf := make([]byte, 64<<10)
		for {
			if _, err := f.Write(buf); err != nil {
				if errors.Is(err, syscall.ENOSPC) {
					return
				}
				t.Fatal(err)
			}
		}
	}
	free = func() {
		if err := os.Remove(filler); err != nil {
			t.Fatal(err)
		}
	}
	return dir, fill, free
}

// TestDaemonFullDisk: with the state directory full, /healthz says why,
// the store errors are counted, the alert still goes out (from memory),
// and once space comes back the event is stored without a second alert.
// Stopped while full, the daemon's Run fails with ErrUnsaved. The disk is
// real (a tmpfs); the host and the channel are the tests' fakes.
func TestDaemonFullDisk(t *testing.T) {
	dir, fill, free := tinyDisk(t)
	host := &fakeHost{}
	host.set(sock(22, 100, "/usr/sbin/sshd"))
	sink := &recordingSink{name: "rec"}
	cfg := testConfig(t)
	cfg.StateDir = filepath.Join(dir, "state")
	pol := CheckerFunc(func(snap *inventory.Snapshot) []Finding {
		var out []Finding
		for i := range snap.Sockets {
			if snap.Sockets[i].Local.Port == 4444 {
				out = append(out, Finding{Kind: "unexpected", Key: "unexpected tcp 0.0.0.0:4444", Message: "unexpected listener", Socket: &snap.Sockets[i]})
			}
		}
		return out
	})
	r := start(t, cfg, host, pol, sink)
	waitFor(t, "first scan", 5*time.Second, func() bool { return r.d.Healthy().OK })
	srv := httptest.NewServer(r.d.Handler())
	defer srv.Close()

	fill()
	host.set(sock(22, 100, "/usr/sbin/sshd"), sock(4444, 200, "/tmp/nc"))
	waitFor(t, "an unhealthy /healthz", 10*time.Second, func() bool {
		h := r.d.Healthy()
		return !h.OK && strings.Contains(h.Problem, "event store")
	})
	resp, err := http.Get(srv.URL + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || !strings.Contains(string(body), "event store cannot be written") {
		t.Errorf("/healthz with a full disk = %d %s", resp.StatusCode, body)
	}
	resp, err = http.Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "porteiro_store_errors_total ") || strings.Contains(string(body), "porteiro_store_errors_total 0\n") {
		t.Errorf("/metrics does not count the store errors:\n%s", grepLines(string(body), "store_errors"))
	}
	waitFor(t, "the violation alert, sent from memory", 10*time.Second, func() bool {
		return countKind(sink.sent(), KindViolation) == 1
	})

	free()
	waitFor(t, "the store to recover", 10*time.Second, func() bool { return r.d.Healthy().OK })
	waitFor(t, "the kept events stored", 10*time.Second, func() bool {
		return strings.Contains(storedKinds(t, r.d.Store()), "violation")
	})
	time.Sleep(cfg.Burst() + time.Second)
	if n := countKind(sink.sent(), KindViolation); n != 1 {
		t.Errorf("the violation was alerted %d times, want once (from memory, not again from the outbox)", n)
	}

	// Full again, a new event, then a stop: the events are lost and Run
	// says so.
	fill()
	host.set(sock(22, 100, "/usr/sbin/sshd"))
	waitFor(t, "an unhealthy /healthz again", 10*time.Second, func() bool { return !r.d.Healthy().OK })
	if err := r.stop(t); !errors.Is(err, ErrUnsaved) {
		t.Errorf("Run after a stop with unsaved events = %v, want ErrUnsaved", err)
	}
	free()
}

func countKind(batches [][]notify.Alert, kind string) int {
	n := 0
	for _, b := range batches {
		for _, a := range b {
			if a.Kind == kind {
				n++
			}
		}
	}
	return n
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

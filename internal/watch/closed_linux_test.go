package watch

import (
	"context"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/porteiro/porteiro/internal/localapi"
	"github.com/porteiro/porteiro/internal/procfs"
)

// runDaemon runs a daemon on the real host with cfg until the test ends.
func runDaemon(t *testing.T, cfg *Config) *Daemon {
	t.Helper()
	d, err := New(Options{Config: cfg, Logger: quietLogger(), Notify: func(string) {}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Error("the daemon did not stop")
		}
	})
	return d
}

// TestClosedEndpoint runs porteirod with the kernel's events, closes
// real loopback connections, and reads their sums through the local API
// socket, as `porteiro top` does.
func TestClosedEndpoint(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("loading BPF programs needs root")
	}
	cfg := testConfig(t)
	cfg.Events = "auto"
	sock := filepath.Join(t.TempDir(), "porteiro.sock")
	cfg.Socket = &sock
	d := runDaemon(t, cfg)
	cl := &localapi.Client{Socket: sock, Timeout: 2 * time.Second}
	var doc *localapi.ClosedDocument
	waitFor(t, "the local API and the kernel's events", 20*time.Second, func() bool {
		var err error
		doc, err = cl.Closed(context.Background(), "")
		return err == nil && (doc.Available || d.eventsWhy() != "events: off")
	})
	if !doc.Available {
		t.Skipf("kernel events are not available here: %s", doc.Reason)
	}
	if doc.Source != "ebpf" || doc.LoadID == "" || doc.Since.IsZero() {
		t.Fatalf("doc = %+v", doc)
	}

	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	port := uint16(l.Addr().(*net.TCPAddr).Port)
	const k, n = 4, 10000
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			io.Copy(io.Discard, c)
			c.Close()
		}
	}()
	for i := 0; i < k; i++ {
		c, err := net.Dial("tcp", l.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		c.Write(make([]byte, n))
		c.Close()
	}
	ns, err := procfs.NetNS("/proc", "self")
	if err != nil {
		t.Fatal(err)
	}
	var got localapi.ClosedCounter
	waitFor(t, "the closes counted", 5*time.Second, func() bool {
		doc, err = cl.Closed(context.Background(), strconv.Itoa(int(port)))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range doc.Counters {
			if c.Port != port {
				t.Fatalf("asked for port %d, got %+v", port, c)
			}
			if c.NetNS == ns && c.Address.String() == "127.0.0.1" {
				got = c
			}
		}
		return got.Closes >= k
	})
	// Each connection's FIN takes one sequence number, as in tcpi_bytes_received.
	if got.Closes != k || got.BytesIn != k*(n+1) || got.Family != "ipv4" {
		t.Errorf("counter %+v: want %d closes and %d bytes in", got, k, k*(n+1))
	}
	if _, err := cl.Closed(context.Background(), "nonsense"); err == nil {
		t.Error("?port=nonsense: no error")
	}
}

// Without the kernel's events the answer says so, and why.
func TestClosedEndpointPolling(t *testing.T) {
	cfg := testConfig(t)
	sock := filepath.Join(t.TempDir(), "porteiro.sock")
	cfg.Socket = &sock
	runDaemon(t, cfg)
	cl := &localapi.Client{Socket: sock, Timeout: 2 * time.Second}
	var doc *localapi.ClosedDocument
	waitFor(t, "the local API", 20*time.Second, func() bool {
		var err error
		doc, err = cl.Closed(context.Background(), "80")
		return err == nil
	})
	if doc.Available || doc.Source != "poll" || doc.Reason == "" || doc.Counters == nil || len(doc.Counters) != 0 {
		t.Errorf("doc = %+v", doc)
	}
}

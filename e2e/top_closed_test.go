package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/porteiro/porteiro/internal/localapi"
)

// shortClients opens a connection to addr every 5 ms that writes size
// bytes and closes at once, so that nearly none is alive at a sample of
// `top`; it counts the bytes written until stop is closed.
func shortClients(t *testing.T, addr string, size int, written *atomic.Int64, stop <-chan struct{}, wg *sync.WaitGroup) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, size)
		tk := time.NewTicker(5 * time.Millisecond)
		defer tk.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tk.C:
			}
			c, err := net.Dial("tcp4", addr)
			if err != nil {
				t.Error(err)
				return
			}
			n, _ := c.Write(buf)
			written.Add(int64(n))
			c.Close()
		}
	}()
}

// topRate runs `porteiro top -b -n 3 -d 1 -o ndjson` with extra flags
// while the short clients run, and returns the port's bytes_in_per_sec in
// each snapshot, the notes of the last one, and what the clients wrote
// per second meanwhile.
func topRate(t *testing.T, bin string, port int, written *atomic.Int64, extra ...string) (rates []float64, notes string, measured float64) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"top", "-b", "-n", "3", "-d", "1", "-o", "ndjson"}, extra...)...)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	start, startBytes := time.Now(), written.Load()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(out)
	sc.Buffer(nil, 16<<20)
	for sc.Scan() {
		var l topLine
		if err := json.Unmarshal(sc.Bytes(), &l); err != nil {
			t.Fatalf("not JSON: %v\n%s", err, sc.Bytes())
		}
		rate := -1.0
		for _, x := range l.Listeners {
			if x.Local.Port == port {
				rate = x.BytesInPerSec
			}
		}
		rates = append(rates, rate)
		notes = strings.Join(l.Notes, "\n")
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("porteiro top: %v", err)
	}
	measured = float64(written.Load()-startBytes) / time.Since(start).Seconds()
	if len(rates) != 3 {
		t.Fatalf("%d snapshots, want 3", len(rates))
	}
	return rates, notes, measured
}

// Connections that live between two samples of `top`: with porteirod
// running with the kernel's events, their bytes are counted from its close
// counters (within 20% of what the clients wrote); without it, the note
// says that short connections may be undercounted, and they are.
func TestTopCountsClosedConnections(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("porteirod's kernel events need root")
	}
	w := newWatchEnv(t)
	w.config("", "  {}\n")
	w.start()
	cl := &localapi.Client{Socket: w.socket(), Timeout: 2 * time.Second}
	doc, err := cl.Closed(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if !doc.Available {
		t.Skipf("porteirod has no kernel events here: %s", doc.Reason)
	}

	ln := sink(t)
	port := ln.Addr().(*net.TCPAddr).Port
	var written atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	const size = 10000 // per connection; 200 connections a second
	shortClients(t, ln.Addr().String(), size, &written, stop, &wg)
	defer func() { close(stop); wg.Wait() }()
	time.Sleep(200 * time.Millisecond)

	bin := topBinary(t)
	rates, notes, measured := topRate(t, bin, port, &written, "--socket", w.socket())
	t.Logf("with porteirod: clients wrote %.0f B/s; top saw %v", measured, rates)
	for i, r := range rates {
		if r < 0.8*measured || r > 1.2*measured {
			t.Errorf("snapshot %d: bytes_in_per_sec %.0f, the clients wrote %.0f (not within 20%%)", i, r, measured)
		}
	}
	if strings.Contains(notes, "undercounted") || !strings.Contains(notes, "porteirod") {
		t.Errorf("with porteirod, notes %q", notes)
	}

	rates, notes, measured = topRate(t, bin, port, &written, "--socket", filepath.Join(t.TempDir(), "none.sock"))
	t.Logf("without porteirod: clients wrote %.0f B/s; top saw %v", measured, rates)
	if !strings.Contains(notes, "undercounted") {
		t.Errorf("without porteirod, notes %q lack that short connections may be undercounted", notes)
	}
	for i, r := range rates {
		if r > 0.5*measured {
			t.Errorf("snapshot %d: without porteirod, %.0f B/s of %.0f: the short connections should mostly be missed", i, r, measured)
		}
	}
}

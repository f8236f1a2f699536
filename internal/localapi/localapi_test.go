package localapi

import (
	"bufio"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serve answers on a real unix socket with h, as porteirod does.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "porteiro.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return path
}

func TestClientEvents(t *testing.T) {
	var got string
	path := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.URL.RawQuery
		w.Header().Set("Content-Type", "application/json")
		// Large enough that a server answering an HTTP/1.1 client would
		// chunk it: the client's HTTP/1.0 request must get it plain.
		io.WriteString(w, `{"schema_version":1,"events":[{"id":7,"uid":"u","kind":"opened","summary":"`+strings.Repeat("x", 100000)+`","payload":{}}]}`)
	}))
	doc, err := (&Client{Socket: path}).Events(context.Background(), NewEventsQuery("24h", "22", "opened", 10))
	if err != nil {
		t.Fatal(err)
	}
	if len(doc.Events) != 1 || doc.Events[0].ID != 7 || len(doc.Events[0].Summary) != 100000 {
		t.Fatalf("doc = %+v", doc.Events)
	}
	for _, want := range []string{"since=24h", "port=22", "kind=opened", "limit=10"} {
		if !strings.Contains(got, want) {
			t.Errorf("query %q lacks %q", got, want)
		}
	}
}

func TestClientErrors(t *testing.T) {
	path := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, `{"error":"kind: unknown event kind \"x\""}`)
	}))
	_, err := (&Client{Socket: path}).Events(context.Background(), EventsQuery{Kind: "x"})
	var ae *Error
	if !errors.As(err, &ae) || ae.Status != 400 || !strings.Contains(ae.Message, "unknown event kind") {
		t.Errorf("400 answer: %v", err)
	}

	// No daemon: no socket, and a stale socket nobody answers on.
	dir := t.TempDir()
	_, err = (&Client{Socket: filepath.Join(dir, "none.sock")}).Events(context.Background(), EventsQuery{})
	if !errors.Is(err, ErrNotRunning) {
		t.Errorf("no socket: %v, want ErrNotRunning", err)
	}
	stale := filepath.Join(dir, "stale.sock")
	ln, err := net.Listen("unix", stale)
	if err != nil {
		t.Fatal(err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	_, err = (&Client{Socket: stale}).Events(context.Background(), EventsQuery{})
	if !errors.Is(err, ErrNotRunning) {
		t.Errorf("stale socket: %v, want ErrNotRunning", err)
	}

	// A daemon that hangs: the timeout ends the wait.
	hang := filepath.Join(dir, "hang.sock")
	hl, err := net.Listen("unix", hang)
	if err != nil {
		t.Fatal(err)
	}
	defer hl.Close()
	go func() {
		c, err := hl.Accept()
		if err == nil {
			defer c.Close()
			time.Sleep(5 * time.Second)
		}
	}()
	t0 := time.Now()
	_, err = (&Client{Socket: hang, Timeout: 300 * time.Millisecond}).Events(context.Background(), EventsQuery{})
	if err == nil || time.Since(t0) > 3*time.Second {
		t.Errorf("hanging daemon: %v after %v", err, time.Since(t0))
	}
}

func TestListen(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "run", "porteiro.sock")
	ln, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Lstat(path)
	if err != nil || st.Mode().Perm() != 0o660 || st.Mode().Type() != os.ModeSocket {
		t.Fatalf("socket %v %v, want mode 0660", st, err)
	}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	// A second daemon on the same socket is refused while the first runs.
	if _, err := Listen(path); err == nil || !strings.Contains(err.Error(), "another porteirod") {
		t.Errorf("second Listen = %v", err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false)
	ln.Close()
	// After a crash, the stale socket is replaced.
	ln2, err := Listen(path)
	if err != nil {
		t.Fatalf("Listen over a stale socket: %v", err)
	}
	ln2.Close()
	// A regular file is never removed.
	file := filepath.Join(dir, "file")
	os.WriteFile(file, []byte("x"), 0o600)
	if _, err := Listen(file); err == nil {
		t.Error("Listen replaced a regular file")
	}
	if b, _ := os.ReadFile(file); string(b) != "x" {
		t.Error("the regular file changed")
	}
}

func FuzzReadResponse(f *testing.F) {
	f.Add([]byte("HTTP/1.0 200 OK\r\nContent-Type: application/json\r\n\r\n{}"))
	f.Add([]byte("HTTP/1.1 400 Bad Request\r\n\r\n{\"error\":\"x\"}"))
	f.Add([]byte("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n"))
	f.Add([]byte("garbage\n\n"))
	f.Add([]byte("HTTP/1.0 99999 X\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		code, body, err := readResponse(bufio.NewReader(strings.NewReader(string(b))))
		if err != nil {
			return
		}
		if code < 100 || code > 999 || body == nil {
			t.Fatalf("code %d body %v", code, body)
		}
	})
}

// TestClientAudit checks that Audit POSTs (a mux that routes by method, as
// porteirod's does, would answer 405 to a GET) and decodes the report.
func TestClientAudit(t *testing.T) {
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/audit", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"schema_version":1,"clean":false,"findings":[{"kind":"orphan_netns","key":"orphan_netns netns 7"}],"compared":true}`)
	})
	path := serve(t, mux)
	var rep struct {
		Clean    bool `json:"clean"`
		Findings []struct {
			Kind, Key string
		} `json:"findings"`
	}
	if err := (&Client{Socket: path}).Audit(context.Background(), &rep); err != nil {
		t.Fatal(err)
	}
	if rep.Clean || len(rep.Findings) != 1 || rep.Findings[0].Key != "orphan_netns netns 7" {
		t.Fatalf("report = %+v", rep)
	}
	// No daemon: ErrNotRunning, which porteiro audit turns into exit 2.
	err := (&Client{Socket: filepath.Join(t.TempDir(), "none.sock")}).Audit(context.Background(), &rep)
	if !errors.Is(err, ErrNotRunning) {
		t.Fatalf("err = %v, want ErrNotRunning", err)
	}
}

func TestClientClosed(t *testing.T) {
	var got string
	path := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got = r.URL.Query().Get("port")
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"schema_version":1,"available":true,"source":"ebpf","load_id":"ab12","since":"2026-01-02T03:04:05Z",
			"counters":[{"netns":4026531840,"family":"ipv6","address":"::ffff:127.0.0.1","port":8080,"bytes_in":10,"bytes_out":20,"closes":3}]}`)
	}))
	doc, err := (&Client{Socket: path}).Closed(context.Background(), "80,8000-8100")
	if err != nil {
		t.Fatal(err)
	}
	if got != "80,8000-8100" {
		t.Errorf("port query = %q", got)
	}
	if !doc.Available || doc.LoadID != "ab12" || len(doc.Counters) != 1 {
		t.Fatalf("doc = %+v", doc)
	}
	c := doc.Counters[0]
	if c.NetNS != 4026531840 || !c.Address.Is4In6() || c.Port != 8080 || c.BytesIn != 10 || c.BytesOut != 20 || c.Closes != 3 {
		t.Errorf("counter = %+v", c)
	}
}

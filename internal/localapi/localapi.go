// Package localapi is the local API between porteirod and the porteiro
// client: a unix socket whose file permissions decide who may ask (mode
// 0660, group porteiro), the way tailscaled serves tailscale. It holds the
// JSON documents both sides speak, the client, and the socket's listener.
//
// It links no part of the daemon (no SQLite, SMTP or Prometheus code), so
// the client stays small.
package localapi

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// DefaultSocket is where porteirod listens unless the configuration's
// `socket:` says otherwise.
const DefaultSocket = "/run/porteiro/porteiro.sock"

// SocketGroup is the group given read-write access to the socket, when it
// exists (the package creates it).
const SocketGroup = "porteiro"

// Event kinds, in the order the documentation lists them.
const (
	KindOpened       = "opened"
	KindClosed       = "closed"
	KindOwnerChanged = "owner_changed"
	KindRestarted    = "restarted"
	KindViolation    = "violation"
	KindResolved     = "resolved"
	KindMissing      = "missing"
)

// Kinds lists every event kind.
var Kinds = []string{KindOpened, KindClosed, KindOwnerChanged, KindRestarted, KindViolation, KindResolved, KindMissing}

// SchemaVersion is the version of the JSON documents (the same as `list
// -o json`); additive changes keep it.
const SchemaVersion = 1

// Event is one event in `porteiro events -o json` and /api/v1/events.
type Event struct {
	ID       int64           `json:"id"`
	UID      string          `json:"uid"`
	Time     time.Time       `json:"time"`
	Kind     string          `json:"kind"`
	Severity string          `json:"severity"`
	Listener string          `json:"listener"`
	Proto    string          `json:"proto,omitempty"`
	Port     uint16          `json:"port,omitempty"`
	PID      int             `json:"pid,omitempty"`
	Summary  string          `json:"summary"`
	Payload  json.RawMessage `json:"payload"`
}

// EventsDocument is the JSON document of an event listing.
type EventsDocument struct {
	SchemaVersion int     `json:"schema_version"`
	Events        []Event `json:"events"`
}

// EventsQuery selects events. Empty fields mean "any"; the daemon checks
// them and answers 400 with the reason.
type EventsQuery struct {
	Since string // a duration back from now (24h, 7d) or an RFC 3339 time
	Port  string // a port number
	Kind  string // an event kind
	Limit string // at most this many, the newest
}

func (q EventsQuery) values() url.Values {
	v := url.Values{}
	set := func(k, s string) {
		if s != "" {
			v.Set(k, s)
		}
	}
	set("since", q.Since)
	set("port", q.Port)
	set("kind", q.Kind)
	set("limit", q.Limit)
	return v
}

// ErrNotRunning is returned when no daemon answers on the socket.
var ErrNotRunning = errors.New("porteirod is not running")

// Error is an error the daemon answered with.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string { return e.Message }

// Client asks the daemon over its unix socket.
type Client struct {
	// Socket is the socket's path; empty means DefaultSocket.
	Socket string
	// Timeout bounds one request; zero means 10 s.
	Timeout time.Duration
}

func (c *Client) path() string {
	if c.Socket == "" {
		return DefaultSocket
	}
	return c.Socket
}

// Events asks for the events that q selects.
func (c *Client) Events(ctx context.Context, q EventsQuery) (*EventsDocument, error) {
	var doc EventsDocument
	if err := c.get(ctx, "/api/v1/events?"+q.values().Encode(), &doc); err != nil {
		return nil, err
	}
	return &doc, nil
}

// maxResponse bounds what the client reads of one answer.
const maxResponse = 256 << 20

// AuditTimeout bounds Audit when the client sets no Timeout: an audit of
// a host with many network namespaces probes every port in each.
const AuditTimeout = 10 * time.Minute

// Audit asks the daemon to run an audit now, or to wait for the one it is
// running, and decodes its report into into: a *report.Report (package
// internal/audit/report, which this package cannot import, since the
// report's table is drawn by render, which imports this package).
func (c *Client) Audit(ctx context.Context, into any) error {
	to := c.Timeout
	if to <= 0 {
		to = AuditTimeout
	}
	return c.do(ctx, "POST", "/api/v1/audit", to, into)
}

// get asks for path and decodes the JSON answer into into.
func (c *Client) get(ctx context.Context, path string, into any) error {
	return c.do(ctx, "GET", path, c.Timeout, into)
}

// do sends one request with no body and decodes the JSON answer into into.
// A zero timeout means 10 s.
//
// The request is plain HTTP/1.0 written by hand: net/http's client (with
// TLS, proxies and HTTP/2) would nearly double the size of porteiro for one
// GET on a unix socket. HTTP/1.0 means the daemon closes the connection
// after the answer and sends no chunked encoding, so the body is what
// follows the headers, up to the end.
func (c *Client) do(ctx context.Context, method, path string, to time.Duration, into any) error {
	sock := c.path()
	if to <= 0 {
		to = 10 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, to)
	defer cancel()
	conn, err := c.dial(ctx, sock)
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := fmt.Fprintf(conn, "%s %s HTTP/1.0\r\nHost: localhost\r\nUser-Agent: porteiro\r\nContent-Length: 0\r\n\r\n", method, path); err != nil {
		return fmt.Errorf("asking porteirod on %s: %w", sock, err)
	}
	status, body, err := readResponse(bufio.NewReader(io.LimitReader(conn, maxResponse)))
	if err != nil {
		return fmt.Errorf("reading porteirod's answer on %s: %w", sock, err)
	}
	if status != 200 {
		return errorAnswer(status, body)
	}
	if err := json.NewDecoder(body).Decode(into); err != nil {
		return fmt.Errorf("reading porteirod's answer: %w", err)
	}
	return nil
}

// dial connects to the daemon's socket, telling "not running" and "not
// allowed" apart.
func (c *Client) dial(ctx context.Context, sock string) (net.Conn, error) {
	var d net.Dialer
	conn, err := d.DialContext(ctx, "unix", sock)
	if err != nil {
		switch {
		case errors.Is(err, syscall.ENOENT), errors.Is(err, syscall.ECONNREFUSED):
			return nil, fmt.Errorf("%w (no daemon answers on %s)", ErrNotRunning, sock)
		case errors.Is(err, syscall.EACCES), errors.Is(err, syscall.EPERM):
			return nil, fmt.Errorf("connecting to %s: %w: run as root or as a member of group %s", sock, os.ErrPermission, SocketGroup)
		}
		return nil, fmt.Errorf("connecting to porteirod on %s: %w", sock, err)
	}
	return conn, nil
}

// errorAnswer turns a non-200 answer into an *Error.
func errorAnswer(status int, body io.Reader) error {
	var e struct {
		Error string `json:"error"`
	}
	b, _ := io.ReadAll(io.LimitReader(body, 64<<10))
	if json.Unmarshal(b, &e) != nil || e.Error == "" {
		e.Error = fmt.Sprintf("porteirod answered status %d", status)
	}
	return &Error{Status: status, Message: e.Error}
}

// readResponse reads an HTTP/1.x status line and headers, and returns the
// status code and the reader positioned at the body.
func readResponse(r *bufio.Reader) (int, io.Reader, error) {
	line, err := readLine(r)
	if err != nil {
		return 0, nil, err
	}
	// "HTTP/1.0 200 OK"
	f := strings.SplitN(line, " ", 3)
	if len(f) < 2 || !strings.HasPrefix(f[0], "HTTP/1.") {
		return 0, nil, fmt.Errorf("not an HTTP answer: %.40q", line)
	}
	code, err := strconv.Atoi(f[1])
	if err != nil || code < 100 || code > 999 {
		return 0, nil, fmt.Errorf("bad status in %.40q", line)
	}
	for n := 0; ; n++ {
		if n > 100 {
			return 0, nil, errors.New("too many header lines")
		}
		h, err := readLine(r)
		if err != nil {
			return 0, nil, err
		}
		if h == "" {
			return code, r, nil
		}
		if k, v, ok := strings.Cut(h, ":"); ok && strings.EqualFold(k, "Transfer-Encoding") && !strings.EqualFold(strings.TrimSpace(v), "identity") {
			return 0, nil, fmt.Errorf("unexpected transfer encoding %.20q", v)
		}
	}
}

// readLine reads one CRLF- or LF-terminated line of at most 8 KiB.
func readLine(r *bufio.Reader) (string, error) {
	var b []byte
	for {
		chunk, more, err := r.ReadLine()
		if err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return "", err
		}
		b = append(b, chunk...)
		if len(b) > 8<<10 {
			return "", errors.New("header line too long")
		}
		if !more {
			return string(b), nil
		}
	}
}

// Listen opens the daemon's socket at path: its directory is created
// (0755), a stale socket left by a crash is replaced, and the socket gets
// mode 0660 and the porteiro group, if that group exists. A live daemon on
// the same path is an error: two daemons must not share one socket.
func Listen(path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("creating the socket's directory: %w", err)
	}
	if st, err := os.Lstat(path); err == nil {
		if st.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("%s exists and is not a socket: remove it, or set another path with socket: in the configuration", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("%s: another porteirod answers on this socket", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("removing the stale socket %s: %w", path, err)
		}
	}
	// The socket is created with no access for others, then opened to the
	// group: there is no moment when anyone else may connect.
	old := syscall.Umask(0o177)
	ln, err := net.Listen("unix", path)
	syscall.Umask(old)
	if err != nil {
		return nil, fmt.Errorf("listening on %s: %w", path, err)
	}
	if g, err := user.LookupGroup(SocketGroup); err == nil {
		if gid, err := strconv.Atoi(g.Gid); err == nil {
			_ = os.Lchown(path, -1, gid)
		}
	}
	if err := os.Chmod(path, 0o660); err != nil {
		ln.Close()
		return nil, fmt.Errorf("setting the mode of %s: %w", path, err)
	}
	return ln, nil
}

// NewEventsQuery builds a query from command-line values: port is a port
// number or "" and limit at least 1.
func NewEventsQuery(since, port, kind string, limit int) EventsQuery {
	return EventsQuery{Since: since, Port: port, Kind: kind, Limit: strconv.Itoa(limit)}
}

// TraceEvent is one listener opening or closing, as the kernel reported
// it: a line of `porteiro trace -o ndjson` and of /api/v1/trace.
type TraceEvent struct {
	Kind      string     `json:"kind"` // opened or closed
	Time      time.Time  `json:"time"`
	Proto     string     `json:"proto"`
	Family    string     `json:"family"`
	Address   netip.Addr `json:"address"`
	Port      uint16     `json:"port"`
	DualStack bool       `json:"dual_stack"`
	ReusePort bool       `json:"reuse_port"`
	NetNS     uint64     `json:"netns"`
	Cookie    uint64     `json:"cookie"`
	Inode     uint64     `json:"inode"`
	// PID and TID are as the reader sees them; for closed, of whoever
	// closed the socket, which may not be its owner.
	PID          int    `json:"pid"`
	TID          int    `json:"tid"`
	PIDOutsideNS bool   `json:"pid_outside_ns,omitempty"`
	UID          uint32 `json:"uid"`
	User         string `json:"user"`
	Comm         string `json:"comm"`
	CgroupID     uint64 `json:"cgroup_id"`
	// Cmdline and Exe are read from /proc when the event is read, if the
	// process is still there.
	Cmdline []string `json:"cmdline,omitempty"`
	Exe     string   `json:"exe,omitempty"`
}

// maxTraceLine bounds one streamed event.
const maxTraceLine = 1 << 20

// Trace streams the daemon's listener events for the ports in ports ("22,
// 8000-8100", "" for all) to fn until ctx ends (then it returns nil) or fn
// returns an error (which it returns).
func (c *Client) Trace(ctx context.Context, ports string, fn func(TraceEvent) error) error {
	sock := c.path()
	conn, err := c.dial(ctx, sock)
	if err != nil {
		return err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	v := url.Values{}
	if ports != "" {
		v.Set("port", ports)
	}
	if _, err := fmt.Fprintf(conn, "GET /api/v1/trace?%s HTTP/1.0\r\nHost: localhost\r\nUser-Agent: porteiro\r\n\r\n", v.Encode()); err != nil {
		return fmt.Errorf("asking porteirod on %s: %w", sock, err)
	}
	status, body, err := readResponse(bufio.NewReader(conn))
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("reading porteirod's answer on %s: %w", sock, err)
	}
	if status != 200 {
		return errorAnswer(status, body)
	}
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64<<10), maxTraceLine)
	for sc.Scan() {
		var ev TraceEvent
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			return fmt.Errorf("reading porteirod's events: %w", err)
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
	if ctx.Err() != nil {
		return nil
	}
	if err := sc.Err(); err != nil {
		return fmt.Errorf("reading porteirod's events: %w", err)
	}
	return fmt.Errorf("porteirod closed the event stream (it stopped?)")
}

// ClosedDocument is the answer of /api/v1/closed: the traffic of TCP
// connections that have closed, summed per local address and port since
// the daemon loaded its eBPF programs. `porteiro top` takes the change
// between two of its samples, so a connection that lives between two
// samples is still counted.
type ClosedDocument struct {
	SchemaVersion int `json:"schema_version"`
	// Available is false when the daemon polls instead of hearing the
	// kernel's events; Reason then says why, and Counters is empty.
	Available bool   `json:"available"`
	Source    string `json:"source"` // "ebpf" or "poll"
	Reason    string `json:"reason,omitempty"`
	// LoadID changes each time the counters start again from zero (the
	// daemon restarted or reloaded its programs): sums read under two
	// LoadIDs cannot be subtracted.
	LoadID   string          `json:"load_id,omitempty"`
	Since    time.Time       `json:"since"`
	Counters []ClosedCounter `json:"counters"`
}

// ClosedCounter sums the connections that closed on one local end.
type ClosedCounter struct {
	NetNS   uint64     `json:"netns"`
	Family  string     `json:"family"` // "ipv4" or "ipv6"
	Address netip.Addr `json:"address"`
	Port    uint16     `json:"port"`
	// BytesIn and BytesOut are the sums of tcpi_bytes_received and
	// tcpi_bytes_acked at close; Closes counts the connections.
	BytesIn  uint64 `json:"bytes_in"`
	BytesOut uint64 `json:"bytes_out"`
	Closes   uint64 `json:"closes"`
}

// Closed asks for the closed-connection counters of the local ports in
// ports ("80,443,8000-8100"; empty means every port).
func (c *Client) Closed(ctx context.Context, ports string) (*ClosedDocument, error) {
	path := "/api/v1/closed"
	if ports != "" {
		path += "?" + url.Values{"port": {ports}}.Encode()
	}
	var doc ClosedDocument
	if err := c.get(ctx, path, &doc); err != nil {
		return nil, err
	}
	return &doc, nil
}

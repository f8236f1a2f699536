package watch

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/porteiro/porteiro/internal/localapi"
	"github.com/porteiro/porteiro/internal/render"
	"github.com/porteiro/porteiro/internal/store"
	"github.com/porteiro/porteiro/inventory"
)

// Handler serves the daemon's whole API. It is what the local API socket
// serves, where the socket's permissions decide who may ask:
//
//	/healthz           200 when the last scan is recent and events are
//	                   being stored, 503 with the reason otherwise
//	/metrics           Prometheus metrics
//	/api/v1/listeners  the current listeners, as `porteiro list -o json`
//	/api/v1/events     the event history (?since=24h&port=22&kind=opened&limit=100)
//	/api/v1/trace      listener events as they happen, as ndjson (?port=22,8000-8100)
//	/api/v1/audit      GET: the last audit's report; POST: run one now (or
//	                   wait for the one running) and answer its report
//	/api/v1/closed     bytes of the TCP connections that closed, summed per
//	                   local address and port (?port=80,443), for `top`
func (d *Daemon) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", d.serveHealth)
	mux.Handle("GET /metrics", d.metrics.Handler())
	mux.HandleFunc("GET /api/v1/listeners", d.serveListeners)
	mux.HandleFunc("GET /api/v1/events", d.serveEvents)
	mux.HandleFunc("GET /api/v1/trace", d.serveTrace)
	mux.HandleFunc("GET /api/v1/audit", d.serveAuditGet)
	mux.HandleFunc("POST /api/v1/audit", d.serveAuditPost)
	mux.HandleFunc("GET /api/v1/closed", d.serveClosed)
	return mux
}

// TCPHandler serves the TCP listener (http.listen): /healthz and /metrics
// for monitoring, and the JSON API only when http.api is true. Anyone who
// can reach a TCP port may ask, which on a host mounted with hidepid=2
// would show command lines that /proc hides from them; the local socket
// serves the API to those its permissions allow.
//
// Requests must name the daemon by a loopback name or the configured
// address in their Host header, so that a web page cannot reach the API
// through DNS rebinding.
func (d *Daemon) TCPHandler(cfg *Config) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", d.serveHealth)
	mux.Handle("GET /metrics", d.metrics.Handler())
	if cfg.HTTP.API {
		mux.HandleFunc("GET /api/v1/listeners", d.serveListeners)
		mux.HandleFunc("GET /api/v1/events", d.serveEvents)
	} else {
		mux.HandleFunc("/api/", func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, http.StatusNotFound, map[string]string{"error": "the JSON API is served on the local socket (" + cfg.SocketPath() + "); set http.api: true to serve it on TCP too"})
		})
	}
	allowed := allowedHosts(cfg.Listen())
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !hostAllowed(r.Host, allowed) {
			writeJSON(w, http.StatusMisdirectedRequest, map[string]string{"error": "unexpected Host header: use a loopback name or the address of http.listen"})
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// allowedHosts are the names a request may give in Host: loopback names
// and the host part of the listen address.
func allowedHosts(listen string) map[string]bool {
	m := map[string]bool{"localhost": true, "127.0.0.1": true, "::1": true}
	if h, _, err := net.SplitHostPort(listen); err == nil && h != "" {
		m[strings.ToLower(h)] = true
	}
	return m
}

func hostAllowed(hostHeader string, allowed map[string]bool) bool {
	h := hostHeader
	if host, _, err := net.SplitHostPort(hostHeader); err == nil {
		h = host
	}
	h = strings.ToLower(strings.TrimSuffix(strings.TrimPrefix(h, "["), "]"))
	if allowed[h] {
		return true
	}
	// Any loopback or unspecified-bound address the admin typed by number.
	if a, err := netip.ParseAddr(h); err == nil && a.Unmap().IsLoopback() {
		return true
	}
	return false
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func (d *Daemon) serveHealth(w http.ResponseWriter, r *http.Request) {
	h := d.Healthy()
	body := map[string]any{"status": "ok", "event_source": d.EventSource()}
	if !h.LastScan.IsZero() {
		body["last_scan"] = h.LastScan
		body["age_seconds"] = d.now().Sub(h.LastScan).Seconds()
	}
	if a := d.audit.status(); a != nil {
		body["audit"] = a
	}
	code := http.StatusOK
	if !h.OK {
		code = http.StatusServiceUnavailable
		body["status"] = h.Problem
	}
	writeJSON(w, code, body)
}

func (d *Daemon) serveListeners(w http.ResponseWriter, r *http.Request) {
	snap := d.Snapshot()
	if snap == nil {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "no scan yet"})
		return
	}
	// NewDocument fills empty slices in place; the snapshot is shared.
	socks := slices.Clone(snap.Sockets)
	doc := render.NewDocument(snap, socks)
	doc.Host = d.Config().HostName()
	writeJSON(w, http.StatusOK, doc)
}

func (d *Daemon) serveEvents(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	f, err := ParseFilter(q.Get("since"), q.Get("port"), q.Get("kind"), q.Get("limit"), d.now())
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": err.Error()})
		return
	}
	evs, err := d.store.Events(r.Context(), f)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, NewEventsDocument(evs))
}

// NewEventsDocument converts stored events for JSON output.
func NewEventsDocument(evs []store.Event) localapi.EventsDocument {
	doc := localapi.EventsDocument{SchemaVersion: inventory.SchemaVersion, Events: make([]localapi.Event, 0, len(evs))}
	for _, e := range evs {
		doc.Events = append(doc.Events, localapi.Event{
			ID: e.ID, UID: e.UID, Time: e.Time, Kind: e.Kind, Severity: e.Severity, Listener: e.Listener,
			Proto: e.Proto, Port: e.Port, PID: e.PID, Summary: PayloadSummary(e.Payload), Payload: e.Payload,
		})
	}
	return doc
}

// PayloadSummary extracts the one-line summary of a stored payload.
func PayloadSummary(p json.RawMessage) string {
	var s struct {
		Summary string `json:"summary"`
	}
	_ = json.Unmarshal(p, &s)
	return s.Summary
}

// ParseFilter parses event query parameters: since is a duration back from
// now ("24h", "7d") or an RFC 3339 time; port a number; kind an event kind;
// limit a positive number. Empty strings mean "any".
func ParseFilter(since, port, kind, limit string, now time.Time) (store.Filter, error) {
	var f store.Filter
	if since != "" {
		if t, err := time.Parse(time.RFC3339, since); err == nil {
			f.Since = t
		} else if d, err := ParseDuration(since); err == nil && d >= 0 {
			f.Since = now.Add(-d)
		} else {
			return f, fmt.Errorf("since: %q is neither a duration (24h, 7d) nor a time (2026-01-02T15:04:05Z)", since)
		}
	}
	if port != "" {
		n, err := strconv.Atoi(port)
		if err != nil || n < 1 || n > 65535 {
			return f, fmt.Errorf("port: %q is not a port number (1-65535)", port)
		}
		f.Port = n
	}
	if kind != "" {
		if !slices.Contains(Kinds, kind) {
			return f, fmt.Errorf("kind: unknown event kind %q: want one of %s", kind, strings.Join(Kinds, ", "))
		}
		f.Kind = kind
	}
	if limit != "" {
		n, err := strconv.Atoi(limit)
		if err != nil || n < 1 {
			return f, fmt.Errorf("limit: %q is not a positive number", limit)
		}
		f.Limit = n
	}
	return f, nil
}

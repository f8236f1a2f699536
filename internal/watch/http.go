package watch

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/porteiro/porteiro/internal/render"
	"github.com/porteiro/porteiro/internal/store"
	"github.com/porteiro/porteiro/inventory"
)

// Handler serves the daemon's HTTP API:
//
//	/healthz           200 when the last scan is recent, 503 otherwise
//	/metrics           Prometheus metrics
//	/api/v1/listeners  the current listeners, as `porteiro list -o json`
//	/api/v1/events     the event history (?since=24h&port=22&kind=opened&limit=100)
func (d *Daemon) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", d.serveHealth)
	mux.Handle("GET /metrics", d.metrics.Handler())
	mux.HandleFunc("GET /api/v1/listeners", d.serveListeners)
	mux.HandleFunc("GET /api/v1/events", d.serveEvents)
	return mux
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

func (d *Daemon) serveHealth(w http.ResponseWriter, r *http.Request) {
	ok, last := d.Healthy()
	body := map[string]any{"status": "ok"}
	if !last.IsZero() {
		body["last_scan"] = last
		body["age_seconds"] = d.now().Sub(last).Seconds()
	}
	code := http.StatusOK
	if !ok {
		code = http.StatusServiceUnavailable
		body["status"] = "stale"
		if last.IsZero() {
			body["status"] = "no successful scan yet"
		}
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
	writeJSON(w, http.StatusOK, render.NewDocument(snap, socks))
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

// EventJSON is one event in `porteiro events -o json` and /api/v1/events.
type EventJSON struct {
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
	SchemaVersion int         `json:"schema_version"`
	Events        []EventJSON `json:"events"`
}

// NewEventsDocument converts stored events for JSON output.
func NewEventsDocument(evs []store.Event) EventsDocument {
	doc := EventsDocument{SchemaVersion: inventory.SchemaVersion, Events: make([]EventJSON, 0, len(evs))}
	for _, e := range evs {
		doc.Events = append(doc.Events, EventJSON{
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

package top

import (
	"encoding/json"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/porteiro/porteiro/inventory"
)

// ListenerJSON is one listener in "porteiro top -o ndjson": the SOCKET
// object of docs/schema.md with the traffic fields after it.
type ListenerJSON struct {
	inventory.Socket
	Traffic
}

// Traffic is what top adds to a listener's SOCKET object.
type Traffic struct {
	Connections    int     `json:"connections"`
	NewPerSec      float64 `json:"new_per_sec"`
	BytesInPerSec  float64 `json:"bytes_in_per_sec"`
	BytesOutPerSec float64 `json:"bytes_out_per_sec"`
	TopPeer        *Peer   `json:"top_peer"`
	// New and Closed mark listeners that appeared or closed lately.
	New    bool `json:"new,omitempty"`
	Closed bool `json:"closed,omitempty"`
	// Policy is how the listener breaks the policy, when it does.
	Policy *Violation `json:"policy,omitempty"`
}

// MarshalJSON writes the socket's object with the traffic fields after
// its own. (Without it, the Socket's MarshalJSON, promoted, would write
// the socket alone.)
func (l ListenerJSON) MarshalJSON() ([]byte, error) {
	t, err := json.Marshal(&l.Traffic)
	if err != nil {
		return nil, err
	}
	b := inventory.AppendSocketJSON(make([]byte, 0, 1024), &l.Socket)
	// Both are objects: the socket's closing brace gives way to the
	// traffic's fields.
	return append(append(b[:len(b)-1], ','), t[1:]...), nil
}

// SnapshotJSON is one line of "porteiro top -o ndjson".
type SnapshotJSON struct {
	SchemaVersion   int       `json:"schema_version"`
	Time            time.Time `json:"time"`
	Host            string    `json:"host"`
	IntervalSeconds float64   `json:"interval_seconds"`
	ScanSeconds     float64   `json:"scan_seconds"`
	Privileged      bool      `json:"privileged"`
	Connections     int       `json:"connections"`
	NewPerSec       float64   `json:"new_per_sec"`
	BytesInPerSec   float64   `json:"bytes_in_per_sec"`
	BytesOutPerSec  float64   `json:"bytes_out_per_sec"`
	Notes           []string  `json:"notes"`
	// Policy is present when a policy file is loaded.
	Policy    *PolicyView    `json:"policy,omitempty"`
	Listeners []ListenerJSON `json:"listeners"`
}

// JSON builds the ndjson object of a view, listeners in the view's order.
func (v *View) JSON(host string) SnapshotJSON {
	out := SnapshotJSON{
		SchemaVersion:   inventory.SchemaVersion,
		Time:            v.Time,
		Host:            host,
		IntervalSeconds: v.Interval.Seconds(),
		ScanSeconds:     v.ScanTime.Seconds(),
		Privileged:      v.Privileged,
		Connections:     v.Conns,
		NewPerSec:       v.NewPerSec,
		BytesInPerSec:   v.InPerSec,
		BytesOutPerSec:  v.OutPerSec,
		Notes:           append(append([]string{}, v.Notes...), v.RateNote()),
		Policy:          v.Policy,
		Listeners:       make([]ListenerJSON, 0, len(v.Listeners)),
	}
	for i := range v.Listeners {
		l := &v.Listeners[i]
		s := l.Socket
		if s.Processes == nil {
			s.Processes = []inventory.Process{}
		}
		out.Listeners = append(out.Listeners, ListenerJSON{Socket: s, Traffic: Traffic{Connections: l.Conns, NewPerSec: l.NewPerSec,
			BytesInPerSec: l.InPerSec, BytesOutPerSec: l.OutPerSec, TopPeer: l.TopPeer, New: l.New, Closed: l.Gone, Policy: l.Violation}})
	}
	return out
}

// WriteNDJSON writes the view as one line of JSON.
func (v *View) WriteNDJSON(w io.Writer, host string) error {
	return json.NewEncoder(w).Encode(v.JSON(host))
}

// Rate formats bytes per second as top does: 0, 512, 1.5K, 12M.
func Rate(bps float64) string {
	switch {
	case bps <= 0:
		return "0"
	case bps >= 1<<30:
		return strconv.FormatFloat(bps/(1<<30), 'f', 1, 64) + "G"
	case bps >= 10<<20:
		return strconv.FormatFloat(bps/(1<<20), 'f', 0, 64) + "M"
	case bps >= 1<<20:
		return strconv.FormatFloat(bps/(1<<20), 'f', 1, 64) + "M"
	case bps >= 10<<10:
		return strconv.FormatFloat(bps/(1<<10), 'f', 0, 64) + "K"
	case bps >= 1<<10:
		return strconv.FormatFloat(bps/(1<<10), 'f', 1, 64) + "K"
	}
	return strconv.FormatFloat(bps, 'f', 0, 64)
}

// PerSec formats a small per-second count: 0, 0.5, 3, 120.
func PerSec(x float64) string {
	switch {
	case x <= 0:
		return "0"
	case x < 10:
		s := strconv.FormatFloat(x, 'f', 1, 64)
		return strings.TrimSuffix(s, ".0")
	}
	return strconv.FormatFloat(x, 'f', 0, 64)
}

// PeerString formats a top peer as "10.0.0.7 (3)": the address and its
// connections. "-" when there is none.
func PeerString(p *Peer) string {
	if p == nil {
		return "-"
	}
	return p.Address.String() + " (" + strconv.Itoa(p.Connections) + ")"
}

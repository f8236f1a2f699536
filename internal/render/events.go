package render

import (
	"encoding/json"
	"io"
	"strconv"

	"github.com/porteiro/porteiro/internal/localapi"
)

// Events writes an event listing as a table: time, kind, severity,
// listener, the first owner as it was, and the summary. Both `porteiro
// events` (from the daemon) and `porteirod events` (from the database)
// print it.
func Events(w io.Writer, evs []localapi.Event, o Options) error {
	t := NewTable("TIME", "KIND", "SEVERITY", "LISTENER", "PID", "USER", "PROCESS", "SUMMARY")
	for _, e := range evs {
		// Only the first owner is shown; the payload's full schema is
		// docs/watch.md's, and -o json prints all of it.
		var p struct {
			Socket *struct {
				Processes []struct {
					PID  int    `json:"pid"`
					User string `json:"user"`
					Name string `json:"name"`
				} `json:"processes"`
			} `json:"socket"`
		}
		_ = json.Unmarshal(e.Payload, &p)
		pid, user, proc := "-", "-", "-"
		if p.Socket != nil && len(p.Socket.Processes) > 0 {
			pr := p.Socket.Processes[0]
			pid, user, proc = strconv.Itoa(pr.PID), dash(pr.User), dash(pr.Name)
		}
		t.Row(e.Time.Local().Format("2006-01-02 15:04:05"), e.Kind, e.Severity, e.Listener, pid, user, proc, e.Summary)
	}
	return t.Write(w, o)
}

// EventsJSON writes an event listing as the JSON document of
// docs/watch.md.
func EventsJSON(w io.Writer, doc *localapi.EventsDocument) error {
	if doc.Events == nil {
		doc.Events = []localapi.Event{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

// Package watch is the porteiro daemon: it scans the host every interval,
// turns changes into events (a listener opened, closed, changed owner or
// restarted; a policy finding appeared or resolved), records them in the
// store together with the alerts they cause, and delivers those alerts
// through the outbox. It also serves /healthz, /metrics and a small JSON API.
//
// The daemon owns the loop; the scanner, the policy and the alert channels
// are synchronous pieces it calls.
package watch

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/porteiro/porteiro/internal/audit/report"
	"github.com/porteiro/porteiro/internal/localapi"
	"github.com/porteiro/porteiro/internal/notify"
	"github.com/porteiro/porteiro/internal/store"
	"github.com/porteiro/porteiro/inventory"
)

// Event kinds.
const (
	KindOpened       = localapi.KindOpened
	KindClosed       = localapi.KindClosed
	KindOwnerChanged = localapi.KindOwnerChanged
	KindRestarted    = localapi.KindRestarted
	KindViolation    = localapi.KindViolation
	KindResolved     = localapi.KindResolved
	KindMissing      = localapi.KindMissing
)

// Kinds lists every event kind.
var Kinds = localapi.Kinds

// Event is one thing the daemon noticed.
type Event struct {
	Kind     string
	Severity notify.Severity
	Time     time.Time
	// Listener is the listener concerned; the zero key for a missing
	// listener, which has no socket.
	Listener inventory.ListenerKey
	// Socket is the socket and its owners as seen at detection (the last
	// view of it for closed).
	Socket *inventory.Socket
	// Old is the previous view for owner_changed and restarted.
	Old *inventory.Socket
	// Finding is set for policy verdicts and audit findings.
	Finding *Finding
	// Audit is the audit's own finding, with its evidence, when the event
	// comes from an audit the daemon ran (audit.go).
	Audit *report.Finding
	// Flapping marks the summary of a listener that kept coming back;
	// Restarts counts its comebacks.
	Flapping bool
	Restarts int
	// Down is how long the listener was gone before it came back.
	Down time.Duration
	// Since is when a resolved condition began.
	Since time.Time
	// UID is the event's id, also the alert id.
	UID string
}

// Payload is the JSON stored with each event and documented in
// docs/watch.md.
type Payload struct {
	Socket     *inventory.Socket `json:"socket,omitempty"`
	Old        *inventory.Socket `json:"old,omitempty"`
	Finding    *Finding          `json:"finding,omitempty"`
	Audit      *report.Finding   `json:"audit,omitempty"`
	Flapping   bool              `json:"flapping,omitempty"`
	Restarts   int               `json:"restarts,omitempty"`
	DownMillis int64             `json:"down_ms,omitempty"`
	Since      *time.Time        `json:"since,omitempty"`
	Summary    string            `json:"summary"`
	Host       string            `json:"host"`
}

func severityOf(kind string, flapping bool) notify.Severity {
	switch kind {
	case KindViolation, KindMissing:
		return notify.SeverityCritical
	case KindResolved:
		return notify.SeverityInfo
	case KindRestarted:
		// One restart is a note; a flapping listener is worth a look.
		if flapping {
			return notify.SeverityWarning
		}
		return notify.SeverityInfo
	}
	return notify.SeverityWarning
}

// listenerName is "tcp 0.0.0.0:4444", or the finding key when there is no
// socket (a missing listener).
func (e *Event) listenerName() string {
	if e.Socket == nil && e.Listener == (inventory.ListenerKey{}) {
		if e.Finding != nil {
			return e.Finding.Key
		}
		return ""
	}
	return e.Listener.String()
}

func firstOwner(so *inventory.Socket) *inventory.Process {
	if so == nil || len(so.Processes) == 0 {
		return nil
	}
	return &so.Processes[0]
}

func ownerPhrase(so *inventory.Socket) string {
	p := firstOwner(so)
	if p == nil {
		if so == nil {
			return inventory.ReasonNone.Holder()
		}
		return so.UnattributedReason.Holder()
	}
	s := fmt.Sprintf("%s (pid %d, user %s)", p.Name, p.PID, p.User)
	if n := len(so.Processes); n > 1 {
		s += fmt.Sprintf(" and %d more", n-1)
	}
	return s
}

// Summary is the one line for logs, subjects and `porteiro events`.
func (e *Event) Summary() string {
	l := e.listenerName()
	switch e.Kind {
	case KindOpened:
		return fmt.Sprintf("%s opened by %s", l, ownerPhrase(e.Socket))
	case KindClosed:
		if e.Flapping {
			return fmt.Sprintf("%s closed after flapping: it came back %d times (was %s)", l, e.Restarts, ownerPhrase(e.Socket))
		}
		return fmt.Sprintf("%s closed (was %s)", l, ownerPhrase(e.Socket))
	case KindOwnerChanged:
		return fmt.Sprintf("%s changed owner: %s, was %s", l, ownerPhrase(e.Socket), ownerPhrase(e.Old))
	case KindRestarted:
		if e.Flapping {
			return fmt.Sprintf("%s is flapping: it came back %d times, now %s", l, e.Restarts, ownerPhrase(e.Socket))
		}
		return fmt.Sprintf("%s restarted after %s: %s", l, e.Down.Round(time.Millisecond), ownerPhrase(e.Socket))
	case KindViolation, KindMissing:
		if e.Finding != nil {
			return e.Finding.Message
		}
	case KindResolved:
		if e.Finding != nil {
			return "resolved: " + e.Finding.Message
		}
	}
	return e.Kind + " " + l
}

func (e *Event) pid() int {
	if p := firstOwner(e.Socket); p != nil {
		return p.PID
	}
	return 0
}

// detail says what to do next, in an alert body. The channels add the
// `porteiro who` and `porteiro events` lines themselves.
func (e *Event) detail() string {
	if e.Audit != nil && e.Kind == KindViolation {
		return auditAdvice
	}
	switch e.Kind {
	case KindViolation:
		return "Check whether this listener should exist. If it should, add a rule to the policy and reload porteiro (systemctl reload porteiro); if not, stop the process."
	case KindMissing:
		return "A required listener is not there. Check the service (systemctl status) and its logs."
	case KindOwnerChanged:
		return "Another program now holds this port. Check that the change was intended."
	case KindOpened:
		return "A new listener appeared. Check that it was intended."
	case KindClosed:
		return "The listener is gone. If a service should be behind it, check the service."
	case KindRestarted:
		if e.Flapping {
			return "The service keeps restarting; check its logs (journalctl -u UNIT)."
		}
	}
	return ""
}

// Alert builds the alert announcing the event.
func (e *Event) Alert(host string) notify.Alert {
	a := notify.Alert{
		ID:       e.UID,
		Kind:     e.Kind,
		Severity: e.Severity,
		Host:     host,
		Time:     e.Time,
		Summary:  e.Summary(),
		Listener: e.listenerName(),
		Socket:   e.Socket,
		Detail:   e.detail(),
		StartsAt: e.Time,
	}
	if e.Finding != nil {
		a.Finding = e.Finding.Kind
		a.Rule = e.Finding.Rule
		a.RuleReason = e.Finding.RuleReason
		if a.Socket == nil {
			a.Socket = e.Finding.Socket
		}
		// Alertmanager identifies an alert by its labels: a finding's
		// listener must be the same in the firing and the resolved alert.
		a.Listener = findingListener(e.Finding)
	}
	if e.Kind == KindResolved {
		a.Resolved = true
		a.StartsAt = e.Since
	}
	return a
}

func findingListener(f *Finding) string {
	if f.Socket != nil {
		return f.Socket.ListenerKey().String()
	}
	return f.Key
}

// record builds the store row of the event, with one delivery per sink
// whose filter takes its alert.
func (e *Event) record(host string, sinks []notify.Sink) (store.NewEvent, error) {
	p := Payload{Socket: e.Socket, Old: e.Old, Finding: e.Finding, Audit: e.Audit, Flapping: e.Flapping, Restarts: e.Restarts, Summary: e.Summary(), Host: host}
	if e.Down > 0 {
		p.DownMillis = e.Down.Milliseconds()
	}
	if !e.Since.IsZero() {
		s := e.Since
		p.Since = &s
	}
	if p.Socket == nil && e.Finding != nil {
		p.Socket = e.Finding.Socket
	}
	payload, err := json.Marshal(p)
	if err != nil {
		return store.NewEvent{}, fmt.Errorf("encoding %s event: %w", e.Kind, err)
	}
	port, proto := e.Listener.Port, string(e.Listener.Proto)
	so := e.Socket
	if so == nil && e.Finding != nil {
		so = e.Finding.Socket
	}
	if so != nil {
		port, proto = so.Local.Port, string(so.Proto)
	}
	ne := store.NewEvent{Event: store.Event{
		UID: e.UID, Time: e.Time, Kind: e.Kind, Severity: string(e.Severity),
		Listener: e.listenerName(), Port: port, Proto: proto, PID: e.pid(), Payload: payload,
	}}
	if ne.Listener == "" {
		ne.Listener = "-"
	}
	a := e.Alert(host)
	var ab []byte
	for _, s := range sinks {
		if !s.Accepts(a) {
			continue
		}
		if ab == nil {
			if ab, err = json.Marshal(a); err != nil {
				return store.NewEvent{}, fmt.Errorf("encoding %s alert: %w", e.Kind, err)
			}
		}
		ne.Deliveries = append(ne.Deliveries, store.Delivery{Channel: s.Name(), AlertID: a.ID, Payload: ab})
	}
	return ne, nil
}

// Package notify delivers porteiro's alerts: email over SMTP, webhook,
// Alertmanager, syslog and exec. Each Sink reports whether a failure is worth
// retrying; the daemon's durable outbox does the retrying.
package notify

import (
	"context"
	"errors"
	"time"

	"github.com/porteiro/porteiro/inventory"
)

// Severity of an alert.
type Severity string

// Severities, lowest first.
const (
	SeverityInfo     Severity = "info"
	SeverityWarning  Severity = "warning"
	SeverityCritical Severity = "critical"
)

// Alert is one thing worth telling someone. Its JSON form is the webhook and
// exec payload schema (docs/alerts.md).
type Alert struct {
	// ID is stable for one event, so receivers can drop duplicates of an
	// at-least-once delivery.
	ID string `json:"id"`
	// Kind is the event kind: opened, closed, owner_changed, restarted,
	// violation, resolved, missing.
	Kind     string    `json:"kind"`
	Severity Severity  `json:"severity"`
	Host     string    `json:"host"`
	Time     time.Time `json:"time"`
	// Summary is one line for a subject or a log.
	Summary string `json:"summary"`
	// Listener is "tcp 0.0.0.0:4444": a bounded identity, used for grouping
	// and as an Alertmanager label.
	Listener string `json:"listener"`
	// Socket is the socket and its owners as seen when the event happened.
	Socket *inventory.Socket `json:"socket,omitempty"`
	// Finding is the policy finding kind (unexpected, missing, wrong_owner,
	// too_exposed), if any.
	Finding string `json:"finding,omitempty"`
	// Rule and RuleReason name the policy rule concerned, if any.
	Rule       string `json:"rule,omitempty"`
	RuleReason string `json:"rule_reason,omitempty"`
	// Detail is free text: what to do next.
	Detail string `json:"detail,omitempty"`
	// Resolved marks the end of a violation (Alertmanager endsAt).
	Resolved bool `json:"resolved,omitempty"`
	// StartsAt is when the condition began (for firing/resolved pairs).
	StartsAt time.Time `json:"starts_at"`
}

// Sink delivers alerts to one channel.
type Sink interface {
	// Name is the channel's configured name, used in logs and metrics.
	Name() string
	// Accepts reports whether the channel's filter takes the alert.
	Accepts(a Alert) bool
	// Send delivers a batch (one message where the channel allows it).
	// A failure wrapped with Permanent will not be retried.
	Send(ctx context.Context, batch []Alert) error
}

type permanentError struct{ err error }

func (e *permanentError) Error() string { return e.err.Error() }
func (e *permanentError) Unwrap() error { return e.err }

// Permanent marks err as not worth retrying (an SMTP 5xx, an HTTP 4xx).
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &permanentError{err: err}
}

// IsPermanent reports whether err was marked with Permanent.
func IsPermanent(err error) bool {
	var p *permanentError
	return errors.As(err, &p)
}

// Refresher is implemented by sinks whose receiver forgets a firing alert
// unless it is re-sent (Alertmanager). The daemon calls Refresh every
// RefreshInterval(sink) with every alert that is still firing.
type Refresher interface {
	Refresh(ctx context.Context, active []Alert) error
}

// RefreshInterval returns how often the daemon should call Refresh on s,
// or 0 when s is not a Refresher.
func RefreshInterval(s Sink) time.Duration {
	if r, ok := s.(interface{ refreshInterval() time.Duration }); ok {
		if _, ok := s.(Refresher); ok {
			return r.refreshInterval()
		}
	}
	return 0
}

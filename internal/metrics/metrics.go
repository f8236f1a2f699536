// Package metrics exposes porteiro's Prometheus metrics from a private
// registry.
package metrics

import (
	"net/http"
	"time"

	"github.com/porteiro/porteiro/inventory"
)

// Metrics is the daemon's metric set. All methods are safe for concurrent use.
type Metrics struct{}

// New returns the metric set for a daemon of the given version.
func New(version string) *Metrics { return &Metrics{} }

// ObserveScan records one scan: its duration, and either its snapshot
// (listeners, unattributed sockets) or its error.
func (m *Metrics) ObserveScan(snap *inventory.Snapshot, d time.Duration, err error) {}

// SetPolicy records the current policy verdict: findings counted by kind
// (unexpected, missing, wrong_owner, too_exposed) and the sockets flagged.
func (m *Metrics) SetPolicy(counts map[string]int, flagged map[inventory.Key]bool) {}

// IncEvent counts one recorded event of the given kind.
func (m *Metrics) IncEvent(kind string) {}

// IncNotification counts one delivery attempt: result is sent, retry,
// failed or dropped.
func (m *Metrics) IncNotification(channel, result string) {}

// SetOutboxPending sets the number of undelivered alerts.
func (m *Metrics) SetOutboxPending(n int) {}

// Handler serves /metrics.
func (m *Metrics) Handler() http.Handler { return http.NotFoundHandler() }

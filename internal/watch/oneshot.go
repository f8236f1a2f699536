package watch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/porteiro/porteiro/internal/metrics"
	"github.com/porteiro/porteiro/internal/notify"
	"github.com/porteiro/porteiro/inventory"
)

// OnceResult says what NotifyOnce did.
type OnceResult struct {
	// New are the findings announced for the first time; Resolved the
	// ones that ended since the last run.
	New, Resolved int
	// Pending counts the alerts still owed after delivery.
	Pending int
}

// NotifyOnce is `porteiro check --notify`, the cron-style alternative to
// the daemon: it records the findings of one check in the store of cfg and
// delivers the alerts through the channels. A finding already announced by
// an earlier run (or by the daemon) is not announced again, and one that
// has disappeared is resolved, so that a cron job does not resend the same
// finding every run. Alerts that cannot be delivered stay in the outbox and
// are retried by the next run; the returned error then names the channels.
func NotifyOnce(ctx context.Context, cfg *Config, sinks []notify.Sink, snap *inventory.Snapshot, findings []Finding, log *slog.Logger) (OnceResult, error) {
	var res OnceResult
	if log == nil {
		log = slog.Default()
	}
	d, err := New(Options{Config: cfg, Sinks: sinks, Logger: log, Metrics: metrics.New(""), Notify: func(string) {}})
	if err != nil {
		return res, err
	}
	defer d.store.Close()
	now := time.Now()
	if snap != nil && !snap.Time.IsZero() {
		now = snap.Time
	}
	// No grace period here: runs are minutes apart, and a finding seen by
	// a check is as real as it will get.
	d.det.grace = 0
	d.mu.Lock()
	before := make(map[string]bool, len(d.det.active))
	for k := range d.det.active {
		before[k] = true
	}
	evs := d.det.findingEvents(now, findings)
	for _, e := range evs {
		if e.Kind == KindResolved {
			res.Resolved++
		} else {
			res.New++
		}
	}
	err = nil
	if len(evs) > 0 {
		err = d.record(ctx, evs)
	}
	d.mu.Unlock()
	if err != nil {
		return res, err
	}
	d.failOrphans(ctx, sinks)
	derr := d.disp.deliverAll(ctx)
	res.Pending, _ = d.store.PendingCount(ctx)
	// Findings that were already firing are re-sent to the channels that
	// forget them otherwise (Alertmanager): there is no daemon to do it
	// between runs. The new ones just went out with their event.
	var still []notify.Alert
	d.mu.Lock()
	for _, a := range d.det.activeFindings() {
		if al, ok := d.alerts[a.Finding.Key]; ok && before[a.Finding.Key] {
			if a.Finding.Socket != nil {
				al.Socket, al.Summary = a.Finding.Socket, a.Finding.Message
			}
			still = append(still, al)
		}
	}
	d.mu.Unlock()
	var rerrs []error
	for _, s := range sinks {
		r, ok := s.(notify.Refresher)
		if !ok || notify.RefreshInterval(s) <= 0 || len(still) == 0 {
			continue
		}
		if err := r.Refresh(ctx, still); err != nil {
			rerrs = append(rerrs, fmt.Errorf("re-sending %d firing alert(s) to %s: %w", len(still), s.Name(), err))
		}
	}
	return res, errors.Join(append([]error{derr}, rerrs...)...)
}

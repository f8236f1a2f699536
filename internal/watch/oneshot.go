package watch

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/porteiro/porteiro/internal/metrics"
	"github.com/porteiro/porteiro/internal/notify"
	"github.com/porteiro/porteiro/internal/store"
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

// NotifyOnce is `porteirod once`, the timer's alternative to the daemon:
// it records the findings of one check in the store of cfg and delivers
// the alerts through the channels, with the same recorder as the daemon. A
// finding already announced by an earlier run (or by the daemon) is not
// announced again, and one that has disappeared is resolved, so that a
// timer does not resend the same finding every run. Alerts that cannot be
// delivered stay in the outbox and are retried by the next run; the
// returned error then names the channels.
func NotifyOnce(ctx context.Context, cfg *Config, sinks []notify.Sink, snap *inventory.Snapshot, findings []Finding, log *slog.Logger) (OnceResult, error) {
	var res OnceResult
	if log == nil {
		log = slog.Default()
	}
	st, err := store.Open(cfg.StateDirPath())
	if err != nil {
		return res, err
	}
	defer st.Close()
	m := metrics.New("")
	rec := newRecorder(st, cfg, sinks, m, log, time.Now)
	if err := rec.restore(ctx); err != nil {
		return res, err
	}
	disp := newDispatcher(st, m, log, time.Now)
	disp.configure(sinks, 0, cfg.RetryInitial(), cfg.RetryMax())
	now := time.Now()
	if snap != nil && !snap.Time.IsZero() {
		now = snap.Time
	}
	// No grace period here: runs are minutes apart, and a finding seen by
	// a check is as real as it will get.
	rec.det.grace = 0
	before := rec.activeKeys()
	res.New, res.Resolved, err = rec.judge(ctx, now, findings)
	if err != nil {
		return res, err
	}
	names := make([]string, len(sinks))
	for i, s := range sinks {
		names[i] = s.Name()
	}
	if _, err := st.FailOrphans(ctx, names, time.Now()); err != nil {
		log.Error("dropping alerts of removed channels", "err", err)
	}
	derr := disp.deliverAll(ctx)
	res.Pending, _ = st.PendingCount(ctx)
	// Findings that were already firing are re-sent to the channels that
	// forget them otherwise (Alertmanager): there is no daemon to do it
	// between runs. The new ones just went out with their event.
	rerrs := refreshFiring(ctx, sinks, rec.firing(before), func(notify.Sink) bool { return true })
	return res, errors.Join(append([]error{derr}, rerrs...)...)
}

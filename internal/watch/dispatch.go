package watch

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"sync"
	"time"

	"github.com/porteiro/porteiro/internal/metrics"
	"github.com/porteiro/porteiro/internal/notify"
	"github.com/porteiro/porteiro/internal/store"
)

// maxBatch bounds one Send; a larger backlog goes out in several rounds.
const maxBatch = 100

// dispatcher delivers the outbox. Per channel it waits for the burst
// window after the oldest new alert, then sends every pending alert of the
// channel as one batch. A transient failure backs the whole channel off
// (exponentially, capped); a permanent one fails the batch. An alert is
// marked delivered only after Send returned nil: delivery is at least
// once, and the alert id lets receivers drop duplicates.
//
// Channels are independent: each send runs in its own goroutine, and a
// channel never has two sends in flight.
type dispatcher struct {
	store   *store.Store
	metrics *metrics.Metrics
	log     *slog.Logger
	now     func() time.Time

	mu      sync.Mutex
	sinks   map[string]notify.Sink
	burst   time.Duration
	initial time.Duration
	max     time.Duration
	busy    map[string]bool
	// sendCtx is cancelled when the drain timeout expires.
	sendCtx  context.Context
	inflight sync.WaitGroup
	wake     chan struct{}
}

func newDispatcher(st *store.Store, m *metrics.Metrics, log *slog.Logger, now func() time.Time) *dispatcher {
	return &dispatcher{
		store: st, metrics: m, log: log, now: now,
		sinks: map[string]notify.Sink{}, busy: map[string]bool{},
		wake: make(chan struct{}, 1),
	}
}

// configure sets the channels and timings; it is called at start and on
// reload. Sends in flight finish with the sink they started with.
func (d *dispatcher) configure(sinks []notify.Sink, burst, initial, max time.Duration) {
	d.mu.Lock()
	d.sinks = make(map[string]notify.Sink, len(sinks))
	for _, s := range sinks {
		d.sinks[s.Name()] = s
	}
	d.burst, d.initial, d.max = burst, initial, max
	d.mu.Unlock()
	d.poke()
}

// poke wakes the dispatcher: new alerts were queued.
func (d *dispatcher) poke() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// run delivers until ctx is done. Sends use sendCtx, which outlives ctx so
// that a shutdown lets in-flight deliveries finish (see drain).
func (d *dispatcher) run(ctx, sendCtx context.Context) {
	d.sendCtx = sendCtx
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-timer.C:
		case <-d.wake:
		}
		next := d.round(ctx)
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(next)
	}
}

// drain waits for in-flight sends, up to timeout.
func (d *dispatcher) drain(timeout time.Duration) bool {
	done := make(chan struct{})
	go func() { d.inflight.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		return false
	}
}

// round starts the sends that are due and returns how long to sleep.
func (d *dispatcher) round(ctx context.Context) time.Duration {
	const idle = time.Minute
	heads, err := d.store.Heads(ctx)
	if err != nil {
		d.log.Error("reading the outbox", "err", err)
		return 5 * time.Second
	}
	pending := 0
	for _, h := range heads {
		pending += h.Pending
	}
	d.metrics.SetOutboxPending(pending)
	now := d.now()
	wait := idle
	d.mu.Lock()
	defer d.mu.Unlock()
	for ch, h := range heads {
		sink, ok := d.sinks[ch]
		if !ok || d.busy[ch] {
			continue
		}
		var due time.Time
		if !h.NextRetry.IsZero() {
			// The channel is backing off: new alerts wait with the old.
			due = h.NextRetry
		} else {
			due = h.OldestFresh.Add(d.burst)
		}
		if due.After(now) {
			if w := due.Sub(now); w < wait {
				wait = w
			}
			continue
		}
		d.busy[ch] = true
		d.inflight.Add(1)
		go d.send(ch, sink)
	}
	return wait
}

func (d *dispatcher) backoff(attempts int) time.Duration {
	d.mu.Lock()
	initial, max := d.initial, d.max
	d.mu.Unlock()
	b := initial
	for i := 1; i < attempts && b < max; i++ {
		b *= 2
	}
	if b > max {
		b = max
	}
	return b
}

func (d *dispatcher) send(ch string, sink notify.Sink) {
	defer func() {
		d.mu.Lock()
		d.busy[ch] = false
		d.mu.Unlock()
		d.inflight.Done()
		d.poke()
	}()
	ctx := d.sendCtx
	rows, err := d.store.Pending(ctx, ch, maxBatch)
	if err != nil {
		d.log.Error("reading the outbox", "channel", ch, "err", err)
		return
	}
	if len(rows) == 0 {
		return
	}
	batch := make([]notify.Alert, 0, len(rows))
	ids := make([]int64, 0, len(rows))
	var bad []int64
	attempts := 0
	for _, r := range rows {
		var a notify.Alert
		if err := json.Unmarshal(r.Payload, &a); err != nil {
			bad = append(bad, r.ID)
			continue
		}
		batch = append(batch, a)
		ids = append(ids, r.ID)
		if r.Attempts > attempts {
			attempts = r.Attempts
		}
	}
	// The store writes what it reads back; a row it cannot decode is
	// corrupt, and retrying would not help.
	if len(bad) > 0 {
		_ = d.store.MarkFailed(context.Background(), bad, "undecodable alert payload", d.now())
	}
	if len(batch) == 0 {
		return
	}
	err = sink.Send(ctx, batch)
	now := d.now()
	// Bookkeeping must happen even when the drain deadline cancelled ctx:
	// the send's outcome is known.
	bctx := context.Background()
	switch {
	case err == nil:
		if err := d.store.MarkDelivered(bctx, ids, now); err != nil {
			// The alerts went out but the mark did not stick: they
			// will be sent again (at least once).
			d.log.Error("marking alerts delivered", "channel", ch, "err", err)
		}
		for range ids {
			d.metrics.IncNotification(ch, "sent")
		}
		d.log.Info("alerts delivered", "channel", ch, "alerts", len(ids))
	case notify.IsPermanent(err):
		if err := d.store.MarkFailed(bctx, ids, err.Error(), now); err != nil {
			d.log.Error("marking alerts failed", "channel", ch, "err", err)
		}
		for range ids {
			d.metrics.IncNotification(ch, "failed")
		}
		d.log.Error("alert delivery failed permanently; not retrying", "channel", ch, "alerts", len(ids), "err", err)
	default:
		wait := d.backoff(attempts + 1)
		if errors.Is(err, context.Canceled) && ctx.Err() != nil {
			wait = 0 // cut off by shutdown: due again at the next start
		}
		if err := d.store.MarkRetry(bctx, ids, err.Error(), now.Add(wait)); err != nil {
			d.log.Error("scheduling alert retry", "channel", ch, "err", err)
		}
		for range ids {
			d.metrics.IncNotification(ch, "retry")
		}
		d.log.Warn("alert delivery failed; will retry", "channel", ch, "alerts", len(ids), "attempt", attempts+1, "retry_in", wait, "err", err)
	}
}

// deliverAll sends every pending alert now, ignoring the burst window, and
// returns when each channel has had one try per batch or ctx ends. It is
// the one-shot path of `porteirod once`.
func (d *dispatcher) deliverAll(ctx context.Context) error {
	d.sendCtx = ctx
	d.mu.Lock()
	sinks := make(map[string]notify.Sink, len(d.sinks))
	for k, v := range d.sinks {
		sinks[k] = v
	}
	d.mu.Unlock()
	var errs []error
	for ch, sink := range sinks {
		for i := 0; i < 1000; i++ {
			before, err := d.store.Pending(ctx, ch, 1)
			if err != nil {
				return err
			}
			if len(before) == 0 {
				break
			}
			d.inflight.Add(1)
			d.mu.Lock()
			d.busy[ch] = true
			d.mu.Unlock()
			d.send(ch, sink)
			after, err := d.store.Pending(ctx, ch, 1)
			if err != nil {
				return err
			}
			if len(after) > 0 && after[0].ID == before[0].ID {
				errs = append(errs, errors.New("channel "+ch+": "+after[0].LastError))
				break
			}
		}
	}
	if n, err := d.store.PendingCount(ctx); err == nil {
		d.metrics.SetOutboxPending(n)
	}
	return errors.Join(errs...)
}

// fromMemoryTimeout bounds one delivery from memory.
const fromMemoryTimeout = 30 * time.Second

// sendFromMemory delivers alerts that the store could not queue (a full
// disk): one try per channel, in the background, without the burst window
// or retries. sent hears each alert a channel took, so that it is not
// queued again once the store recovers. A failed try leaves the alert to
// the outbox, once the event is stored.
func (d *dispatcher) sendFromMemory(alerts []notify.Alert, sinks []notify.Sink, sent func(id, channel string)) {
	for _, s := range sinks {
		var mine []notify.Alert
		for _, a := range alerts {
			if s.Accepts(a) {
				mine = append(mine, a)
			}
		}
		if len(mine) == 0 {
			continue
		}
		d.inflight.Add(1)
		go func(s notify.Sink, batch []notify.Alert) {
			defer d.inflight.Done()
			ctx, cancel := context.WithTimeout(context.Background(), fromMemoryTimeout)
			defer cancel()
			if err := s.Send(ctx, batch); err != nil {
				for range batch {
					d.metrics.IncNotification(s.Name(), "retry")
				}
				d.log.Warn("alerts sent from memory failed; they wait for the event store", "channel", s.Name(), "alerts", len(batch), "err", err)
				return
			}
			for _, a := range batch {
				d.metrics.IncNotification(s.Name(), "sent")
				sent(a.ID, s.Name())
			}
			d.log.Info("alerts delivered from memory (the event store cannot be written)", "channel", s.Name(), "alerts", len(batch))
		}(s, mine)
	}
}

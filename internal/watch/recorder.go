package watch

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/porteiro/porteiro/internal/metrics"
	"github.com/porteiro/porteiro/internal/notify"
	"github.com/porteiro/porteiro/internal/store"
	"github.com/porteiro/porteiro/inventory"
)

// recorder turns what a scan saw into recorded events and queued alerts.
// A scan's views go through queueViews, a batch of kernel events through
// queueKeys; `porteirod once` calls judge with one check's findings. It owns the detector, the firing
// alerts, and the events that could not be stored yet.
//
// Detecting and committing are apart: events wait in a queue, and commits
// (one at a time, under commitMu) take all that waits. The lock mu is not
// held on disk I/O, so events are found and stamped while a commit runs.
// An event's alert is queued in the store with it, in one transaction, so
// no alert goes out before its event is stored.
type recorder struct {
	store   *store.Store
	metrics *metrics.Metrics
	log     *slog.Logger
	now     func() time.Time
	// onStoreError, when set, hears every failed or recovered commit
	// (nil error), so that the daemon can say so in /healthz.
	onStoreError func(error)
	// sendNow delivers alerts from memory while the store cannot queue
	// them, in the background, calling sent for each alert a channel took.
	// nil sends nothing: the alerts wait for the store.
	sendNow func(alerts []notify.Alert, sinks []notify.Sink, sent func(id, channel string))

	// gen counts configurations: verdicts kept across batches of events
	// hold for one generation.
	gen atomic.Uint64
	// commitMu is held by the one commit in progress.
	commitMu sync.Mutex

	mu     sync.Mutex // guards everything below
	host   string
	sinks  []notify.Sink
	det    *detector
	alerts map[string]notify.Alert // firing alerts by finding key
	// queue holds the events found and not yet committed; unsaved those
	// a commit failed to store (their alerts were sent from memory).
	queue    []Event
	unsaved  []Event
	lastSave time.Time
	final    bool

	sentMu sync.Mutex
	// sentFromMemory lists, per event id, the channels that already got
	// its alert while the store was failing; the deliveries are not
	// queued again once the event is stored.
	sentFromMemory map[string][]string
}

func newRecorder(st *store.Store, cfg *Config, sinks []notify.Sink, m *metrics.Metrics, log *slog.Logger, now func() time.Time) *recorder {
	return &recorder{
		store: st, metrics: m, log: log, now: now,
		host: cfg.HostName(), sinks: sinks,
		det:            newDetector(cfg.Grace(), cfg.FlapWindow()),
		alerts:         map[string]notify.Alert{},
		sentFromMemory: map[string][]string{},
	}
}

// configure applies a reloaded configuration.
func (r *recorder) configure(cfg *Config, sinks []notify.Sink) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.host, r.sinks = cfg.HostName(), sinks
	r.det.grace, r.det.flapWindow = cfg.Grace(), cfg.FlapWindow()
	r.gen.Add(1)
}

// generation returns the configuration's generation.
func (r *recorder) generation() uint64 { return r.gen.Load() }

// activeRecord is what the store keeps of a firing finding.
type activeRecord struct {
	Finding Finding      `json:"finding"`
	Alert   notify.Alert `json:"alert"`
}

// restore loads what the previous run left: the firing findings, so they
// are not announced again, and the listener set, so that changes while the
// daemon was down are reported.
func (r *recorder) restore(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	act, err := r.store.ActiveFindings(ctx)
	if err != nil {
		return err
	}
	for _, a := range act {
		var rec activeRecord
		if err := json.Unmarshal(a.Alert, &rec); err != nil {
			r.log.Warn("ignoring an unreadable active finding", "key", a.Key, "err", err)
			continue
		}
		r.det.active[a.Key] = &activeFinding{Finding: rec.Finding, Since: a.Since}
		r.alerts[a.Key] = rec.Alert
	}
	b, err := r.store.KV(ctx, kvListeners)
	if err != nil {
		return err
	}
	if b != nil {
		var socks []inventory.Socket
		if err := json.Unmarshal(b, &socks); err != nil {
			r.log.Warn("ignoring the unreadable saved listener set", "err", err)
		} else {
			r.det.prime(socks)
		}
	}
	return nil
}

// view is one state of the listeners to judge, with the policy's
// findings about it.
type view struct {
	snap     *inventory.Snapshot
	findings []Finding
}

// queueViews is one scan's worth of detection: what changed in whole
// views (a batch of kernel events may need two), in order, queued for the
// next commit (commitQueued). It reports whether any event waits.
func (r *recorder) queueViews(now time.Time, views []view) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, v := range views {
		r.queue = append(r.queue, r.det.step(now, v.snap, v.findings)...)
	}
	// Re-sent firing alerts describe the listener as it is now (a
	// restarted offender has a new pid); id and start stay.
	for key := range r.det.active {
		r.followFinding(key)
	}
	return len(r.queue)+len(r.unsaved) > 0
}

// keyStep is one view of a batch of kernel events, told as its changes
// from the view before (see detector.stepKeys).
type keyStep struct {
	keys     []inventory.ListenerKey
	cur      map[inventory.ListenerKey]*inventory.Socket
	findings findingChanges
}

// queueKeys is queueViews for one view told as its changes: its cost
// follows the listeners it touched. It reports whether any event waits.
func (r *recorder) queueKeys(now time.Time, st keyStep) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.queue = append(r.queue, r.det.stepKeys(now, st.keys, st.cur, st.findings)...)
	for _, key := range st.findings.changed {
		r.followFinding(key)
	}
	return len(r.queue)+len(r.unsaved) > 0
}

// followFinding makes the firing alert of finding key describe the
// listener as the finding does now. Called with r.mu held.
func (r *recorder) followFinding(key string) {
	f, ok := r.det.active[key]
	if !ok {
		return
	}
	if al, ok := r.alerts[key]; ok && f.Finding.Socket != nil && al.Socket != f.Finding.Socket {
		al.Socket, al.Summary = f.Finding.Socket, f.Finding.Message
		r.alerts[key] = al
	}
}

// commitQueued stores the events that wait (those that failed before
// first, in order), with their alerts, in one transaction, and the known
// listener set when save is true and it is due. It returns the number of
// events stored. On failure the events are kept for the next commit and
// the alerts of those tried for the first time go out from memory.
func (r *recorder) commitQueued(ctx context.Context, save bool) (int, error) {
	r.commitMu.Lock()
	defer r.commitMu.Unlock()
	r.mu.Lock()
	retried := len(r.unsaved)
	events := append(r.unsaved, r.queue...)
	r.unsaved, r.queue = nil, nil
	saving := save && r.saveDue(r.now())
	if len(events) == 0 && !saving {
		r.mu.Unlock()
		return 0, nil
	}
	b, known, err := r.batch(events, saving)
	r.mu.Unlock()
	if err == nil && saving {
		// Megabytes on a busy host: encoded outside the lock, so that
		// events are still found meanwhile.
		var js []byte
		if js, err = json.Marshal(known); err != nil {
			err = fmt.Errorf("encoding the listener set: %w", err)
		} else {
			b.KV = map[string][]byte{kvListeners: js}
		}
	}
	if err == nil {
		_, err = r.store.Record(ctx, b)
	}
	if r.onStoreError != nil {
		r.onStoreError(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		r.metrics.IncStoreError()
		// Keep them, ahead of what was found meanwhile, and try again at
		// the next commit rather than lose them; the detector has
		// already moved on. Their alerts must not wait for the disk:
		// they go out now, from memory.
		r.unsaved = events
		// The new ones follow the retried: their ids are given there,
		// so that the stored event later knows what was sent.
		r.sendFromMemory(events[retried:])
		return 0, err
	}
	if saving {
		r.det.dirty = false
		r.lastSave = r.now()
	}
	for i := range events {
		e := &events[i]
		r.sentMu.Lock()
		delete(r.sentFromMemory, e.UID)
		r.sentMu.Unlock()
		switch e.Kind {
		case KindViolation, KindMissing:
			r.alerts[e.Finding.Key] = e.Alert(r.host)
		case KindResolved:
			delete(r.alerts, e.Finding.Key)
		}
		r.metrics.IncEvent(e.Kind)
		r.logEvent(e)
	}
	return len(events), nil
}

// sendFromMemory delivers the alerts of events the store refused.
func (r *recorder) sendFromMemory(events []Event) {
	if r.sendNow == nil {
		return
	}
	var alerts []notify.Alert
	for i := range events {
		e := &events[i]
		prepare(e)
		alerts = append(alerts, e.Alert(r.host))
	}
	if len(alerts) == 0 {
		return
	}
	r.sendNow(alerts, r.sinks, func(id, ch string) {
		r.sentMu.Lock()
		r.sentFromMemory[id] = append(r.sentFromMemory[id], ch)
		r.sentMu.Unlock()
	})
}

// judge records the findings of one check (no listener events) and
// queues their alerts: the `porteirod once` path. It returns how many
// findings are new and how many resolved.
func (r *recorder) judge(ctx context.Context, now time.Time, findings []Finding) (fresh, resolved int, err error) {
	r.mu.Lock()
	evs := r.det.findingEvents(now, findings)
	for _, e := range evs {
		if e.Kind == KindResolved {
			resolved++
		} else {
			fresh++
		}
	}
	r.queue = append(r.queue, evs...)
	r.mu.Unlock()
	if len(evs) > 0 {
		_, err = r.commitQueued(ctx, true)
	}
	return fresh, resolved, err
}

// flush stores what is still unsaved, and the listener set, at shutdown.
// It returns the number of events that could not be saved.
func (r *recorder) flush(ctx context.Context) (int, error) {
	r.mu.Lock()
	r.final = true
	r.mu.Unlock()
	if _, err := r.commitQueued(ctx, true); err != nil {
		r.mu.Lock()
		defer r.mu.Unlock()
		return len(r.unsaved), err
	}
	return 0, nil
}

// firing returns the alerts of the findings that are firing now, and
// whether each one was firing before the given keys' snapshot (all, when
// before is nil).
func (r *recorder) firing(before map[string]bool) []notify.Alert {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]notify.Alert, 0, len(r.alerts))
	for _, a := range r.det.activeFindings() {
		al, ok := r.alerts[a.Finding.Key]
		if !ok || (before != nil && !before[a.Finding.Key]) {
			continue
		}
		if a.Finding.Socket != nil {
			al.Socket, al.Summary = a.Finding.Socket, a.Finding.Message
		}
		out = append(out, al)
	}
	return out
}

// activeKeys returns the keys of the firing findings.
func (r *recorder) activeKeys() map[string]bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	m := make(map[string]bool, len(r.det.active))
	for k := range r.det.active {
		m[k] = true
	}
	return m
}

// saveDue reports whether the known listener set should be saved now.
// Called with r.mu held.
func (r *recorder) saveDue(now time.Time) bool {
	return r.det.dirty && (r.final || r.lastSave.IsZero() || now.Sub(r.lastSave) >= saveEvery)
}

// prepare gives an event its id and severity, once.
func prepare(e *Event) {
	if e.UID == "" {
		e.UID = store.NewUID()
	}
	e.Severity = severityOf(e.Kind, e.Flapping)
}

// batch builds the store batch of events: their rows, their alerts and
// the firing findings they change, and the known listener set to save
// (encoded by the caller). Called with r.mu held.
func (r *recorder) batch(events []Event, saving bool) (store.Batch, []inventory.Socket, error) {
	var b store.Batch
	for i := range events {
		e := &events[i]
		prepare(e)
		ne, err := e.record(r.host, r.sinks)
		if err != nil {
			return b, nil, err
		}
		r.sentMu.Lock()
		if sent := r.sentFromMemory[e.UID]; len(sent) > 0 {
			ne.Deliveries = withoutChannels(ne.Deliveries, sent)
		}
		r.sentMu.Unlock()
		b.Events = append(b.Events, ne)
		switch e.Kind {
		case KindViolation, KindMissing:
			rec, err := json.Marshal(activeRecord{Finding: *e.Finding, Alert: e.Alert(r.host)})
			if err != nil {
				return b, nil, fmt.Errorf("encoding active finding: %w", err)
			}
			b.SetActive = append(b.SetActive, store.ActiveUpdate{
				Active:     store.Active{Key: e.Finding.Key, Kind: e.Finding.Kind, Since: e.Time, Alert: rec},
				EventIndex: len(b.Events) - 1,
			})
		case KindResolved:
			b.ClearActive = append(b.ClearActive, e.Finding.Key)
		}
	}
	var known []inventory.Socket
	if saving {
		known = r.det.knownSockets()
	}
	return b, known, nil
}

func withoutChannels(ds []store.Delivery, drop []string) []store.Delivery {
	out := ds[:0]
	for _, d := range ds {
		keep := true
		for _, c := range drop {
			if d.Channel == c {
				keep = false
				break
			}
		}
		if keep {
			out = append(out, d)
		}
	}
	return out
}

// logEvent writes the one log line of an event.
func (r *recorder) logEvent(e *Event) {
	attrs := []any{"kind", e.Kind, "severity", string(e.Severity), "id", e.UID}
	if l := e.listenerName(); l != "" {
		attrs = append(attrs, "listener", l)
	}
	so := e.Socket
	if so == nil && e.Finding != nil {
		so = e.Finding.Socket
	}
	if p := firstOwner(so); p != nil {
		attrs = append(attrs, "pid", p.PID, "process", p.Name, "user", p.User, "cmdline", p.CommandLine())
	}
	if e.Finding != nil {
		attrs = append(attrs, "finding", e.Finding.Kind)
		if e.Finding.Rule != "" {
			attrs = append(attrs, "rule", e.Finding.Rule)
		}
	}
	if e.Flapping {
		attrs = append(attrs, "flapping", true, "restarts", e.Restarts)
	}
	lvl := slog.LevelInfo
	if e.Severity == notify.SeverityWarning || e.Severity == notify.SeverityCritical {
		lvl = slog.LevelWarn
	}
	r.log.Log(context.Background(), lvl, e.Summary(), attrs...)
}

// refreshFiring re-sends firing alerts to the channels that forget them
// (Alertmanager). due says whether a channel is due; both the daemon's
// loop and `porteirod once` use it.
func refreshFiring(ctx context.Context, sinks []notify.Sink, active []notify.Alert, due func(notify.Sink) bool) []error {
	var errs []error
	for _, s := range sinks {
		r, ok := s.(notify.Refresher)
		if !ok || notify.RefreshInterval(s) <= 0 || !due(s) {
			continue
		}
		var mine []notify.Alert
		for _, a := range active {
			if s.Accepts(a) {
				mine = append(mine, a)
			}
		}
		if len(mine) == 0 {
			continue
		}
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		if err := r.Refresh(rctx, mine); err != nil {
			errs = append(errs, fmt.Errorf("re-sending %d firing alert(s) to %s: %w", len(mine), s.Name(), err))
		}
		cancel()
	}
	return errs
}

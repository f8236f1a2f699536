package watch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/porteiro/porteiro/internal/audit"
	"github.com/porteiro/porteiro/internal/audit/report"
	"github.com/porteiro/porteiro/internal/bpfevents"
	"github.com/porteiro/porteiro/internal/notify"
	"github.com/porteiro/porteiro/internal/store"
	"github.com/porteiro/porteiro/inventory"
)

// kvAudit is the store key of the audit findings that are firing, so that
// a restart neither announces them again nor forgets to resolve them.
const kvAudit = "audit_active"

// auditStartDelay is when the first scheduled audit runs after start (or
// one audit_interval, if that is shorter): soon enough that a daemon that
// restarts often still audits, late enough not to slow its start.
const auditStartDelay = time.Minute

// auditAdvice is the alert body of an audit finding.
const auditAdvice = "porteiro's audit found a listener or process hidden from the usual tools (docs/audit.md). " +
	"Run `porteiro audit` to see it again with its evidence. Until it is explained, treat the host as possibly compromised."

// errAuditStopping is answered to an audit asked for before porteirod runs
// or while it stops.
var errAuditStopping = errors.New("porteirod is starting or stopping; try again")

// auditRecord is what the store keeps of a firing audit finding.
type auditRecord struct {
	Finding report.Finding `json:"finding"`
	Alert   notify.Alert   `json:"alert"`
	Since   time.Time      `json:"since"`
}

// auditRun is one audit in progress; whoever asks while it runs waits for
// the same result.
type auditRun struct {
	done chan struct{}
	rep  *report.Report
	err  error
}

// auditor runs the audit on the schedule of audit_interval and when the
// local API asks, never two at once, in goroutines of its own so that the
// scan loop never waits for it. Its findings become events and critical
// alerts through the same path as the policy's (Event.record, the outbox),
// each once while it lasts, and a resolved event when it is gone.
type auditor struct {
	d *Daemon
	// run is audit.Run. opts are its options: zero, the full audit that
	// `porteirod audit` runs. every, when set, replaces audit_interval and
	// first the delay of the first run; tests set them below the minimum
	// a config may ask for.
	run   func(context.Context, audit.Options) (*report.Report, error)
	opts  audit.Options
	every time.Duration
	first time.Duration

	wake chan struct{}
	wg   sync.WaitGroup
	// probeFrom and probeTo (unix ns; 0: still running) bound the last
	// audit in this process: its bind() probe's UDP binds reach the
	// kernel's listener events, which ignore them (ownProbe).
	probeFrom, probeTo atomic.Int64

	mu      sync.Mutex // guards the fields below; never held across I/O
	ctx     context.Context
	cur     *auditRun
	last    *report.Report
	lastAt  time.Time
	lastRes string // ok, findings or error
	lastErr string
	runs    int // audits finished

	recMu  sync.Mutex // guards active; held while recording
	active map[string]*auditRecord
}

func newAuditor(d *Daemon) *auditor {
	return &auditor{d: d, run: audit.Run, first: auditStartDelay, wake: make(chan struct{}, 1), active: map[string]*auditRecord{}}
}

// restore loads the firing findings the previous run left.
func (a *auditor) restore(ctx context.Context) error {
	b, err := a.d.store.KV(ctx, kvAudit)
	if err != nil || b == nil {
		return err
	}
	var recs []auditRecord
	if err := json.Unmarshal(b, &recs); err != nil {
		a.d.log.Warn("ignoring the unreadable saved audit findings", "err", err)
		return nil
	}
	a.recMu.Lock()
	defer a.recMu.Unlock()
	for i := range recs {
		a.active[recs[i].Finding.ID()] = &recs[i]
	}
	return nil
}

// begin lets audits run, under ctx, from now on: before the local API
// answers, so that it can ask for one at once.
func (a *auditor) begin(ctx context.Context) {
	a.mu.Lock()
	a.ctx = ctx
	a.mu.Unlock()
}

// start runs the schedule until ctx ends.
func (a *auditor) start(ctx context.Context) {
	a.wg.Add(1)
	go a.loop(ctx)
}

// stop refuses new audits and waits for the running one (cancelled with
// the daemon's context) and its recording, before the store closes.
func (a *auditor) stop() {
	a.mu.Lock()
	a.ctx = nil
	a.mu.Unlock()
	a.wg.Wait()
}

// reconfigure tells the schedule that audit_interval may have changed.
func (a *auditor) reconfigure() {
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

func (a *auditor) interval() time.Duration {
	if a.every > 0 {
		return a.every
	}
	return a.d.Config().AuditInterval()
}

// loop runs an audit every interval, measured from the end of the last
// one, so that a slow audit never piles up behind itself.
func (a *auditor) loop(ctx context.Context) {
	defer a.wg.Done()
	var due time.Time
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		iv := a.interval()
		switch {
		case iv <= 0:
			due = time.Time{}
		case due.IsZero():
			due = time.Now().Add(min(iv, a.first))
		case time.Until(due) > iv:
			due = time.Now().Add(iv) // shortened by a reload
		}
		timer.Stop()
		var fire <-chan time.Time
		if !due.IsZero() {
			timer.Reset(time.Until(due))
			fire = timer.C
		}
		select {
		case <-ctx.Done():
			return
		case <-a.wake:
			continue
		case <-fire:
		}
		_, _ = a.Run(ctx)
		due = time.Now().Add(iv)
	}
}

// Run runs an audit now, or waits for the one in progress, and returns its
// report. ctx bounds the wait only: the audit itself runs under the
// daemon's context, for everyone who waits for it.
func (a *auditor) Run(ctx context.Context) (*report.Report, error) {
	a.mu.Lock()
	r := a.cur
	if r == nil {
		if a.ctx == nil || a.ctx.Err() != nil {
			a.mu.Unlock()
			return nil, errAuditStopping
		}
		r = &auditRun{done: make(chan struct{})}
		a.cur = r
		a.wg.Add(1)
		go a.execute(a.ctx, r)
	}
	a.mu.Unlock()
	select {
	case <-r.done:
		return r.rep, r.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

func (a *auditor) execute(ctx context.Context, r *auditRun) {
	defer a.wg.Done()
	start := time.Now()
	a.probeTo.Store(0)
	a.probeFrom.Store(start.UnixNano())
	rep, err := a.safeRun(ctx)
	a.probeTo.Store(time.Now().UnixNano())
	res := "ok"
	switch {
	case err != nil && ctx.Err() != nil:
		res = "error"
		a.d.log.Info("audit cancelled: porteirod is stopping")
	case err != nil:
		res = "error"
		a.d.log.Error("audit failed; the next scheduled one tries again", "err", err)
	case !rep.Compared:
		res = "error"
		var skipped []string
		for _, v := range rep.Views {
			if !v.Ran {
				skipped = append(skipped, string(v.View)+": "+v.Skipped)
			}
		}
		a.d.log.Error("audit compared nothing: no two views could run; porteirod needs root (or CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN, CAP_SYS_ADMIN, CAP_SYS_PTRACE) for it", "skipped", strings.Join(skipped, "; "))
	case !rep.Clean:
		res = "findings"
	}
	n := 0
	if rep != nil {
		n = len(rep.Findings)
	}
	a.d.metrics.ObserveAudit(res, n)
	if err == nil && rep.Compared {
		a.d.log.Info("audit done", "findings", n, "namespaces", rep.Namespaces, "duration", time.Since(start).Round(time.Millisecond))
		a.record(rep)
	}
	a.mu.Lock()
	a.lastAt, a.lastRes = a.d.now(), res
	a.runs++
	a.lastErr = ""
	if err != nil {
		a.lastErr = err.Error()
	} else {
		a.last = rep
	}
	a.cur = nil
	a.mu.Unlock()
	r.rep, r.err = rep, err
	close(r.done)
}

// safeRun runs the audit; a panic in it is an error of this audit, not
// the end of the daemon.
func (a *auditor) safeRun(ctx context.Context) (rep *report.Report, err error) {
	defer func() {
		if p := recover(); p != nil {
			a.d.log.Error("the audit panicked", "panic", p, "stack", string(debug.Stack()))
			rep, err = nil, fmt.Errorf("the audit panicked: %v", p)
		}
	}()
	return a.run(ctx, a.opts)
}

// record turns a report into events: a violation for each finding not
// firing yet, a resolved for each firing one the report no longer has.
// A finding is resolved only when every view that saw it ran again: one
// that is missing because its view was skipped this time is not gone.
// When the store refuses the batch nothing changes, so the next audit
// tries the same events again.
func (a *auditor) record(rep *report.Report) {
	cfg, _, sinks := a.d.configuration()
	host := cfg.HostName()
	now := a.d.now()
	a.recMu.Lock()
	defer a.recMu.Unlock()
	next := make(map[string]*auditRecord, len(a.active))
	for k, v := range a.active {
		next[k] = v
	}
	var events []Event
	seen := map[string]bool{}
	for i := range rep.Findings {
		f := rep.Findings[i]
		id := f.ID()
		if seen[id] {
			continue
		}
		seen[id] = true
		if old, ok := next[id]; ok {
			// Still there: no new alert; keep the latest evidence.
			next[id] = &auditRecord{Finding: f, Alert: old.Alert, Since: old.Since}
			continue
		}
		pf := auditFinding(&f)
		events = append(events, Event{Kind: KindViolation, Time: now, Finding: &pf, Audit: &f})
	}
	for _, id := range sortedAuditKeys(a.active) {
		old := a.active[id]
		if seen[id] || !ranAll(rep, old.Finding.SeenBy) {
			continue
		}
		f := old.Finding
		pf := auditFinding(&f)
		events = append(events, Event{Kind: KindResolved, Time: now, Finding: &pf, Audit: &f, Since: old.Since})
		delete(next, id)
	}
	var b store.Batch
	for i := range events {
		e := &events[i]
		prepare(e)
		ne, err := e.record(host, sinks)
		if err != nil {
			a.d.log.Error("recording the audit's findings", "err", err)
			return
		}
		b.Events = append(b.Events, ne)
		if e.Kind == KindViolation {
			next[e.Audit.ID()] = &auditRecord{Finding: *e.Audit, Alert: e.Alert(host), Since: now}
		}
	}
	recs := make([]auditRecord, 0, len(next))
	for _, id := range sortedAuditKeys(next) {
		recs = append(recs, *next[id])
	}
	js, err := json.Marshal(recs)
	if err != nil {
		a.d.log.Error("encoding the audit's findings", "err", err)
		return
	}
	b.KV = map[string][]byte{kvAudit: js}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := a.d.store.Record(ctx, b); err != nil {
		a.d.metrics.IncStoreError()
		a.d.log.Error("recording the audit's findings; the next audit tries again", "events", len(events), "err", err)
		return
	}
	a.active = next
	for i := range events {
		a.d.metrics.IncEvent(events[i].Kind)
		a.d.rec.logEvent(&events[i])
	}
	if len(events) > 0 {
		a.d.disp.poke()
	}
}

// auditFinding is the finding as events and alerts carry it: its kind,
// a key of its own, and one line for a person.
func auditFinding(f *report.Finding) Finding {
	var where []string
	if f.Proto != "" && f.Local != "" {
		where = append(where, f.Proto+" "+f.Local)
	}
	if f.NetNS != 0 {
		where = append(where, fmt.Sprintf("netns %d", f.NetNS))
	}
	if f.PID != 0 {
		where = append(where, fmt.Sprintf("pid %d", f.PID))
	}
	msg := "audit: " + f.Kind
	if len(where) > 0 {
		msg += " (" + strings.Join(where, ", ") + ")"
	}
	return Finding{Kind: f.Kind, Key: "audit " + f.ID(), Message: msg + ": " + f.Detail}
}

func ranAll(rep *report.Report, views []report.View) bool {
	for _, v := range views {
		if !rep.Ran(v) {
			return false
		}
	}
	return true
}

func sortedAuditKeys(m map[string]*auditRecord) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// firing returns the alerts of the audit findings that are firing, for
// the channels that must be told again (Alertmanager).
func (a *auditor) firing() []notify.Alert {
	a.recMu.Lock()
	defer a.recMu.Unlock()
	out := make([]notify.Alert, 0, len(a.active))
	for _, id := range sortedAuditKeys(a.active) {
		out = append(out, a.active[id].Alert)
	}
	return out
}

// probeSlack widens the window of ownProbe and hideProbe: the kernel's
// clock, turned into wall time, and the daemon's may differ a little, and a
// scan that began before the audit ended may end well after. Only the
// daemon's own UDP sockets are hidden in it, and porteirod has none of its
// own.
const probeSlack = 5 * time.Second

// ownProbe says whether a listener event is the audit's own bind() probe,
// which binds every UDP port in this process for an instant: not a
// listener to record. The event's time decides, not when it is read: the
// ring buffer may still hold the probe's events after the audit ended.
func (a *auditor) ownProbe(ev *bpfevents.Event) bool {
	return ev.PID == a.d.self && a.probeOverlaps(ev.Time, ev.Time)
}

// probeOverlaps says whether [from, to] met the last audit's window.
func (a *auditor) probeOverlaps(from, to time.Time) bool {
	pf := a.probeFrom.Load()
	if pf == 0 {
		return false
	}
	pt := a.probeTo.Load()
	return to.UnixNano() >= pf-int64(probeSlack) && (pt == 0 || from.UnixNano() <= pt+int64(probeSlack))
}

// hideProbe returns the scan without the UDP sockets that only the daemon
// itself holds, when the scan ran during an audit: a scan can catch one of
// the probe's sockets in the instant it is bound, and the daemon would
// report it as a listener that opened and closed. Otherwise, or when there
// is nothing to hide, it returns snap itself.
func (a *auditor) hideProbe(snap *inventory.Snapshot) *inventory.Snapshot {
	if snap == nil || !a.probeOverlaps(snap.Time, time.Now()) {
		return snap
	}
	mine := func(so *inventory.Socket) bool {
		if so.Proto != inventory.UDP || len(so.Processes) == 0 {
			return false
		}
		for _, p := range so.Processes {
			if p.PID != a.d.self {
				return false
			}
		}
		return true
	}
	n := 0
	for i := range snap.Sockets {
		if mine(&snap.Sockets[i]) {
			n++
		}
	}
	if n == 0 {
		return snap
	}
	cp := *snap
	cp.Sockets = make([]inventory.Socket, 0, len(snap.Sockets)-n)
	for i := range snap.Sockets {
		if !mine(&snap.Sockets[i]) {
			cp.Sockets = append(cp.Sockets, snap.Sockets[i])
		}
	}
	return &cp
}

// status is what /healthz says of the audits; nil before the first.
func (a *auditor) status() map[string]any {
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.lastAt.IsZero() {
		return nil
	}
	s := map[string]any{"last_run": a.lastAt, "result": a.lastRes}
	if a.lastErr != "" {
		s["error"] = a.lastErr
	} else if a.last != nil {
		s["findings"] = len(a.last.Findings)
	}
	return s
}

// serveAuditGet answers the last audit's report.
func (d *Daemon) serveAuditGet(w http.ResponseWriter, r *http.Request) {
	d.audit.mu.Lock()
	rep := d.audit.last
	d.audit.mu.Unlock()
	if rep == nil {
		writeJSON(w, http.StatusNotFound, map[string]string{"error": "no audit has run yet: POST /api/v1/audit (porteiro audit) runs one"})
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

// serveAuditPost runs an audit, or joins the one in progress, and answers
// its report.
func (d *Daemon) serveAuditPost(w http.ResponseWriter, r *http.Request) {
	rep, err := d.audit.Run(r.Context())
	if err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, errAuditStopping) {
			code = http.StatusServiceUnavailable
		}
		writeJSON(w, code, map[string]string{"error": "audit: " + err.Error()})
		return
	}
	writeJSON(w, http.StatusOK, rep)
}

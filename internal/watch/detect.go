package watch

import (
	"sort"
	"strings"
	"time"

	"github.com/porteiro/porteiro/inventory"
)

// detector turns consecutive snapshots and policy verdicts into events. It
// is pure: time comes in with each step, so tests drive it with a fake
// clock and hand-built snapshots.
//
// Listeners are compared by ListenerKey (namespace, protocol, address,
// port), not by inode, so that a restarted service is the same listener.
// A listener that disappears is not reported at once: if it comes back
// within the grace period it was a restart, one `restarted` note instead of
// a closed/opened pair.
//
// A listener that keeps coming back is flapping, whether each gap is
// shorter than the grace period (a restart loop) or longer (a crash loop
// with a slow restart). Its first comeback (a restart, or an opened soon
// after a reported close) is reported; after that its comebacks and closes
// are counted, not reported, until it has been stable for the flap window.
// Then one summary says how often it came back and whether it is up
// (`restarted`) or down (`closed`). While it keeps flapping, a summary goes
// out every flapReportWindows windows.
type detector struct {
	grace      time.Duration
	flapWindow time.Duration

	// known is every listener seen in the last scan, merged across the
	// sockets that share its key (SO_REUSEPORT).
	known  map[inventory.ListenerKey]*inventory.Socket
	primed bool
	// last is the previous snapshot: when the new one holds the same
	// sockets with the same owners, as on most scans, the listener
	// comparison is skipped.
	last *inventory.Snapshot
	// dirty says the listener set changed since it was last saved.
	dirty   bool
	closing map[inventory.ListenerKey]closing
	flaps   map[inventory.ListenerKey]*flap
	// closedAt remembers reported closes for a flap window, so that a
	// listener opening again soon after is seen as a comeback. Entries
	// older than that are swept every sweepEvery.
	closedAt map[inventory.ListenerKey]time.Time
	swept    time.Time

	// active findings have been announced; pending ones wait to be
	// confirmed (missing) and resolving ones to stay gone for the grace
	// period before they are resolved.
	active    map[string]*activeFinding
	pending   map[string]time.Time
	resolving map[string]time.Time
	// unverified are wrong_owner findings whose socket showed no owner:
	// its holder may have exited during the scan. They fire only when the
	// next observation finds them again.
	unverified map[string]bool
}

type closing struct {
	at   time.Time
	last *inventory.Socket
}

// sweepEvery spaces the sweeps of closedAt.
const sweepEvery = time.Second

// flapReportWindows spaces the summaries of a listener that never stops
// flapping, in flap windows.
const flapReportWindows = 10

// flap tracks a listener that came back: its comebacks and closes are
// counted instead of reported until it is stable.
type flap struct {
	lastChange time.Time
	lastReport time.Time
	// restarts counts comebacks since the last report, the reported one
	// included; suppressed counts the events not reported.
	restarts   int
	suppressed int
	last       *inventory.Socket
	up         bool
	// flapping is set at the second comeback and stays until the
	// listener is stable.
	flapping bool
}

type activeFinding struct {
	Finding Finding
	Since   time.Time
}

func newDetector(grace, flapWindow time.Duration) *detector {
	return &detector{
		grace:      grace,
		flapWindow: flapWindow,
		known:      map[inventory.ListenerKey]*inventory.Socket{},
		closing:    map[inventory.ListenerKey]closing{},
		flaps:      map[inventory.ListenerKey]*flap{},
		closedAt:   map[inventory.ListenerKey]time.Time{},
		active:     map[string]*activeFinding{},
		pending:    map[string]time.Time{},
		resolving:  map[string]time.Time{},
		unverified: map[string]bool{},
	}
}

// prime sets the listeners known from before the first scan (the set the
// daemon saved before it stopped), so that changes while it was down are
// reported.
func (d *detector) prime(socks []inventory.Socket) {
	for i := range socks {
		so := socks[i]
		d.known[so.ListenerKey()] = &so
	}
	d.primed = true
}

// listeners merges a snapshot's listening sockets by ListenerKey.
func listeners(snap *inventory.Snapshot) map[inventory.ListenerKey]*inventory.Socket {
	out := map[inventory.ListenerKey]*inventory.Socket{}
	if snap == nil {
		return out
	}
	for i := range snap.Sockets {
		so := &snap.Sockets[i]
		if !so.Listening {
			continue
		}
		k := so.ListenerKey()
		cur, ok := out[k]
		if !ok {
			cp := *so
			out[k] = &cp
			continue
		}
		// Several sockets share the key: keep every owner once.
		seen := map[int]bool{}
		for _, p := range cur.Processes {
			seen[p.PID] = true
		}
		for _, p := range so.Processes {
			if !seen[p.PID] {
				cur.Processes = append(cur.Processes, p)
			}
		}
	}
	return out
}

// programs names the programs that hold a listener: their executables (or
// names) and users. Worker processes come and go, and pids change on every
// restart; a change of program is what matters. "" means unknown.
func programs(so *inventory.Socket) string {
	if so == nil || len(so.Processes) == 0 {
		return ""
	}
	set := map[string]bool{}
	for i := range so.Processes {
		p := &so.Processes[i]
		id := p.Exe
		if id == "" {
			id = "[" + p.Name + "]"
		}
		set[id+"|"+p.User] = true
	}
	out := make([]string, 0, len(set))
	for s := range set {
		out = append(out, s)
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

func sameProgram(a, b *inventory.Socket) bool {
	pa, pb := programs(a), programs(b)
	return pa == "" || pb == "" || pa == pb
}

// step takes one scan and returns the events it causes, in a stable order.
// findings is nil when no policy is loaded.
func (d *detector) step(now time.Time, snap *inventory.Snapshot, findings []Finding) []Event {
	var out []Event
	switch {
	case d.primed && d.last != nil && sameSockets(d.last, snap):
		// Nothing moved: no listener event is possible.
	case !d.primed:
		// The first scan of a fresh daemon is the baseline, not a burst of
		// "opened" events.
		d.known = listeners(snap)
		d.primed = true
		d.dirty = true
	default:
		out = d.listenerEvents(now, listeners(snap))
	}
	d.last = snap
	out = append(out, d.expire(now)...)
	out = append(out, d.findingEvents(now, findings)...)
	return out
}

// sameSockets reports whether two snapshots hold the same sockets (by
// identity) with the same owner processes (pid and start time). Snapshots
// are sorted, so this is one pass without allocation.
func sameSockets(a, b *inventory.Snapshot) bool {
	if b == nil || len(a.Sockets) != len(b.Sockets) {
		return false
	}
	for i := range a.Sockets {
		x, y := &a.Sockets[i], &b.Sockets[i]
		if x.Inode != y.Inode || x.NetNS != y.NetNS || x.Listening != y.Listening || len(x.Processes) != len(y.Processes) {
			return false
		}
		for j := range x.Processes {
			if x.Processes[j].PID != y.Processes[j].PID || x.Processes[j].StartTicks != y.Processes[j].StartTicks {
				return false
			}
		}
	}
	return true
}

func sortedKeys[V any](m map[inventory.ListenerKey]V) []inventory.ListenerKey {
	keys := make([]inventory.ListenerKey, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	return sortKeyList(keys)
}

// sortKeyList sorts listener keys in the order events come out: by
// protocol, port, address, then namespace.
func sortKeyList(keys []inventory.ListenerKey) []inventory.ListenerKey {
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		if a.Proto != b.Proto {
			return a.Proto < b.Proto
		}
		if a.Port != b.Port {
			return a.Port < b.Port
		}
		if c := a.Address.Compare(b.Address); c != 0 {
			return c < 0
		}
		return a.NetNS < b.NetNS
	})
	return keys
}

func (d *detector) listenerEvents(now time.Time, cur map[inventory.ListenerKey]*inventory.Socket) []Event {
	var out []Event
	for _, k := range sortedKeys(d.known) {
		if _, ok := cur[k]; !ok {
			d.gone(now, k)
		}
	}
	for _, k := range sortedKeys(cur) {
		if e, ok := d.present(now, k, cur[k]); ok {
			out = append(out, e)
		}
	}
	for k, so := range cur {
		cur[k] = d.keepOwners(k, so)
	}
	d.known = cur
	return out
}

// stepKeys is step for a view that differs from the last one stepped only
// at the listener keys given (sorted as sortedKeys does): cur holds those
// of them that are there now, merged as listeners does. The findings that
// may have changed are at fs.changed; the others are as they were. Its
// cost follows the keys given, not the number of listeners. The detector
// must have stepped a whole view before (the first scan).
func (d *detector) stepKeys(now time.Time, keys []inventory.ListenerKey, cur map[inventory.ListenerKey]*inventory.Socket, fs findingChanges) []Event {
	var out []Event
	for _, k := range keys {
		if _, ok := cur[k]; !ok {
			d.gone(now, k)
		}
	}
	for _, k := range keys {
		if so, ok := cur[k]; ok {
			if e, ok := d.present(now, k, so); ok {
				out = append(out, e)
			}
		}
	}
	for _, k := range keys {
		if so, ok := cur[k]; ok {
			d.known[k] = d.keepOwners(k, so)
		} else {
			delete(d.known, k)
		}
	}
	// The next scan is compared in full: this view was never whole.
	d.last = nil
	out = append(out, d.expire(now)...)
	out = append(out, d.findingEventsKeys(now, fs)...)
	return out
}

// gone notes that known listener k is not in the view: it is closing,
// unless it comes back within the grace period.
func (d *detector) gone(now time.Time, k inventory.ListenerKey) {
	old, ok := d.known[k]
	if !ok {
		return
	}
	if _, already := d.closing[k]; !already {
		d.closing[k] = closing{at: now, last: old}
		d.dirty = true
	}
}

// present judges listener k as in the view, held as so: the event it
// causes, if any.
func (d *detector) present(now time.Time, k inventory.ListenerKey, so *inventory.Socket) (Event, bool) {
	old, wasKnown := d.known[k]
	if !wasKnown {
		d.dirty = true
		if c, ok := d.closing[k]; ok {
			delete(d.closing, k)
			if sameProgram(c.last, so) {
				e := Event{Kind: KindRestarted, Time: now, Listener: k, Socket: so, Old: c.last, Down: now.Sub(c.at)}
				return e, d.comeback(now, k, so)
			}
			// Another program took the port while it was free: not a
			// restart, whatever the timing.
			return Event{Kind: KindOwnerChanged, Time: now, Listener: k, Socket: so, Old: c.last}, true
		}
		if t, ok := d.closedAt[k]; d.flaps[k] != nil || ok && now.Sub(t) <= d.flapWindow {
			// Back soon after a close: a comeback.
			return Event{Kind: KindOpened, Time: now, Listener: k, Socket: so}, d.comeback(now, k, so)
		}
		return Event{Kind: KindOpened, Time: now, Listener: k, Socket: so}, true
	}
	if !sameProgram(old, so) {
		d.dirty = true
		return Event{Kind: KindOwnerChanged, Time: now, Listener: k, Socket: so, Old: old}, true
	}
	return Event{}, false
}

// keepOwners keeps the last known owners of a listener whose owners could
// not be seen this time, so an unreadable scan is not an owner change
// later.
func (d *detector) keepOwners(k inventory.ListenerKey, so *inventory.Socket) *inventory.Socket {
	if old, ok := d.known[k]; ok && len(so.Processes) == 0 && len(old.Processes) > 0 {
		cp := *so
		cp.Processes = old.Processes
		return &cp
	}
	return so
}

// comeback records that listener k came back, and reports whether to
// announce it. The first comeback is announced; from the second while its
// tracker lives (expire ends it once the listener is stable for a flap
// window), the listener is flapping and its comebacks are counted instead.
func (d *detector) comeback(now time.Time, k inventory.ListenerKey, so *inventory.Socket) bool {
	if f := d.flaps[k]; f != nil {
		f.restarts++
		f.lastChange, f.last, f.up = now, so, true
		if !f.flapping && f.restarts < 2 {
			return true
		}
		f.flapping = true
		f.suppressed++
		return false
	}
	d.flaps[k] = &flap{lastChange: now, lastReport: now, restarts: 1, last: so, up: true}
	return true
}

// expire emits what waited long enough: closes past the grace period and
// the summaries of flapping listeners.
func (d *detector) expire(now time.Time) []Event {
	var out []Event
	// Only what is due is sorted: on a host where thousands of listeners
	// come and go, this runs for every batch of events.
	var due []inventory.ListenerKey
	for k, c := range d.closing {
		if now.Sub(c.at) >= d.grace {
			due = append(due, k)
		}
	}
	for _, k := range sortKeyList(due) {
		c := d.closing[k]
		delete(d.closing, k)
		d.dirty = true
		if f := d.flaps[k]; f != nil {
			f.up, f.last = false, c.last
			if c.at.After(f.lastChange) {
				f.lastChange = c.at
			}
			if f.flapping {
				// Counted, reported in the summary.
				f.suppressed++
				continue
			}
		}
		// The listener was gone since c.at; that is when it closed.
		d.closedAt[k] = c.at
		out = append(out, Event{Kind: KindClosed, Time: c.at, Listener: k, Socket: c.last})
	}
	due = due[:0]
	for k, f := range d.flaps {
		stable := now.Sub(f.lastChange) > d.flapWindow
		report := now.Sub(f.lastReport) >= flapReportWindows*d.flapWindow
		if _, down := d.closing[k]; down && stable {
			// Wait for the pending close to be decided first.
			continue
		}
		if stable || report {
			due = append(due, k)
		}
	}
	for _, k := range sortKeyList(due) {
		f := d.flaps[k]
		stable := now.Sub(f.lastChange) > d.flapWindow
		if f.suppressed > 0 {
			e := Event{Kind: KindRestarted, Time: now, Listener: k, Socket: f.last, Restarts: f.restarts, Flapping: true}
			if !f.up {
				e.Kind, e.Time = KindClosed, f.lastChange
				d.closedAt[k] = f.lastChange
			}
			out = append(out, e)
		}
		if stable {
			delete(d.flaps, k)
		} else {
			f.lastReport, f.restarts, f.suppressed = now, 0, 0
		}
	}
	// Old closes are forgotten now and then, not at every step: every
	// reader of closedAt checks the flap window itself.
	if now.Sub(d.swept) >= sweepEvery || now.Before(d.swept) {
		d.swept = now
		for k, t := range d.closedAt {
			if now.Sub(t) > d.flapWindow {
				delete(d.closedAt, k)
			}
		}
	}
	return out
}

func (d *detector) findingEvents(now time.Time, findings []Finding) []Event {
	var out []Event
	seen := make(map[string]bool, len(findings))
	for i := range findings {
		f := findings[i]
		if seen[f.Key] {
			continue
		}
		seen[f.Key] = true
		if e, ok := d.seeFinding(now, f); ok {
			out = append(out, e)
		}
	}
	for k := range d.pending {
		if !seen[k] {
			delete(d.pending, k)
		}
	}
	for k := range d.unverified {
		if !seen[k] {
			delete(d.unverified, k)
		}
	}
	keys := make([]string, 0, len(d.active))
	for k := range d.active {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if seen[k] {
			continue
		}
		if e, ok := d.unseenFinding(now, k); ok {
			out = append(out, e)
		}
	}
	return out
}

// findingChanges tells findingEventsKeys the policy's verdict: the keys
// whose finding may have changed since the last step, the findings now
// (lookup) and their order in a whole check (less).
type findingChanges struct {
	changed []string
	lookup  func(key string) (Finding, bool)
	less    func(a, b *Finding) bool
}

// findingEventsKeys is findingEvents when only the findings at fs.changed
// may differ from the last step's. The others need no look: each one
// present is active, or waits in pending or unverified; each one absent
// and active waits in resolving. So the keys to look at are the changed
// ones and those waiting, and the events come out in the same order.
func (d *detector) findingEventsKeys(now time.Time, fs findingChanges) []Event {
	look := make(map[string]bool, len(fs.changed)+len(d.pending)+len(d.unverified)+len(d.resolving))
	for _, k := range fs.changed {
		look[k] = true
	}
	for k := range d.pending {
		look[k] = true
	}
	for k := range d.unverified {
		look[k] = true
	}
	for k := range d.resolving {
		look[k] = true
	}
	var here []Finding
	var absent []string
	for k := range look {
		if f, ok := fs.lookup(k); ok {
			here = append(here, f)
		} else {
			absent = append(absent, k)
		}
	}
	sort.Slice(here, func(i, j int) bool { return fs.less(&here[i], &here[j]) })
	var out []Event
	for _, f := range here {
		if e, ok := d.seeFinding(now, f); ok {
			out = append(out, e)
		}
	}
	sort.Strings(absent)
	for _, k := range absent {
		delete(d.pending, k)
		delete(d.unverified, k)
		if _, ok := d.active[k]; !ok {
			continue
		}
		if e, ok := d.unseenFinding(now, k); ok {
			out = append(out, e)
		}
	}
	return out
}

// seeFinding takes finding f as present in the view: the event it causes,
// if any.
func (d *detector) seeFinding(now time.Time, f Finding) (Event, bool) {
	if a, ok := d.active[f.Key]; ok {
		delete(d.resolving, f.Key)
		a.Finding = f
		return Event{}, false
	}
	if unverifiedOwner(&f) && !d.unverified[f.Key] {
		// Seen once without an owner: confirm at the next scan. A holder
		// that exited mid-scan is gone by then, and so is the finding.
		d.unverified[f.Key] = true
		return Event{}, false
	}
	delete(d.unverified, f.Key)
	kind := KindViolation
	if f.Kind == KindMissing {
		// A required listener is briefly absent while its service
		// restarts: only a gap longer than the grace period counts.
		first, ok := d.pending[f.Key]
		if !ok {
			d.pending[f.Key] = now
			first = now
		}
		if now.Sub(first) < d.grace {
			return Event{}, false
		}
		delete(d.pending, f.Key)
		kind = KindMissing
	}
	fc := f
	d.active[f.Key] = &activeFinding{Finding: fc, Since: now}
	e := Event{Kind: kind, Time: now, Finding: &fc, Socket: fc.Socket}
	if fc.Socket != nil {
		e.Listener = fc.Socket.ListenerKey()
	}
	return e, true
}

// unseenFinding takes active finding k as absent from the view: resolved
// once it stays gone for the grace period, so a restart of the offending
// listener is not resolved-then-fired.
func (d *detector) unseenFinding(now time.Time, k string) (Event, bool) {
	first, ok := d.resolving[k]
	if !ok {
		d.resolving[k] = now
		first = now
	}
	if now.Sub(first) < d.grace {
		return Event{}, false
	}
	a := d.active[k]
	delete(d.active, k)
	delete(d.resolving, k)
	fc := a.Finding
	e := Event{Kind: KindResolved, Time: now, Finding: &fc, Since: a.Since}
	if fc.Socket != nil {
		e.Listener = fc.Socket.ListenerKey()
	}
	return e, true
}

// unverifiedOwner reports whether a finding is about who holds a socket
// whose holder porteiro did not see: a wrong_owner verdict on a socket
// with no owner, which a holder exiting during the scan also produces.
func unverifiedOwner(f *Finding) bool {
	return f.Kind == "wrong_owner" && f.Socket != nil && len(f.Socket.Processes) == 0
}

// knownSockets is the listener set to save: what is up, and what closed
// but is still within its grace period (so a crash does not lose the
// close).
func (d *detector) knownSockets() []inventory.Socket {
	out := make([]inventory.Socket, 0, len(d.known)+len(d.closing))
	for _, k := range sortedKeys(d.known) {
		out = append(out, *d.known[k])
	}
	for _, k := range sortedKeys(d.closing) {
		if _, ok := d.known[k]; !ok {
			out = append(out, *d.closing[k].last)
		}
	}
	return out
}

// activeAlerts returns the firing findings, oldest first.
func (d *detector) activeFindings() []*activeFinding {
	out := make([]*activeFinding, 0, len(d.active))
	for _, a := range d.active {
		out = append(out, a)
	}
	sort.Slice(out, func(i, j int) bool {
		if !out[i].Since.Equal(out[j].Since) {
			return out[i].Since.Before(out[j].Since)
		}
		return out[i].Finding.Key < out[j].Finding.Key
	})
	return out
}

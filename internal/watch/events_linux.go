package watch

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/porteiro/porteiro/internal/bpfevents"
	"github.com/porteiro/porteiro/inventory"
)

// openEvents starts the kernel's listener events, or says why not.
func openEvents() (eventSource, error) {
	s, err := bpfevents.Open(bpfevents.Options{})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// eventSource is what the daemon needs of bpfevents.Source (a seam for
// tests that inject events; the real kernel source is tested in
// internal/bpfevents and end to end).
type eventSource interface {
	Read(ctx context.Context) (bpfevents.Event, error)
	Drops() uint64
	Close() error
}

// runEvents reads the kernel's listener events until ctx ends, and judges
// the view after each batch of them, so a listener that lives 20 ms is
// recorded with its owner. A grace period that is running (a listener that
// closed may be restarting) is decided by a later pass, timed for when it
// ends. Drops ask the main loop for a reconciliation scan at once.
//
// Commits run beside the judging (commitLoop): the events a batch finds
// are stamped at once, and those found while a commit is on disk go in
// the next one.
func (d *Daemon) runEvents(ctx context.Context, src eventSource, rescan chan<- struct{}) {
	var lastDrops uint64
	after := time.NewTimer(time.Hour)
	after.Stop()
	defer after.Stop()
	commits := make(chan struct{}, 1)
	go d.commitLoop(ctx, commits)
	evs := make(chan bpfevents.Event, 4096)
	go func() {
		defer close(evs)
		for {
			ev, err := src.Read(ctx)
			if err != nil {
				if errors.Is(err, bpfevents.ErrBadRecord) {
					d.log.Warn("skipping an unreadable listener event", "err", err)
					continue
				}
				if ctx.Err() == nil {
					d.log.Error("reading listener events stopped; polling only", "err", err)
				}
				return
			}
			if d.audit.ownProbe(&ev) {
				continue
			}
			select {
			case evs <- ev:
			case <-ctx.Done():
				return
			}
		}
	}()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-evs:
			if !ok {
				d.metrics.SetEventSource("poll")
				d.eventsActive.Store(false)
				return
			}
			d.live.apply(&ev)
			d.publish(&ev)
			// Take every event already waiting, then judge once: a burst
			// of a thousand binds costs one pass, not a thousand.
		drain:
			for i := 0; i < maxBatch*10; i++ {
				select {
				case ev, ok := <-evs:
					if !ok {
						break drain
					}
					d.live.apply(&ev)
					d.publish(&ev)
				default:
					break drain
				}
			}
			d.judgeEvents(commits)
			cfg, _, _ := d.configuration()
			after.Reset(cfg.Grace() + 100*time.Millisecond)
		case <-after.C:
			d.judgeEvents(commits)
		case <-tick.C:
			d.procMu.Lock()
			d.live.verdicts.publish(d.metrics)
			d.procMu.Unlock()
			if n := src.Drops(); n > lastDrops {
				d.metrics.AddEventDrops(n - lastDrops)
				d.log.Warn("the kernel dropped listener events; scanning now to catch up", "dropped", n-lastDrops)
				lastDrops = n
				select {
				case rescan <- struct{}{}:
				default:
				}
			}
		}
	}
}

// commitLoop commits what the events' judging queued, one commit at a
// time, each taking everything queued while the previous one ran.
func (d *Daemon) commitLoop(ctx context.Context, wake <-chan struct{}) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-wake:
			// A commit that started is not cut off by a shutdown; what
			// is left is flushed by Run.
			d.commit(context.WithoutCancel(ctx), false)
		}
	}
}

// judgeEvents judges what the kernel's events changed in the view since
// it was last judged, and queues the events that causes for commitLoop.
// Only the listener groups the events touched are looked at, unless the
// policy is not a policy file's (a Checker that may need every listener)
// or changed since the last whole verdict: then the whole view is judged.
// Listeners that opened and closed within the batch are judged first, as
// if still open, then the view as it is.
func (d *Daemon) judgeEvents(commits chan<- struct{}) {
	d.procMu.Lock()
	defer d.procMu.Unlock()
	gen := d.rec.generation()
	_, pol, _ := d.configuration()
	vc := &d.live.verdicts
	_, filePolicy := pol.(policyChecker)
	incremental := vc.valid && vc.gen == gen && (pol == nil || filePolicy)
	b := d.live.take(d.now(), !incremental)
	if b == nil {
		return
	}
	var queued bool
	if !incremental {
		queued = d.judgeLocked(b.full...)
	} else {
		queued = d.judgeBatch(b)
	}
	if queued {
		select {
		case commits <- struct{}{}:
		default:
		}
	}
}

// judgeBatch judges a batch by the groups it touched, in one view or two:
// with its transient listeners (if any), then as it is. Each view's
// verdict is taken by the detector before the next one is judged. It
// reports whether events wait for a commit.
func (d *Daemon) judgeBatch(b *liveBatch) bool {
	vc := &d.live.verdicts
	type state struct {
		socks map[groupKey][]inventory.Socket
		extra []inventory.Socket // the transient listeners, for whole
	}
	states := []state{{socks: b.after}}
	if len(b.transient) > 0 {
		mid := make(map[groupKey][]inventory.Socket, len(b.groups))
		var extra []inventory.Socket
		for _, g := range b.groups {
			socks := append(slices.Clone(b.after[g]), b.transient[g]...)
			sortSockets(socks)
			if len(socks) > 0 {
				mid[g] = socks
			}
			extra = append(extra, b.transient[g]...)
		}
		states = []state{{socks: mid, extra: extra}, {socks: b.after}}
	}
	// The listener keys of every touched group, in any of the states.
	seen := map[inventory.ListenerKey]bool{}
	var keys []inventory.ListenerKey
	addKeys := func(m map[groupKey][]inventory.Socket) {
		for _, socks := range m {
			for i := range socks {
				if k := socks[i].ListenerKey(); !seen[k] {
					seen[k] = true
					keys = append(keys, k)
				}
			}
		}
	}
	addKeys(b.before)
	for _, st := range states {
		addKeys(st.socks)
	}
	keys = sortKeyList(keys)
	queued := false
	before, sat := b.before, map[groupKey][]bool(nil)
	for _, st := range states {
		var all []inventory.Socket
		for _, g := range b.groups {
			all = append(all, st.socks[g]...)
		}
		extra := st.extra
		whole := func() *inventory.Snapshot { return d.live.asTaken(b.now, extra) }
		var changed []string
		changed, sat = vc.judge(b.groups, before, st.socks, sat, whole)
		queued = d.rec.queueKeys(b.now, keyStep{
			keys: keys,
			cur:  listeners(&inventory.Snapshot{Sockets: all}),
			findings: findingChanges{
				changed: changed, lookup: vc.lookup, less: vc.less,
			},
		})
		before = st.socks
	}
	return queued
}

// publish hands an event to the trace clients, if any.
func (d *Daemon) publish(ev *bpfevents.Event) {
	if d.trace.active() {
		d.trace.publish(ev.Wire(inventory.UserName(ev.UID)))
	}
}

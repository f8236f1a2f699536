package watch

import (
	"context"
	"errors"
	"net/netip"
	"sort"
	"sync"
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

// liveView is the listener set between two scans: the last scan's
// sockets, with the kernel's events applied as they arrive. Events that
// arrive while a scan runs are applied again on top of its result, since
// the scan's dump may predate them.
type liveView struct {
	mu      sync.Mutex
	base    *inventory.Snapshot
	socks   map[inventory.Key]inventory.Socket
	cookies map[uint64]inventory.Key
	// since holds the events received since the running scan started.
	scanning bool
	since    []bpfevents.Event
	// fresh are the sockets added since the view was last taken, and
	// transient those of them that closed before it was: a listener that
	// lived less than one pass must still be seen once.
	fresh     map[inventory.Key]bool
	transient []inventory.Socket
	// procs reads an owner's details as a scan would.
	procs *inventory.Resolver
}

func newLiveView() *liveView {
	return &liveView{socks: map[inventory.Key]inventory.Socket{}, cookies: map[uint64]inventory.Key{},
		fresh: map[inventory.Key]bool{}, procs: &inventory.Resolver{ProcRoot: "/proc"}}
}

// scanStarted marks the start of a scan: events from now on are kept to
// be replayed over its result.
func (v *liveView) scanStarted() {
	v.mu.Lock()
	v.scanning, v.since = true, v.since[:0]
	v.mu.Unlock()
}

// reset takes a scan's snapshot as the new base, replays the events that
// arrived during the scan, and returns the view.
func (v *liveView) reset(snap *inventory.Snapshot) *inventory.Snapshot {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.base = snap
	clear(v.socks)
	clear(v.cookies)
	for _, so := range snap.Sockets {
		if so.Listening {
			v.socks[so.Key()] = so
		}
	}
	replay := v.since
	v.scanning, v.since = false, nil
	for i := range replay {
		v.applyLocked(&replay[i])
	}
	if len(replay) == 0 {
		return snap
	}
	return v.snapshotLocked(time.Now())
}

// apply adds one event to the view.
func (v *liveView) apply(ev *bpfevents.Event) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.scanning {
		v.since = append(v.since, *ev)
	}
	v.applyLocked(ev)
}

// current returns the view as it is, or nil before the first scan.
func (v *liveView) current(now time.Time) *inventory.Snapshot {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.base == nil {
		return nil
	}
	return v.snapshotLocked(now)
}

func (v *liveView) applyLocked(ev *bpfevents.Event) {
	switch ev.Kind {
	case bpfevents.Opened:
		so := v.socketOf(ev)
		k := so.Key()
		if old, ok := v.socks[k]; ok && len(old.Processes) > 0 {
			// Known already (a scan saw it): keep the richer view.
			v.cookies[ev.Cookie] = k
			return
		}
		v.socks[k] = so
		v.cookies[ev.Cookie] = k
		v.fresh[k] = true
	case bpfevents.Closed:
		k, ok := v.cookies[ev.Cookie]
		if !ok {
			k = inventory.Key{NetNS: ev.NetNS, Inode: ev.Inode}
		}
		if so, ok := v.socks[k]; ok && v.fresh[k] {
			v.transient = append(v.transient, so)
		}
		delete(v.fresh, k)
		delete(v.cookies, ev.Cookie)
		delete(v.socks, k)
	}
}

// transientView returns the view with the listeners that opened and
// closed since the last view, as if still open, or nil when there are
// none. Judged before the current view, it lets each of them be recorded
// as opened, then closed.
func (v *liveView) transientView(now time.Time) *inventory.Snapshot {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.base == nil || len(v.transient) == 0 {
		v.transient = v.transient[:0]
		return nil
	}
	extra := v.transient
	v.transient = nil
	return v.snapshotWith(now, extra)
}

func (v *liveView) snapshotLocked(now time.Time) *inventory.Snapshot {
	return v.snapshotWith(now, nil)
}

func (v *liveView) snapshotWith(now time.Time, extra []inventory.Socket) *inventory.Snapshot {
	clear(v.fresh)
	snap := *v.base
	snap.Time = now
	snap.Sockets = make([]inventory.Socket, 0, len(v.socks)+len(extra))
	for _, so := range v.socks {
		snap.Sockets = append(snap.Sockets, so)
	}
	snap.Sockets = append(snap.Sockets, extra...)
	sort.Slice(snap.Sockets, func(i, j int) bool {
		a, b := &snap.Sockets[i], &snap.Sockets[j]
		if a.Local.Port != b.Local.Port {
			return a.Local.Port < b.Local.Port
		}
		return a.Inode < b.Inode
	})
	return &snap
}

// socketOf builds the socket an Opened event announces, with its owner as
// the kernel saw it at listen() or bind(), completed from /proc when the
// process is still there.
func (v *liveView) socketOf(ev *bpfevents.Event) inventory.Socket {
	state := inventory.State("LISTEN")
	if ev.Proto == inventory.UDP {
		state = "UNCONN"
	}
	remote := netip.IPv4Unspecified()
	if ev.Family == inventory.IPv6 {
		remote = netip.IPv6Unspecified()
	}
	so := inventory.Socket{
		Proto: ev.Proto, Family: ev.Family, State: state,
		Local:  ev.Endpoint(),
		Remote: inventory.Endpoint{Address: remote},
		Inode:  ev.Inode, UID: ev.UID, NetNS: ev.NetNS,
		DualStack: ev.DualStack, Exposure: inventory.ExposureOf(ev.Addr), Listening: true,
	}
	if ev.PID <= 0 || ev.PIDOutsideNS {
		so.UnattributedReason = inventory.ReasonNoProcess
		return so
	}
	p := inventory.Process{PID: ev.PID, Name: ev.Comm, UID: ev.UID, User: inventory.UserName(ev.UID), Cmdline: ev.Cmdline, Exe: ev.Exe}
	// The process as a scan sees it, if it is still the one that
	// listened: a pid reused since then has another name.
	if full := v.procs.Process(ev.PID); full != nil && full.Name == ev.Comm {
		p = *full
	}
	so.Processes = []inventory.Process{p}
	return so
}

// runEvents reads the kernel's listener events until ctx ends, and judges
// the view after each one, so a listener that lives 20 ms is recorded with
// its owner. A grace period that is running (a listener that closed may be
// restarting) is decided by a later pass, timed for when it ends. Drops
// ask the main loop for a reconciliation scan at once.
func (d *Daemon) runEvents(ctx context.Context, src eventSource, rescan chan<- struct{}) {
	var lastDrops uint64
	after := time.NewTimer(time.Hour)
	after.Stop()
	defer after.Stop()
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
			now := d.now()
			// Listeners that opened and closed within the batch are judged
			// first, as if still open, then the view as it is: both in one
			// commit.
			if snap := d.live.current(now); snap != nil {
				if tv := d.live.transientView(now); tv != nil {
					d.process(ctx, false, tv, snap)
				} else {
					d.process(ctx, false, snap)
				}
			}
			cfg, _, _ := d.configuration()
			after.Reset(cfg.Grace() + 100*time.Millisecond)
		case <-after.C:
			if snap := d.live.current(d.now()); snap != nil {
				d.process(ctx, false, snap)
			}
		case <-tick.C:
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

// publish hands an event to the trace clients, if any.
func (d *Daemon) publish(ev *bpfevents.Event) {
	if d.trace.active() {
		d.trace.publish(ev.Wire(inventory.UserName(ev.UID)))
	}
}

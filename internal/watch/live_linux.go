package watch

import (
	"context"
	"net/netip"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/porteiro/porteiro/internal/bpfevents"
	"github.com/porteiro/porteiro/inventory"
)

// groupKey is what the policy names a listener by in its finding keys:
// the protocol, the address (an IPv4-mapped one as IPv4) and the port, in
// any namespace. The policy merges the findings of the sockets of one
// group, so a group is judged as a whole; it holds one or more listener
// keys (SO_REUSEPORT, the same port in several namespaces).
type groupKey struct {
	proto inventory.Proto
	addr  netip.Addr
	port  uint16
}

func groupOf(so *inventory.Socket) groupKey {
	a := so.Local.Address
	if a.Is4In6() {
		a = a.Unmap()
	}
	return groupKey{proto: so.Proto, addr: a, port: so.Local.Port}
}

// liveView is the listener set between two scans: the last scan's
// sockets, with the kernel's events applied as they arrive. Events that
// arrive while a scan runs are applied again on top of its result, since
// the scan's dump may predate them.
//
// It also remembers what changed since the view was last judged (a batch
// taken, or a scan's reset): the groups touched, as they were then. A
// batch of events is then judged by those groups alone, whatever the
// number of listeners on the host.
type liveView struct {
	mu      sync.Mutex
	base    *inventory.Snapshot
	socks   map[inventory.Key]inventory.Socket
	cookies map[uint64]inventory.Key
	groups  map[groupKey][]inventory.Key
	// since holds the events received since the running scan started.
	scanning bool
	since    []bpfevents.Event
	// old holds, for every group touched since the view was last judged,
	// its sockets as they were then.
	old map[groupKey][]inventory.Socket
	// fresh are the sockets added since the view was last judged, and
	// transient those of them that closed before it was: a listener that
	// lived less than one pass must still be seen once.
	fresh     map[inventory.Key]bool
	transient []inventory.Socket
	// moved says events changed the view since the last scan, which is
	// then older than the view.
	moved bool
	// procs reads an owner's details as a scan would.
	procs *inventory.Resolver
	// names are the namespaces' names as the last scan gave them, and
	// those looked up since for events in namespaces it did not show: a
	// listener's identity holds its namespace's name, so an event must
	// name it as the scan will.
	names map[uint64]nsName

	// verdicts is the policy's verdict on the view as last judged. It is
	// guarded by the daemon's procMu, not mu.
	verdicts verdicts
}

func newLiveView() *liveView {
	return &liveView{socks: map[inventory.Key]inventory.Socket{}, cookies: map[uint64]inventory.Key{},
		groups: map[groupKey][]inventory.Key{}, old: map[groupKey][]inventory.Socket{},
		fresh: map[inventory.Key]bool{}, procs: &inventory.Resolver{ProcRoot: "/proc"}, names: map[uint64]nsName{}}
}

// nsName is what a socket says of its namespace.
type nsName struct {
	name      string
	container *inventory.Container
}

// nameOf names namespace ino: as the last scan did, else as a lookup of
// the live system does (a new container's namespace), remembered.
func (v *liveView) nameOf(ino uint64) nsName {
	if n, ok := v.names[ino]; ok {
		return n
	}
	var n nsName
	if ni, ok := inventory.NamespaceNames(context.Background(), "/proc", map[uint64]bool{ino: true})[ino]; ok {
		n = nsName{ni.Name, ni.Container}
	}
	v.names[ino] = n
	return n
}

// scanStarted marks the start of a scan: events from now on are kept to
// be replayed over its result.
func (v *liveView) scanStarted() {
	v.mu.Lock()
	v.scanning, v.since = true, v.since[:0]
	v.mu.Unlock()
}

// reset takes a scan's snapshot as the new base, replays the events that
// arrived during the scan, and returns the view: the one judged next.
func (v *liveView) reset(snap *inventory.Snapshot) *inventory.Snapshot {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.base = snap
	clear(v.socks)
	clear(v.cookies)
	clear(v.groups)
	clear(v.names)
	for i := range snap.Sockets {
		if so := &snap.Sockets[i]; so.NetNSName != "" {
			v.names[so.NetNS] = nsName{so.NetNSName, so.Container}
		}
	}
	for _, so := range snap.Sockets {
		if so.Listening {
			k := so.Key()
			if _, dup := v.socks[k]; !dup {
				g := groupOf(&so)
				v.groups[g] = append(v.groups[g], k)
			}
			v.socks[k] = so
		}
	}
	replay := v.since
	v.scanning, v.since = false, nil
	for i := range replay {
		v.applyLocked(&replay[i])
	}
	// The view returned is the one judged: nothing is pending after it.
	clear(v.old)
	clear(v.fresh)
	v.transient, v.moved = nil, false
	if len(replay) == 0 {
		return snap
	}
	return v.snapshotWith(time.Now(), nil, nil)
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

func (v *liveView) applyLocked(ev *bpfevents.Event) {
	switch ev.Kind {
	case bpfevents.Opened:
		so := v.socketOf(ev)
		k := so.Key()
		old, had := v.socks[k]
		if had && len(old.Processes) > 0 {
			// Known already (a scan saw it): keep the richer view.
			v.cookies[ev.Cookie] = k
			return
		}
		g := groupOf(&so)
		v.touch(g)
		if had {
			if og := groupOf(&old); og != g {
				v.touch(og)
				v.unindex(og, k)
				v.groups[g] = append(v.groups[g], k)
			}
		} else {
			v.groups[g] = append(v.groups[g], k)
		}
		v.socks[k] = so
		v.cookies[ev.Cookie] = k
		v.fresh[k] = true
		v.moved = true
	case bpfevents.Closed:
		k, ok := v.cookies[ev.Cookie]
		if !ok {
			k = inventory.Key{NetNS: ev.NetNS, Inode: ev.Inode}
		}
		if so, ok := v.socks[k]; ok {
			g := groupOf(&so)
			v.touch(g)
			v.unindex(g, k)
			if v.fresh[k] {
				v.transient = append(v.transient, so)
			}
			delete(v.socks, k)
			v.moved = true
		}
		delete(v.fresh, k)
		delete(v.cookies, ev.Cookie)
	}
}

// touch remembers group g as it was when the view was last judged, before
// its first change since.
func (v *liveView) touch(g groupKey) {
	if _, ok := v.old[g]; !ok {
		v.old[g] = v.groupSockets(g)
	}
}

func (v *liveView) unindex(g groupKey, k inventory.Key) {
	ks := v.groups[g]
	if i := slices.Index(ks, k); i >= 0 {
		ks = slices.Delete(ks, i, i+1)
	}
	if len(ks) == 0 {
		delete(v.groups, g)
		return
	}
	v.groups[g] = ks
}

// groupSockets copies the sockets of group g, in the views' order.
func (v *liveView) groupSockets(g groupKey) []inventory.Socket {
	ks := v.groups[g]
	if len(ks) == 0 {
		return nil
	}
	out := make([]inventory.Socket, 0, len(ks))
	for _, k := range ks {
		out = append(out, v.socks[k])
	}
	sortSockets(out)
	return out
}

// sortSockets puts sockets in the order of a view: by port, then inode.
func sortSockets(s []inventory.Socket) {
	sort.Slice(s, func(i, j int) bool {
		a, b := &s[i], &s[j]
		if a.Local.Port != b.Local.Port {
			return a.Local.Port < b.Local.Port
		}
		return a.Inode < b.Inode
	})
}

// liveBatch is what changed in the view since it was last judged.
type liveBatch struct {
	now time.Time
	// groups are the groups touched, sorted; before and after hold their
	// sockets when the view was last judged and now (absent: none).
	groups        []groupKey
	before, after map[groupKey][]inventory.Socket
	// transient holds, by group, the listeners that opened and closed in
	// the batch. When there are any, the batch is judged in two views:
	// first with them, as if still open, then without.
	transient map[groupKey][]inventory.Socket
	// full holds those views whole, when asked for (a checker that must
	// see every listener).
	full []*inventory.Snapshot
}

// take returns what changed since the view was last judged, and makes
// the view as it is now the judged one. It returns nil before the first
// scan, which has nothing to compare with. full asks for the whole views.
func (v *liveView) take(now time.Time, full bool) *liveBatch {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.base == nil {
		clear(v.old)
		clear(v.fresh)
		v.transient = nil
		return nil
	}
	b := &liveBatch{now: now, before: make(map[groupKey][]inventory.Socket, len(v.old)), after: make(map[groupKey][]inventory.Socket, len(v.old))}
	for g, socks := range v.old {
		b.groups = append(b.groups, g)
		if len(socks) > 0 {
			b.before[g] = socks
		}
		if cur := v.groupSockets(g); len(cur) > 0 {
			b.after[g] = cur
		}
	}
	sortGroups(b.groups)
	if len(v.transient) > 0 {
		b.transient = map[groupKey][]inventory.Socket{}
		for _, so := range v.transient {
			g := groupOf(&so)
			b.transient[g] = append(b.transient[g], so)
		}
	}
	if full {
		if len(v.transient) > 0 {
			b.full = append(b.full, v.snapshotWith(now, v.transient, nil))
		}
		b.full = append(b.full, v.snapshotWith(now, nil, nil))
	}
	clear(v.old)
	clear(v.fresh)
	v.transient = nil
	return b
}

func sortGroups(gs []groupKey) {
	slices.SortFunc(gs, func(a, b groupKey) int {
		if a.port != b.port {
			return int(a.port) - int(b.port)
		}
		if a.proto != b.proto {
			if a.proto < b.proto {
				return -1
			}
			return 1
		}
		return a.addr.Compare(b.addr)
	})
}

// asTaken returns the whole view as the last take left it (with extra
// sockets added): the groups touched since are put back as they were.
// It is the rare path of a verdict that needs every listener.
func (v *liveView) asTaken(now time.Time, extra []inventory.Socket) *inventory.Snapshot {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.snapshotWith(now, extra, v.old)
}

// current returns the view as it is, or nil before the first scan.
func (v *liveView) current(now time.Time) *inventory.Snapshot {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.base == nil {
		return nil
	}
	return v.snapshotWith(now, nil, nil)
}

// latest returns the view as it is when events changed it since the last
// scan, else nil (the scan's snapshot is the latest).
func (v *liveView) latest(now time.Time) *inventory.Snapshot {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.base == nil || !v.moved {
		return nil
	}
	return v.snapshotWith(now, nil, nil)
}

// snapshotWith builds the whole view, sorted, with extra sockets added and
// the groups in instead replaced by the sockets given there.
func (v *liveView) snapshotWith(now time.Time, extra []inventory.Socket, instead map[groupKey][]inventory.Socket) *inventory.Snapshot {
	snap := *v.base
	snap.Time = now
	snap.Sockets = make([]inventory.Socket, 0, len(v.socks)+len(extra))
	for _, so := range v.socks {
		if instead != nil {
			if _, ok := instead[groupOf(&so)]; ok {
				continue
			}
		}
		snap.Sockets = append(snap.Sockets, so)
	}
	for _, socks := range instead {
		snap.Sockets = append(snap.Sockets, socks...)
	}
	snap.Sockets = append(snap.Sockets, extra...)
	sortSockets(snap.Sockets)
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
	n := v.nameOf(ev.NetNS)
	so.NetNSName, so.Container = n.name, n.container
	if ev.PID <= 0 || ev.PIDOutsideNS {
		so.UnattributedReason = inventory.ReasonNoProcess
		return so
	}
	p := &inventory.ProcessInfo{PID: ev.PID, Name: ev.Comm, UID: ev.UID, User: inventory.UserName(ev.UID), Cmdline: ev.Cmdline, Exe: ev.Exe}
	// The process as a scan sees it, if it is still the one that
	// listened: a pid reused since then has another name.
	if full := v.procs.Process(ev.PID); full != nil && full.Name == ev.Comm {
		p = full
	}
	so.Processes = []inventory.Process{{ProcessInfo: p}}
	return so
}

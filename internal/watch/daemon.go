package watch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"

	"github.com/porteiro/porteiro/internal/bpfevents"
	"github.com/porteiro/porteiro/internal/localapi"
	"github.com/porteiro/porteiro/internal/metrics"
	"github.com/porteiro/porteiro/internal/notify"
	"github.com/porteiro/porteiro/internal/store"
	"github.com/porteiro/porteiro/inventory"
)

// kvListeners is the store key of the last known listener set.
const kvListeners = "listeners"

// saveEvery spaces the saves of the known listener set. On a busy host it
// is megabytes of JSON; events are written at once, the set at most this
// often (and at shutdown). A crash loses at most this much of it: after the
// restart, a listener that changed in that window may be reported twice, or
// one that opened and closed in it may miss its closed event.
const saveEvery = 30 * time.Second

// retentionEvery is how often old events are pruned.
const retentionEvery = time.Hour

// Options builds a Daemon. Only Config is required.
type Options struct {
	Config *Config
	// Policy judges each snapshot; nil means no policy.
	Policy Checker
	// Sinks are the alert channels (notify.Build of Config.Channels).
	Sinks []notify.Sink
	// Source and Resolver replace the host's socket source and owner
	// resolver; tests use them for determinism and fault injection.
	Source   inventory.SocketSource
	Resolver inventory.OwnerResolver
	Metrics  *metrics.Metrics
	Logger   *slog.Logger
	// LogLevel, when set, is adjusted on reload.
	LogLevel *slog.LevelVar
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Notify sends a systemd notification ("READY=1"); nil means
	// sd_notify, which does nothing outside systemd.
	Notify func(state string)
}

// Daemon is porteirod. Create it with New and run it with Run.
//
// It is three parts: the recorder turns snapshots into stored events and
// queued alerts (its lock is held across disk writes); the dispatcher
// delivers the queue; the status is what /healthz and the API read, under a
// lock that is never held across I/O, so a slow disk cannot stall them.
type Daemon struct {
	log     *slog.Logger
	metrics *metrics.Metrics
	store   *store.Store
	scanner *inventory.Scanner
	now     func() time.Time
	notify  func(string)
	level   *slog.LevelVar
	disp    *dispatcher
	rec     *recorder
	reload  chan struct{}
	// self is the daemon's own pid: its listeners are always allowed.
	self int
	// live is the listener set between scans, kept by kernel events.
	live *liveView
	// eventsActive is whether kernel events are being read (else poll).
	eventsActive atomic.Bool
	// procMu serialises judging and recording: scans and events both do.
	procMu sync.Mutex
	// trace fans the kernel's events out to `porteiro trace` clients.
	trace traceSubs
	// audit runs the audit on schedule and for the local API (audit.go).
	audit *auditor
	// closed is the kernel's count of closed connections, while loaded.
	closed closedSource

	cfgMu  sync.Mutex // guards cfg, policy and sinks
	cfg    *Config
	policy Checker
	sinks  []notify.Sink

	statusMu      sync.Mutex // guards the status below; never held across I/O
	last          *inventory.Snapshot
	lastOK        time.Time
	storeErr      error
	storeErrSince time.Time
	eventsErr     string // why kernel events are off, when they are

	// Touched by the scan loop only.
	privileged bool
	sawScan    bool
	resolver   string // how the last scan found owners, as last logged
}

// New opens the daemon's store and prepares it to run.
func New(o Options) (*Daemon, error) {
	if o.Config == nil {
		o.Config = &Config{}
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	if o.Metrics == nil {
		o.Metrics = metrics.New("")
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Notify == nil {
		o.Notify = func(s string) { _, _ = sddaemon.SdNotify(false, s) }
	}
	st, err := store.Open(o.Config.StateDirPath())
	if err != nil {
		return nil, err
	}
	st.OnDrop = func(ch string, n int64) {
		for i := int64(0); i < n; i++ {
			o.Metrics.IncNotification(ch, "dropped")
		}
		o.Logger.Error("outbox full: dropped the oldest undelivered alerts", "channel", ch, "alerts", n, "bound", st.MaxPending)
	}
	d := &Daemon{
		log: o.Logger, metrics: o.Metrics, store: st, now: o.Now, notify: o.Notify, level: o.LogLevel,
		cfg: o.Config, policy: o.Policy, sinks: o.Sinks,
		reload: make(chan struct{}, 1),
		self:   os.Getpid(),
		live:   newLiveView(),
		scanner: inventory.NewScanner(inventory.Options{
			Source: o.Source, Resolver: o.Resolver, Incremental: true, Now: o.Now,
		}),
	}
	d.disp = newDispatcher(st, o.Metrics, o.Logger, o.Now)
	d.disp.configure(o.Sinks, o.Config.Burst(), o.Config.RetryInitial(), o.Config.RetryMax())
	d.rec = newRecorder(st, o.Config, o.Sinks, o.Metrics, o.Logger, o.Now)
	d.rec.onStoreError = d.setStoreError
	d.rec.sendNow = d.disp.sendFromMemory
	if err := d.rec.restore(context.Background()); err != nil {
		st.Close()
		return nil, err
	}
	d.audit = newAuditor(d)
	if err := d.audit.restore(context.Background()); err != nil {
		st.Close()
		return nil, err
	}
	return d, nil
}

// Store returns the daemon's store (for tests and benchmarks).
func (d *Daemon) Store() *store.Store { return d.store }

// setStoreError records whether the last commit failed, for /healthz, and
// logs the change once.
func (d *Daemon) setStoreError(err error) {
	d.statusMu.Lock()
	defer d.statusMu.Unlock()
	switch {
	case err != nil && d.storeErr == nil:
		d.storeErrSince = d.now()
		d.log.Error("the event store cannot be written: events are kept in memory and retried at every scan, alerts are sent from memory", "state_dir", d.store.Path(), "err", err)
	case err == nil && d.storeErr != nil:
		d.log.Info("the event store can be written again", "failing_for", d.now().Sub(d.storeErrSince).Round(time.Second))
	}
	d.storeErr = err
}

// configuration returns the configuration, policy and channels in force.
func (d *Daemon) configuration() (*Config, Checker, []notify.Sink) {
	d.cfgMu.Lock()
	defer d.cfgMu.Unlock()
	return d.cfg, d.policy, d.sinks
}

// Reload replaces the config, the policy and the channels. The state
// directory, the socket and the HTTP address are read once, at start.
func (d *Daemon) Reload(cfg *Config, pol Checker, sinks []notify.Sink) {
	d.cfgMu.Lock()
	old := d.cfg
	d.cfg, d.policy, d.sinks = cfg, pol, sinks
	d.cfgMu.Unlock()
	if cfg.StateDirPath() != old.StateDirPath() {
		d.log.Warn("state_dir changed; it takes effect at the next restart", "old", old.StateDirPath(), "new", cfg.StateDirPath())
	}
	if cfg.Listen() != old.Listen() || cfg.HTTP.API != old.HTTP.API {
		d.log.Warn("http changed; it takes effect at the next restart", "old", old.Listen(), "new", cfg.Listen())
	}
	if cfg.SocketPath() != old.SocketPath() {
		d.log.Warn("socket changed; it takes effect at the next restart", "old", old.SocketPath(), "new", cfg.SocketPath())
	}
	d.rec.configure(cfg, sinks)
	if d.level != nil {
		d.level.Set(cfg.SlogLevel())
	}
	d.disp.configure(sinks, cfg.Burst(), cfg.RetryInitial(), cfg.RetryMax())
	d.failOrphans(context.Background(), sinks)
	d.audit.reconfigure()
	select {
	case d.reload <- struct{}{}:
	default:
	}
	d.log.Info("configuration reloaded", "interval", cfg.Interval(), "channels", len(sinks), "policy", pol != nil)
}

func (d *Daemon) failOrphans(ctx context.Context, sinks []notify.Sink) {
	names := make([]string, len(sinks))
	for i, s := range sinks {
		names[i] = s.Name()
	}
	if n, err := d.store.FailOrphans(ctx, names, d.now()); err != nil {
		d.log.Error("dropping alerts of removed channels", "err", err)
	} else if n > 0 {
		d.log.Warn("alerts for channels no longer configured will not be sent", "alerts", n)
	}
}

// ErrUnsaved is returned by Run when events could not be stored before
// exit: they are lost, and the exit status says so.
var ErrUnsaved = errors.New("events could not be saved before exit")

// Run scans until ctx is cancelled, then lets in-flight deliveries finish
// (up to shutdown_timeout), closes the store and returns nil, or an error
// wrapping ErrUnsaved when events could not be stored.
func (d *Daemon) Run(ctx context.Context) error {
	cfg, _, sinks := d.configuration()
	d.audit.begin(ctx)

	var servers []*http.Server
	serve := func(ln net.Listener, h http.Handler, what string) {
		srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
		servers = append(servers, srv)
		go func() {
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				d.log.Error("http server stopped", "listener", what, "err", err)
			}
		}()
		d.log.Info("serving http", what, ln.Addr().String())
	}
	if path := cfg.SocketPath(); path != "" {
		ln, err := localapi.Listen(path)
		if err != nil {
			d.store.Close()
			return fmt.Errorf("local API socket (socket:): %w", err)
		}
		serve(ln, d.Handler(), "socket")
	}
	if addr := cfg.Listen(); addr != "" {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			d.store.Close()
			return fmt.Errorf("listening on %s (http.listen): %w", addr, err)
		}
		serve(ln, d.TCPHandler(cfg), "addr")
	}
	d.failOrphans(ctx, sinks)
	d.audit.start(ctx)
	if iv := cfg.AuditInterval(); iv > 0 {
		d.log.Info("auditing for hidden listeners and processes", "audit_interval", iv, "first_in", min(iv, auditStartDelay))
	}

	rescan := make(chan struct{}, 1)
	if cfg.EventsWanted() {
		src, err := openEvents()
		switch {
		case err == nil:
			defer src.Close()
			if cc, ok := src.(closedCounters); ok {
				d.closed.set(cc)
				defer d.closed.set(nil) // runs before src.Close
			}
			d.eventsActive.Store(true)
			d.metrics.SetEventSource("ebpf")
			d.log.Info("listener events from the kernel (eBPF): every listen() and bind() is seen as it happens; scans only reconcile", "reconcile_every", cfg.ReconcileInterval())
			evctx, stopEvents := context.WithCancel(ctx)
			evDone := make(chan struct{})
			// Deferred after src.Close, so it runs before it: the events
			// loop has stopped using the source when it is closed.
			defer func() { stopEvents(); <-evDone }()
			go func() { defer close(evDone); d.runEvents(evctx, src, rescan) }()
		case errors.Is(err, bpfevents.ErrNotSupported):
			d.setEventsErr(err)
			d.log.Info("listener events from the kernel are not available; polling every interval", "interval", cfg.Interval(), "why", err)
		default:
			d.setEventsErr(err)
			d.log.Error("listener events from the kernel failed to load; polling every interval", "interval", cfg.Interval(), "err", err)
		}
	} else {
		d.log.Info("listener events turned off (events: off); polling every interval", "interval", cfg.Interval())
	}

	dctx, stopDispatch := context.WithCancel(context.Background())
	sendCtx, cancelSends := context.WithCancel(context.Background())
	var bg sync.WaitGroup
	bg.Add(2)
	go func() { defer bg.Done(); d.disp.run(dctx, sendCtx) }()
	go func() { defer bg.Done(); d.refreshLoop(dctx) }()

	wd, _ := sddaemon.SdWatchdogEnabled(false)
	if wd > 0 && cfg.Interval() > wd/2 {
		d.log.Warn("the scan interval is longer than half the systemd watchdog; systemd may restart porteiro", "interval", cfg.Interval(), "watchdog", wd)
	}
	d.log.Info("watching", "interval", cfg.Interval(), "grace", cfg.Grace(), "state_dir", cfg.StateDirPath(), "channels", len(sinks))

	ready := false
	var lastPrune time.Time
	timer := time.NewTimer(0)
	defer timer.Stop()
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case <-d.reload:
			// A new interval applies from now on.
		case <-rescan:
			// The kernel dropped events: reconcile now.
			d.ScanOnce(ctx)
		case <-timer.C:
			if err := d.ScanOnce(ctx); err == nil && !ready {
				ready = true
				d.notify(sddaemon.SdNotifyReady)
			}
			if wd > 0 {
				d.notify(sddaemon.SdNotifyWatchdog)
			}
			if d.now().Sub(lastPrune) >= retentionEvery {
				lastPrune = d.now()
				d.prune(ctx)
			}
		}
		cur, _, _ := d.configuration()
		iv := d.scanInterval(cur)
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(iv)
	}

	d.notify(sddaemon.SdNotifyStopping)
	d.log.Info("stopping: waiting for deliveries in flight", "timeout", cfg.ShutdownTimeout())
	stopDispatch()
	bg.Wait()
	if !d.disp.drain(d.shutdownTimeout()) {
		d.log.Warn("deliveries still in flight at the shutdown timeout; they will be retried at the next start")
	}
	cancelSends()
	d.disp.drain(2 * time.Second)
	for _, srv := range servers {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = srv.Shutdown(sctx)
		cancel()
	}
	d.audit.stop()
	d.scanner.Close()
	lost, ferr := d.rec.flush(context.Background())
	cerr := d.store.Close()
	if ferr != nil {
		d.log.Error("events could not be saved before exit; they are lost", "events", lost, "err", ferr)
		return fmt.Errorf("%w: %d event(s) (their alerts were sent from memory): %v", ErrUnsaved, lost, ferr)
	}
	d.log.Info("stopped")
	return cerr
}

func (d *Daemon) shutdownTimeout() time.Duration {
	cfg, _, _ := d.configuration()
	return cfg.ShutdownTimeout()
}

func (d *Daemon) prune(ctx context.Context) {
	cfg, _, _ := d.configuration()
	n, err := d.store.Prune(ctx, d.now(), cfg.MaxAge(), cfg.MaxEvents())
	if err != nil {
		d.log.Error("pruning old events", "err", err)
		return
	}
	if n > 0 {
		d.log.Info("pruned old events", "events", n)
	}
}

// ScanOnce runs one cycle: scan, judge, detect, record. It is what Run
// calls every interval. A failed scan is returned; a failed commit is not
// (its events are kept and retried, and /healthz says so).
func (d *Daemon) ScanOnce(ctx context.Context) error {
	start := time.Now()
	d.live.scanStarted()
	snap, err := d.scanner.Scan(ctx, inventory.Query{})
	snap = d.audit.hideProbe(snap)
	d.metrics.ObserveScan(snap, time.Since(start), err)
	if err != nil {
		d.log.Warn("scan failed", "err", err)
		return err
	}
	// Listeners the kernel reported during the scan are kept on top of
	// it: the dump may predate them. The view is judged before any later
	// batch of events, which is judged against it.
	d.procMu.Lock()
	view := d.live.reset(snap)
	d.judgeLocked(view)
	d.procMu.Unlock()
	d.commit(ctx, true)
	d.statusMu.Lock()
	d.lastOK = d.now()
	d.statusMu.Unlock()
	return nil
}

// judgeLocked judges whole views of the listeners (a scan, or the last
// scan with the kernel's events since; a batch of events may need two)
// and queues what changed for the next commit, which it reports is due.
// Called with procMu held.
func (d *Daemon) judgeLocked(snaps ...*inventory.Snapshot) bool {
	gen := d.rec.generation()
	_, pol, _ := d.configuration()
	views := make([]view, 0, len(snaps))
	for _, snap := range snaps {
		v := view{snap: snap}
		if pol != nil {
			v.findings = allowSelf(pol.Check(snap), d.self)
		}
		views = append(views, v)
	}
	last := views[len(views)-1]
	if pol != nil {
		counts := map[string]int{}
		flagged := map[inventory.Key]bool{}
		for i := range last.findings {
			counts[last.findings[i].Kind]++
			if so := last.findings[i].Socket; so != nil {
				flagged[so.Key()] = true
			}
		}
		d.metrics.SetPolicy(counts, flagged)
	} else {
		d.metrics.ClearPolicy()
	}
	// Later batches of events are judged against this verdict.
	d.live.verdicts.resync(gen, pol, d.self, last.findings)
	d.logVisibility(last.snap)
	queued := d.rec.queueViews(d.now(), views)
	d.statusMu.Lock()
	d.last = last.snap
	d.statusMu.Unlock()
	return queued
}

// commit stores what was judged and not yet stored, with the known
// listener set when save is true (after scans, not on the events' path,
// where it would cost every commit a large write), and wakes the
// dispatcher for the new alerts.
func (d *Daemon) commit(ctx context.Context, save bool) {
	n, err := d.rec.commitQueued(ctx, save)
	if err != nil {
		d.log.Error("recording events; will retry at the next commit", "err", err)
		return
	}
	if n > 0 {
		d.disp.poke()
	}
}

// allowSelf drops the findings about porteirod's own listeners (its HTTP
// port): the daemon is always allowed to listen where its configuration
// says, so a new install's first alert is not about itself.
func allowSelf(findings []Finding, self int) []Finding {
	out := findings[:0]
	for _, f := range findings {
		if so := f.Socket; so != nil && len(so.Processes) > 0 && f.Kind != "missing" {
			mine := true
			for _, p := range so.Processes {
				if p.PID != self {
					mine = false
					break
				}
			}
			if mine {
				continue
			}
		}
		out = append(out, f)
	}
	return out
}

// logVisibility says once, and again when it changes, whether every
// process's sockets are visible and how owners are found.
func (d *Daemon) logVisibility(snap *inventory.Snapshot) {
	if snap.Privileged != d.privileged || !d.sawScan {
		if !snap.Privileged {
			d.log.Warn("some processes' sockets are not visible: run as root, or grant CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH; events may lack their process", "notes", strings.Join(snap.Notes, "; "))
		} else if d.sawScan {
			d.log.Info("every process's sockets are visible again")
		}
		d.privileged, d.sawScan = snap.Privileged, true
	}
	if snap.Resolver != "" && snap.Resolver != d.resolver {
		if snap.Resolver == "taskfd" {
			d.log.Info("finding socket owners with the kernel's task-file iterator", "resolver", snap.Resolver)
		} else {
			d.log.Info("finding socket owners by walking /proc; with CAP_BPF and CAP_PERFMON the kernel's task-file iterator does it faster", "resolver", snap.Resolver)
		}
		d.resolver = snap.Resolver
	}
}

// refreshLoop re-sends firing alerts to the channels that forget them
// (Alertmanager), each at its own interval.
func (d *Daemon) refreshLoop(ctx context.Context) {
	lastRefresh := map[string]time.Time{}
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		_, _, sinks := d.configuration()
		now := d.now()
		due := func(s notify.Sink) bool {
			last, ok := lastRefresh[s.Name()]
			if !ok {
				// The first refresh is one interval after start: the
				// alerts were sent when they fired.
				lastRefresh[s.Name()] = now
				return false
			}
			if now.Sub(last) < notify.RefreshInterval(s) {
				return false
			}
			lastRefresh[s.Name()] = now
			return true
		}
		for _, err := range refreshFiring(ctx, sinks, append(d.rec.firing(nil), d.audit.firing()...), due) {
			d.log.Warn("re-sending firing alerts failed", "err", err)
		}
	}
}

func (d *Daemon) setEventsErr(err error) {
	d.statusMu.Lock()
	d.eventsErr = err.Error()
	d.statusMu.Unlock()
}

// scanInterval is the time between scans: the reconciliation interval
// when kernel events are in use, else the polling interval.
func (d *Daemon) scanInterval(cfg *Config) time.Duration {
	if d.eventsActive.Load() {
		return cfg.ReconcileInterval()
	}
	return cfg.Interval()
}

// EventSource is how new listeners are learnt of: "ebpf" or "poll".
func (d *Daemon) EventSource() string {
	if d.eventsActive.Load() {
		return "ebpf"
	}
	return "poll"
}

// Health is what /healthz reports.
type Health struct {
	OK       bool
	LastScan time.Time
	// Problem says why the daemon is not healthy.
	Problem string
}

// Healthy reports whether the last successful scan is recent and events
// are being stored.
func (d *Daemon) Healthy() Health {
	cfg, _, _ := d.configuration()
	d.statusMu.Lock()
	defer d.statusMu.Unlock()
	h := Health{LastScan: d.lastOK}
	switch {
	case d.lastOK.IsZero():
		h.Problem = "no successful scan yet"
	case d.now().Sub(d.lastOK) > 3*d.scanInterval(cfg)+2*time.Second:
		h.Problem = "stale"
	case d.storeErr != nil:
		h.Problem = fmt.Sprintf("the event store cannot be written since %s: %v", d.storeErrSince.Format(time.RFC3339), d.storeErr)
	default:
		h.OK = true
	}
	return h
}

// Snapshot returns the last snapshot, or nil before the first scan.
func (d *Daemon) Snapshot() *inventory.Snapshot {
	if snap := d.live.latest(d.now()); snap != nil {
		return snap
	}
	d.statusMu.Lock()
	defer d.statusMu.Unlock()
	return d.last
}

// Config returns the configuration in force.
func (d *Daemon) Config() *Config {
	cfg, _, _ := d.configuration()
	return cfg
}

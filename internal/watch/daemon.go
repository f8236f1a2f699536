package watch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	sddaemon "github.com/coreos/go-systemd/v22/daemon"

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
type Daemon struct {
	log     *slog.Logger
	metrics *metrics.Metrics
	store   *store.Store
	scanner *inventory.Scanner
	now     func() time.Time
	notify  func(string)
	level   *slog.LevelVar
	disp    *dispatcher

	mu      sync.Mutex // guards everything below
	cfg     *Config
	policy  Checker
	sinks   []notify.Sink
	det     *detector
	unsaved []Event
	alerts  map[string]notify.Alert // firing alerts by finding key
	last    *inventory.Snapshot
	lastOK  time.Time
	reload  chan struct{}
	// privileged is whether the last scan saw every process; the change is
	// logged once, not at every scan.
	privileged bool
	sawScan    bool
	lastSave   time.Time
	// final forces the listener set to be saved (at shutdown).
	final    bool
	resolver string // how the last scan found owners, as last logged
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
		det:    newDetector(o.Config.GraceD(), o.Config.FlapWindowD()),
		alerts: map[string]notify.Alert{},
		reload: make(chan struct{}, 1),
		scanner: inventory.NewScanner(inventory.Options{
			Source: o.Source, Resolver: o.Resolver, Incremental: true, Now: o.Now,
		}),
	}
	d.disp = newDispatcher(st, o.Metrics, o.Logger, o.Now)
	d.disp.configure(o.Sinks, o.Config.BurstD(), o.Config.RetryInitialD(), o.Config.RetryMaxD())
	if err := d.restore(context.Background()); err != nil {
		st.Close()
		return nil, err
	}
	return d, nil
}

// Store returns the daemon's store (for tests and benchmarks).
func (d *Daemon) Store() *store.Store { return d.store }

// activeRecord is what the store keeps of a firing finding.
type activeRecord struct {
	Finding Finding      `json:"finding"`
	Alert   notify.Alert `json:"alert"`
}

// restore loads what the previous run left: the firing findings, so they
// are not announced again, and the listener set, so that changes while the
// daemon was down are reported.
func (d *Daemon) restore(ctx context.Context) error {
	act, err := d.store.ActiveFindings(ctx)
	if err != nil {
		return err
	}
	for _, a := range act {
		var r activeRecord
		if err := json.Unmarshal(a.Alert, &r); err != nil {
			d.log.Warn("ignoring an unreadable active finding", "key", a.Key, "err", err)
			continue
		}
		d.det.active[a.Key] = &activeFinding{Finding: r.Finding, Since: a.Since}
		d.alerts[a.Key] = r.Alert
	}
	b, err := d.store.KV(ctx, kvListeners)
	if err != nil {
		return err
	}
	if b != nil {
		var socks []inventory.Socket
		if err := json.Unmarshal(b, &socks); err != nil {
			d.log.Warn("ignoring the unreadable saved listener set", "err", err)
		} else {
			d.det.prime(socks)
		}
	}
	return nil
}

// Reload replaces the config, the policy and the channels. The state
// directory and the HTTP address are read once, at start.
func (d *Daemon) Reload(cfg *Config, pol Checker, sinks []notify.Sink) {
	d.mu.Lock()
	old := d.cfg
	if cfg.StateDirPath() != old.StateDirPath() {
		d.log.Warn("state_dir changed; it takes effect at the next restart", "old", old.StateDirPath(), "new", cfg.StateDirPath())
	}
	if cfg.Listen() != old.Listen() {
		d.log.Warn("http.listen changed; it takes effect at the next restart", "old", old.Listen(), "new", cfg.Listen())
	}
	d.cfg, d.policy, d.sinks = cfg, pol, sinks
	d.det.grace, d.det.flapWindow = cfg.GraceD(), cfg.FlapWindowD()
	d.mu.Unlock()
	if d.level != nil {
		d.level.Set(cfg.SlogLevel())
	}
	d.disp.configure(sinks, cfg.BurstD(), cfg.RetryInitialD(), cfg.RetryMaxD())
	d.failOrphans(context.Background(), sinks)
	select {
	case d.reload <- struct{}{}:
	default:
	}
	d.log.Info("configuration reloaded", "interval", cfg.IntervalD(), "channels", len(sinks), "policy", pol != nil)
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

// Run scans until ctx is cancelled, then lets in-flight deliveries finish
// (up to shutdown_timeout), closes the store and returns nil.
func (d *Daemon) Run(ctx context.Context) error {
	d.mu.Lock()
	cfg := d.cfg
	sinks := d.sinks
	d.mu.Unlock()

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

	dctx, stopDispatch := context.WithCancel(context.Background())
	sendCtx, cancelSends := context.WithCancel(context.Background())
	var bg sync.WaitGroup
	bg.Add(2)
	go func() { defer bg.Done(); d.disp.run(dctx, sendCtx) }()
	go func() { defer bg.Done(); d.refreshLoop(dctx) }()

	wd, _ := sddaemon.SdWatchdogEnabled(false)
	if wd > 0 && cfg.IntervalD() > wd/2 {
		d.log.Warn("the scan interval is longer than half the systemd watchdog; systemd may restart porteiro", "interval", cfg.IntervalD(), "watchdog", wd)
	}
	d.log.Info("watching", "interval", cfg.IntervalD(), "grace", cfg.GraceD(), "state_dir", cfg.StateDirPath(), "channels", len(sinks))

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
		d.mu.Lock()
		iv := d.cfg.IntervalD()
		d.mu.Unlock()
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(iv)
	}

	d.notify(sddaemon.SdNotifyStopping)
	d.log.Info("stopping: waiting for deliveries in flight", "timeout", cfg.ShutdownTimeoutD())
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
	d.mu.Lock()
	d.final = true
	if len(d.unsaved) > 0 || d.saveDue(d.now()) {
		if err := d.record(context.Background(), d.unsaved); err != nil {
			d.log.Error("events could not be saved before exit", "events", len(d.unsaved), "err", err)
		}
	}
	d.mu.Unlock()
	d.log.Info("stopped")
	return d.store.Close()
}

func (d *Daemon) shutdownTimeout() time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg.ShutdownTimeoutD()
}

func (d *Daemon) prune(ctx context.Context) {
	d.mu.Lock()
	maxAge, maxEvents := d.cfg.MaxAgeD(), d.cfg.MaxEventsN()
	d.mu.Unlock()
	n, err := d.store.Prune(ctx, d.now(), maxAge, maxEvents)
	if err != nil {
		d.log.Error("pruning old events", "err", err)
		return
	}
	if n > 0 {
		d.log.Info("pruned old events", "events", n)
	}
}

// ScanOnce runs one cycle: scan, judge, detect, record. It is what Run
// calls every interval.
func (d *Daemon) ScanOnce(ctx context.Context) error {
	start := time.Now()
	snap, err := d.scanner.Scan(ctx, inventory.Query{})
	d.metrics.ObserveScan(snap, time.Since(start), err)
	if err != nil {
		d.log.Warn("scan failed", "err", err)
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var findings []Finding
	if d.policy != nil {
		findings = d.policy.Check(snap)
		counts := map[string]int{}
		flagged := map[inventory.Key]bool{}
		for i := range findings {
			counts[findings[i].Kind]++
			if so := findings[i].Socket; so != nil {
				flagged[so.Key()] = true
			}
		}
		d.metrics.SetPolicy(counts, flagged)
	} else {
		d.metrics.ClearPolicy()
	}
	if snap.Privileged != d.privileged || !d.sawScan {
		if !snap.Privileged {
			d.log.Warn("some processes' sockets are not visible: run as root, or grant CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH; events may lack their process", "notes", strings.Join(snap.Notes, "; "))
		} else if d.sawScan {
			d.log.Info("every process's sockets are visible again")
		}
		d.privileged, d.sawScan = snap.Privileged, true
	}
	if snap.Resolver != "" && snap.Resolver != d.resolver {
		// Said once, and again if it changes: how owners are found.
		if snap.Resolver == "taskfd" {
			d.log.Info("finding socket owners with the kernel's task-file iterator", "resolver", snap.Resolver)
		} else {
			d.log.Info("finding socket owners by walking /proc; with CAP_BPF and CAP_PERFMON the kernel's task-file iterator does it faster", "resolver", snap.Resolver)
		}
		d.resolver = snap.Resolver
	}
	now := d.now()
	events := append(d.unsaved, d.det.step(now, snap, findings)...)
	// Re-sent firing alerts describe the listener as it is now (a
	// restarted offender has a new pid); id and start stay.
	for key, f := range d.det.active {
		if al, ok := d.alerts[key]; ok && f.Finding.Socket != nil && al.Socket != f.Finding.Socket {
			al.Socket, al.Summary = f.Finding.Socket, f.Finding.Message
			d.alerts[key] = al
		}
	}
	d.unsaved = nil
	d.last = snap
	d.lastOK = now
	if len(events) == 0 && !d.saveDue(now) {
		return nil
	}
	if err := d.record(ctx, events); err != nil {
		// Keep them and try again at the next scan rather than lose
		// them; the detector has already moved on.
		d.unsaved = events
		d.log.Error("recording events; will retry at the next scan", "events", len(events), "err", err)
		return nil
	}
	d.disp.poke()
	return nil
}

// saveDue reports whether the known listener set should be saved now.
// Called with d.mu held.
func (d *Daemon) saveDue(now time.Time) bool {
	return d.det.dirty && (d.final || d.lastSave.IsZero() || now.Sub(d.lastSave) >= saveEvery)
}

// record writes events, their alerts and the state they change in one
// transaction. Called with d.mu held.
func (d *Daemon) record(ctx context.Context, events []Event) error {
	host := d.cfg.HostName()
	var b store.Batch
	for i := range events {
		e := &events[i]
		if e.UID == "" {
			e.UID = store.NewUID()
		}
		e.Severity = severityOf(e.Kind, e.Flapping)
		ne, err := e.record(host, d.sinks)
		if err != nil {
			return err
		}
		b.Events = append(b.Events, ne)
		switch e.Kind {
		case KindViolation, KindMissing:
			rec, err := json.Marshal(activeRecord{Finding: *e.Finding, Alert: e.Alert(host)})
			if err != nil {
				return fmt.Errorf("encoding active finding: %w", err)
			}
			b.SetActive = append(b.SetActive, store.ActiveUpdate{
				Active:     store.Active{Key: e.Finding.Key, Kind: e.Finding.Kind, Since: e.Time, Alert: rec},
				EventIndex: len(b.Events) - 1,
			})
		case KindResolved:
			b.ClearActive = append(b.ClearActive, e.Finding.Key)
		}
	}
	saving := d.saveDue(d.now())
	if saving {
		js, err := json.Marshal(d.det.knownSockets())
		if err != nil {
			return fmt.Errorf("encoding the listener set: %w", err)
		}
		b.KV = map[string][]byte{kvListeners: js}
	}
	if _, err := d.store.Record(ctx, b); err != nil {
		return err
	}
	if saving {
		d.det.dirty = false
		d.lastSave = d.now()
	}
	for i := range events {
		e := &events[i]
		switch e.Kind {
		case KindViolation, KindMissing:
			d.alerts[e.Finding.Key] = e.Alert(host)
		case KindResolved:
			delete(d.alerts, e.Finding.Key)
		}
		d.metrics.IncEvent(e.Kind)
		d.logEvent(e)
	}
	return nil
}

// logEvent writes the one log line of an event.
func (d *Daemon) logEvent(e *Event) {
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
	d.log.Log(context.Background(), lvl, e.Summary(), attrs...)
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
		d.mu.Lock()
		sinks := d.sinks
		active := make([]notify.Alert, 0, len(d.alerts))
		for _, a := range d.det.activeFindings() {
			if al, ok := d.alerts[a.Finding.Key]; ok {
				active = append(active, al)
			}
		}
		d.mu.Unlock()
		now := d.now()
		for _, s := range sinks {
			iv := notify.RefreshInterval(s)
			r, ok := s.(notify.Refresher)
			if iv <= 0 || !ok {
				continue
			}
			if last, ok := lastRefresh[s.Name()]; ok && now.Sub(last) < iv {
				continue
			}
			if _, ok := lastRefresh[s.Name()]; !ok {
				// The first refresh is one interval after start: the
				// alerts were sent when they fired.
				lastRefresh[s.Name()] = now
				continue
			}
			lastRefresh[s.Name()] = now
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
				d.log.Warn("re-sending firing alerts failed", "channel", s.Name(), "alerts", len(mine), "err", err)
			}
			cancel()
		}
	}
}

// Healthy reports whether the last successful scan is recent.
func (d *Daemon) Healthy() (bool, time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.lastOK.IsZero() {
		return false, d.lastOK
	}
	limit := 3*d.cfg.IntervalD() + 2*time.Second
	return d.now().Sub(d.lastOK) <= limit, d.lastOK
}

// Snapshot returns the last snapshot, or nil before the first scan.
func (d *Daemon) Snapshot() *inventory.Snapshot {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.last
}

// ReloadFrom loads path (config, policy, channels) and applies it. On any
// error the running configuration stays in force and the error is logged
// and returned: a typo in a reload must not stop the watch.
func (d *Daemon) ReloadFrom(path string) error {
	rt, err := Load(path)
	if err != nil {
		d.log.Error("reload rejected; keeping the running configuration", "file", path, "err", err)
		return err
	}
	d.Reload(rt.Config, rt.Policy, rt.Sinks)
	return nil
}

// Config returns the configuration in force.
func (d *Daemon) Config() *Config {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.cfg
}

// Package metrics exposes porteiro's Prometheus metrics from a private
// registry.
//
// Gauges that describe the host (listeners, unattributed sockets, policy
// violations, per-listener info) are built at scrape time from the latest
// snapshot and policy verdict, so a scrape never sees half an update and a
// listener that closed leaves no stale series behind. Counters and the scan
// histogram are ordinary client_golang collectors. No metric carries a pid:
// label values are bounded by what listens on the host and by the policy.
package metrics

import (
	"context"
	"errors"
	"io/fs"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/porteiro/porteiro/internal/version"
	"github.com/porteiro/porteiro/inventory"
)

// DefaultListenerInfoLimit is how many porteiro_listener_info series a
// scrape carries at most unless SetListenerInfoLimit says otherwise. A host
// with more distinct listeners than this is rare; past it, the rest are
// counted in porteiro_listener_info_dropped instead of growing the TSDB.
const DefaultListenerInfoLimit = 500

// Finding kinds that porteiro_policy_violations always reports, with zeros,
// once a policy is loaded: a zero is a fact ("clean"), an absent series is
// not.
var findingKinds = []string{"unexpected", "missing", "wrong_owner", "too_exposed"}

// Scan error reasons for porteiro_scan_errors_total. Every reason is
// pre-declared at zero, so rate() works from the first scrape.
const (
	ReasonTimeout     = "timeout"
	ReasonCanceled    = "canceled"
	ReasonPermission  = "permission"
	ReasonUnsupported = "unsupported"
	ReasonOther       = "other"
)

var scanErrorReasons = []string{ReasonTimeout, ReasonCanceled, ReasonPermission, ReasonUnsupported, ReasonOther}

var unattributedReasons = []inventory.Reason{inventory.ReasonNotPermitted, inventory.ReasonNoProcess, inventory.ReasonExited}

// ScanBuckets are the scan-duration histogram buckets, in seconds. A scan
// of a quiet host takes a few milliseconds; a host with 100,000 sockets
// takes a few hundred.
var ScanBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

var (
	descListeners = prometheus.NewDesc("porteiro_listeners",
		"Listening sockets in the latest successful scan, by protocol, address family and exposure.",
		[]string{"proto", "family", "exposure"}, nil)
	descUnattributed = prometheus.NewDesc("porteiro_unattributed_sockets",
		"Sockets in the latest successful scan that no visible process holds, by reason.",
		[]string{"reason"}, nil)
	descViolations = prometheus.NewDesc("porteiro_policy_violations",
		"Current policy findings, by kind (unexpected, missing, wrong_owner, too_exposed). Absent until a policy is loaded.",
		[]string{"kind"}, nil)
	descLastSuccess = prometheus.NewDesc("porteiro_last_scan_success_timestamp_seconds",
		"Unix time of the latest successful scan; 0 before the first one.",
		nil, nil)
	descListenerInfo = prometheus.NewDesc("porteiro_listener_info",
		"One series per listener (proto, address, port, network namespace) and owner; the value is the number of sockets behind it, usually 1. netns is host or the namespace's name, container the container's name (empty outside one). allowed is true, false (a policy finding), or unknown (no policy). Capped; see porteiro_listener_info_dropped.",
		[]string{"proto", "address", "port", "netns", "container", "process", "user", "allowed"}, nil)
	descInfoDropped = prometheus.NewDesc("porteiro_listener_info_dropped",
		"Listeners left out of porteiro_listener_info in this scrape because of the series cap.",
		nil, nil)
)

// Metrics is the daemon's metric set. All methods are safe for concurrent use.
type Metrics struct {
	reg     *prometheus.Registry // porteiro_* only: what the golden file pins
	runtime *prometheus.Registry // go_* and process_*
	handler http.Handler

	scanDuration  prometheus.Histogram
	scanErrors    *prometheus.CounterVec
	events        *prometheus.CounterVec
	notifications *prometheus.CounterVec
	outboxPending prometheus.Gauge
	storeErrors   prometheus.Counter
	eventSource   *prometheus.GaugeVec
	eventDrops    prometheus.Counter
	auditRuns     *prometheus.CounterVec
	auditFindings prometheus.Gauge

	mu          sync.Mutex
	snap        *inventory.Snapshot
	lastSuccess time.Time
	policySet   bool
	counts      map[string]int
	flagged     map[inventory.Key]bool
	infoLimit   int
}

// New returns the metric set for a daemon of the given version. The commit
// and Go version in porteiro_build_info come from the binary itself.
func New(v string) *Metrics {
	info := version.Get()
	if v != "" {
		info.Version = v
	}
	return newWithInfo(info, true)
}

func newWithInfo(info version.Info, withRuntime bool) *Metrics {
	m := &Metrics{
		reg:       prometheus.NewRegistry(),
		runtime:   prometheus.NewRegistry(),
		infoLimit: DefaultListenerInfoLimit,
		scanDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "porteiro_scan_duration_seconds",
			Help:    "Time taken by one scan (sockets and owners), successful or not.",
			Buckets: ScanBuckets,
		}),
		scanErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "porteiro_scan_errors_total",
			Help: "Scans that failed, by reason (timeout, canceled, permission, unsupported, other).",
		}, []string{"reason"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "porteiro_events_total",
			Help: "Events recorded, by kind (opened, closed, owner_changed, restarted, violation, resolved, missing).",
		}, []string{"kind"}),
		notifications: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "porteiro_notifications_total",
			Help: "Alert delivery attempts, by configured channel and result (sent, retry, failed, dropped).",
		}, []string{"channel", "result"}),
		outboxPending: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "porteiro_outbox_pending",
			Help: "Alerts waiting in the durable outbox for delivery.",
		}),
		eventSource: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "porteiro_event_source",
			Help: "1 for how porteirod learns of new listeners: ebpf (the kernel tells it at each listen and bind; scans only reconcile) or poll (scans every interval).",
		}, []string{"source"}),
		eventDrops: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "porteiro_event_drops_total",
			Help: "Listener events the kernel could not hand over (ring buffer full); each drop triggers a reconciliation scan at once.",
		}),
		auditRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "porteiro_audit_runs_total",
			Help: "Audits porteirod ran (on schedule or asked for), by result: ok (the views agree), findings, error (the audit could not run or compared nothing).",
		}, []string{"result"}),
		auditFindings: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "porteiro_audit_findings",
			Help: "Findings of the last audit that ran (hidden sockets and processes, orphan namespaces, view mismatches).",
		}),
		storeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "porteiro_store_errors_total",
			Help: "Commits to the event store that failed (a full disk, a locked or broken database); their events are kept in memory and retried.",
		}),
	}
	for _, r := range scanErrorReasons {
		m.scanErrors.WithLabelValues(r)
	}
	for _, r := range []string{"ok", "findings", "error"} {
		m.auditRuns.WithLabelValues(r)
	}
	m.SetEventSource("poll")
	buildInfo := prometheus.NewGauge(prometheus.GaugeOpts{
		Name: "porteiro_build_info",
		Help: "Always 1; the labels say which porteiro build is running.",
		ConstLabels: prometheus.Labels{
			"version":   info.Version,
			"revision":  info.Commit,
			"goversion": info.GoVersion,
		},
	})
	buildInfo.Set(1)
	m.reg.MustRegister(m.scanDuration, m.scanErrors, m.events, m.notifications, m.outboxPending, m.storeErrors, m.eventSource, m.eventDrops, m.auditRuns, m.auditFindings, buildInfo, (*snapshotCollector)(m))
	if withRuntime {
		m.runtime.MustRegister(
			collectors.NewGoCollector(),
			collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		)
	}
	g := prometheus.Gatherers{m.reg, m.runtime}
	m.handler = promhttp.HandlerFor(g, promhttp.HandlerOpts{
		// A broken collector should cost one series, not the whole scrape.
		ErrorHandling: promhttp.ContinueOnError,
	})
	return m
}

// ObserveScan records one scan: its duration, and either its snapshot
// (listeners, unattributed sockets) or its error. The snapshot is kept until
// the next successful scan and read at scrape time, so the caller must not
// modify it afterwards. After a failed scan the gauges keep describing the
// last successful one; porteiro_last_scan_success_timestamp_seconds says how
// old that is.
func (m *Metrics) ObserveScan(snap *inventory.Snapshot, d time.Duration, err error) {
	m.scanDuration.Observe(d.Seconds())
	if err != nil {
		m.scanErrors.WithLabelValues(ErrorReason(err)).Inc()
		return
	}
	if snap == nil {
		return
	}
	m.mu.Lock()
	m.snap = snap
	m.lastSuccess = snap.Time
	if m.lastSuccess.IsZero() {
		m.lastSuccess = time.Now()
	}
	m.mu.Unlock()
}

// ErrorReason maps a scan error to the bounded reason label of
// porteiro_scan_errors_total.
func ErrorReason(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return ReasonTimeout
	case errors.Is(err, context.Canceled):
		return ReasonCanceled
	case errors.Is(err, fs.ErrPermission):
		return ReasonPermission
	case errors.Is(err, inventory.ErrUnsupported):
		return ReasonUnsupported
	}
	return ReasonOther
}

// SetPolicy records the current policy verdict: findings counted by kind
// (unexpected, missing, wrong_owner, too_exposed) and the sockets flagged.
// The maps are copied.
func (m *Metrics) SetPolicy(counts map[string]int, flagged map[inventory.Key]bool) {
	c := make(map[string]int, len(counts))
	for k, v := range counts {
		c[k] = v
	}
	f := make(map[inventory.Key]bool, len(flagged))
	for k, v := range flagged {
		if v {
			f[k] = true
		}
	}
	m.mu.Lock()
	m.policySet, m.counts, m.flagged = true, c, f
	m.mu.Unlock()
}

// ClearPolicy forgets the policy verdict, for a daemon running without a
// policy: porteiro_policy_violations disappears and porteiro_listener_info
// says allowed="unknown".
func (m *Metrics) ClearPolicy() {
	m.mu.Lock()
	m.policySet, m.counts, m.flagged = false, nil, nil
	m.mu.Unlock()
}

// SetListenerInfoLimit caps the number of porteiro_listener_info series
// (DefaultListenerInfoLimit by default). n <= 0 turns the metric, and
// porteiro_listener_info_dropped, off.
func (m *Metrics) SetListenerInfoLimit(n int) {
	m.mu.Lock()
	m.infoLimit = n
	m.mu.Unlock()
}

// IncEvent counts one recorded event of the given kind.
func (m *Metrics) IncEvent(kind string) { m.events.WithLabelValues(kind).Inc() }

// IncNotification counts one delivery attempt: result is sent, retry,
// failed or dropped.
func (m *Metrics) IncNotification(channel, result string) {
	m.notifications.WithLabelValues(channel, result).Inc()
}

// SetOutboxPending sets the number of undelivered alerts.
func (m *Metrics) SetOutboxPending(n int) { m.outboxPending.Set(float64(n)) }

// SetEventSource says how listeners are learnt of: "ebpf" or "poll".
func (m *Metrics) SetEventSource(source string) {
	for _, s := range []string{"ebpf", "poll"} {
		v := 0.0
		if s == source {
			v = 1
		}
		m.eventSource.WithLabelValues(s).Set(v)
	}
}

// AddEventDrops counts listener events the kernel dropped.
func (m *Metrics) AddEventDrops(n uint64) { m.eventDrops.Add(float64(n)) }

// ObserveAudit counts one audit by result (ok, findings or error) and, when
// it ran, sets the number of its findings.
func (m *Metrics) ObserveAudit(result string, findings int) {
	m.auditRuns.WithLabelValues(result).Inc()
	if result != "error" {
		m.auditFindings.Set(float64(findings))
	}
}

// IncStoreError counts a failed commit to the event store.
func (m *Metrics) IncStoreError() { m.storeErrors.Inc() }

// Handler serves /metrics: porteiro's metrics plus the Go runtime and
// process metrics.
func (m *Metrics) Handler() http.Handler { return m.handler }

// Gatherer returns everything Handler serves, for tests and for callers
// that push or write metrics elsewhere.
func (m *Metrics) Gatherer() prometheus.Gatherer { return prometheus.Gatherers{m.reg, m.runtime} }

// snapshotCollector builds the host gauges at scrape time.
type snapshotCollector Metrics

func (c *snapshotCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descListeners, descUnattributed, descViolations, descLastSuccess, descListenerInfo, descInfoDropped} {
		ch <- d
	}
}

func (c *snapshotCollector) Collect(ch chan<- prometheus.Metric) {
	m := (*Metrics)(c)
	m.mu.Lock()
	snap, last := m.snap, m.lastSuccess
	policySet, counts, flagged, limit := m.policySet, m.counts, m.flagged, m.infoLimit
	m.mu.Unlock()

	var ts float64
	if !last.IsZero() {
		ts = float64(last.UnixNano()) / 1e9
	}
	ch <- prometheus.MustNewConstMetric(descLastSuccess, prometheus.GaugeValue, ts)

	if policySet {
		for _, k := range findingKinds {
			ch <- prometheus.MustNewConstMetric(descViolations, prometheus.GaugeValue, float64(counts[k]), k)
		}
		var extra []string
		for k := range counts {
			if !isFindingKind(k) {
				extra = append(extra, k)
			}
		}
		sort.Strings(extra)
		for _, k := range extra {
			ch <- prometheus.MustNewConstMetric(descViolations, prometheus.GaugeValue, float64(counts[k]), k)
		}
	}

	if snap == nil {
		return
	}
	type lkey struct{ proto, family, exposure string }
	listeners := map[lkey]int{}
	for _, p := range []inventory.Proto{inventory.TCP, inventory.UDP} {
		for _, f := range []inventory.Family{inventory.IPv4, inventory.IPv6} {
			for _, e := range []inventory.Exposure{inventory.ExposureLoopback, inventory.ExposureSpecific, inventory.ExposureAll} {
				listeners[lkey{string(p), string(f), string(e)}] = 0
			}
		}
	}
	unattributed := map[string]int{}
	for _, r := range unattributedReasons {
		unattributed[string(r)] = 0
	}
	rows := map[infoRow]int{}
	for i := range snap.Sockets {
		so := &snap.Sockets[i]
		if so.UnattributedReason != inventory.ReasonNone {
			unattributed[string(so.UnattributedReason)]++
		}
		if !so.Listening {
			continue
		}
		exp := so.Exposure
		if exp == "" {
			exp = inventory.ExposureOf(so.Local.Address)
		}
		listeners[lkey{string(so.Proto), string(so.Family), string(exp)}]++
		if limit > 0 {
			allowed := "unknown"
			if policySet {
				allowed = strconv.FormatBool(!flagged[so.Key()])
			}
			rows[newInfoRow(so, allowed)]++
		}
	}
	for k, n := range listeners {
		ch <- prometheus.MustNewConstMetric(descListeners, prometheus.GaugeValue, float64(n), k.proto, k.family, k.exposure)
	}
	for r, n := range unattributed {
		ch <- prometheus.MustNewConstMetric(descUnattributed, prometheus.GaugeValue, float64(n), r)
	}
	if limit <= 0 {
		return
	}
	sorted := make([]infoRow, 0, len(rows))
	for r := range rows {
		sorted = append(sorted, r)
	}
	sortInfoRows(sorted)
	dropped := 0
	if len(sorted) > limit {
		dropped = len(sorted) - limit
		sorted = sorted[:limit]
	}
	for _, r := range sorted {
		ch <- prometheus.MustNewConstMetric(descListenerInfo, prometheus.GaugeValue, float64(rows[r]),
			r.proto, r.address, strconv.Itoa(int(r.port)), r.netns, r.container, r.process, r.user, r.allowed)
	}
	ch <- prometheus.MustNewConstMetric(descInfoDropped, prometheus.GaugeValue, float64(dropped))
}

func isFindingKind(k string) bool {
	for _, f := range findingKinds {
		if f == k {
			return true
		}
	}
	return false
}

// infoRow is one porteiro_listener_info label set. Sockets that share it
// (SO_REUSEPORT groups) become one series whose value counts them.
type infoRow struct {
	proto, address   string
	port             uint16
	netns, container string
	process, user    string
	allowed          string
}

// netnsLabel is the netns label of a socket: "host", a container's or an
// `ip netns` name, "orphan", or "unnamed" for a namespace known only by its
// first process ("pid 4242 (python3)"), whose name changes with every
// process and would make a new series each time.
func netnsLabel(so *inventory.Socket) string {
	n := so.NetNSName
	switch {
	case n == "":
		return "host"
	case strings.HasPrefix(n, "pid "):
		return "unnamed"
	}
	return truncateLabel(n)
}

// truncateLabel bounds a label value that comes from names others choose.
func truncateLabel(s string) string {
	const max = 64
	if len(s) <= max {
		return s
	}
	return strings.ToValidUTF8(s[:max], "")
}

func newInfoRow(so *inventory.Socket, allowed string) infoRow {
	addr := "*"
	if so.Local.Address.IsValid() {
		addr = so.Local.Address.String()
	}
	return infoRow{
		proto:     string(so.Proto),
		address:   addr,
		port:      so.Local.Port,
		netns:     netnsLabel(so),
		container: truncateLabel(so.ContainerName()),
		process:   joinDistinct(so.Processes, func(p *inventory.Process) string { return p.Name }),
		user:      joinDistinct(so.Processes, func(p *inventory.Process) string { return p.User }),
		allowed:   allowed,
	}
}

// joinDistinct joins the distinct, sorted values of f over ps with ",":
// a pre-forking server's workers share one name.
func joinDistinct(ps []inventory.Process, f func(*inventory.Process) string) string {
	switch len(ps) {
	case 0:
		return ""
	case 1:
		return f(&ps[0])
	}
	seen := make(map[string]bool, len(ps))
	var vals []string
	for i := range ps {
		v := f(&ps[i])
		if v == "" || seen[v] {
			continue
		}
		seen[v] = true
		vals = append(vals, v)
	}
	sort.Strings(vals)
	return strings.Join(vals, ",")
}

// sortInfoRows orders rows so that the cap drops the least interesting:
// policy findings first, then by protocol, port, address and owner.
func sortInfoRows(rs []infoRow) {
	sort.Slice(rs, func(i, j int) bool {
		a, b := rs[i], rs[j]
		if (a.allowed == "false") != (b.allowed == "false") {
			return a.allowed == "false"
		}
		if a.proto != b.proto {
			return a.proto < b.proto
		}
		if a.port != b.port {
			return a.port < b.port
		}
		if a.address != b.address {
			return a.address < b.address
		}
		if a.process != b.process {
			return a.process < b.process
		}
		if a.user != b.user {
			return a.user < b.user
		}
		return a.allowed < b.allowed
	})
}

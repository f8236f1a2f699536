package metrics

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/prometheus/common/expfmt"

	"github.com/porteiro/porteiro/internal/testenv"
	"github.com/porteiro/porteiro/internal/version"
	"github.com/porteiro/porteiro/inventory"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var testInfo = version.Info{Version: "1.2.3", Commit: "0123456789abcdef", Date: "2026-01-02T03:04:05Z", GoVersion: "go1.26.8", Platform: "linux/amd64"}

func ep(s string, port uint16) inventory.Endpoint {
	if s == "" {
		return inventory.Endpoint{Port: port}
	}
	return inventory.Endpoint{Address: netip.MustParseAddr(s), Port: port}
}

func proc(pid int, name, user string) inventory.Process {
	return inventory.Process{ProcessInfo: &inventory.ProcessInfo{PID: pid, Name: name, User: user, Cmdline: []string{name}}}
}

func listener(proto inventory.Proto, fam inventory.Family, addr string, port uint16, inode uint64, procs ...inventory.Process) inventory.Socket {
	so := inventory.Socket{
		Proto: proto, Family: fam, State: "LISTEN", Local: ep(addr, port), Inode: inode, NetNS: 4026531840,
		Listening: true, Processes: procs,
	}
	so.Exposure = inventory.ExposureOf(so.Local.Address)
	if len(procs) == 0 {
		so.UnattributedReason = inventory.ReasonNotPermitted
	}
	return so
}

// hostSnapshot is a small but ugly host: a dual-stack sshd, a loopback
// database, a SO_REUSEPORT DNS pair, a pre-forked web server whose workers
// run as another user, an unexpected shell listener, a socket whose owner
// cannot be seen and an established connection.
func hostSnapshot() *inventory.Snapshot {
	estab := listener(inventory.TCP, inventory.IPv4, "10.0.0.5", 22, 900, proc(700, "sshd", "root"))
	estab.Listening, estab.State, estab.Remote = false, "ESTABLISHED", ep("10.0.0.9", 51000)
	v6 := listener(inventory.TCP, inventory.IPv6, "::", 22, 101, proc(500, "sshd", "root"))
	v6.DualStack = true
	// The same port in a container, and in a namespace known only by its
	// first process: one series each, with bounded netns values.
	web := listener(inventory.TCP, inventory.IPv4, "0.0.0.0", 8080, 200, proc(900, "nginx", "root"))
	web.NetNSName, web.NetNS = "web-1", 4026532500
	web.Container = &inventory.Container{Runtime: "docker", ID: "0123456789abcdef", Name: "web-1"}
	adhoc := listener(inventory.TCP, inventory.IPv4, "0.0.0.0", 8080, 201, proc(4242, "python3", "root"))
	adhoc.NetNSName, adhoc.NetNS = "pid 4242 (python3)", 4026532600
	return &inventory.Snapshot{
		Time:   time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		Source: "netlink",
		Sockets: []inventory.Socket{
			listener(inventory.TCP, inventory.IPv4, "0.0.0.0", 22, 100, proc(500, "sshd", "root")),
			v6,
			listener(inventory.TCP, inventory.IPv4, "127.0.0.1", 5432, 102, proc(600, "postgres", "postgres")),
			listener(inventory.UDP, inventory.IPv4, "0.0.0.0", 53, 103, proc(610, "dnsmasq", "dnsmasq")),
			listener(inventory.UDP, inventory.IPv4, "0.0.0.0", 53, 104, proc(610, "dnsmasq", "dnsmasq")),
			listener(inventory.TCP, inventory.IPv6, "::1", 8080, 105,
				proc(620, "nginx", "root"), proc(621, "nginx", "www-data"), proc(622, "nginx", "www-data")),
			listener(inventory.TCP, inventory.IPv4, "0.0.0.0", 4444, 106, proc(666, "nc", "mallory")),
			listener(inventory.TCP, inventory.IPv4, "192.0.2.10", 9000, 107),
			estab,
			web,
			adhoc,
		},
	}
}

func hostPolicy() (map[string]int, map[inventory.Key]bool) {
	return map[string]int{"unexpected": 1, "missing": 2},
		map[inventory.Key]bool{{NetNS: 4026531840, Inode: 106}: true, {NetNS: 4026531840, Inode: 100}: false}
}

// fill drives m the way the daemon does on the host above.
func fill(m *Metrics) {
	m.ObserveScan(nil, 20*time.Millisecond, fmt.Errorf("listing sockets: %w", context.DeadlineExceeded))
	m.ObserveScan(hostSnapshot(), 3*time.Millisecond, nil)
	m.ObserveScan(hostSnapshot(), 40*time.Millisecond, nil)
	m.SetPolicy(hostPolicy())
	m.IncEvent("opened")
	m.IncEvent("opened")
	m.IncEvent("violation")
	m.IncNotification("ops-mail", "retry")
	m.IncNotification("ops-mail", "sent")
	m.IncNotification("alertmanager", "sent")
	m.SetOutboxPending(3)
}

// compareGolden checks the porteiro_ exposition against testdata/name, or
// rewrites it with -update.
func compareGolden(t *testing.T, m *Metrics, name string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		got, err := format(m.reg)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	defer f.Close()
	if err := testutil.GatherAndCompare(m.reg, f); err != nil {
		t.Error(err)
	}
}

// format encodes the families of g named in names (all of them when names
// is empty) in the text format.
func format(g prometheus.Gatherer, names ...string) ([]byte, error) {
	mfs, err := g.Gather()
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	for _, mf := range mfs {
		if len(names) > 0 && !slices.Contains(names, mf.GetName()) {
			continue
		}
		if _, err := expfmt.MetricFamilyToText(&buf, mf); err != nil {
			return nil, err
		}
	}
	return buf.Bytes(), nil
}

func TestGolden(t *testing.T) {
	m := newWithInfo(testInfo, false)
	fill(m)
	compareGolden(t, m, "host.prom")
}

func TestGoldenFresh(t *testing.T) {
	// Before any scan: no host gauges, every error reason at zero.
	compareGolden(t, newWithInfo(testInfo, false), "fresh.prom")
}

func TestListenerInfoCap(t *testing.T) {
	m := newWithInfo(testInfo, false)
	fill(m)
	m.SetListenerInfoLimit(2)
	want := `
# HELP porteiro_listener_info_dropped Listeners left out of porteiro_listener_info in this scrape because of the series cap.
# TYPE porteiro_listener_info_dropped gauge
porteiro_listener_info_dropped 7
`
	if err := testutil.GatherAndCompare(m.reg, strings.NewReader(want), "porteiro_listener_info_dropped"); err != nil {
		t.Error(err)
	}
	if n, err := testutil.GatherAndCount(m.reg, "porteiro_listener_info"); err != nil || n != 2 {
		t.Errorf("porteiro_listener_info series = %d, %v; want 2", n, err)
	}
	// The cap keeps policy findings first: the unexpected nc must survive.
	got, err := format(m.reg, "porteiro_listener_info")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(got, []byte(`port="4444",process="nc"`)) {
		t.Errorf("capped listener_info lost the violation:\n%s", got)
	}

	m.SetListenerInfoLimit(0)
	if n, _ := testutil.GatherAndCount(m.reg, "porteiro_listener_info", "porteiro_listener_info_dropped"); n != 0 {
		t.Errorf("limit 0 still exports %d listener_info series", n)
	}
	if n, _ := testutil.GatherAndCount(m.reg, "porteiro_listeners"); n != 12 {
		t.Errorf("limit 0 changed porteiro_listeners: %d series, want 12", n)
	}
}

func TestNoPolicy(t *testing.T) {
	m := newWithInfo(testInfo, false)
	m.ObserveScan(hostSnapshot(), time.Millisecond, nil)
	if n, _ := testutil.GatherAndCount(m.reg, "porteiro_policy_violations"); n != 0 {
		t.Errorf("porteiro_policy_violations has %d series without a policy, want none", n)
	}
	got, _ := format(m.reg, "porteiro_listener_info")
	if bytes.Contains(got, []byte(`allowed="true"`)) || bytes.Contains(got, []byte(`allowed="false"`)) {
		t.Errorf("allowed must be unknown without a policy:\n%s", got)
	}
	m.SetPolicy(hostPolicy())
	m.ClearPolicy()
	if n, _ := testutil.GatherAndCount(m.reg, "porteiro_policy_violations"); n != 0 {
		t.Errorf("ClearPolicy left %d violation series", n)
	}
}

func TestFailedScanKeepsLastSnapshot(t *testing.T) {
	m := newWithInfo(testInfo, false)
	m.ObserveScan(hostSnapshot(), time.Millisecond, nil)
	before, err := format(m.reg, "porteiro_listeners", "porteiro_last_scan_success_timestamp_seconds")
	if err != nil {
		t.Fatal(err)
	}
	m.ObserveScan(nil, time.Second, fmt.Errorf("reading /proc: %w", fs.ErrPermission))
	after, _ := format(m.reg, "porteiro_listeners", "porteiro_last_scan_success_timestamp_seconds")
	if !bytes.Equal(before, after) {
		t.Errorf("a failed scan changed the host gauges:\n%s\n---\n%s", before, after)
	}
	if v := testutil.ToFloat64(m.scanErrors.WithLabelValues(ReasonPermission)); v != 1 {
		t.Errorf("permission errors = %v, want 1", v)
	}
	if n := testutil.CollectAndCount(m.scanDuration); n != 1 {
		t.Errorf("histogram series = %d", n)
	}
}

func TestErrorReason(t *testing.T) {
	for _, tt := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("scan: %w", context.DeadlineExceeded), ReasonTimeout},
		{context.Canceled, ReasonCanceled},
		{fmt.Errorf("open /proc/1/fd: %w", fs.ErrPermission), ReasonPermission},
		{&fs.PathError{Op: "open", Path: "/proc/1/fd", Err: fs.ErrPermission}, ReasonPermission},
		{fmt.Errorf("listing sockets: %w", inventory.ErrUnsupported), ReasonUnsupported},
		{errors.New("netlink: message truncated"), ReasonOther},
	} {
		if got := ErrorReason(tt.err); got != tt.want {
			t.Errorf("ErrorReason(%v) = %q, want %q", tt.err, got, tt.want)
		}
	}
}

func TestLint(t *testing.T) {
	m := New("")
	fill(m)
	problems, err := testutil.GatherAndLint(m.Gatherer())
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("lint: %s: %s", p.Metric, p.Text)
	}
}

func scrape(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	if rec.Code != 200 {
		t.Fatalf("GET /metrics: %d", rec.Code)
	}
	b, _ := io.ReadAll(rec.Body)
	return string(b)
}

var pidLabel = regexp.MustCompile(`[{,]pid=`)

func TestHandler(t *testing.T) {
	m := New("7.7.7")
	fill(m)
	body := scrape(t, m)
	for _, want := range []string{
		`porteiro_build_info{goversion="` + version.Get().GoVersion + `",revision="`,
		`version="7.7.7"} 1`,
		`porteiro_listeners{exposure="all",family="ipv4",proto="tcp"} 4`,
		`porteiro_policy_violations{kind="unexpected"} 1`,
		`porteiro_outbox_pending 3`,
		"go_goroutines ",
		"process_start_time_seconds ",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	if pidLabel.MatchString(body) {
		t.Errorf("/metrics has a pid label:\n%s", body)
	}
}

// TestWriteExposition lints a full /metrics page with `promtool check
// metrics`. With $PORTEIRO_METRICS_EXPOSITION set it also keeps the page
// there, for scripts/check.d/41-metrics-exposition.sh.
func TestWriteExposition(t *testing.T) {
	promtool := testenv.RequireCommand(t, "promtool")
	out := os.Getenv("PORTEIRO_METRICS_EXPOSITION")
	if out == "" {
		out = filepath.Join(t.TempDir(), "metrics.prom")
	}
	m := New("")
	fill(m)
	page := scrape(t, m)
	if err := os.WriteFile(out, []byte(page), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(page)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("promtool check metrics: %v\n%s", err, b)
	}
}

func TestConcurrentUse(t *testing.T) {
	m := New("")
	var wg sync.WaitGroup
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	writers := []func(){
		func() { m.ObserveScan(hostSnapshot(), time.Millisecond, nil) },
		func() { m.SetPolicy(hostPolicy()) },
		func() { m.SetListenerInfoLimit(3) },
		func() { m.IncEvent("opened"); m.IncNotification("x", "sent"); m.SetOutboxPending(1) },
	}
	for _, w := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for ctx.Err() == nil {
				w()
			}
		}()
	}
	for ctx.Err() == nil {
		if _, err := m.Gatherer().Gather(); err != nil {
			t.Fatal(err)
		}
	}
	wg.Wait()
}

package watch

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/porteiro/porteiro/inventory"
)

var inodeSeq uint64 = 1000

// sock builds a listening TCP socket held by one process; each call is a
// new socket (new inode), as a restarted service's would be.
func sock(port uint16, pid int, exe string) inventory.Socket {
	inodeSeq++
	so := inventory.Socket{
		Proto: inventory.TCP, Family: inventory.IPv4, State: "LISTEN", Listening: true,
		Local: inventory.Endpoint{Address: netip.MustParseAddr("0.0.0.0"), Port: port},
		Inode: inodeSeq, NetNS: 1, Exposure: inventory.ExposureAll,
	}
	if pid > 0 {
		name := exe[strings.LastIndex(exe, "/")+1:]
		so.Processes = []inventory.Process{{ProcessInfo: &inventory.ProcessInfo{PID: pid, Name: name, Exe: exe, User: "root", StartTicks: uint64(pid) * 7, Cmdline: []string{exe}}}}
	}
	return so
}

func snapOf(socks ...inventory.Socket) *inventory.Snapshot {
	return &inventory.Snapshot{Sockets: socks, Source: "test"}
}

func kinds(evs []Event) string {
	var out []string
	for _, e := range evs {
		s := e.Kind
		if e.Flapping {
			s += fmt.Sprintf("x%d", e.Restarts)
		}
		if e.Listener.Port != 0 {
			s += fmt.Sprintf(":%d", e.Listener.Port)
		}
		out = append(out, s)
	}
	return strings.Join(out, " ")
}

func TestDetectorListenerEvents(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	d := newDetector(10*time.Second, time.Minute)
	ssh := sock(22, 100, "/usr/sbin/sshd")
	if got := kinds(d.step(t0, snapOf(ssh), nil)); got != "" {
		t.Fatalf("first scan is the baseline, got %q", got)
	}
	bad := sock(4444, 200, "/tmp/nc")
	evs := d.step(t0.Add(time.Second), snapOf(ssh, bad), nil)
	if got := kinds(evs); got != "opened:4444" {
		t.Fatalf("got %q, want opened:4444", got)
	}
	if evs[0].Socket == nil || evs[0].Socket.Processes[0].PID != 200 {
		t.Errorf("opened event lacks the owner: %+v", evs[0].Socket)
	}
	// Gone: nothing yet, the grace period runs.
	if got := kinds(d.step(t0.Add(2*time.Second), snapOf(ssh), nil)); got != "" {
		t.Fatalf("close reported before the grace period: %q", got)
	}
	if got := kinds(d.step(t0.Add(11*time.Second), snapOf(ssh), nil)); got != "" {
		t.Fatalf("close reported 9s into a 10s grace: %q", got)
	}
	evs = d.step(t0.Add(12*time.Second), snapOf(ssh), nil)
	if got := kinds(evs); got != "closed:4444" {
		t.Fatalf("got %q, want closed:4444", got)
	}
	if !evs[0].Time.Equal(t0.Add(2 * time.Second)) {
		t.Errorf("closed at %v, want when it disappeared (%v)", evs[0].Time, t0.Add(2*time.Second))
	}
	if evs[0].Socket.Processes[0].Exe != "/tmp/nc" {
		t.Errorf("closed event lost the last owner: %+v", evs[0].Socket)
	}
}

func TestDetectorRestartWithinGrace(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	d := newDetector(10*time.Second, time.Minute)
	d.step(t0, snapOf(sock(80, 100, "/usr/sbin/nginx")), nil)
	if got := kinds(d.step(t0.Add(time.Second), snapOf(), nil)); got != "" {
		t.Fatalf("got %q", got)
	}
	// Back with a new pid and a new inode, same program: a restart.
	evs := d.step(t0.Add(3*time.Second), snapOf(sock(80, 101, "/usr/sbin/nginx")), nil)
	if got := kinds(evs); got != "restarted:80" {
		t.Fatalf("got %q, want one restarted note", got)
	}
	if evs[0].Down != 2*time.Second || evs[0].Old.Processes[0].PID != 100 || evs[0].Socket.Processes[0].PID != 101 {
		t.Errorf("restart = down %v, old %+v, new %+v", evs[0].Down, evs[0].Old, evs[0].Socket)
	}
	if sev := severityOf(evs[0].Kind, evs[0].Flapping); sev != "info" {
		t.Errorf("a single restart has severity %s, want info (a note)", sev)
	}
	// And no late closed.
	for i := 4; i < 30; i++ {
		if got := kinds(d.step(t0.Add(time.Duration(i)*time.Second), snapOf(sock(80, 101, "/usr/sbin/nginx")), nil)); got != "" {
			t.Fatalf("t+%ds: got %q after a restart", i, got)
		}
	}
}

func TestDetectorOtherProgramTakesPort(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	d := newDetector(10*time.Second, time.Minute)
	d.step(t0, snapOf(sock(80, 100, "/usr/sbin/nginx")), nil)
	d.step(t0.Add(time.Second), snapOf(), nil)
	evs := d.step(t0.Add(2*time.Second), snapOf(sock(80, 666, "/tmp/evil")), nil)
	if got := kinds(evs); got != "owner_changed:80" {
		t.Fatalf("another program on a freed port: got %q, want owner_changed", got)
	}
}

func TestDetectorOwnerChange(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	d := newDetector(10*time.Second, time.Minute)
	a := sock(8080, 100, "/usr/bin/app")
	d.step(t0, snapOf(a), nil)
	// Same inode, a worker was replaced: same program, no event.
	b := a
	b.Processes = []inventory.Process{a.Processes[0], {ProcessInfo: &inventory.ProcessInfo{PID: 101, Name: "app", Exe: "/usr/bin/app", User: "root"}}}
	if got := kinds(d.step(t0.Add(time.Second), snapOf(b), nil)); got != "" {
		t.Fatalf("worker churn gave %q", got)
	}
	// Owners unreadable for one scan: not a change.
	c := a
	c.Processes = nil
	c.UnattributedReason = inventory.ReasonNotPermitted
	if got := kinds(d.step(t0.Add(2*time.Second), snapOf(c), nil)); got != "" {
		t.Fatalf("unreadable owners gave %q", got)
	}
	if got := kinds(d.step(t0.Add(3*time.Second), snapOf(a), nil)); got != "" {
		t.Fatalf("owners readable again gave %q", got)
	}
	// The socket passed to another program.
	e := a
	e.Processes = []inventory.Process{{ProcessInfo: &inventory.ProcessInfo{PID: 300, Name: "python3", Exe: "/usr/bin/python3", User: "www-data"}}}
	evs := d.step(t0.Add(4*time.Second), snapOf(e), nil)
	if got := kinds(evs); got != "owner_changed:8080" {
		t.Fatalf("got %q, want owner_changed:8080", got)
	}
	if evs[0].Old.Processes[0].PID != 100 {
		t.Errorf("owner_changed old = %+v", evs[0].Old)
	}
}

func TestDetectorFlappingIsGrouped(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	d := newDetector(5*time.Second, time.Minute)
	d.step(t0, snapOf(sock(9000, 1, "/usr/bin/svc")), nil)
	var all []Event
	now := t0
	// Ten restarts, one every 4 seconds, each down for one second.
	for i := 0; i < 10; i++ {
		now = now.Add(3 * time.Second)
		all = append(all, d.step(now, snapOf(), nil)...)
		now = now.Add(time.Second)
		all = append(all, d.step(now, snapOf(sock(9000, 2+i, "/usr/bin/svc")), nil)...)
	}
	if got := kinds(all); got != "restarted:9000" {
		t.Fatalf("during the flap window got %q, want only the first restart", got)
	}
	// The window ends: one summary.
	up := snapOf(sock(9000, 50, "/usr/bin/svc"))
	evs := d.step(t0.Add(2*time.Minute), up, nil)
	if got := kinds(evs); got != "restartedx10:9000" {
		t.Fatalf("after the window got %q, want one flapping summary of 10 restarts", got)
	}
	if sev := severityOf(evs[0].Kind, evs[0].Flapping); sev != "warning" {
		t.Errorf("flapping severity = %s, want warning", sev)
	}
	if !strings.Contains(evs[0].Summary(), "flapping") {
		t.Errorf("summary = %q", evs[0].Summary())
	}
}

func finding(kind, key string, so *inventory.Socket) Finding {
	return Finding{Kind: kind, Key: key, Message: kind + " " + key, Socket: so}
}

func TestDetectorFindings(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	d := newDetector(10*time.Second, time.Minute)
	bad := sock(4444, 200, "/tmp/nc")
	unexp := finding("unexpected", "unexpected tcp 0.0.0.0:4444", &bad)
	evs := d.step(t0, snapOf(bad), []Finding{unexp})
	if got := kinds(evs); got != "violation:4444" {
		t.Fatalf("got %q", got)
	}
	if got := kinds(d.step(t0.Add(time.Second), snapOf(bad), []Finding{unexp})); got != "" {
		t.Fatalf("a lasting finding fired again: %q", got)
	}
	// Restart of the offending listener: neither resolved nor fired again.
	d.step(t0.Add(2*time.Second), snapOf(), nil)
	bad2 := sock(4444, 201, "/tmp/nc")
	unexp2 := finding("unexpected", "unexpected tcp 0.0.0.0:4444", &bad2)
	evs = d.step(t0.Add(3*time.Second), snapOf(bad2), []Finding{unexp2})
	if got := kinds(evs); got != "restarted:4444" {
		t.Fatalf("restart of a violating listener: got %q, want only the restarted note", got)
	}
	// Gone for good: resolved after the grace period, with its start.
	d.step(t0.Add(4*time.Second), snapOf(), nil)
	evs = d.step(t0.Add(15*time.Second), snapOf(), nil)
	if got := kinds(evs); got != "closed:4444 resolved:4444" {
		t.Fatalf("got %q, want closed and resolved", got)
	}
	if !evs[1].Since.Equal(t0) {
		t.Errorf("resolved since %v, want %v", evs[1].Since, t0)
	}
	a := evs[1].Alert("h")
	if !a.Resolved || !a.StartsAt.Equal(t0) || a.Listener != "tcp *:4444" && a.Listener != "tcp 0.0.0.0:4444" {
		t.Errorf("resolved alert = %+v", a)
	}
}

func TestDetectorMissingWaitsForGrace(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	d := newDetector(10*time.Second, time.Minute)
	miss := finding("missing", "missing ssh", nil)
	d.step(t0, snapOf(), nil)
	// sshd restarting: missing for 3 seconds, no alert.
	for i := 1; i <= 3; i++ {
		if got := kinds(d.step(t0.Add(time.Duration(i)*time.Second), snapOf(), []Finding{miss})); got != "" {
			t.Fatalf("missing fired after %ds: %q", i, got)
		}
	}
	d.step(t0.Add(4*time.Second), snapOf(), nil)
	for i := 5; i < 15; i++ {
		if got := kinds(d.step(t0.Add(time.Duration(i)*time.Second), snapOf(), []Finding{miss})); got != "" {
			t.Fatalf("missing fired %ds after it began: %q", i-5, got)
		}
	}
	evs := d.step(t0.Add(15*time.Second), snapOf(), []Finding{miss})
	if got := kinds(evs); got != "missing" {
		t.Fatalf("got %q, want missing once it lasted the grace period", got)
	}
	if evs[0].listenerName() != "missing ssh" {
		t.Errorf("listener = %q", evs[0].listenerName())
	}
}

func TestDetectorPrimedReportsChangesWhileDown(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	d := newDetector(10*time.Second, time.Minute)
	d.prime([]inventory.Socket{sock(22, 100, "/usr/sbin/sshd"), sock(25, 50, "/usr/sbin/exim")})
	// After a reboot: new inodes and pids, sshd the same program; exim
	// gone; something new on 8080.
	evs := d.step(t0, snapOf(sock(22, 900, "/usr/sbin/sshd"), sock(8080, 901, "/usr/bin/app")), nil)
	if got := kinds(evs); got != "opened:8080" {
		t.Fatalf("got %q", got)
	}
	evs = d.step(t0.Add(11*time.Second), snapOf(sock(22, 900, "/usr/sbin/sshd"), sock(8080, 901, "/usr/bin/app")), nil)
	if got := kinds(evs); got != "closed:25" {
		t.Fatalf("got %q", got)
	}
}

func TestDetectorKnownKeepsClosing(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	d := newDetector(10*time.Second, time.Minute)
	d.step(t0, snapOf(sock(22, 100, "/usr/sbin/sshd"), sock(25, 50, "/usr/sbin/exim")), nil)
	d.step(t0.Add(time.Second), snapOf(sock(22, 100, "/usr/sbin/sshd")), nil)
	// Port 25 is within its grace period: it must be saved, so that a crash
	// now still reports the close after a restart.
	var ports []uint16
	for _, so := range d.knownSockets() {
		ports = append(ports, so.Local.Port)
	}
	if fmt.Sprint(ports) != "[22 25]" {
		t.Fatalf("known = %v, want [22 25]", ports)
	}
}

// A crash loop whose gaps are longer than the grace period: closed and
// opened each time, but grouped after the first comeback.
func TestDetectorSlowFlappingIsGrouped(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	d := newDetector(10*time.Second, time.Minute)
	up := func(pid int) *inventory.Snapshot { return snapOf(sock(8080, pid, "/usr/bin/app")) }
	d.step(t0, up(1), nil)
	var all []Event
	// Every 30s: up for 5s, then down for 25s (longer than grace), for
	// 30 minutes, one scan a second.
	pid := 2
	for s := 0; s < 30*60; s++ {
		now := t0.Add(time.Duration(s+1) * time.Second)
		snap := snapOf()
		if s%30 < 5 {
			snap = up(pid)
		} else if s%30 == 5 {
			pid++
		}
		all = append(all, d.step(now, snap, nil)...)
	}
	// It stops for good, down.
	for s := 0; s < 120; s++ {
		all = append(all, d.step(t0.Add(31*time.Minute+time.Duration(s)*time.Second), snapOf(), nil)...)
	}
	got := kinds(all)
	// The first close and comeback are reported; then one summary every
	// 10 windows (10 minutes) while it flaps; then the final close.
	parts := strings.Fields(got)
	if len(parts) > 8 {
		t.Fatalf("%d events for 60 crash cycles, want a handful: %q", len(parts), got)
	}
	if !strings.HasPrefix(got, "closed:8080 opened:8080 closed:8080 ") {
		t.Fatalf("got %q, want the first close, comeback and close reported", got)
	}
	t.Logf("60 crash cycles in 30 minutes: %s", got)
	last := all[len(all)-1]
	if last.Kind != KindClosed || !last.Flapping || last.Restarts < 10 {
		t.Fatalf("last event = %s flapping=%v restarts=%d, want a closed flapping summary: %q", last.Kind, last.Flapping, last.Restarts, got)
	}
	if !strings.Contains(last.Summary(), "closed after flapping") {
		t.Errorf("summary = %q", last.Summary())
	}
	total := 0
	for _, e := range all {
		if e.Flapping {
			total += e.Restarts
		}
	}
	// 59 comebacks in all (every 30s after the first cycle); the
	// summaries count them all, the reported first one included.
	if total != 59 {
		t.Errorf("summaries count %d comebacks, want 59", total)
	}
}

// A listener that closes and opens again long after is not flapping.
func TestDetectorSlowReopenIsNotFlapping(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	d := newDetector(10*time.Second, time.Minute)
	d.step(t0, snapOf(sock(8080, 1, "/usr/bin/app")), nil)
	var all []Event
	all = append(all, d.step(t0.Add(time.Second), snapOf(), nil)...)
	all = append(all, d.step(t0.Add(12*time.Second), snapOf(), nil)...)
	all = append(all, d.step(t0.Add(5*time.Minute), snapOf(sock(8080, 2, "/usr/bin/app")), nil)...)
	all = append(all, d.step(t0.Add(5*time.Minute+time.Second), snapOf(), nil)...)
	all = append(all, d.step(t0.Add(5*time.Minute+15*time.Second), snapOf(), nil)...)
	if got := kinds(all); got != "closed:8080 opened:8080 closed:8080" {
		t.Fatalf("got %q", got)
	}
}

// A flapping listener that was stable for a window but then restarts
// while its tracker waited for a pending close keeps its count.
func TestDetectorFlapCountSurvivesPendingClose(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	d := newDetector(10*time.Second, time.Minute)
	up := func(pid int) *inventory.Snapshot { return snapOf(sock(9000, pid, "/usr/bin/svc")) }
	d.step(t0, up(1), nil)
	var all []Event
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	// Three quick restarts: the first reported, two counted.
	all = append(all, d.step(at(1), snapOf(), nil)...)
	all = append(all, d.step(at(2), up(2), nil)...)
	all = append(all, d.step(at(3), snapOf(), nil)...)
	all = append(all, d.step(at(4), up(3), nil)...)
	all = append(all, d.step(at(5), snapOf(), nil)...)
	all = append(all, d.step(at(6), up(4), nil)...)
	// Stable until 60s, then down; the window (from the last comeback at
	// 6s) ends at 66s while the close is pending; back at 68s, a restart
	// within grace.
	all = append(all, d.step(at(60), snapOf(), nil)...)
	all = append(all, d.step(at(67), snapOf(), nil)...)
	all = append(all, d.step(at(68), up(5), nil)...)
	// Then stable for good.
	for s := 69; s < 200; s++ {
		all = append(all, d.step(at(s), up(5), nil)...)
	}
	total := 0
	for _, e := range all {
		if e.Flapping {
			total += e.Restarts
		}
	}
	if got := kinds(all); !strings.HasPrefix(got, "restarted:9000 ") || total != 4 {
		t.Fatalf("events %q, comebacks in summaries %d; want the first restart, then summaries counting all 4", got, total)
	}
}

// A wrong_owner verdict on a socket whose holder was not seen (it may
// have exited during the scan) fires only when the next scan confirms it;
// one that does not come back never fires.
func TestDetectorConfirmsUnverifiedOwners(t *testing.T) {
	t0 := time.Unix(1_700_000_000, 0)
	d := newDetector(0, time.Minute)
	orphan := sock(8080, 0, "")
	orphan.UnattributedReason = inventory.ReasonExited
	f := Finding{Kind: "wrong_owner", Key: "wrong_owner tcp 0.0.0.0:8080", Message: "held by no visible process", Socket: &orphan}
	// Churn: the unverified finding shows up every other scan, as a
	// holder exiting mid-scan does. It must never fire.
	for i := 0; i < 6; i++ {
		var fs []Finding
		if i%2 == 0 {
			fs = []Finding{f}
		}
		if evs := d.findingEvents(t0.Add(time.Duration(i)*time.Second), fs); len(evs) != 0 {
			t.Fatalf("scan %d: %s, want nothing for an unconfirmed finding", i, kinds(evs))
		}
	}
	// Seen twice in a row: it fires.
	if evs := d.findingEvents(t0.Add(10*time.Second), []Finding{f}); len(evs) != 0 {
		t.Fatalf("first sighting fired: %s", kinds(evs))
	}
	if got := kinds(d.findingEvents(t0.Add(11*time.Second), []Finding{f})); got != "violation:8080" {
		t.Fatalf("second sighting: %q, want violation:8080", got)
	}
	// A wrong_owner with a visible owner fires at once.
	other := sock(9090, 300, "/usr/bin/python3")
	g := Finding{Kind: "wrong_owner", Key: "wrong_owner tcp 0.0.0.0:9090", Message: "python3 holds it", Socket: &other}
	if got := kinds(d.findingEvents(t0.Add(12*time.Second), []Finding{f, g})); got != "violation:9090" {
		t.Fatalf("verified wrong_owner: %q, want violation:9090 at once", got)
	}
}

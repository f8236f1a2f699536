package top

import (
	"bytes"
	"encoding/json"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/porteiro/porteiro/inventory"
	"github.com/porteiro/porteiro/policy"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

func listener(proto inventory.Proto, addr string, inode uint64, name string, pid int) inventory.Socket {
	ap := netip.MustParseAddrPort(addr)
	fam := inventory.IPv4
	if ap.Addr().Is6() {
		fam = inventory.IPv6
	}
	s := inventory.Socket{Proto: proto, Family: fam, State: "LISTEN", Listening: true, NetNS: 1, Inode: inode,
		Local: inventory.Endpoint{Address: ap.Addr(), Port: ap.Port()}, Exposure: inventory.ExposureOf(ap.Addr())}
	if name != "" {
		s.Processes = []inventory.Process{{ProcessInfo: &inventory.ProcessInfo{PID: pid, Name: name, User: "root", Cmdline: []string{"/usr/bin/" + name}, StartTicks: uint64(pid) * 10}}}
	}
	return s
}

func conn(local, remote string, cookie, in, out uint64) Conn {
	return Conn{NetNS: 1, Local: netip.MustParseAddrPort(local), Remote: netip.MustParseAddrPort(remote),
		State: inventory.TCPEstablished, Cookie: cookie, BytesIn: in, BytesOut: out}
}

func sample(at time.Duration, ls []inventory.Socket, cs ...Conn) Sample {
	return Sample{Time: t0.Add(at), Snapshot: &inventory.Snapshot{Sockets: ls, Privileged: true}, Conns: cs}
}

func find(t *testing.T, v *View, port uint16) *Listener {
	t.Helper()
	for i := range v.Listeners {
		if v.Listeners[i].Socket.Local.Port == port {
			return &v.Listeners[i]
		}
	}
	t.Fatalf("no listener on port %d in %+v", port, v.Listeners)
	return nil
}

func TestRatesAreDeltasOverTheInterval(t *testing.T) {
	ls := []inventory.Socket{listener(inventory.TCP, "0.0.0.0:80", 1, "nginx", 10), listener(inventory.TCP, "127.0.0.1:22", 2, "sshd", 11)}
	m := NewModel(Options{})
	v := m.Update(sample(0, ls, conn("10.0.0.1:80", "10.0.0.9:5000", 1, 1000, 5000)))
	l := find(t, v, 80)
	if v.Interval != 0 || l.InPerSec != 0 || l.OutPerSec != 0 || l.NewPerSec != 0 || l.Conns != 1 {
		t.Fatalf("first sample is the baseline, without rates: %+v", l)
	}
	v = m.Update(sample(2*time.Second, ls, conn("10.0.0.1:80", "10.0.0.9:5000", 1, 3000, 9000)))
	l = find(t, v, 80)
	if l.InPerSec != 1000 || l.OutPerSec != 2000 || l.NewPerSec != 0 || l.Conns != 1 {
		t.Errorf("rates: %+v", l)
	}
	if v.Listeners[0].Socket.Local.Port != 80 {
		t.Errorf("the busy listener is not first: %v", v.Listeners[0].Socket.Local)
	}
	idle := find(t, v, 22)
	if idle.Conns != 0 || idle.InPerSec != 0 || idle.OutPerSec != 0 || idle.TopPeer != nil {
		t.Errorf("idle listener: %+v", idle)
	}
	if v.InPerSec != 1000 || v.OutPerSec != 2000 || v.Conns != 1 {
		t.Errorf("totals: %+v", v)
	}
}

func TestNewAndClosedConnections(t *testing.T) {
	ls := []inventory.Socket{listener(inventory.TCP, "0.0.0.0:80", 1, "nginx", 10)}
	m := NewModel(Options{})
	m.Update(sample(0, ls, conn("10.0.0.1:80", "10.0.0.9:5000", 1, 100, 100), conn("10.0.0.1:80", "10.0.0.8:6000", 2, 100, 100)))
	// One closes, one opens with 500 bytes already moved.
	v := m.Update(sample(time.Second, ls, conn("10.0.0.1:80", "10.0.0.9:5000", 1, 200, 100), conn("10.0.0.1:80", "10.0.0.7:7000", 3, 500, 0)))
	l := find(t, v, 80)
	if l.Conns != 2 || l.NewPerSec != 1 || l.InPerSec != 100+500 || l.OutPerSec != 0 {
		t.Errorf("after one close and one open: %+v", l)
	}
	if l.TotalIn != 600 {
		t.Errorf("TotalIn = %d, want 600 (the closed connection's bytes were before the baseline)", l.TotalIn)
	}
	// Everything closes: the totals keep what was seen.
	v = m.Update(sample(2*time.Second, ls))
	l = find(t, v, 80)
	if l.Conns != 0 || l.InPerSec != 0 || l.TotalIn != 600 || l.TotalOut != 0 {
		t.Errorf("after every connection closed: %+v", l)
	}
}

func TestCountersGoingBackwards(t *testing.T) {
	ls := []inventory.Socket{listener(inventory.TCP, "0.0.0.0:80", 1, "nginx", 10)}
	m := NewModel(Options{})
	m.Update(sample(0, ls, conn("10.0.0.1:80", "10.0.0.9:5000", 0, 1_000_000, 1_000_000)))
	// No cookie (0 both times) but the counters went down: another
	// connection on the same 4-tuple. Its own bytes count, nothing is
	// negative, and it is new.
	v := m.Update(sample(time.Second, ls, conn("10.0.0.1:80", "10.0.0.9:5000", 0, 300, 1_000_500)))
	l := find(t, v, 80)
	if l.InPerSec != 300 || l.OutPerSec != 1_000_500 || l.NewPerSec != 1 {
		t.Errorf("counters backwards: %+v", l)
	}
	// Same 4-tuple, new cookie, counters higher than before: still a new
	// connection; its whole count is this interval's.
	v = m.Update(sample(2*time.Second, ls, conn("10.0.0.1:80", "10.0.0.9:5000", 9, 2_000_000, 2_000_000)))
	l = find(t, v, 80)
	if l.InPerSec != 2_000_000 || l.NewPerSec != 1 {
		t.Errorf("reused 4-tuple with a new cookie: %+v", l)
	}
	// A counter near 2^64 that wraps to a small value.
	m = NewModel(Options{})
	m.Update(sample(0, ls, conn("10.0.0.1:80", "10.0.0.9:5000", 5, 1<<64-10, 0)))
	v = m.Update(sample(time.Second, ls, conn("10.0.0.1:80", "10.0.0.9:5000", 5, 20, 0)))
	if l := find(t, v, 80); l.InPerSec != 20 || l.InPerSec < 0 {
		t.Errorf("wrapped counter: %+v", l)
	}
}

func TestMatchByAddressFamilyAndNetns(t *testing.T) {
	dual := listener(inventory.TCP, "[::]:443", 1, "caddy", 10)
	dual.DualStack = true
	v6only := listener(inventory.TCP, "[::]:8443", 2, "v6", 11)
	v4any := listener(inventory.TCP, "0.0.0.0:8443", 3, "v4", 12)
	exact := listener(inventory.TCP, "127.0.0.1:9000", 4, "exact", 13)
	wild := listener(inventory.TCP, "0.0.0.0:9000", 5, "wild", 14)
	udp := listener(inventory.UDP, "0.0.0.0:9000", 6, "udp", 15)
	ls := []inventory.Socket{dual, v6only, v4any, exact, wild, udp}
	other := conn("10.0.0.1:9000", "10.0.0.2:1", 9, 0, 0)
	other.NetNS = 2 // another namespace: not through these listeners
	cs := []Conn{
		conn("[::ffff:10.0.0.1]:443", "[::ffff:10.0.0.2]:1000", 1, 0, 0), // IPv4 client of the dual-stack socket
		conn("[2001:db8::1]:443", "[2001:db8::2]:1000", 2, 0, 0),
		conn("[2001:db8::1]:8443", "[2001:db8::2]:1001", 3, 0, 0),
		conn("10.0.0.1:8443", "10.0.0.2:1002", 4, 0, 0),
		conn("127.0.0.1:9000", "127.0.0.1:1003", 5, 0, 0),
		conn("10.0.0.1:9000", "10.0.0.2:1004", 6, 0, 0),
		conn("10.0.0.1:9000", "10.0.0.2:1005", 7, 0, 0),
		conn("10.0.0.1:50000", "10.0.0.2:443", 8, 0, 0), // outgoing
		other,
	}
	v := NewModel(Options{}).Update(sample(0, ls, cs...))
	want := map[uint64]int{1: 2, 2: 1, 3: 1, 4: 1, 5: 2, 6: 0}
	for _, l := range v.Listeners {
		if l.Conns != want[l.Socket.Inode] {
			t.Errorf("%s %v (inode %d): %d connections, want %d", l.Socket.Proto, l.Socket.Local, l.Socket.Inode, l.Conns, want[l.Socket.Inode])
		}
	}
	if v.Other != 2 {
		t.Errorf("Other = %d, want 2 (the outgoing one and the other namespace's)", v.Other)
	}
	// A v6-only [::] does not take IPv4-mapped connections.
	v = NewModel(Options{}).Update(sample(0, []inventory.Socket{v6only}, conn("[::ffff:10.0.0.1]:8443", "[::ffff:10.0.0.2]:1", 1, 0, 0)))
	if v.Listeners[0].Conns != 0 {
		t.Errorf("v6-only listener took an IPv4-mapped connection")
	}
}

func TestTopPeer(t *testing.T) {
	ls := []inventory.Socket{listener(inventory.TCP, "0.0.0.0:80", 1, "nginx", 10)}
	m := NewModel(Options{})
	base := []Conn{
		conn("10.0.0.1:80", "10.0.0.5:1", 1, 0, 0), conn("10.0.0.1:80", "10.0.0.5:2", 2, 0, 0), conn("10.0.0.1:80", "10.0.0.5:3", 3, 0, 0),
		conn("10.0.0.1:80", "10.0.0.6:1", 4, 0, 0),
	}
	v := m.Update(sample(0, ls, base...))
	if p := find(t, v, 80).TopPeer; p == nil || p.Address != netip.MustParseAddr("10.0.0.5") || p.Connections != 3 {
		t.Errorf("without traffic the peer with most connections wins: %+v", p)
	}
	base[3].BytesIn = 10_000
	v = m.Update(sample(time.Second, ls, base...))
	if p := find(t, v, 80).TopPeer; p == nil || p.Address != netip.MustParseAddr("10.0.0.6") || p.InPerSec != 10_000 || p.Connections != 1 {
		t.Errorf("the peer with most bytes wins: %+v", p)
	}
}

func TestListenersAppearAndClose(t *testing.T) {
	a := listener(inventory.TCP, "0.0.0.0:80", 1, "nginx", 10)
	b := listener(inventory.TCP, "0.0.0.0:81", 2, "new", 11)
	m := NewModel(Options{NewFor: 3 * time.Second, GoneFor: 3 * time.Second})
	v := m.Update(sample(0, []inventory.Socket{a}))
	if find(t, v, 80).New {
		t.Error("listeners of the first sample are not new")
	}
	v = m.Update(sample(1*time.Second, []inventory.Socket{a, b}))
	if !find(t, v, 81).New || find(t, v, 80).New {
		t.Error("the listener that appeared is not marked new")
	}
	v = m.Update(sample(4*time.Second, []inventory.Socket{a, b}))
	if find(t, v, 81).New {
		t.Error("still new after NewFor")
	}
	// a closes: greyed, last, no traffic, for GoneFor.
	v = m.Update(sample(5*time.Second, []inventory.Socket{b}, conn("10.0.0.1:81", "10.0.0.2:1", 1, 10, 10)))
	if l := find(t, v, 80); !l.Gone || l.Conns != 0 || l.InPerSec != 0 {
		t.Errorf("closed listener: %+v", l)
	}
	if !v.Listeners[len(v.Listeners)-1].Gone {
		t.Error("closed listeners sort last")
	}
	v = m.Update(sample(7*time.Second, []inventory.Socket{b}))
	if !find(t, v, 80).Gone {
		t.Error("closed listener dropped before GoneFor")
	}
	v = m.Update(sample(8*time.Second, []inventory.Socket{b}))
	if len(v.Listeners) != 1 {
		t.Errorf("closed listener still shown after GoneFor: %+v", v.Listeners)
	}
	// A restarted service (new inode, same port) is a new listener.
	a2 := a
	a2.Inode = 99
	v = m.Update(sample(9*time.Second, []inventory.Socket{b, a2}))
	if !find(t, v, 80).New {
		t.Error("restarted listener is not new")
	}
}

func TestSortFilterGroup(t *testing.T) {
	ls := []Listener{
		{Socket: listener(inventory.TCP, "0.0.0.0:443", 1, "nginx", 10), Conns: 5, InPerSec: 100},
		{Socket: listener(inventory.TCP, "0.0.0.0:80", 2, "nginx", 10), Conns: 9, InPerSec: 10},
		{Socket: listener(inventory.TCP, "127.0.0.1:5432", 3, "postgres", 20), Conns: 1, OutPerSec: 1000},
		{Socket: listener(inventory.UDP, "0.0.0.0:53", 4, "", 0)},
	}
	ls[2].Socket.Processes[0].User = "postgres"
	SortListeners(ls, ColTraffic, false)
	if ls[0].Socket.Local.Port != 5432 || ls[3].Socket.Local.Port != 53 {
		t.Errorf("by traffic: %v", ports(ls))
	}
	SortListeners(ls, ColConns, false)
	if got := ports(ls); got != "80 443 5432 53" {
		t.Errorf("by conns: %s", got)
	}
	SortListeners(ls, ColLocal, false)
	if got := ports(ls); got != "80 443 5432 53" {
		t.Errorf("by local (tcp first, as list): %s", got)
	}
	SortListeners(ls, ColLocal, true)
	if got := ports(ls); got != "53 5432 443 80" {
		t.Errorf("by local, reversed: %s", got)
	}
	for _, c := range []struct {
		f    string
		want string
	}{
		{"port:443", "443"},
		{"proc:NGINX", "443 80"},
		{"user:postgres", "5432"},
		{"netns:1", "53 5432 443 80"},
		{"netns:2", ""},
		{"pgs", "5432"},       // fuzzy: p..g..s in postgres
		{"ngx port:80", "80"}, // every term must match
		{"!proc:nginx", "53 5432"},
		{"udp", "53"},
	} {
		f := ParseFilter(c.f)
		var kept []Listener
		for i := range ls {
			if f.Match(&ls[i]) {
				kept = append(kept, ls[i])
			}
		}
		if got := ports(kept); got != c.want {
			t.Errorf("filter %q kept %q, want %q", c.f, got, c.want)
		}
	}
	SortListeners(ls, ColTraffic, false)
	gs := GroupByProcess(ls)
	if len(gs) != 3 || gs[0].Process.Name != "postgres" || gs[1].Process.Name != "nginx" || gs[1].Conns != 14 ||
		gs[1].InPerSec != 110 || gs[2].Process != nil || gs[1].Ports() != "tcp/443,tcp/80" {
		t.Errorf("groups: %+v", gs)
	}
	if ColTraffic.Prev() != ColPolicy || ColPolicy.Next() != ColTraffic || ColTopPeer.Next() != ColPolicy {
		t.Error("sort keys do not cycle")
	}
}

func ports(ls []Listener) string {
	s := ""
	for i, l := range ls {
		if i > 0 {
			s += " "
		}
		s += itoa(int(l.Socket.Local.Port))
	}
	return s
}

func itoa(n int) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for ; n > 0; n /= 10 {
		b = append([]byte{byte('0' + n%10)}, b...)
	}
	return string(b)
}

func TestRateFormat(t *testing.T) {
	for in, want := range map[float64]string{0: "0", 512: "512", 1536: "1.5K", 20 << 10: "20K", 3 << 20: "3.0M", 50 << 20: "50M", 2 << 30: "2.0G"} {
		if got := Rate(in); got != want {
			t.Errorf("Rate(%v) = %q, want %q", in, got, want)
		}
	}
	if PerSec(0.5) != "0.5" || PerSec(3) != "3" || PerSec(120.4) != "120" {
		t.Error("PerSec")
	}
}

// The quick path of SortListeners (quiet listeners checked, not sorted)
// gives the order of a plain sort, for every column and direction.
func TestSortListenersMatchesPlainSort(t *testing.T) {
	rnd := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 200; round++ {
		var ls []Listener
		for i := 0; i < 40; i++ {
			proto := inventory.TCP
			if rnd.IntN(4) == 0 {
				proto = inventory.UDP
			}
			l := Listener{Socket: listener(proto, "127.0.0."+itoa(1+rnd.IntN(3))+":"+itoa(1+rnd.IntN(50)), uint64(i+1), "p"+itoa(rnd.IntN(5)), 100+rnd.IntN(5))}
			if rnd.IntN(3) == 0 {
				l.Conns = rnd.IntN(3)
				l.InPerSec = float64(rnd.IntN(3) * 100)
				l.OutPerSec = float64(rnd.IntN(2) * 50)
				l.NewPerSec = float64(rnd.IntN(2))
			}
			l.Gone = rnd.IntN(10) == 0
			ls = append(ls, l)
		}
		// Quiet listeners arrive in the scanner's order, as from Update.
		slices.SortFunc(ls, func(a, b Listener) int { return compareLocal(&a.Socket, &b.Socket) })
		for col := Column(0); col < numColumns; col++ {
			for _, rev := range []bool{false, true} {
				got := slices.Clone(ls)
				SortListeners(got, col, rev)
				want := slices.Clone(ls)
				slices.SortStableFunc(want, func(a, b Listener) int { return compareListeners(&a, &b, col, rev) })
				for i := range got {
					if got[i].Socket.Inode != want[i].Socket.Inode {
						t.Fatalf("round %d, %v reverse=%v: position %d has inode %d, want %d", round, col, rev, i, got[i].Socket.Inode, want[i].Socket.Inode)
					}
				}
			}
		}
	}
}

// Listeners that break the policy carry the finding of "porteiro check";
// the others none. A required service that does not listen is in the
// summary. The check is not run again while nothing changed.
func TestPolicyMarks(t *testing.T) {
	pol, err := policy.Parse([]byte(`version: 1
default: deny
allow:
  - name: ssh
    reason: remote administration
    proto: tcp
    port: 22
    process: sshd
  - name: redis
    reason: cache, for this host only
    proto: tcp
    port: 6379
    bind: loopback
require:
  - name: dns
    reason: the resolver must run
    proto: udp
    port: 53
`), "test.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ls := []inventory.Socket{
		listener(inventory.TCP, "0.0.0.0:22", 1, "sshd", 10),
		listener(inventory.TCP, "0.0.0.0:6379", 2, "redis-server", 11),
		listener(inventory.TCP, "0.0.0.0:4444", 3, "nc", 12),
		listener(inventory.TCP, "127.0.0.1:22", 4, "dropbear", 13),
	}
	m := NewModel(Options{Policy: pol, PolicyFile: "test.yaml"})
	v := m.Update(sample(0, ls))
	if v.Policy == nil || v.Policy.File != "test.yaml" || v.Policy.Violations != 3 {
		t.Fatalf("policy summary %+v, want 3 violations of test.yaml", v.Policy)
	}
	if len(v.Policy.Missing) != 1 || v.Policy.Missing[0].Rule != "dns" || v.Policy.Missing[0].Kind != policy.Missing {
		t.Errorf("missing: %+v, want the dns rule", v.Policy.Missing)
	}
	var sshd, dropbear *Listener
	for i := range v.Listeners {
		if v.Listeners[i].Socket.Local.Port == 22 {
			if v.Listeners[i].Socket.Inode == 1 {
				sshd = &v.Listeners[i]
			} else {
				dropbear = &v.Listeners[i]
			}
		}
	}
	if sshd.Violation != nil {
		t.Errorf("allowed sshd marked: %+v", sshd.Violation)
	}
	if x := dropbear.Violation; x == nil || x.Kind != policy.WrongOwner || x.Rule != "ssh" {
		t.Errorf("dropbear on 22: %+v, want wrong_owner by rule ssh", x)
	}
	if x := find(t, v, 6379).Violation; x == nil || x.Kind != policy.TooExposed || x.RuleReason != "cache, for this host only" {
		t.Errorf("redis on all interfaces: %+v, want too_exposed with the rule's reason", x)
	}
	if x := find(t, v, 4444).Violation; x == nil || x.Kind != policy.Unexpected || x.Message == "" {
		t.Errorf("nc: %+v, want unexpected", x)
	}
	// Sorting by the policy column puts violations first.
	SortListeners(v.Listeners, ColPolicy, false)
	if v.Listeners[3].Violation != nil || v.Listeners[0].Violation == nil {
		t.Errorf("sorted by policy: the compliant listener is not last")
	}
	// The same listeners: the cached result; the nc listener closes: gone
	// from the violations, and greyed without a mark.
	sum := m.marks.sum
	v = m.Update(sample(time.Second, ls))
	if v.Policy.Violations != 3 || m.marks.sum != sum {
		t.Errorf("second sample: %d violations", v.Policy.Violations)
	}
	v = m.Update(sample(2*time.Second, slices.Delete(slices.Clone(ls), 2, 3)))
	if v.Policy.Violations != 2 {
		t.Errorf("after nc closed: %d violations, want 2", v.Policy.Violations)
	}
	if l := find(t, v, 4444); !l.Gone || l.Violation != nil {
		t.Errorf("closed nc: %+v", l)
	}
	// Without a policy, nothing is marked and the view says so.
	v = NewModel(Options{}).Update(sample(0, ls))
	if v.Policy != nil || find(t, v, 4444).Violation != nil {
		t.Errorf("no policy: %+v", v.Policy)
	}
}

// A listener's ndjson object is the socket's object with the traffic
// fields after its own: the Socket's MarshalJSON, promoted through the
// embedding, must not write the socket alone.
func TestListenerJSONKeepsTrafficFields(t *testing.T) {
	l := ListenerJSON{Socket: listener(inventory.TCP, "0.0.0.0:8080", 77, "web", 4242), Traffic: Traffic{Connections: 3, BytesInPerSec: 12.5,
		Policy: &Violation{Kind: "unexpected"}}}
	b, err := json.Marshal(l)
	if err != nil {
		t.Fatal(err)
	}
	s := inventory.AppendSocketJSON(nil, &l.Socket)
	if !bytes.HasPrefix(b, s[:len(s)-1]) || !bytes.Contains(b, []byte(`,"connections":3,`)) {
		t.Fatalf("got %s\nwant the socket's object %s with the traffic fields after it", b, s)
	}
	var back ListenerJSON
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.Local.Port != 8080 || back.Connections != 3 || back.BytesInPerSec != 12.5 || back.Policy == nil ||
		len(back.Processes) != 1 || back.Processes[0].Name != "web" {
		t.Fatalf("round trip: %+v", back)
	}
}

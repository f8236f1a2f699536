package policy

import (
	"bytes"
	"math/rand"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/porteiro/porteiro/inventory"
)

func baseline(t *testing.T, snap *inventory.Snapshot, o BaselineOptions) (string, *Policy) {
	t.Helper()
	var b bytes.Buffer
	if err := Baseline(&b, snap, o); err != nil {
		t.Fatal(err)
	}
	p, err := Parse(b.Bytes(), "baseline.yaml")
	if err != nil {
		t.Fatalf("baseline does not parse: %v\n%s", err, b.String())
	}
	return b.String(), p
}

func hostSnap() *inventory.Snapshot {
	chrony := proc{pid: 600, name: "chronyd", user: "_chrony", cmd: "/usr/sbin/chronyd -F 1"}
	resolved := proc{pid: 500, name: "systemd-resolve", user: "systemd-resolve", cmd: "/lib/systemd/systemd-resolved"}
	wrk2 := proc{pid: 102, name: "nginx", user: "www-data", uid: 33, cmd: "nginx: worker process"}
	systemd := proc{pid: 1, name: "systemd", user: "root", cmd: "/sbin/init"}
	cupsd := proc{pid: 700, name: "cupsd", user: "root", cmd: "/usr/sbin/cupsd -l"}
	return snapOf(
		sock(inventory.TCP, "0.0.0.0", 22, 1, sshd),
		sock(inventory.TCP, "::", 22, 2, sshd),
		sock(inventory.TCP, "127.0.0.53", 53, 3, resolved),
		sock(inventory.UDP, "127.0.0.53", 53, 4, resolved),
		sock(inventory.TCP, "0.0.0.0", 80, 5, nginx, wrk1, wrk2),
		sock(inventory.TCP, "0.0.0.0", 443, 6, nginx, wrk1, wrk2),
		// SO_REUSEPORT: four sockets, one per worker.
		sock(inventory.TCP, "0.0.0.0", 8443, 7, wrk1),
		sock(inventory.TCP, "0.0.0.0", 8443, 8, wrk2),
		sock(inventory.TCP, "0.0.0.0", 8443, 9, wrk1),
		sock(inventory.TCP, "0.0.0.0", 8443, 10, wrk2),
		sock(inventory.TCP, "127.0.0.1", 5432, 11, pg),
		sock(inventory.TCP, "::1", 5432, 12, pg),
		sock(inventory.TCP, "10.0.0.5", 5432, 13, pg),
		sock(inventory.UDP, "127.0.0.1", 323, 14, chrony),
		sock(inventory.UDP, "0.0.0.0", 41234, 15, chrony),
		sock(inventory.TCP, "127.0.0.1", 631, 16, systemd, cupsd),
		sock(inventory.UDP, "0.0.0.0", 2049, 17), // kernel nfsd: no process
		sock(inventory.TCP, "0.0.0.0", 4444, 18, ncat),
	)
}

func TestBaselineIsCleanAndGrouped(t *testing.T) {
	snap := hostSnap()
	text, p := baseline(t, snap, BaselineOptions{Ephemeral: DefaultEphemeral, Host: "web1", Time: time.Unix(0, 0)})
	if rep := p.Check(snap); !rep.Clean() {
		t.Fatalf("check right after baseline has findings %q\n%s", kinds(rep), text)
	}
	names := map[string]*Rule{}
	for _, r := range p.Rules {
		names[r.Name] = r
		if r.Section != Allow {
			t.Errorf("rule %s in section %s, want allow", r.Name, r.Section)
		}
	}
	// sshd v4+v6: one rule; nginx 80+443 with workers: one rule; the
	// reuseport group on 8443 (workers only, so other owners): one rule.
	for name, want := range map[string]string{
		"sshd-tcp-22":                "tcp 22 any sshd root",
		"nginx-tcp-80":               "tcp 80,443 any nginx root,www-data",
		"nginx-tcp-8443":             "tcp 8443 any nginx www-data",
		"systemd-resolve-tcp-udp-53": "* 53 loopback systemd-resolve systemd-resolve",
		"postgres-tcp-5432":          "tcp 5432 10.0.0.5,loopback postgres postgres",
		"chronyd-udp-323":            "udp 323 loopback chronyd _chrony",
		"chronyd-udp-ephemeral":      "udp 32768-60999 any chronyd _chrony",
		"cupsd-tcp-631":              "tcp 631 loopback cupsd,systemd root",
		"unknown-udp-2049":           "udp 2049 any - -",
		"nc-tcp-4444":                "tcp 4444 any nc mallory",
	} {
		r := names[name]
		if r == nil {
			t.Errorf("no rule %q in\n%s", name, text)
			continue
		}
		if got := ruleSummary(r); got != want {
			t.Errorf("rule %s = %q, want %q", name, got, want)
		}
	}
	if len(p.Rules) != 10 {
		t.Errorf("%d rules, want 10:\n%s", len(p.Rules), text)
	}
	for _, s := range []string{
		"# sshd (pid 812, user root, unit ssh.service): /usr/sbin/sshd -D",
		"# nginx (pids 101,102, user www-data): nginx: worker process",
		"# listening: tcp 0.0.0.0:8443 (4 socket(s))",
		"# no process: no process in this PID namespace holds it",
		"ephemeral range 32768-60999",
		"from the 18 listening socket(s) of web1",
	} {
		if !strings.Contains(text, s) {
			t.Errorf("baseline lacks %q:\n%s", s, text)
		}
	}
}

func ruleSummary(r *Rule) string {
	proto := "*"
	if len(r.Protos) == 1 {
		proto = string(r.Protos[0])
	}
	dash := func(s []string) string {
		if len(s) == 0 {
			return "-"
		}
		return strings.Join(s, ",")
	}
	var binds []string
	for _, b := range r.Bind {
		binds = append(binds, b.String())
	}
	return proto + " " + joinStrings(r.Ports, ",") + " " + strings.Join(binds, ",") + " " + dash(r.Process) + " " + dash(r.User)
}

func TestBaselineRequire(t *testing.T) {
	snap := hostSnap()
	_, p := baseline(t, snap, BaselineOptions{Require: true})
	if rep := p.Check(snap); !rep.Clean() {
		t.Fatalf("findings %q", kinds(rep))
	}
	// Stop sshd: its rule is now missing, and nothing else changes.
	rest := snapOf(snap.Sockets[2:]...)
	rep := p.Check(rest)
	if got := kinds(rep); len(got) != 1 || got[0] != "missing missing sshd-tcp-22" {
		t.Errorf("findings after stopping sshd = %q", got)
	}
}

func TestBaselineUnprivilegedNamesNoOwners(t *testing.T) {
	snap := hostSnap()
	snap.Privileged = false
	text, p := baseline(t, snap, BaselineOptions{})
	if p.NeedsOwners() {
		t.Errorf("unprivileged baseline names owners:\n%s", text)
	}
	if !strings.Contains(text, "could not see every process") {
		t.Error("no note about the unprivileged scan")
	}
	if rep := p.Check(snap); !rep.Clean() {
		t.Errorf("findings %q", kinds(rep))
	}
}

func TestBaselineEmpty(t *testing.T) {
	for _, snap := range []*inventory.Snapshot{nil, snapOf()} {
		text, p := baseline(t, snap, BaselineOptions{})
		if len(p.Rules) != 0 || !strings.Contains(text, "allow: []") {
			t.Errorf("empty baseline:\n%s", text)
		}
	}
}

// Names with quotes, glob characters, control characters and bad UTF-8
// must come back from the file matching exactly that process.
func TestBaselineAwkwardNames(t *testing.T) {
	for _, name := range []string{`we"ird`, `a*b`, `x?[y]\z`, "tab\there", "nl\nx", "\xff\xfebin", "ünï", "#hash", "- dash", "{brace}", "a: b", "null", "80", "yes"} {
		snap := snapOf(sock(inventory.TCP, "0.0.0.0", 9000, 1, proc{pid: 9, name: name, user: name}))
		text, p := baseline(t, snap, BaselineOptions{})
		if rep := p.Check(snap); !rep.Clean() {
			t.Errorf("name %q: findings %q\n%s", name, kinds(rep), text)
		}
		other := snapOf(sock(inventory.TCP, "0.0.0.0", 9000, 1, proc{pid: 9, name: name + "x", user: name}))
		if rep := p.Check(other); rep.Clean() {
			t.Errorf("name %q: pattern also matches %q", name, name+"x")
		}
	}
}

// Property: for random hosts, baseline followed by check is clean.
func TestBaselineRandomSnapshotsAreClean(t *testing.T) {
	rng := rand.New(rand.NewSource(1))
	names := []string{"sshd", "nginx", "dns*", "a b", "srv"}
	users := []string{"root", "www-data", "", "nobody"}
	addrs := []string{"0.0.0.0", "::", "127.0.0.1", "::1", "10.1.2.3", "fe80::1", "::ffff:192.0.2.1"}
	for iter := 0; iter < 300; iter++ {
		var socks []inventory.Socket
		for i := 0; i < 1+rng.Intn(30); i++ {
			proto := inventory.TCP
			if rng.Intn(2) == 0 {
				proto = inventory.UDP
			}
			port := uint16(1 + rng.Intn(65535))
			if rng.Intn(3) == 0 {
				port = uint16(1 + rng.Intn(10))
			}
			var procs []proc
			for j := 0; j < rng.Intn(4); j++ {
				procs = append(procs, proc{pid: rng.Intn(50), name: names[rng.Intn(len(names))], user: users[rng.Intn(len(users))], uid: uint32(rng.Intn(3))})
			}
			so := sock(proto, addrs[rng.Intn(len(addrs))], port, uint64(i+1), procs...)
			so.Local.Address = netip.MustParseAddr(addrs[rng.Intn(len(addrs))])
			so.Exposure = inventory.ExposureOf(so.Local.Address)
			socks = append(socks, so)
		}
		snap := snapOf(socks...)
		snap.Privileged = rng.Intn(4) != 0
		text, p := baseline(t, snap, BaselineOptions{Require: rng.Intn(2) == 0, Ephemeral: DefaultEphemeral})
		if rep := p.Check(snap); !rep.Clean() {
			t.Fatalf("iteration %d: findings %q\n%s", iter, kinds(rep), text)
		}
	}
}

func TestMergeRanges(t *testing.T) {
	got := mergeRanges([]PortRange{{Lo: 30, Hi: 30}, {Lo: 10, Hi: 10}, {Lo: 11, Hi: 11}, {Lo: 12, Hi: 20}, {Lo: 15, Hi: 16}, {Lo: 40, Hi: 50}, {Lo: 22, Hi: 22}, {Lo: 51, Hi: 51}})
	want := []PortRange{{Lo: 10, Hi: 20}, {Lo: 22, Hi: 22}, {Lo: 30, Hi: 30}, {Lo: 40, Hi: 51}}
	if !slices.Equal(got, want) {
		t.Errorf("mergeRanges = %v, want %v", got, want)
	}
}

func TestBaselineSkipsPortZero(t *testing.T) {
	snap := snapOf(sock(inventory.UDP, "0.0.0.0", 0, 1, ncat), sock(inventory.TCP, "0.0.0.0", 22, 2, sshd))
	_, p := baseline(t, snap, BaselineOptions{})
	if len(p.Rules) != 1 || p.Rules[0].Ports[0].Lo != 22 {
		t.Errorf("rules %+v", p.Rules)
	}
}

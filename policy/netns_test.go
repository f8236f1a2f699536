package policy

import (
	"regexp"
	"strings"
	"testing"

	"github.com/porteiro/porteiro/inventory"
)

// The namespaces of the tests. Sockets are built by hand the way the
// scanner fills NetNS, NetNSName and Container.
const (
	hostIno   = 4026531840
	blueIno   = 4026532301
	web1Ino   = 4026532401
	web2Ino   = 4026532402
	apiAIno   = 4026532501
	apiBIno   = 4026532502
	dbIno     = 4026532503
	pidIno    = 4026532601
	orphanIno = 4026532701
)

var (
	web1 = &inventory.Container{Runtime: "docker", ID: "3f2a9c1b2d3e4f5a6b7c8d9e0f1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a", Name: "web-1"}
	web2 = &inventory.Container{Runtime: "docker", ID: "9e8d7c6b5a4f3e2d1c0b9a8f7e6d5c4b3a2f1e0d9c8b7a6f5e4d3c2b1a0f9e8d", Name: "web-2"}
	apiA = &inventory.Container{Runtime: "containerd", ID: "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2",
		Pod: "api-7d9f8c6b5-x2k4p", Namespace: "prod", Container: "api"}
	apiB = &inventory.Container{Runtime: "containerd", ID: "b1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2",
		Pod: "api-7d9f8c6b5-q7wzt", Namespace: "prod", Container: "api"}
	db0 = &inventory.Container{Runtime: "cri-o", ID: "c1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5b6c7d8e9f0a1b2",
		Pod: "db-0", Namespace: "prod", Container: "postgres"}

	python = proc{pid: 4242, name: "python3", user: "app", uid: 1000, cmd: "python3 -m http.server 9000"}
	dnsmq  = proc{pid: 700, name: "dnsmasq", user: "nobody", uid: 65534, cmd: "dnsmasq --interface=veth-blue"}
	apiP   = proc{pid: 5100, name: "api", user: "10001", uid: 10001, cmd: "/app/api --listen :8080"}
	apiP2  = proc{pid: 5200, name: "api", user: "10001", uid: 10001, cmd: "/app/api --listen :8080"}
	pgP    = proc{pid: 5300, name: "postgres", user: "postgres", uid: 999, cmd: "postgres"}
	nginx1 = proc{pid: 3100, name: "nginx", user: "root", cmd: "nginx: master process nginx -g daemon off;"}
	nginx2 = proc{pid: 3200, name: "nginx", user: "root", cmd: "nginx: master process nginx -g daemon off;"}
)

// inNS puts a socket into a named namespace.
func inNS(so inventory.Socket, ino uint64, name string) inventory.Socket {
	so.NetNS, so.NetNSName = ino, name
	return so
}

// inCtr puts a socket into a container's namespace, named after it as the
// scanner does.
func inCtr(so inventory.Socket, ino uint64, c *inventory.Container) inventory.Socket {
	so.NetNS, so.Container = ino, c
	so.NetNSName = so.ContainerName()
	return so
}

// nsSnap is a host with a bit of everything: the host itself, an `ip
// netns`, two docker containers on the same port, two replicas of a
// Kubernetes Deployment and a StatefulSet's pod, and a namespace known only
// by its first process.
func nsSnap() *inventory.Snapshot {
	return snapOf(
		inNS(sock(inventory.TCP, "0.0.0.0", 22, 1, sshd), hostIno, "host"),
		inNS(sock(inventory.TCP, "::", 22, 2, sshd), hostIno, "host"),
		inNS(sock(inventory.UDP, "10.200.0.1", 53, 3, dnsmq), blueIno, "blue"),
		inNS(sock(inventory.TCP, "0.0.0.0", 8080, 4, python), blueIno, "blue"),
		inCtr(sock(inventory.TCP, "0.0.0.0", 80, 5, nginx1), web1Ino, web1),
		inCtr(sock(inventory.TCP, "::", 80, 6, nginx1), web1Ino, web1),
		inCtr(sock(inventory.TCP, "0.0.0.0", 80, 7, nginx2), web2Ino, web2),
		inCtr(sock(inventory.TCP, "::", 80, 8, nginx2), web2Ino, web2),
		inCtr(sock(inventory.TCP, "::", 8080, 9, apiP), apiAIno, apiA),
		inCtr(sock(inventory.TCP, "::", 8080, 10, apiP2), apiBIno, apiB),
		inCtr(sock(inventory.TCP, "0.0.0.0", 5432, 11, pgP), dbIno, db0),
		inNS(sock(inventory.TCP, "127.0.0.1", 9000, 12, python), pidIno, "pid 4242 (python3)"),
	)
}

// ruleLines returns the lines of a policy that are not comments.
func ruleLines(text string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

func TestBaselineNamespacesIsClean(t *testing.T) {
	snap := nsSnap()
	text, p := baseline(t, snap, BaselineOptions{})
	if rep := p.Check(snap); !rep.Clean() || rep.Checked != 12 {
		t.Fatalf("check after baseline: %d checked, findings %q\n%s", rep.Checked, kinds(rep), text)
	}
	rules := ruleLines(text)
	for _, want := range []string{
		`container: "web-1"`, `container: "web-2"`, `netns: "blue"`,
		`container: "prod/api-*/api"`, `container: "prod/db-0/postgres"`,
		`netns: "pid * (python3)"`,
		`name: "nginx-tcp-80@web-1"`, `name: "nginx-tcp-80@web-2"`,
	} {
		if !strings.Contains(rules, want) {
			t.Errorf("baseline lacks %s\n%s", want, text)
		}
	}
	// Never an id or an inode outside comments: both change when a
	// container is recreated.
	if m := regexp.MustCompile(`[0-9a-f]{12,}|40265`).FindString(rules); m != "" {
		t.Errorf("baseline keys on %q\n%s", m, text)
	}
	// The two replicas share one rule; each container one of its own.
	if n := strings.Count(rules, "container: "); n != 4 {
		t.Errorf("%d container rules, want 4 (web-1, web-2, the api replicas, db-0)\n%s", n, text)
	}
	// The comments say where each rule looks.
	for _, want := range []string{"# in container web-1 (docker 3f2a9c1b2d3e)", "# in network namespace blue",
		"prod/api-7d9f8c6b5-x2k4p/api (containerd a1b2c3d4e5f6), container prod/api-7d9f8c6b5-q7wzt/api", "generates anew"} {
		if !strings.Contains(text, want) {
			t.Errorf("baseline comments lack %q\n%s", want, text)
		}
	}
	// The host's rules come first, and say nothing of namespaces.
	first, _, _ := strings.Cut(rules[strings.Index(rules, "allow:"):], "\n\n")
	if !strings.Contains(first, "port: 22") || strings.Contains(first, "netns") || strings.Contains(first, "container") {
		t.Errorf("first rule is not the host's ssh:\n%s", first)
	}
}

// What the baseline's keys are for: a recreated container (new id, new
// namespace inode, same name), a rolled-out Deployment (new pod names) and
// a restarted process in an unnamed namespace are still clean.
func TestBaselineNamespacesSurviveRecreation(t *testing.T) {
	_, p := baseline(t, nsSnap(), BaselineOptions{})
	snap := nsSnap()
	for i := range snap.Sockets {
		so := &snap.Sockets[i]
		so.NetNS += 1000
		if c := so.Container; c != nil {
			cp := *c
			cp.ID = strings.Repeat("e", 64)
			if cp.Pod != "" && cp.Pod != "db-0" {
				cp.Pod = "api-5c8b6f9d4-" + cp.Pod[len(cp.Pod)-5:]
			}
			so.Container = &cp
			so.NetNSName = so.ContainerName()
		}
		if so.NetNSName == "pid 4242 (python3)" {
			so.NetNSName = "pid 9999 (python3)"
		}
	}
	if rep := p.Check(snap); !rep.Clean() {
		t.Fatalf("after recreation: %q", kinds(rep))
	}
}

func TestBaselineNamespacesUnprivileged(t *testing.T) {
	snap := nsSnap()
	snap.Privileged = false
	text, p := baseline(t, snap, BaselineOptions{})
	if p.NeedsOwners() {
		t.Errorf("an unprivileged baseline needs owners:\n%s", text)
	}
	if rep := p.Check(snap); !rep.Clean() {
		t.Fatalf("findings %q\n%s", kinds(rep), text)
	}
	rules := ruleLines(text)
	for _, want := range []string{`netns: "web-1"`, `netns: "prod/api-7d9f8c6b5-x2k4p/api"`} {
		if !strings.Contains(rules, want) {
			t.Errorf("unprivileged baseline lacks %s\n%s", want, text)
		}
	}
	if strings.Contains(rules, "container:") {
		t.Errorf("unprivileged baseline names containers:\n%s", text)
	}
}

// An orphan namespace (no process, no mount) and a container without a
// name get no rule: the header says so, and check reports them.
func TestBaselineLeavesOutUnnamed(t *testing.T) {
	anon := &inventory.Container{Runtime: "containerd", ID: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}
	snap := snapOf(
		inNS(sock(inventory.TCP, "0.0.0.0", 22, 1, sshd), hostIno, "host"),
		inNS(sock(inventory.TCP, "0.0.0.0", 4444, 2, ncat), orphanIno, "orphan"),
		inCtr(sock(inventory.TCP, "0.0.0.0", 7000, 3, python), web1Ino, anon),
	)
	text, p := baseline(t, snap, BaselineOptions{})
	for _, want := range []string{
		"# 2 listening socket(s) got no rule, so check reports them.\n",
		"# listener on purpose, write a rule with netns: orphan.\n#   tcp 0.0.0.0:4444 in netns orphan, held by nc (pid 4242",
		"# In a container with no name, only an id",
		"container: ID.\n#   tcp 0.0.0.0:7000 in container containerd:0123456789ab, held by python3",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("baseline lacks %q\n%s", want, text)
		}
	}
	if len(p.Rules) != 1 {
		t.Errorf("%d rules, want the host's only\n%s", len(p.Rules), text)
	}
	// Without root too: the namespace's name is then the container's id.
	snap.Privileged = false
	if text, p := baseline(t, snap, BaselineOptions{}); len(p.Rules) != 1 || !strings.Contains(text, "# 2 listening socket(s) got no rule") {
		t.Errorf("unprivileged: %d rules, want the host's only\n%s", len(p.Rules), text)
	}
	snap.Privileged = true
	got := kinds(p.Check(snap))
	want := []string{
		"unexpected unexpected tcp 0.0.0.0:4444 in netns orphan [4026532701]",
		"unexpected unexpected tcp 0.0.0.0:7000 in container containerd:0123456789ab",
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("findings %q, want %q", got, want)
	}
}

const nsPolicy = `
allow:
  - name: ssh
    port: 22
  - name: web
    container: "web-*"
    port: 80
    process: nginx
  - name: blue-dns
    netns: blue
    port: 53
  - name: api
    container: "prod/api-*/api"
    port: 8080
  - name: anything-on-9000
    netns: "*"
    port: 9000
require:
  - name: web-1
    container: web-1
    proto: tcp
    port: 80
    process: nginx
`

func TestCheckNamespaceScope(t *testing.T) {
	p := mustParse(t, nsPolicy)
	tests := []struct {
		name string
		so   inventory.Socket
		want string // the finding's key, "" for none
	}{
		// A rule without netns or container is about the host.
		{"host", inNS(sock(inventory.TCP, "0.0.0.0", 22, 1, sshd), hostIno, "host"), ""},
		{"unnamed is host", sock(inventory.TCP, "0.0.0.0", 22, 1, sshd), ""},
		{"host rule not in container", inCtr(sock(inventory.TCP, "0.0.0.0", 22, 1, sshd), web1Ino, web1), "unexpected tcp 0.0.0.0:22 in container web-1"},
		{"host rule not in netns", inNS(sock(inventory.TCP, "0.0.0.0", 22, 1, sshd), blueIno, "blue"), "unexpected tcp 0.0.0.0:22 in netns blue"},
		{"host rule not in pid netns", inNS(sock(inventory.TCP, "0.0.0.0", 22, 1, sshd), pidIno, "pid 1 (sshd)"), "unexpected tcp 0.0.0.0:22 in netns pid 1 (sshd)"},
		// A container rule is about its containers only.
		{"container glob", inCtr(sock(inventory.TCP, "::", 80, 1, nginx1), web2Ino, web2), ""},
		{"container rule not on host", inNS(sock(inventory.TCP, "0.0.0.0", 80, 1, nginx1), hostIno, "host"), "unexpected tcp 0.0.0.0:80"},
		{"container rule not in other netns", inNS(sock(inventory.TCP, "0.0.0.0", 80, 1, nginx1), blueIno, "blue"), "unexpected tcp 0.0.0.0:80 in netns blue"},
		{"wrong owner in the container", inCtr(sock(inventory.TCP, "0.0.0.0", 80, 1, ncat), web1Ino, web1), "wrong_owner tcp 0.0.0.0:80 in container web-1"},
		{"pod glob", inCtr(sock(inventory.TCP, "::", 8080, 1, apiP), apiAIno, apiA), ""},
		{"other k8s namespace", inCtr(sock(inventory.TCP, "::", 8080, 1, apiP), apiAIno,
			&inventory.Container{Runtime: "containerd", ID: "ab", Pod: apiA.Pod, Namespace: "staging", Container: "api"}),
			"unexpected tcp [::]:8080 in container staging/api-7d9f8c6b5-x2k4p/api"},
		{"netns by name", inNS(sock(inventory.UDP, "10.200.0.1", 53, 1, dnsmq), blueIno, "blue"), ""},
		{"netns rule not on host", inNS(sock(inventory.UDP, "10.200.0.1", 53, 1, dnsmq), hostIno, "host"), "unexpected udp 10.200.0.1:53"},
		// "*" is every namespace, the host's included.
		{"star on host", inNS(sock(inventory.TCP, "127.0.0.1", 9000, 1, python), hostIno, "host"), ""},
		{"star in container", inCtr(sock(inventory.TCP, "127.0.0.1", 9000, 1, python), web1Ino, web1), ""},
		{"star in orphan", inNS(sock(inventory.TCP, "127.0.0.1", 9000, 1, python), orphanIno, "orphan"), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			web1Up := inCtr(sock(inventory.TCP, "0.0.0.0", 80, 99, nginx1), web1Ino, web1)
			rep := p.Check(snapOf(tt.so, web1Up))
			var got []string
			for _, f := range rep.Findings {
				got = append(got, f.Key)
			}
			if tt.want == "" && len(got) != 0 || tt.want != "" && (len(got) != 1 || got[0] != tt.want) {
				t.Errorf("findings %q, want %q", got, tt.want)
			}
		})
	}
}

// Host findings keep the keys and messages they had before porteiro saw
// other namespaces, byte for byte: stored events and alert state key on
// them.
func TestCheckHostKeysUnchanged(t *testing.T) {
	p := mustParse(t, basePolicy)
	for _, name := range []string{"", "host"} {
		rep := p.Check(snapOf(
			inNS(sock(inventory.TCP, "0.0.0.0", 4444, 1, ncat), hostIno, name),
			inNS(sock(inventory.TCP, "0.0.0.0", 22, 2, ncat), hostIno, name),
			inNS(sock(inventory.TCP, "0.0.0.0", 5432, 3, pg), hostIno, name),
		))
		want := []string{
			"unexpected unexpected tcp 0.0.0.0:4444",
			"wrong_owner wrong_owner tcp 0.0.0.0:22",
			"too_exposed too_exposed tcp 0.0.0.0:5432",
			"missing missing dns",
		}
		if got := kinds(rep); strings.Join(got, "|") != strings.Join(want, "|") {
			t.Errorf("netns name %q: findings %q, want %q", name, got, want)
		}
		if m := rep.Findings[0].Message; !strings.HasPrefix(m, "tcp 0.0.0.0:4444 is listening and no rule allows it; held by nc (pid 4242") {
			t.Errorf("message %q", m)
		}
	}
}

// A new listener in a container is a finding of its own that names the
// container, even when another container or the host has the same port.
func TestCheckFindingNamesContainer(t *testing.T) {
	_, p := baseline(t, nsSnap(), BaselineOptions{})
	snap := nsSnap()
	snap.Sockets = append(snap.Sockets,
		inCtr(sock(inventory.TCP, "0.0.0.0", 6379, 20, ncat), web1Ino, web1),
		inCtr(sock(inventory.TCP, "0.0.0.0", 6379, 21, ncat), web2Ino, web2),
		inNS(sock(inventory.TCP, "0.0.0.0", 6379, 22, ncat), hostIno, "host"),
		inNS(sock(inventory.TCP, "0.0.0.0", 6379, 23, ncat), orphanIno, "orphan"),
		inNS(sock(inventory.TCP, "0.0.0.0", 6379, 24, ncat), orphanIno+1, "orphan"),
	)
	rep := p.Check(snap)
	want := []string{
		"unexpected tcp 0.0.0.0:6379 in container web-1",
		"unexpected tcp 0.0.0.0:6379 in container web-2",
		"unexpected tcp 0.0.0.0:6379",
		"unexpected tcp 0.0.0.0:6379 in netns orphan [4026532701]",
		"unexpected tcp 0.0.0.0:6379 in netns orphan [4026532702]",
	}
	if len(rep.Findings) != len(want) {
		t.Fatalf("findings %q, want %q", kinds(rep), want)
	}
	for i, f := range rep.Findings {
		if f.Key != want[i] {
			t.Errorf("finding %d key %q, want %q", i, f.Key, want[i])
		}
	}
	f := rep.Findings[0]
	if !strings.HasPrefix(f.Message, "tcp 0.0.0.0:6379 in container web-1 is listening and no rule allows it; held by nc (pid 4242") {
		t.Errorf("message %q does not name the container", f.Message)
	}
	if f.Socket == nil || f.Socket.Container == nil || f.Socket.Container.Name != "web-1" || f.Socket.NetNSName != "web-1" {
		t.Errorf("finding socket %+v does not carry the container", f.Socket)
	}
}

func TestCheckMissingInContainer(t *testing.T) {
	p := mustParse(t, nsPolicy)
	// web-1's port 80 is there, but on the host: it does not count.
	rep := p.Check(snapOf(inNS(sock(inventory.TCP, "0.0.0.0", 80, 1, nginx1), hostIno, "host")))
	var miss *Finding
	for i := range rep.Findings {
		if rep.Findings[i].Kind == Missing {
			miss = &rep.Findings[i]
		}
	}
	if miss == nil || miss.Key != "missing web-1" || miss.Message != `tcp port 80 in container web-1 is not listening: required by rule "web-1" (process nginx)` ||
		miss.Expected != "tcp port 80 in container web-1, process nginx" {
		t.Errorf("missing finding %+v", miss)
	}
}

// Containers on the host's network have no namespace of their own: their
// sockets match a container rule by their processes' container ids.
func TestCheckContainerOnHostNetwork(t *testing.T) {
	p := mustParse(t, "allow:\n  - port: 80\n    container: 3f2a9c1b2d3e\n")
	so := inNS(sock(inventory.TCP, "0.0.0.0", 80, 1, nginx), hostIno, "host")
	so.Processes[0].Container = web1.ID
	if rep := p.Check(snapOf(so)); !rep.Clean() {
		t.Errorf("host-network container: %q", kinds(rep))
	}
	// And by id in its own namespace too.
	if rep := p.Check(snapOf(inCtr(sock(inventory.TCP, "0.0.0.0", 80, 1, nginx), web1Ino, web1))); !rep.Clean() {
		t.Errorf("container by short id: %q", kinds(rep))
	}
	if rep := p.Check(snapOf(inCtr(sock(inventory.TCP, "0.0.0.0", 80, 1, nginx), web2Ino, web2))); rep.Clean() {
		t.Error("another container matches the id")
	}
}

func TestParseNamespaceRules(t *testing.T) {
	p := mustParse(t, "allow:\n  - netns: [host, \"b*\"]\n    container: [web-1, \"prod/*/api\"]\n    port: 80\n  - netns: blue\n")
	if r := p.Rules[0]; strings.Join(r.NetNS, ",") != "host,b*" || strings.Join(r.Container, ",") != "web-1,prod/*/api" {
		t.Errorf("rule %+v", r)
	}
	if p.NeedsOwners() != true {
		t.Error("a container rule needs root to read the runtimes' names")
	}
	if mustParse(t, "allow:\n  - netns: blue\n    port: 53\n").NeedsOwners() {
		t.Error("a netns rule needs owners")
	}
	for _, tt := range []struct{ src, want string }{
		{"allow:\n  - port: 1\n    netns: \"\"\n", `p.yaml:3:12: empty netns: remove the key to match anything`},
		{"allow:\n  - port: 1\n    netns: \"[a\"\n", `p.yaml:3:12: bad netns pattern "[a": syntax error in pattern`},
		{"allow:\n  - port: 1\n    container: [web, \"\"]\n", `p.yaml:3:22: empty container: remove the key to match anything`},
		{"allow:\n  - port: 1\n    container: \"web[\"\n", `p.yaml:3:16: bad container pattern "web[": syntax error in pattern`},
		{"allow:\n  - port: 1\n    netns: []\n", `p.yaml:3:12: netns is an empty list`},
		{"allow:\n  - port: 1\n    netns:\n", `netns has no value`},
		{"allow:\n  - port: 1\n    netns: {a: b}\n", `p.yaml:3:12: netns must be a single value, not a mapping`},
	} {
		_, err := Parse([]byte(tt.src), "p.yaml")
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v, want %q", tt.src, err, tt.want)
		}
	}
}

func TestPodPattern(t *testing.T) {
	for _, tt := range []struct{ pod, want string }{
		{"api-7d9f8c6b5-x2k4p", "api-*"}, // Deployment
		{"web-frontend-5c8b6f9d4-q7wzt", "web-frontend-*"},
		{"fluentd-x2k4p", "fluentd-*"}, // DaemonSet
		{"db-0", "db-0"},               // StatefulSet
		{"standalone", "standalone"},   // a bare pod
		{"job-abcde", "job-abcde"},     // vowels: not generated
		{"we*rd-x2k4p", `we\*rd-*`},
	} {
		if got, _ := podPattern(tt.pod); got != tt.want {
			t.Errorf("podPattern(%q) = %q, want %q", tt.pod, got, tt.want)
		}
	}
}

// Ignore rules have the same scope as the others: without netns, the host
// only.
func TestIgnoreNamespaceScope(t *testing.T) {
	inWeb := inCtr(sock(inventory.UDP, "0.0.0.0", 40000, 1, ncat), web1Ino, web1)
	onHost := inNS(sock(inventory.UDP, "0.0.0.0", 40000, 2, ncat), hostIno, "host")
	p := mustParse(t, "ignore:\n  - proto: udp\n    port: 32768-60999\n")
	if got := kinds(p.Check(snapOf(inWeb, onHost))); len(got) != 1 || got[0] != "unexpected unexpected udp 0.0.0.0:40000 in container web-1" {
		t.Errorf("host-only ignore: findings %q", got)
	}
	p = mustParse(t, "ignore:\n  - netns: \"*\"\n    proto: udp\n    port: 32768-60999\n")
	if rep := p.Check(snapOf(inWeb, onHost)); !rep.Clean() {
		t.Errorf("ignore everywhere: findings %q", kinds(rep))
	}
}

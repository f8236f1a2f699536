package procfs

import (
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// A realistic stat line: comm "(sd-pam)" style with spaces and parentheses.
const statWeird = `4242 (my (odd) prog) S 1 4242 4242 0 -1 4194560 1000 0 0 0 150 50 0 0 20 0 1 0 123456 10000000 512 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0`

func TestParseStat(t *testing.T) {
	s, err := ParseStat([]byte(statWeird + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := Stat{PID: 4242, Comm: "my (odd) prog", State: "S", PPID: 1, UTime: 150, STime: 50, StartTicks: 123456, RSSPages: 512}
	if s != want {
		t.Errorf("ParseStat = %+v\nwant %+v", s, want)
	}
	z, err := ParseStat([]byte(`77 (defunct) Z 4242 77 77 0 -1 4227084 0 0 0 0 0 0 0 0 20 0 1 0 999 0 0 18446744073709551615 0 0 0 0 0 0 0 0 0 0 0 0 17 0 0 0 0 0 0 0 0 0 0 0 0 0 0`))
	if err != nil || z.State != "Z" || z.PPID != 4242 || z.StartTicks != 999 {
		t.Errorf("zombie: %+v, %v", z, err)
	}
	for _, bad := range []string{"", "12 noparen S", "12 (x) S 1 2", "x (a) S 1 1 1 0 -1 0 0 0 0 0 0 0 0 0 20 0 1 0 1 0 0", statWeird[:40]} {
		if _, err := ParseStat([]byte(bad)); err == nil {
			t.Errorf("ParseStat(%q): want error", bad)
		}
	}
}

func TestParseCmdline(t *testing.T) {
	if got := ParseCmdline([]byte("/usr/sbin/sshd\x00-D\x00\x00")); !reflect.DeepEqual(got, []string{"/usr/sbin/sshd", "-D"}) {
		t.Errorf("got %q", got)
	}
	if got := ParseCmdline(nil); got != nil {
		t.Errorf("empty cmdline = %q, want nil", got)
	}
	if got := ParseCmdline([]byte("nginx: worker process")); !reflect.DeepEqual(got, []string{"nginx: worker process"}) {
		t.Errorf("rewritten argv = %q", got)
	}
}

func TestParseCgroup(t *testing.T) {
	tests := []struct {
		name, in string
		want     Cgroup
	}{
		{"v2 service", "0::/system.slice/ssh.service\n", Cgroup{Unit: "ssh.service"}},
		{"v2 user service", "0::/user.slice/user-1000.slice/user@1000.service/app.slice/syncthing.service\n", Cgroup{Unit: "syncthing.service"}},
		{"v2 session scope", "0::/user.slice/user-1000.slice/session-3.scope\n", Cgroup{Unit: "session-3.scope"}},
		{"v2 docker", "0::/system.slice/docker-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope\n",
			Cgroup{Container: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}},
		{"v2 podman", "0::/machine.slice/libpod-aaaaaaaaaaaabbbbbbbbbbbbccccccccccccddddddddddddeeeeeeeeeeeeffff.scope/container\n",
			Cgroup{Container: "aaaaaaaaaaaabbbbbbbbbbbbccccccccccccddddddddddddeeeeeeeeeeeeffff"}},
		{"v1 docker", "12:pids:/docker/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n1:name=systemd:/docker/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n",
			Cgroup{Container: "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"}},
		{"kubernetes cri-containerd", "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod1.slice/cri-containerd-abcdefabcdefabcdefabcdef0123456789abcdef0123456789abcdef01234567.scope\n",
			Cgroup{Container: "abcdefabcdefabcdefabcdef0123456789abcdef0123456789abcdef01234567"}},
		{"lxc", "0::/lxc.payload.web01/system.slice/nginx.service\n", Cgroup{Unit: "nginx.service", Container: "web01"}},
		{"v1 systemd only", "1:name=systemd:/system.slice/cron.service\n2:cpu:/\n", Cgroup{Unit: "cron.service"}},
		{"root", "0::/\n", Cgroup{}},
		{"garbage", "nonsense\n::\n", Cgroup{}},
	}
	for _, tt := range tests {
		if got := ParseCgroup([]byte(tt.in)); got != tt.want {
			t.Errorf("%s: ParseCgroup = %+v, want %+v", tt.name, got, tt.want)
		}
	}
}

func TestParseLinks(t *testing.T) {
	if n, ok := ParseSocketLink([]byte("socket:[4242]")); !ok || n != 4242 {
		t.Errorf("socket link = %d %v", n, ok)
	}
	for _, bad := range []string{"socket:[]", "socket:[12a]", "pipe:[12]", "/dev/null", "socket:[99999999999999999999999]", "socket:[1"} {
		if _, ok := ParseSocketLink([]byte(bad)); ok {
			t.Errorf("ParseSocketLink(%q) accepted", bad)
		}
	}
	if n, ok := ParseNSLink([]byte("net:[4026531840]")); !ok || n != 4026531840 {
		t.Errorf("ns link = %d %v", n, ok)
	}
	if bt, err := ParseBootTime([]byte("cpu 1 2 3\nbtime 1700000000\nprocesses 5\n")); err != nil || bt != 1700000000 {
		t.Errorf("btime = %d %v", bt, err)
	}
}

func FuzzParseStat(f *testing.F) {
	f.Add([]byte(statWeird))
	f.Add([]byte("1 (a) S 0"))
	f.Add([]byte(") ("))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := ParseStat(b)
		if err == nil && strings.Count(string(b), ")") == 0 {
			t.Fatalf("accepted %q without ')': %+v", b, s)
		}
	})
}

func FuzzParseCgroup(f *testing.F) {
	f.Add([]byte("0::/system.slice/ssh.service\n"))
	f.Add([]byte("12:pids:/docker/0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\n"))
	f.Add([]byte("0::/lxc.payload.web01/x"))
	f.Fuzz(func(t *testing.T, b []byte) {
		c := ParseCgroup(b)
		if c.Unit != "" && !strings.HasSuffix(c.Unit, ".service") && !strings.HasSuffix(c.Unit, ".scope") {
			t.Fatalf("unit %q is not a unit name", c.Unit)
		}
	})
}

func FuzzParseSocketLink(f *testing.F) {
	f.Add([]byte("socket:[4242]"))
	f.Add([]byte("pipe:[1]"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, ok := ParseSocketLink(b)
		if ok && string(b) != "socket:["+uitoa(n)+"]" && !strings.HasPrefix(string(b), "socket:[0") {
			t.Fatalf("ParseSocketLink(%q) = %d", b, n)
		}
	})
}

func uitoa(n uint64) string {
	if n == 0 {
		return "0"
	}
	var b []byte
	for n > 0 {
		b = append([]byte{byte('0' + n%10)}, b...)
		n /= 10
	}
	return string(b)
}

// scopeIDRegexp is the pattern isContainerScope is written from; the tests
// hold the two to the same answers.
var scopeIDRegexp = regexp.MustCompile(`^(?:docker|libpod|cri-containerd|crio|containerd)-([0-9a-f]{12,64})\.scope$`)

func TestIsContainerScope(t *testing.T) {
	hex64 := "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, tt := range []struct {
		in   string
		want bool
	}{
		{"docker-" + hex64 + ".scope", true},
		{"libpod-" + hex64[:12] + ".scope", true},
		{"cri-containerd-" + hex64 + ".scope", true},
		{"crio-" + hex64[:40] + ".scope", true},
		{"containerd-" + hex64 + ".scope", true},
		{"docker-" + hex64[:11] + ".scope", false},             // too short
		{"docker-" + hex64 + "0.scope", false},                 // 65 digits
		{"docker-" + strings.ToUpper(hex64) + ".scope", false}, // upper case
		{"docker-" + hex64 + ".service", false},
		{"podman-" + hex64 + ".scope", false},
		{"session-3.scope", false},
		{"docker-" + hex64[:20] + "g" + ".scope", false},
		{".scope", false},
		{"", false},
	} {
		if got := isContainerScope(tt.in); got != tt.want {
			t.Errorf("isContainerScope(%q) = %v, want %v", tt.in, got, tt.want)
		}
		if re := scopeIDRegexp.MatchString(tt.in); re != tt.want {
			t.Errorf("the regexp says %v for %q: the table is wrong", re, tt.in)
		}
	}
}

func FuzzIsContainerScope(f *testing.F) {
	f.Add("docker-0123456789abcdef.scope")
	f.Add("cri-containerd-0123456789ab.scope")
	f.Add("crio-0123456789a.scope")
	f.Add("session-3.scope")
	f.Fuzz(func(t *testing.T, s string) {
		if got, want := isContainerScope(s), scopeIDRegexp.MatchString(s); got != want {
			t.Fatalf("isContainerScope(%q) = %v, the regexp says %v", s, got, want)
		}
	})
}

package netns

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

const mountinfo = `22 28 0:20 / /proc rw,nosuid - proc proc rw
640 28 0:4 net:[4026532280] /run/netns/blue rw shared:5 - nsfs nsfs rw
641 28 0:4 net:[4026532280] /var/lib/x/blue rw - nsfs nsfs rw
642 28 0:4 net:[4026532999] /run/docker/netns/0123abcd rw - nsfs nsfs rw
643 28 0:4 mnt:[4026532111] /run/mntns/m rw - nsfs nsfs rw
644 28 0:4 net:[4026533000] /run/netns/with\040space rw - nsfs nsfs rw
645 28 0:4 net:[notanumber] /run/netns/bad rw - nsfs nsfs rw
this line is not mountinfo nsfs
`

func TestNSMounts(t *testing.T) {
	got := NSMounts([]byte(mountinfo))
	want := []NSMount{
		{4026532280, "/run/netns/blue"},
		{4026532280, "/var/lib/x/blue"},
		{4026532999, "/run/docker/netns/0123abcd"},
		{4026533000, "/run/netns/with space"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("NSMounts:\n got %v\nwant %v", got, want)
	}
}

func TestIPNetnsName(t *testing.T) {
	for _, tc := range []struct {
		path, name string
		ok         bool
	}{
		{"/run/netns/blue", "blue", true},
		{"/var/run/netns/red", "red", true},
		{"/run/netns/", "", false},
		{"/run/netns/a/b", "", false},
		{"/run/docker/netns/abc", "", false},
	} {
		name, ok := ipNetnsName(tc.path)
		if name != tc.name || ok != tc.ok {
			t.Errorf("ipNetnsName(%q) = %q, %v; want %q, %v", tc.path, name, ok, tc.name, tc.ok)
		}
	}
}

func TestName(t *testing.T) {
	for _, tc := range []struct {
		n    Namespace
		want string
	}{
		{Namespace{Host: true, Names: []string{"x"}}, "host"},
		{Namespace{Names: []string{"blue", "b2"}, First: 7, FirstComm: "sh"}, "blue"},
		{Namespace{First: 4242, FirstComm: "python3", Members: 1}, "pid 4242 (python3)"},
		{Namespace{FromSocket: true}, "orphan"},
	} {
		if got := tc.n.Name(); got != tc.want {
			t.Errorf("%+v: Name() = %q, want %q", tc.n, got, tc.want)
		}
	}
	if !(&Namespace{FromSocket: true}).Orphan() || (&Namespace{Mounts: []string{"/run/netns/x"}}).Orphan() {
		t.Error("Orphan: a namespace with a mount is not an orphan; one with neither member nor mount is")
	}
}

// TestDiscoverFixture runs Discover on a procfs tree of symlinks and files:
// readlink gives the namespace the way /proc does.
func TestDiscoverFixture(t *testing.T) {
	root := t.TempDir()
	proc := func(pid int, net, mnt uint64, comm string, threads map[int]uint64) {
		dir := filepath.Join(root, strconv.Itoa(pid))
		must(t, os.MkdirAll(filepath.Join(dir, "ns"), 0o755))
		must(t, os.Symlink("net:["+strconv.FormatUint(net, 10)+"]", filepath.Join(dir, "ns/net")))
		must(t, os.Symlink("mnt:["+strconv.FormatUint(mnt, 10)+"]", filepath.Join(dir, "ns/mnt")))
		must(t, os.WriteFile(filepath.Join(dir, "comm"), []byte(comm+"\n"), 0o644))
		must(t, os.WriteFile(filepath.Join(dir, "mountinfo"), []byte(mountinfo), 0o644))
		must(t, os.MkdirAll(filepath.Join(dir, "task", strconv.Itoa(pid)), 0o755))
		for tid, ns := range threads {
			td := filepath.Join(dir, "task", strconv.Itoa(tid), "ns")
			must(t, os.MkdirAll(td, 0o755))
			must(t, os.Symlink("net:["+strconv.FormatUint(ns, 10)+"]", filepath.Join(td, "net")))
		}
	}
	proc(1, 100, 500, "init", nil)
	proc(2, 100, 500, "kthreadd", nil)
	proc(4242, 200, 600, "python3\x1b[31m", nil)
	// A mount only the container's own mount namespace has.
	must(t, os.WriteFile(filepath.Join(root, "4242/mountinfo"),
		[]byte("700 1 0:4 net:[4026534000] /run/netns/inner rw - nsfs nsfs rw\n"), 0o644))
	proc(4243, 200, 500, "python3", nil)
	proc(5000, 100, 500, "worker", map[int]uint64{5001: 300})
	// A scanner's thread passing through namespace 200, whose process has
	// a lower pid than 200's members: it must not rename it.
	proc(3, 100, 500, "scanner", map[int]uint64{3001: 200})
	// And one whose first thread is passing through 200 while its other
	// threads are home: /proc/7/ns/net says 200, the process is in 100.
	proc(7, 200, 500, "scanner2", map[int]uint64{7001: 100, 7002: 100})
	// A porteiro thread visiting namespace 400, which nothing else is
	// in, by its name (netns.Do): 400 is not found through it.
	proc(8, 100, 500, "porteirod", map[int]uint64{8001: 400, 8002: 100})
	must(t, os.WriteFile(filepath.Join(root, "8/task/8001/comm"), []byte(VisitorComm+"\n"), 0o644))
	must(t, os.MkdirAll(filepath.Join(root, "self/ns"), 0o755))
	must(t, os.Symlink("net:[100]", filepath.Join(root, "self/ns/net")))
	must(t, os.Symlink("mnt:[500]", filepath.Join(root, "self/ns/mnt")))
	must(t, os.WriteFile(filepath.Join(root, "self/mountinfo"), []byte(mountinfo), 0o644))

	s, err := Discover(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	if s.Host != 100 || s.Self != 100 {
		t.Errorf("host %d self %d, want 100 100", s.Host, s.Self)
	}
	want := map[uint64]string{
		100:        "host",
		200:        "pid 4242 (python3\x1b[31m)",
		300:        "pid 5000 (worker)",
		4026532280: "blue",
		4026532999: "orphan", // a mount but no ip netns name and no member
		4026533000: "with space",
		4026534000: "orphan", // mounted in another mount namespace: no ip netns name here
	}
	for ino, name := range want {
		n := s.ByInode[ino]
		if n == nil {
			t.Errorf("namespace %d not found", ino)
			continue
		}
		if n.Name() != name {
			t.Errorf("namespace %d: name %q, want %q", ino, n.Name(), name)
		}
	}
	if len(s.ByInode) != len(want) {
		t.Errorf("%d namespaces, want %d", len(s.ByInode), len(want))
	}
	if n := s.ByInode[200]; n.Members != 2 || !slices.Equal(n.MemberPIDs(), []int{4242, 4243}) {
		t.Errorf("namespace 200: %d members %v", n.Members, n.MemberPIDs())
	}
	if n := s.ByInode[4026534000]; n == nil || len(n.Mounts) != 1 || n.Orphan() {
		t.Errorf("the container's own mount: %+v", n)
	}
	if n := s.ByInode[4026532999]; n.Orphan() || n.Members != 0 {
		t.Errorf("a mounted namespace is not an orphan: %+v", n)
	}
	sorted := s.Sorted()
	if !sorted[0].Host {
		t.Errorf("Sorted does not put the host first: %+v", sorted[0])
	}
}

// TestDiscoverLive finds this process's own namespace on the live system.
func TestDiscoverLive(t *testing.T) {
	s, err := Discover(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	self := s.ByInode[s.Self]
	if self == nil || !self.Self || self.Members == 0 {
		t.Fatalf("own namespace %d: %+v", s.Self, self)
	}
	found := false
	for _, pid := range self.MemberPIDs() {
		found = found || pid > 0
	}
	if !found {
		t.Error("own namespace has no member pid")
	}
}

func FuzzNSMounts(f *testing.F) {
	f.Add([]byte(mountinfo))
	f.Add([]byte("1 2 0:4 net:[1] / rw - nsfs nsfs rw\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, m := range NSMounts(b) {
			if m.Inode == 0 && m.Path == "" {
				t.Errorf("empty mount from %q", b)
			}
		}
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// BenchmarkDiscover finds the namespaces of the live host: its cost
// grows with the number of processes.
func BenchmarkDiscover(b *testing.B) {
	for b.Loop() {
		if _, err := Discover(context.Background(), ""); err != nil {
			b.Fatal(err)
		}
	}
}

package container

import (
	"bytes"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"
)

// The ids of the fixture containers under testdata/ (sha256 of a label, so
// they look like the runtimes' own).
const (
	idDockerWeb   = "f31f384749f9115acf01fcf82f5a966b59dcc0a4cbd7c9740888c0bf32aa2bbb"
	idDockerV1    = "2a759f8fac4d817ff2bc28c224d51c5030f915c0c14997110517984ca9aa8d0f"
	idPodmanSD    = "75af722d4329d457127e2bc15b52ab0d8a53c86583fbfdc7cf6f6f2934139cba"
	idPodmanCgfs  = "3a1cbb34a0179bf0908936bf8ed69503165dae21c45d790e2d9f2facf2814800"
	idCtdNginx    = "b7e21db19975fa925bcfa05f83b430f49b1a208d406bb0202213ae9674404b23"
	idCtdPause    = "1a82c62dbe0146a27569fccfb33dae9fa3ab1a98e21bb0134c4226e4c3647550"
	idDockershim  = "10331f84d4810bb44ec103310d55569355f57f8fb9f175d91c35d70b168eee4d"
	idCrioRedis   = "9d5128d60fc8700442dedc0ff1aee26728830447b2144dc9851f3f6b1c9695be"
	idCrioLabels  = "403f1b42889d36cd2b8ec7793273498f568e51b8ea2fc4b2e130e9f2f3b121b5"
	idDockerZero  = "331bda559f60ff642c8116b5da69d6dd25096f19bca620429830061a9f457129"
	idDockerHuge  = "5e208a460c198958ce6526e2b4e896c7add7c11354d213cb2e3c18c4af9d75e9"
	idDockerEsc   = "4aa01bb0e7c6f7efa743178fda7fdda8525b45f1d1e2b7dbbd5ff315b33e0780"
	idDockerNUL   = "06bdd0ccd2a9abccbb4cfa7694e19b74cc11ebbf96b3517c8fad5c3b622a68f4"
	idDockerLong  = "cb6ef4a3aaff413fa92ee21bc78eb369838003517ee467558c96df5e3c6c82f7"
	idDockerMoved = "43addd1adc1eae86803c43b6ad2c039907963958bb554852b798a9b50a8b1137"
	idDockerNone  = "13f6392ab5f3c2c6419e809fade5e374ed025af0125db153af4f3aaa787bb347"

	uidNginx = "0f6a2c3e-4b5d-4e6f-8a9b-0c1d2e3f4a5b"
	uidApp   = "9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d"
	uidRedis = "11111111-2222-4333-8444-555555555555"
)

func TestFromCgroup(t *testing.T) {
	tests := []struct {
		name, in string
		want     Info
		ok       bool
	}{
		{"docker systemd", "0::/system.slice/docker-" + idDockerWeb + ".scope\n", Info{Runtime: Docker, ID: idDockerWeb}, true},
		{"docker cgroupfs v1", "4:memory:/docker/" + idDockerV1 + "\n1:name=systemd:/docker/" + idDockerV1 + "\n0::/\n", Info{Runtime: Docker, ID: idDockerV1}, true},
		{"docker rootless", "0::/user.slice/user-1000.slice/user@1000.service/app.slice/docker.service/docker-" + idDockerWeb + ".scope\n", Info{Runtime: Docker, ID: idDockerWeb}, true},
		{"github actions job", "0::/actions_job/" + idDockerWeb + "\n", Info{Runtime: Docker, ID: idDockerWeb}, true},
		{"ecs", "3:cpu:/ecs/5a0d5ceddf6c44c1928d367a815d890f/" + idDockerWeb + "\n", Info{Runtime: Docker, ID: idDockerWeb}, true},
		{"podman systemd nested", "0::/machine.slice/libpod-" + idPodmanSD + ".scope/container\n", Info{Runtime: Podman, ID: idPodmanSD}, true},
		{"podman cgroupfs", "0::/libpod_parent/libpod-" + idPodmanCgfs + "\n", Info{Runtime: Podman, ID: idPodmanCgfs}, true},
		{"podman conmon", "0::/machine.slice/libpod-conmon-" + idPodmanSD + ".scope\n", Info{}, false},
		{"k8s containerd", "0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + strings.ReplaceAll(uidNginx, "-", "_") + ".slice/cri-containerd-" + idCtdNginx + ".scope\n",
			Info{Runtime: Containerd, ID: idCtdNginx, PodUID: uidNginx}, true},
		{"k8s guaranteed", "0::/kubepods.slice/kubepods-pod" + strings.ReplaceAll(uidNginx, "-", "_") + ".slice/cri-containerd-" + idCtdNginx + ".scope\n",
			Info{Runtime: Containerd, ID: idCtdNginx, PodUID: uidNginx}, true},
		{"k8s cgroupfs bare id", "0::/kubepods/besteffort/pod" + uidApp + "/" + idDockershim + "\n", Info{Runtime: Containerd, ID: idDockershim, PodUID: uidApp}, true},
		{"k8s cri-o", "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + strings.ReplaceAll(uidRedis, "-", "_") + ".slice/crio-" + idCrioRedis + ".scope\n",
			Info{Runtime: CRIO, ID: idCrioRedis, PodUID: uidRedis}, true},
		{"cri-o cgroupfs", "0::/kubepods/burstable/pod" + uidRedis + "/crio-" + idCrioRedis + "\n", Info{Runtime: CRIO, ID: idCrioRedis, PodUID: uidRedis}, true},
		{"cri-o conmon", "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + strings.ReplaceAll(uidRedis, "-", "_") + ".slice/crio-conmon-" + idCrioRedis + ".scope\n", Info{}, false},
		{"kind node pod", "0::/system.slice/docker-" + idDockerWeb + ".scope/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod" + strings.ReplaceAll(uidApp, "-", "_") + ".slice/cri-containerd-" + idCtdNginx + ".scope\n",
			Info{Runtime: Containerd, ID: idCtdNginx, PodUID: uidApp}, true},
		{"nspawn", "0::/machine.slice/machine-my\\x2dbox.scope/payload/system.slice/nginx.service\n", Info{Runtime: Nspawn, Name: "my-box"}, true},
		{"nspawn old layout", "1:name=systemd:/machine.slice/machine-deb12.scope\n", Info{Runtime: Nspawn, Name: "deb12"}, true},
		{"nspawn supervisor", "0::/machine.slice/machine-my\\x2dbox.scope/supervisor\n", Info{}, false},
		{"libvirt vm", "0::/machine.slice/machine-qemu\\x2d1\\x2dwin11.scope/libvirt/emulator\n", Info{}, false},
		{"nspawn hostile name", "0::/machine.slice/machine-a\\x1b\\x5b2Jb\\x0a.scope/payload\n", Info{Runtime: Nspawn, Name: "a\x1b[2Jb\n"}, true},
		{"nspawn NUL name", "0::/machine.slice/machine-\\x00.scope/payload\n", Info{}, false},
		{"lxc payload", "0::/lxc.payload.web01/system.slice/nginx.service\n", Info{Runtime: LXC, Name: "web01"}, true},
		{"lxc old", "12:pids:/lxc/db1\n1:name=systemd:/lxc/db1/init.scope\n0::/\n", Info{Runtime: LXC, Name: "db1"}, true},
		{"lxc monitor", "0::/lxc.monitor.web01\n", Info{}, false},
		{"docker in lxc", "0::/lxc.payload.web01/system.slice/docker-" + idDockerWeb + ".scope\n", Info{Runtime: Docker, ID: idDockerWeb}, true},
		{"host service", "0::/system.slice/ssh.service\n", Info{}, false},
		{"hybrid host", "9:name=systemd:/user.slice/user-0.slice/session-1.scope\n4:memory:/process_api/1340ebae664812cd87c20b54f43d4264\n0::/\n", Info{}, false},
		{"short id rejected", "0::/system.slice/docker-abc.scope\n", Info{}, false},
		{"upper-case id rejected", "0::/docker/" + strings.ToUpper(idDockerWeb) + "\n", Info{}, false},
		{"pod uid malformed", "0::/kubepods/besteffort/podxyz/" + idDockershim + "\n", Info{}, false},
		{"root", "0::/\n", Info{}, false},
		{"empty", "", Info{}, false},
		{"garbage", "nonsense\n::\n:\n", Info{}, false},
	}
	for _, tt := range tests {
		got, ok := FromCgroup([]byte(tt.in))
		if ok != tt.ok || got != tt.want {
			t.Errorf("%s: FromCgroup = %+v, %v; want %+v, %v", tt.name, got, ok, tt.want, tt.ok)
		}
	}
}

// copyTree copies a fixture tree, symlinks included, so a test can add
// hostile files to it without touching testdata.
func copyTree(t *testing.T, src string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		out := filepath.Join(dst, rel)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, out)
		case d.IsDir():
			return os.MkdirAll(out, 0o755)
		default:
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			return os.WriteFile(out, b, 0o644)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// hostileRoot is the fixture root plus what is too big to commit: a
// config.v2.json of 10 MB.
func hostileRoot(t *testing.T) string {
	t.Helper()
	root := copyTree(t, "testdata/root")
	dir := filepath.Join(root, "var/lib/docker/containers", idDockerHuge)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	big := append([]byte(`{"ID":"`+idDockerHuge+`","Name":"/huge","Config":{"Labels":{"x":"`), bytes.Repeat([]byte("a"), 10<<20)...)
	big = append(big, `"}}}`...)
	if err := os.WriteFile(filepath.Join(dir, "config.v2.json"), big, 0o644); err != nil {
		t.Fatal(err)
	}
	return root
}

func TestForPIDFixtures(t *testing.T) {
	n := &Namer{Root: hostileRoot(t)}
	const proc = "testdata/proc"
	long := strings.Repeat("é", 500)[:MaxName-1] // 126 runes: a cut on a rune boundary
	tests := []struct {
		pid  int
		want Info
		ok   bool
	}{
		{100, Info{Runtime: Docker, ID: idDockerWeb, Name: "web-1"}, true},
		{101, Info{Runtime: Docker, ID: idDockerV1, Name: "legacy_db"}, true},
		{102, Info{Runtime: Podman, ID: idPodmanSD, Name: "api"}, true},
		{103, Info{Runtime: Podman, ID: idPodmanCgfs, Name: "porteiro-e2e-web"}, true},
		{104, Info{}, false},
		{110, Info{Runtime: Containerd, ID: idCtdNginx, Name: "nginx-7c5ddbdf54-abcde/nginx", Pod: "nginx-7c5ddbdf54-abcde", Namespace: "default", Container: "nginx", PodUID: uidNginx}, true},
		{111, Info{Runtime: Containerd, ID: idCtdPause, Name: "nginx-7c5ddbdf54-abcde", Pod: "nginx-7c5ddbdf54-abcde", Namespace: "default", PodUID: uidNginx}, true},
		{112, Info{Runtime: Docker, ID: idDockershim, Name: "k8s_app_app-5d9f8-xk2p4_shop_" + uidApp + "_0", Pod: "app-5d9f8-xk2p4", Namespace: "shop", Container: "app", PodUID: uidApp}, true},
		{120, Info{Runtime: CRIO, ID: idCrioRedis, Name: "redis-0/redis", Pod: "redis-0", Namespace: "cache", Container: "redis", PodUID: uidRedis}, true},
		{121, Info{}, false},
		{122, Info{Runtime: CRIO, ID: idCrioLabels, Name: "redis-0/sidecar", Pod: "redis-0", Namespace: "cache", Container: "sidecar", PodUID: uidRedis}, true},
		{130, Info{Runtime: Nspawn, Name: "my-box"}, true},
		{131, Info{}, false},
		{132, Info{}, false},
		{140, Info{Runtime: LXC, Name: "web01"}, true},
		{141, Info{Runtime: LXC, Name: "db1"}, true},
		{142, Info{}, false},
		{150, Info{}, false},
		{151, Info{Runtime: Docker, ID: idDockerZero}, true}, // config.v2.json -> /dev/zero
		{152, Info{Runtime: Docker, ID: idDockerHuge}, true}, // 10 MB config.v2.json
		{153, Info{Runtime: Docker, ID: idDockerEsc, Name: "\x1b[31mevil\nname\u202egpj.exe\r"}, true}, // kept raw
		{154, Info{Runtime: Docker, ID: idDockerNUL}, true},                                            // NUL in the name: refused
		{155, Info{Runtime: Docker, ID: idDockerLong, Name: long}, true},
		{156, Info{Runtime: Docker, ID: idDockerNone}, true}, // no state at all
		{157, Info{}, false},
		{9999, Info{}, false}, // gone
	}
	start := time.Now()
	for _, tt := range tests {
		got, ok := n.ForPID(proc, tt.pid)
		if ok != tt.ok || got != tt.want {
			t.Errorf("pid %d: ForPID = %+v, %v\n want %+v, %v", tt.pid, got, ok, tt.want, tt.ok)
		}
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the fixtures took %v: a hostile file was read, not refused", d)
	}
	if got := n.cache["docker/"+idDockerLong].found.Name; !utf8.ValidString(got) || len(got) > MaxName {
		t.Errorf("long name kept as %d bytes, valid UTF-8 %v", len(got), utf8.ValidString(got))
	}
}

func TestDockerDataRoot(t *testing.T) {
	n := &Namer{Root: "testdata/dataroot"}
	got, ok := n.ForPID("testdata/dataroot/proc", 200)
	if want := (Info{Runtime: Docker, ID: idDockerMoved, Name: "moved"}); !ok || got != want {
		t.Errorf("ForPID = %+v, %v; want %+v", got, ok, want)
	}
}

func TestReadBounded(t *testing.T) {
	dir := t.TempDir()
	if _, err := readBounded("/dev/zero", 1<<20); !errors.Is(err, ErrNotRegular) {
		t.Errorf("/dev/zero: err = %v, want ErrNotRegular", err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink("/dev/zero", link); err != nil {
		t.Fatal(err)
	}
	if _, err := readBounded(link, 1<<20); !errors.Is(err, syscall.ELOOP) {
		t.Errorf("symlink: err = %v, want ELOOP", err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { _, err := readBounded(fifo, 1<<20); done <- err }()
	select {
	case err := <-done:
		if !errors.Is(err, ErrNotRegular) {
			t.Errorf("fifo: err = %v, want ErrNotRegular", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("readBounded blocked on a FIFO with no writer")
	}
	if _, err := readBounded(dir, 1<<20); !errors.Is(err, ErrNotRegular) {
		t.Errorf("directory: err = %v, want ErrNotRegular", err)
	}
	big := filepath.Join(dir, "big")
	if err := os.WriteFile(big, make([]byte, 2<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readBounded(big, 1<<20); !errors.Is(err, ErrTooBig) {
		t.Errorf("2 MiB file: err = %v, want ErrTooBig", err)
	}
	if b, err := readBounded(big, 2<<20); err != nil || len(b) != 2<<20 {
		t.Errorf("2 MiB file at a 2 MiB cap: %d bytes, %v", len(b), err)
	}
	// procfs files say they are empty; the cap still holds.
	if b, err := readBounded("/proc/self/cgroup", maxCgroupFile); err != nil || len(b) == 0 {
		t.Errorf("/proc/self/cgroup: %d bytes, %v", len(b), err)
	}
}

func TestNamerCache(t *testing.T) {
	root := copyTree(t, "testdata/root")
	now := time.Unix(1_800_000_000, 0)
	n := &Namer{Root: root, TTL: time.Minute, now: func() time.Time { return now }}
	get := func() string {
		i := Info{Runtime: Docker, ID: idDockerWeb}
		n.Complete(&i)
		return i.Name
	}
	if got := get(); got != "web-1" {
		t.Fatalf("name = %q", got)
	}
	cfg := filepath.Join(root, "var/lib/docker/containers", idDockerWeb, "config.v2.json")
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(cfg, []byte(strings.Replace(string(b), `"/web-1"`, `"/web-renamed"`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	if got := get(); got != "web-1" {
		t.Errorf("within the TTL: name = %q, want the cached web-1", got)
	}
	now = now.Add(time.Minute)
	if got := get(); got != "web-renamed" {
		t.Errorf("after the TTL: name = %q, want web-renamed", got)
	}

	// containers.json is parsed again only when it changes.
	i := Info{Runtime: Podman, ID: idPodmanSD}
	n.Complete(&i)
	p := filepath.Join(root, "var/lib/containers/storage/overlay-containers/containers.json")
	if l, ok := n.lists[p]; !ok || l.names[idPodmanSD] != "api" {
		t.Fatalf("containers.json not remembered: %+v", n.lists)
	}
}

func TestNamerConcurrent(t *testing.T) {
	n := &Namer{Root: "testdata/root"}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for _, pid := range []int{100, 102, 110, 120, 140} {
				if _, ok := n.ForPID("testdata/proc", pid); !ok {
					t.Errorf("pid %d: not a container", pid)
				}
			}
		}()
	}
	wg.Wait()
}

func TestCompleteUnsafeID(t *testing.T) {
	n := &Namer{Root: "testdata/root"}
	for _, id := range []string{"../../../etc", "..", "a/b", "x\x00"} {
		i := Info{Runtime: Docker, ID: id}
		n.Complete(&i)
		if i.Name != "" {
			t.Errorf("id %q: name %q from outside the state directory", id, i.Name)
		}
	}
	n.Complete(nil) // must not panic
}

func TestLabel(t *testing.T) {
	tests := []struct {
		in   Info
		want string
	}{
		{Info{Runtime: Docker, ID: idDockerWeb, Name: "web-1"}, "web-1"},
		{Info{Runtime: Docker, ID: idDockerWeb}, "docker:f31f384749f9"},
		{Info{Runtime: Containerd, ID: idCtdNginx, Name: "nginx-abc/nginx", Pod: "nginx-abc", Namespace: "default", Container: "nginx"}, "default/nginx-abc/nginx"},
		{Info{Runtime: Containerd, ID: idCtdPause, Pod: "nginx-abc", Namespace: "default"}, "default/nginx-abc"},
		{Info{Runtime: Containerd, PodUID: uidNginx}, "containerd:pod-" + uidNginx},
		{Info{Runtime: LXC, Name: "web01"}, "web01"},
		{Info{Runtime: Containerd, ID: "my-task"}, "containerd:my-task"},
		{Info{Runtime: Podman}, "podman"},
	}
	for _, tt := range tests {
		if got := tt.in.Label(); got != tt.want {
			t.Errorf("%+v: Label = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestInfoJSON(t *testing.T) {
	b, err := json.Marshal(Info{Runtime: Containerd, ID: "x", Pod: "p", Namespace: "n", Container: "c", PodUID: "u", Name: "p/c"})
	if err != nil {
		t.Fatal(err)
	}
	want := `{"runtime":"containerd","id":"x","name":"p/c","pod":"p","namespace":"n","container":"c","pod_uid":"u"}`
	if string(b) != want {
		t.Errorf("JSON = %s\nwant  %s", b, want)
	}
	if b, _ := json.Marshal(Info{Runtime: LXC, Name: "web01"}); string(b) != `{"runtime":"lxc","name":"web01"}` {
		t.Errorf("JSON = %s", b)
	}
}

// TestForPIDLive runs on this machine's own /proc: porteiro's test binary
// is either in no container or in one of a known runtime.
func TestForPIDLive(t *testing.T) {
	var n Namer
	i, ok := n.ForPID("/proc", os.Getpid())
	t.Logf("this process: %+v, %v", i, ok)
	if ok {
		switch i.Runtime {
		case Docker, Podman, Containerd, CRIO, LXC, Nspawn:
		default:
			t.Errorf("unknown runtime %q", i.Runtime)
		}
		if i.Label() == "" {
			t.Error("empty label")
		}
	}
	if _, ok := n.ForPID("/proc", 1<<30); ok {
		t.Error("a PID that cannot exist is in a container")
	}
}

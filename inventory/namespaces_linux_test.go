package inventory

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/porteiro/porteiro/internal/container"
	"github.com/porteiro/porteiro/internal/netns"
)

// TestNamespaceNames names namespaces on a procfs tree of fixture files
// (the namespace links are symlinks, as readlink sees /proc's) and the
// container runtimes' state files of internal/container's fixtures: a
// docker container's namespace is named after the container, a Kubernetes
// pod's after the pod, a plain namespace after its first process, and the
// host's is "host" whatever cgroup its processes run in.
func TestNamespaceNames(t *testing.T) {
	root := t.TempDir()
	fixtures := "../internal/container/testdata/proc"
	proc := func(pid int, net uint64, cgroupFrom int, comm string) {
		dir := filepath.Join(root, strconv.Itoa(pid))
		must := func(err error) {
			t.Helper()
			if err != nil {
				t.Fatal(err)
			}
		}
		must(os.MkdirAll(filepath.Join(dir, "ns"), 0o755))
		must(os.Symlink("net:["+strconv.FormatUint(net, 10)+"]", filepath.Join(dir, "ns/net")))
		must(os.WriteFile(filepath.Join(dir, "comm"), []byte(comm+"\n"), 0o644))
		cg := []byte("0::/system.slice/sshd.service\n")
		if cgroupFrom > 0 {
			b, err := os.ReadFile(filepath.Join(fixtures, strconv.Itoa(cgroupFrom), "cgroup"))
			must(err)
			cg = b
		}
		must(os.WriteFile(filepath.Join(dir, "cgroup"), cg, 0o644))
	}
	proc(1, 100, 100, "init") // the host, in a container cgroup of its own
	proc(2, 100, 0, "kthreadd")
	proc(300, 200, 100, "nginx") // docker: web-1
	proc(310, 210, 110, "cart")  // containerd under Kubernetes
	proc(320, 220, 0, "python3") // a plain namespace
	must(t, os.MkdirAll(filepath.Join(root, "self/ns"), 0o755))
	must(t, os.Symlink("net:[100]", filepath.Join(root, "self/ns/net")))

	set, err := netns.Discover(context.Background(), root)
	if err != nil {
		t.Fatal(err)
	}
	s := &NamespacesSource{ProcRoot: root, Namer: &container.Namer{Root: "../internal/container/testdata/root"}}
	names := s.name(set)
	k8s, _ := (&container.Namer{Root: "../internal/container/testdata/root"}).ForPID(fixtures, 110)
	for ino, want := range map[uint64]struct {
		name, runtime string
	}{
		100: {"host", ""},
		200: {"web-1", "docker"},
		210: {k8s.Label(), k8s.Runtime},
		220: {"pid 320 (python3)", ""},
	} {
		ni := names[ino]
		if ni.Name != want.name {
			t.Errorf("namespace %d: name %q, want %q", ino, ni.Name, want.name)
		}
		rt := ""
		if ni.Container != nil {
			rt = ni.Container.Runtime
		}
		if rt != want.runtime {
			t.Errorf("namespace %d: runtime %q, want %q", ino, rt, want.runtime)
		}
	}
	if k8s.Pod == "" || k8s.Runtime != "containerd" {
		t.Errorf("the Kubernetes fixture is not a containerd pod: %+v", k8s)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

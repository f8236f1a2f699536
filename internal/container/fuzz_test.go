package container

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// checkInfo is what every Info porteiro builds from hostile bytes must
// satisfy.
func checkInfo(t *testing.T, i Info) {
	t.Helper()
	for _, s := range []string{i.Name, i.Pod, i.Namespace, i.Container, i.PodUID} {
		if len(s) > MaxName {
			t.Fatalf("field of %d bytes kept: %+v", len(s), i)
		}
		if strings.IndexByte(s, 0) >= 0 {
			t.Fatalf("NUL kept: %q", s)
		}
	}
}

func FuzzFromCgroup(f *testing.F) {
	// The fixture processes' cgroup files are the seeds, with a few more.
	files, _ := filepath.Glob("testdata/proc/*/cgroup")
	for _, p := range files {
		if b, err := os.ReadFile(p); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte("0::/machine.slice/machine-a\\x2d\\x00b.scope/payload\n"))
	f.Add([]byte("0::/kubepods/pod" + uidApp + "/" + idDockershim + "\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		i, ok := FromCgroup(b)
		if !ok {
			if i != (Info{}) {
				t.Fatalf("not a container but %+v", i)
			}
			return
		}
		switch i.Runtime {
		case Docker, Podman, Containerd, CRIO:
			if !isID(i.ID) || i.Name != "" {
				t.Fatalf("%s container with id %q name %q", i.Runtime, i.ID, i.Name)
			}
		case LXC, Nspawn:
			if i.ID != "" || i.Name == "" {
				t.Fatalf("%s container with id %q name %q", i.Runtime, i.ID, i.Name)
			}
		default:
			t.Fatalf("unknown runtime %q", i.Runtime)
		}
		if i.PodUID != "" && len(strings.ReplaceAll(i.PodUID, "-", "")) != 32 {
			t.Fatalf("pod uid %q", i.PodUID)
		}
		if !strings.Contains(string(b), i.ID) {
			t.Fatalf("id %q is not in the input", i.ID)
		}
		checkInfo(t, i)
		if i.Label() == "" {
			t.Fatal("empty label")
		}
	})
}

func FuzzParseDockerProxy(f *testing.F) {
	f.Add("/usr/bin/docker-proxy\x00-proto\x00tcp\x00-host-ip\x000.0.0.0\x00-host-port\x008080\x00-container-ip\x00172.17.0.2\x00-container-port\x0080")
	f.Add("docker-proxy\x00--proto=udp\x00--host-ip=::\x00--host-port=53\x00--container-ip=fd00::2\x00--container-port=53\x00-use-listen-fd")
	f.Add("docker-proxy\x00-host-port\x00")
	f.Fuzz(func(t *testing.T, cmdline string) {
		p, ok := ParseDockerProxy(strings.Split(cmdline, "\x00"))
		if !ok {
			if p != (Published{}) {
				t.Fatalf("refused but %+v", p)
			}
			return
		}
		if p.HostPort == 0 || p.ContainerPort == 0 || !p.ContainerIP.IsValid() || p.ContainerIP.Is4In6() {
			t.Fatalf("accepted %+v", p)
		}
		if p.HostIP != (netip.Addr{}) && (p.HostIP.Zone() != "" || p.HostIP.Is4In6()) {
			t.Fatalf("host ip %v", p.HostIP)
		}
		switch p.Proto {
		case "tcp", "udp", "sctp":
		default:
			t.Fatalf("proto %q", p.Proto)
		}
	})
}

// FuzzStateFiles feeds the same bytes to every state-file parser: each
// reads a file any local user with write access to the runtime's state
// could have written.
func FuzzStateFiles(f *testing.F) {
	files, _ := filepath.Glob("testdata/root/*/*/*/*/*/*.json")
	more, _ := filepath.Glob("testdata/root/*/*/*/*/*/*/*/*.json")
	for _, p := range append(append(files, more...), "testdata/root/var/lib/containers/storage/overlay-containers/containers.json", "testdata/dataroot/etc/docker/daemon.json") {
		// readBounded, not os.ReadFile: one fixture is a link to /dev/zero.
		if b, err := readBounded(p, maxStateFile); err == nil {
			f.Add(b)
		}
	}
	f.Add([]byte(`{"Name":"/a\u0000b","Config":{"Labels":{"io.kubernetes.pod.name":"` + strings.Repeat("x", 300) + `"}}}`))
	f.Add([]byte(`{"annotations":{"io.kubernetes.cri-o.Labels":"{\"io.kubernetes.pod.name\":\"p\"}"}}`))
	f.Add([]byte(`[{"id":"a","names":["\u001b[2J"]},{"id":"b","names":[]}]`))
	f.Fuzz(func(t *testing.T, b []byte) {
		if i, err := parseDockerConfig(b); err == nil {
			checkInfo(t, i)
		}
		if i, err := parseOCIConfig(b); err == nil {
			checkInfo(t, i)
		}
		if m, err := parseStorageContainers(b); err == nil {
			for id, name := range m {
				checkInfo(t, Info{Name: name})
				if id == "" || name == "" {
					t.Fatalf("empty entry %q → %q", id, name)
				}
			}
		}
		_ = parseDockerDaemonJSON(b)
	})
}

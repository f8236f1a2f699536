package container

import (
	"archive/tar"
	"bufio"
	"bytes"
	"context"
	"debug/elf"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestPodmanE2E runs a real podman container from an image built here out
// of a static busybox (no registry) and checks that ForPID names it from
// podman's own state. Podman runs on a storage of its own under a temp
// dir laid out like the host's (var/lib/containers/storage,
// run/containers/storage), which is the Namer's Root: the host's
// containers and images are left alone, and nothing is left behind.
//
// On Debian: apt-get install podman runc busybox-static.
func TestPodmanE2E(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: rootful podman")
	}
	podman, err := exec.LookPath("podman")
	if err != nil {
		t.Skip("podman is not installed (apt-get install podman runc busybox-static)")
	}
	busybox := staticBusybox(t)

	// Not t.TempDir(): podman refuses a runroot longer than 50 bytes.
	root, err := os.MkdirTemp("", "pe2e")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(root) })
	name := fmt.Sprintf("porteiro-e2e-%d", os.Getpid())
	image := "localhost/" + name + ":test"
	global := []string{
		"--root", filepath.Join(root, "var/lib/containers/storage"),
		"--runroot", filepath.Join(root, "run/containers/storage"),
		"--tmpdir", filepath.Join(root, "tmp"),
		"--storage-driver", "vfs",
		"--events-backend", "file",
	}
	if _, err := os.Stat("/run/systemd/system"); err != nil {
		// Not booted with systemd: no machine.slice scopes to ask for.
		global = append(global, "--cgroup-manager", "cgroupfs")
	}
	if runc, err := exec.LookPath("runc"); err == nil {
		// crun refuses hybrid cgroup hierarchies (v1 controllers plus a
		// v2 mount that has some); runc takes both.
		global = append(global, "--runtime", runc)
	}
	run := func(args ...string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, podman, append(append([]string{}, global...), args...)...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		out, err := cmd.Output()
		if err != nil {
			return "", fmt.Errorf("podman %s: %w: %s", strings.Join(args, " "), err, stderr.String())
		}
		return strings.TrimSpace(string(out)), nil
	}
	parents, _ := filepath.Glob("/sys/fs/cgroup/*/libpod_parent")
	if p, _ := filepath.Glob("/sys/fs/cgroup/libpod_parent"); len(p) > 0 {
		parents = append(parents, p...)
	}
	t.Cleanup(func() {
		if len(parents) == 0 {
			// podman made its cgroupfs parents for this test: remove them
			// once empty.
			removeLibpodParents(t)
		}
	})
	t.Cleanup(func() {
		if _, err := run("rm", "--force", "--time", "0", name); err != nil {
			t.Logf("cleanup: %v", err)
		}
		if _, err := run("rmi", "--force", image); err != nil {
			t.Logf("cleanup: %v", err)
		}
		unmountUnder(t, root)
	})

	tarball := filepath.Join(root, "rootfs.tar")
	writeBusyboxTar(t, tarball, busybox)
	if _, err := run("import", tarball, image); err != nil {
		t.Fatal(err)
	}
	// Ulimits are lowered, never raised: raising needs CAP_SYS_RESOURCE,
	// which a CI sandbox may not give, and podman's defaults raise them.
	id, err := run("run", "--detach", "--name", name, "--network", "none",
		"--ulimit", "nofile=1024:1024", "--ulimit", "nproc=1024:1024",
		image, "/bin/sleep", "300")
	if err != nil {
		t.Skipf("podman cannot run a container on this machine: %v", err)
	}
	pidText, err := run("inspect", "--format", "{{.State.Pid}}", name)
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(pidText)
	if err != nil || pid <= 0 {
		t.Fatalf("container pid %q: %v", pidText, err)
	}
	cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
	t.Logf("container pid %d, cgroup:\n%s", pid, cg)

	n := &Namer{Root: root}
	got, ok := n.ForPID("/proc", pid)
	want := Info{Runtime: Podman, ID: id, Name: name}
	if !ok || got != want {
		t.Errorf("ForPID(container) = %+v, %v; want %+v", got, ok, want)
	}
	if got.Label() != name {
		t.Errorf("Label = %q, want %q", got.Label(), name)
	}

	// conmon watches the container from the host: it is not in it.
	if conmon, err := run("inspect", "--format", "{{.State.ConmonPid}}", name); err == nil {
		if cp, err := strconv.Atoi(conmon); err == nil && cp > 0 {
			if i, ok := n.ForPID("/proc", cp); ok {
				t.Errorf("ForPID(conmon %d) = %+v: conmon is not in the container", cp, i)
			}
		}
	}
	if i, ok := n.ForPID("/proc", os.Getpid()); ok && i.ID == id {
		t.Errorf("the test itself is placed in the container: %+v", i)
	}
}

// staticBusybox finds a busybox that runs in an empty root: one with no
// ELF interpreter.
func staticBusybox(t *testing.T) string {
	t.Helper()
	for _, p := range []string{"/bin/busybox", "/usr/bin/busybox"} {
		f, err := elf.Open(p)
		if err != nil {
			continue
		}
		static := true
		for _, prog := range f.Progs {
			if prog.Type == elf.PT_INTERP {
				static = false
			}
		}
		f.Close()
		if static {
			return p
		}
	}
	t.Skip("no static busybox (apt-get install busybox-static)")
	return ""
}

// writeBusyboxTar writes an image root holding only busybox and the
// applets the test runs.
func writeBusyboxTar(t *testing.T, path, busybox string) {
	t.Helper()
	bin, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	hdrs := []*tar.Header{
		{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bin))},
		{Name: "bin/sh", Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777},
		{Name: "bin/sleep", Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777},
	}
	for _, h := range hdrs {
		h.ModTime = time.Unix(0, 0)
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Typeflag == tar.TypeReg {
			if _, err := tw.Write(bin); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// unmountUnder detaches what podman left mounted under dir (the
// container's /dev/shm), deepest first, so that the temp dir can go.
func unmountUnder(t *testing.T, dir string) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return
	}
	defer f.Close()
	var mounts []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) > 4 && strings.HasPrefix(fields[4], dir+"/") {
			mounts = append(mounts, fields[4])
		}
	}
	for i := len(mounts) - 1; i >= 0; i-- {
		if err := unix.Unmount(mounts[i], unix.MNT_DETACH); err != nil {
			t.Logf("unmounting %s: %v", mounts[i], err)
		}
	}
}

// removeLibpodParents removes the empty cgroups podman's cgroupfs manager
// creates for its containers and their conmon.
func removeLibpodParents(t *testing.T) {
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/libpod_parent")
	dirs = append(dirs, "/sys/fs/cgroup/libpod_parent")
	for _, d := range dirs {
		for _, c := range []string{filepath.Join(d, "conmon"), d} {
			if err := unix.Rmdir(c); err != nil && err != unix.ENOENT {
				t.Logf("removing cgroup %s: %v", c, err)
			}
		}
	}
}

// Package procfstest builds fake procfs trees in a directory, so the /proc
// readers and the fd walker run on known, ugly cases: vanished processes,
// unreadable fd directories, odd comm names, deleted executables, zombies
// and sockets shared by several processes.
package procfstest

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// Proc describes one fake process.
type Proc struct {
	PID, PPID  int
	Comm       string
	State      string // default "S"
	StartTicks uint64
	UID        int
	Cmdline    []string
	Exe        string         // link target; "" means no exe link
	Cgroup     string         // file content
	FDs        map[int]string // fd -> link target, e.g. "socket:[4242]"
	NoStat     bool           // the process vanished: fd/ exists, stat does not
	FDDenied   bool           // fd/ has mode 000, as another user's would

	Extra map[string]string // more files
}

// Tree is a fake procfs root.
type Tree struct {
	Root string
}

// New creates an empty tree with /proc/stat (btime) and self/ns/net.
func New(t testing.TB) *Tree {
	t.Helper()
	root := t.TempDir()
	// Readable by every user, so tests can walk it as an unprivileged one.
	for _, d := range []string{filepath.Dir(root), root} {
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	tr := &Tree{Root: root}
	tr.write(t, "stat", "cpu  1 2 3 4\nbtime 1700000000\nprocesses 10\n")
	if err := os.MkdirAll(filepath.Join(root, "self", "ns"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("net:[4026531840]", filepath.Join(root, "self", "ns", "net")); err != nil {
		t.Fatal(err)
	}
	// Non-process entries the walker must skip.
	for _, d := range []string{"sys", "net", "1x"} {
		os.MkdirAll(filepath.Join(root, d), 0o755)
	}
	return tr
}

func (tr *Tree) write(t testing.TB, rel, content string) {
	t.Helper()
	p := filepath.Join(tr.Root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// File writes an arbitrary file under the root, such as net/tcp.
func (tr *Tree) File(t testing.TB, rel, content string) { tr.write(t, rel, content) }

// Add writes one process.
func (tr *Tree) Add(t testing.TB, p Proc) {
	t.Helper()
	dir := strconv.Itoa(p.PID)
	if p.State == "" {
		p.State = "S"
	}
	if !p.NoStat {
		tr.write(t, dir+"/stat", fmt.Sprintf("%d (%s) %s %d %d %d 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 1 0 %d 10000000 300 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0 0 0 0 0 0 0 0 0\n",
			p.PID, p.Comm, p.State, p.PPID, p.PID, p.PID, p.StartTicks))
		tr.write(t, dir+"/status", fmt.Sprintf("Name:\t%s\nUid:\t%d\t%d\t%d\t%d\n", p.Comm, p.UID, p.UID, p.UID, p.UID))
		tr.write(t, dir+"/cmdline", strings.Join(p.Cmdline, "\x00"))
		tr.write(t, dir+"/cgroup", p.Cgroup)
	}
	if p.Exe != "" {
		if err := os.Symlink(p.Exe, filepath.Join(tr.Root, dir, "exe")); err != nil {
			t.Fatal(err)
		}
	}
	fdDir := filepath.Join(tr.Root, dir, "fd")
	if err := os.MkdirAll(fdDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for fd, target := range p.FDs {
		if err := os.Symlink(target, filepath.Join(fdDir, strconv.Itoa(fd))); err != nil {
			t.Fatal(err)
		}
	}
	mode := os.FileMode(0o555)
	if p.FDDenied {
		mode = 0
	}
	if err := os.Chmod(fdDir, mode); err != nil {
		t.Fatal(err)
	}
	for rel, c := range p.Extra {
		tr.write(t, dir+"/"+rel, c)
	}
}

// Standard adds the standard set of ugly cases and returns it. Sockets:
// 1000 shared by 100 (fds 3, 7) and its worker 101 (fd 3); 1001 held by 100;
// 2000 held by 200 (odd comm, deleted exe); 4000 held only by the vanished
// pid 400; 5000 held by 500, whose fd/ is mode 000; 9000 held by nobody.
func Standard(t testing.TB) *Tree {
	tr := New(t)
	tr.Add(t, Proc{PID: 100, PPID: 1, Comm: "nginx", StartTicks: 500, UID: 0, Exe: "/usr/sbin/nginx",
		Cmdline: []string{"nginx: master process /usr/sbin/nginx"}, Cgroup: "0::/system.slice/nginx.service\n",
		FDs: map[int]string{0: "/dev/null", 3: "socket:[1000]", 4: "socket:[1001]", 5: "pipe:[77]", 7: "socket:[1000]"}})
	tr.Add(t, Proc{PID: 101, PPID: 100, Comm: "nginx", StartTicks: 510, UID: 33, Exe: "/usr/sbin/nginx",
		Cmdline: []string{"nginx: worker process"}, Cgroup: "0::/system.slice/nginx.service\n",
		FDs: map[int]string{3: "socket:[1000]", 9: "anon_inode:[eventpoll]"}})
	tr.Add(t, Proc{PID: 200, PPID: 1, Comm: "my (odd) prog", StartTicks: 600, UID: 1000, Exe: "/opt/app/server (deleted)",
		Cmdline: []string{"/opt/app/server", "--port", "8080"},
		Cgroup:  "0::/system.slice/docker-0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef.scope\n",
		FDs:     map[int]string{3: "socket:[2000]"}})
	tr.Add(t, Proc{PID: 300, PPID: 200, Comm: "defunct", State: "Z", StartTicks: 700})
	tr.Add(t, Proc{PID: 400, NoStat: true, FDs: map[int]string{3: "socket:[4000]"}})
	tr.Add(t, Proc{PID: 500, PPID: 1, Comm: "secret", StartTicks: 800, UID: 0, FDs: map[int]string{3: "socket:[5000]"}, FDDenied: true})
	return tr
}

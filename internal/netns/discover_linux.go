package netns

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/porteiro/porteiro/internal/procfs"
)

// maxMountinfo bounds one mountinfo read; a host with a million mounts is
// beyond what porteiro reads (a note says so).
const maxMountinfo = 16 << 20

// keepMembers is how many member pids a namespace keeps to enter it by:
// if the first has exited when it is entered, the next is tried.
const keepMembers = 3

// Discover finds every network namespace that a process, a thread or an
// nsfs mount leads to, under the procfs mounted at procRoot ("" means
// /proc). Processes that vanish meanwhile are skipped; processes whose
// namespace links cannot be read (another user's, without privileges)
// are counted in a note.
func Discover(ctx context.Context, procRoot string) (*Set, error) {
	return DiscoverKnown(ctx, procRoot, nil)
}

// DiscoverKnown is Discover with the network namespace of some processes
// known already: known returns it for a process that has one thread (so
// that /proc/PID/ns/net is all there is to read of it), and false for any
// other, which is read from procRoot as Discover does. The caller's
// source must be the kernel that procRoot shows (the task iterator).
func DiscoverKnown(ctx context.Context, procRoot string, known func(pid int) (ino uint64, ok bool)) (*Set, error) {
	if procRoot == "" {
		procRoot = "/proc"
	}
	s := &Set{ByInode: map[uint64]*Namespace{}}
	s.Self, _ = nsLink(filepath.Join(procRoot, "self/ns/net"))
	s.Host = hostNS(procRoot)
	if s.Host == 0 {
		s.Notes = append(s.Notes, "the host's network namespace (that of PID 1) could not be read: no namespace is named host")
	}
	if s.Self != 0 {
		s.get(s.Self)
	}
	if s.Host != 0 {
		s.get(s.Host)
	}
	pids, err := ListPIDs(procRoot)
	if err != nil {
		return nil, err
	}
	s.PIDs = pids
	d := &discovery{set: s, root: procRoot, mnts: map[uint64]bool{}}
	if self, err := nsLink(filepath.Join(procRoot, "self/ns/mnt")); err == nil {
		d.selfMnt = self
	}
	for i, pid := range pids {
		if i%256 == 0 && ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if known != nil {
			if ino, ok := known(pid); ok && ino != 0 {
				d.member(ino, pid, filepath.Join(procRoot, strconv.Itoa(pid), "ns/net"))
				continue
			}
		}
		d.process(pid)
	}
	// nsfs mounts: those of porteiro's mount namespace (ip netns, Docker
	// and CNI mount there), then those of the mount namespaces of the
	// other network namespaces' members (a container's own mounts). Not
	// every process's: reading two links per process instead of one
	// costs more than the rare mount only a host service's private mount
	// namespace holds.
	d.mnts[d.selfMnt] = true
	d.mounts(filepath.Join(procRoot, "self"), true)
	for _, n := range s.Sorted() {
		if n.Self || n.Host {
			continue
		}
		for _, pid := range n.members {
			dir := filepath.Join(procRoot, strconv.Itoa(pid))
			mnt, err := nsLink(filepath.Join(dir, "ns/mnt"))
			if err != nil {
				continue
			}
			if !d.mnts[mnt] {
				d.mnts[mnt] = true
				d.mounts(dir, mnt == d.selfMnt)
			}
			break
		}
	}
	for _, n := range s.ByInode {
		if n.Members == 0 && len(n.threadPIDs) > 0 {
			// Only threads are in it: they are its members.
			n.Members = len(n.threadPIDs)
			n.First = slices.Min(n.threadPIDs)
			n.members = n.threadPIDs[:min(len(n.threadPIDs), keepMembers)]
		}
		// Threads lead into it too, after the processes.
		n.enter = append(n.enter, n.threadEnter[:min(len(n.threadEnter), keepMembers)]...)
		if n.First > 0 && !n.Host {
			n.FirstComm = readComm(procRoot, n.First)
		}
		if n.Self && len(n.enter) == 0 {
			n.enter = append(n.enter, filepath.Join(procRoot, "self/ns/net"))
		}
	}
	if d.denied > 0 {
		why := "not permitted: run as root"
		if os.Geteuid() == 0 {
			why = "refused even to root"
		}
		s.Notes = append(s.Notes, fmt.Sprintf("the network namespace of %d process(es) could not be read (%s)", d.denied, why))
	}
	if d.bigMounts > 0 {
		s.Notes = append(s.Notes, fmt.Sprintf("%d mount table(s) larger than %d MiB were not read for namespace mounts", d.bigMounts, maxMountinfo>>20))
	}
	return s, nil
}

type discovery struct {
	set       *Set
	root      string
	selfMnt   uint64
	mnts      map[uint64]bool // mount namespaces whose mountinfo was read
	denied    int
	bigMounts int
	buf       []byte
}

// process adds what pid leads to: its namespace and its threads'.
func (d *discovery) process(pid int) {
	dir := filepath.Join(d.root, strconv.Itoa(pid))
	ino, err := nsLink(filepath.Join(dir, "ns/net"))
	if err != nil {
		if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
			d.denied++
		}
		return
	}
	threads := d.threads(dir, pid, ino)
	// A process is a member of the namespace most of its threads are in.
	// Its first thread's link is what /proc/PID/ns/net shows, and that
	// thread may be passing through another namespace (a Go program's
	// setns runs on whichever thread the goroutine is on, the first one
	// included): then it counts as a thread there, not as the process.
	home, count := ino, 1
	if len(threads) == 0 {
		d.member(ino, pid, filepath.Join(dir, "ns/net"))
		return
	}
	votes := map[uint64]int{ino: 1}
	for _, t := range threads {
		votes[t.ino]++
		if n := votes[t.ino]; n > count || (n == count && t.ino == ino) {
			home, count = t.ino, n
		}
	}
	if home == ino {
		d.member(ino, pid, filepath.Join(dir, "ns/net"))
	} else {
		d.member(home, pid, "")
		d.threadIn(ino, pid, filepath.Join(dir, "ns/net"))
	}
	for _, t := range threads {
		if t.ino != home {
			d.threadIn(t.ino, pid, t.path)
		}
	}
}

// threadIn records that a thread of pid, not pid itself, is in namespace
// ino. A thread alone in a namespace may be a scanner's (porteiro's own
// dial, another tool's) passing through: it must not give the namespace
// its name while a process is a member.
func (d *discovery) threadIn(ino uint64, pid int, path string) {
	n := d.set.get(ino)
	if !slices.Contains(n.threadPIDs, pid) {
		n.threadPIDs = append(n.threadPIDs, pid)
		n.threadEnter = append(n.threadEnter, path)
	}
}

func (d *discovery) member(ino uint64, pid int, path string) {
	n := d.set.get(ino)
	n.Members++
	if len(n.members) < keepMembers {
		n.members = append(n.members, pid)
		if path != "" {
			n.enter = append(n.enter, path)
		}
	}
	if n.First == 0 || pid < n.First {
		n.First = pid
	}
}

// thread is one thread's namespace link.
type thread struct {
	ino  uint64
	path string
}

// threads returns the namespaces of pid's threads other than the first.
// The task directory's link count is 2 plus the number of threads: a stat
// tells a process with one thread, most of them, without listing the
// directory.
func (d *discovery) threads(dir string, pid int, home uint64) []thread {
	taskDir := filepath.Join(dir, "task")
	var st unix.Stat_t
	if unix.Stat(taskDir, &st) == nil && st.Nlink <= 3 {
		return nil
	}
	f, err := os.Open(taskDir)
	if err != nil {
		return nil
	}
	names, _ := f.Readdirnames(-1)
	f.Close()
	self := strconv.Itoa(pid)
	var out []thread
	for _, t := range names {
		if t == self {
			continue
		}
		p := filepath.Join(taskDir, t, "ns/net")
		ino, err := nsLink(p)
		if err != nil {
			continue
		}
		// A thread away from its process's namespace may be porteiro
		// passing through (netns.Do): it is in no namespace.
		if ino != home && d.visitor(filepath.Join(taskDir, t, "comm")) {
			continue
		}
		out = append(out, thread{ino, p})
	}
	return out
}

// visitor reports whether the thread whose comm file is path is named
// VisitorComm.
func (d *discovery) visitor(path string) bool {
	b, err := readBounded(path, 64, &d.buf)
	return err == nil && string(bytes.TrimSuffix(b, []byte("\n"))) == VisitorComm
}

// mounts reads the nsfs mounts of the mount namespace that dir's process
// is in. here is true when that is porteiro's own mount namespace; else
// the mounts are reached through dir/root.
func (d *discovery) mounts(dir string, here bool) {
	b, err := readBounded(filepath.Join(dir, "mountinfo"), maxMountinfo, &d.buf)
	if err != nil {
		if errors.Is(err, errTooBig) {
			d.bigMounts++
		}
		return
	}
	for _, m := range NSMounts(b) {
		n := d.set.get(m.Inode)
		if !slices.Contains(n.Mounts, m.Path) {
			n.Mounts = append(n.Mounts, m.Path)
		}
		open := m.Path
		if !here {
			open = filepath.Join(dir, "root", m.Path)
		}
		n.enter = append(n.enter, open)
		if name, ok := ipNetnsName(m.Path); ok && here && !slices.Contains(n.Names, name) {
			n.Names = append(n.Names, name)
		}
	}
}

// NSMount is one nsfs bind mount of a network namespace.
type NSMount struct {
	Inode uint64
	Path  string
}

// NSMounts returns the network namespace mounts in the text of a
// /proc/PID/mountinfo. Lines that are not network namespace mounts, and
// lines that do not parse, are skipped: the file comes from the kernel.
func NSMounts(mountinfo []byte) []NSMount {
	var out []NSMount
	for line := range bytes.Lines(mountinfo) {
		if !bytes.Contains(line, []byte(" nsfs ")) {
			continue
		}
		ms, err := procfs.ParseMountInfo(line)
		if err != nil || len(ms) != 1 || ms[0].FSType != "nsfs" || !strings.HasPrefix(ms[0].Root, "net:[") {
			continue
		}
		ino, ok := procfs.ParseNSLink([]byte(ms[0].Root))
		if !ok {
			continue
		}
		out = append(out, NSMount{Inode: ino, Path: ms[0].MountPoint})
	}
	return out
}

// ipNetnsName returns the `ip netns` name of a mount point: the file name
// under /run/netns (or /var/run/netns).
func ipNetnsName(path string) (string, bool) {
	for _, dir := range []string{"/run/netns/", "/var/run/netns/"} {
		if rest, ok := strings.CutPrefix(path, dir); ok && rest != "" && !strings.Contains(rest, "/") {
			return rest, true
		}
	}
	return "", false
}

// HostInode returns the inode of the host's network namespace (PID 1's),
// or 0 when it cannot be read.
func HostInode(procRoot string) uint64 {
	if procRoot == "" {
		procRoot = "/proc"
	}
	return hostNS(procRoot)
}

// hostNS returns the inode of PID 1's network namespace. Where PID 1's
// link is not readable (a PID 1 that refuses even root), kthreadd's is
// used: kernel threads live in the initial namespace.
func hostNS(root string) uint64 {
	if ino, err := nsLink(filepath.Join(root, "1/ns/net")); err == nil {
		return ino
	}
	if readComm(root, 2) == "kthreadd" {
		if ino, err := nsLink(filepath.Join(root, "2/ns/net")); err == nil {
			return ino
		}
	}
	// Without privileges no other process's link can be read, but
	// /proc/PID/net is one directory per namespace: the same inode for
	// PID 1 and porteiro means porteiro is in the host's namespace.
	var one, self unix.Stat_t
	if unix.Stat(filepath.Join(root, "1/net/dev"), &one) == nil && unix.Stat(filepath.Join(root, "self/net/dev"), &self) == nil &&
		one.Ino == self.Ino && one.Dev == self.Dev {
		if ino, err := nsLink(filepath.Join(root, "self/ns/net")); err == nil {
			return ino
		}
	}
	return 0
}

// nsLink reads a namespace link such as /proc/PID/ns/net.
func nsLink(path string) (uint64, error) {
	var buf [64]byte
	n, err := unix.Readlink(path, buf[:])
	if err != nil {
		return 0, err
	}
	ino, ok := procfs.ParseNSLink(buf[:n])
	if !ok {
		return 0, fmt.Errorf("readlink %s: unexpected %q", path, buf[:n])
	}
	return ino, nil
}

// readComm reads /proc/PID/comm (at most 64 bytes), without its newline.
func readComm(root string, pid int) string {
	f, err := os.Open(filepath.Join(root, strconv.Itoa(pid), "comm"))
	if err != nil {
		return ""
	}
	defer f.Close()
	var b [64]byte
	n, _ := io.ReadFull(f, b[:])
	return strings.TrimSuffix(string(b[:n]), "\n")
}

var errTooBig = errors.New("file too large")

// readBounded reads a whole file of at most max bytes into *buf.
func readBounded(path string, limit int, buf *[]byte) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := (*buf)[:0]
	for {
		if len(b) == cap(b) {
			if cap(b) > limit {
				return nil, fmt.Errorf("reading %s: %w", path, errTooBig)
			}
			b = append(b, make([]byte, max(4096, cap(b)))...)[:len(b)]
		}
		n, err := f.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", path, err)
		}
		if n == 0 {
			break
		}
	}
	*buf = b
	return b, nil
}

// ListPIDs returns the pids that the procfs at root lists, in order.
func ListPIDs(root string) ([]int, error) {
	d, err := os.Open(root)
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", root, err)
	}
	defer d.Close()
	names, err := d.Readdirnames(-1)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", root, err)
	}
	pids := make([]int, 0, len(names))
	for _, n := range names {
		if n[0] < '1' || n[0] > '9' {
			continue
		}
		if p, err := strconv.Atoi(n); err == nil && p > 0 {
			pids = append(pids, p)
		}
	}
	slices.Sort(pids)
	return pids, nil
}

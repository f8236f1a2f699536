package taskfd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// These tests load the iterator into the running kernel, which takes
// CAP_BPF and CAP_PERFMON. As root on a kernel with BTF they must pass;
// without privilege, or where the kernel or a sandbox does not offer bpf(2),
// they are skipped.

// openIterator opens the iterator, skipping the test when this process or
// machine cannot load BPF programs, and closes it at the end of the test.
func openIterator(tb testing.TB) *Iterator {
	tb.Helper()
	it, err := Open()
	if err != nil {
		if Unavailable(err) {
			tb.Skipf("the task-file iterator is not available here (it needs root, or CAP_BPF and CAP_PERFMON, and a kernel with BTF): %v", err)
		}
		tb.Fatalf("Open: %v", err)
	}
	tb.Cleanup(func() { it.Close() })
	return it
}

type record struct {
	pid, fd uint32
	inode   uint64
}

func (r record) String() string {
	return fmt.Sprintf("(pid %d, fd %d, inode %d)", r.pid, r.fd, r.inode)
}

// readRecords runs the iterator once and returns its records as a set.
func readRecords(t *testing.T, it *Iterator) map[record]bool {
	t.Helper()
	b, err := it.Read(context.Background(), nil)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	return parseSet(t, b)
}

func parseSet(t *testing.T, b []byte) map[record]bool {
	t.Helper()
	set := map[record]bool{}
	err := ParseRecords(b, func(pid, fd uint32, inode uint64, _ uint32) {
		r := record{pid, fd, inode}
		if set[r] {
			t.Errorf("record %v reported twice", r)
		}
		set[r] = true
	})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// ofPid returns the socket records of process pid (the program also
// reports every other file, with inode 0).
func ofPid(set map[record]bool, pid int) map[record]bool {
	out := map[record]bool{}
	for r := range set {
		if r.pid == uint32(pid) && r.inode != 0 {
			out[r] = true
		}
	}
	return out
}

func inodeOf(t *testing.T, fd int) uint64 {
	t.Helper()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		t.Fatal(err)
	}
	return st.Ino
}

// rawFD returns the descriptor of c, which stays open as long as c.
func rawFD(t *testing.T, c syscall.Conn) int {
	t.Helper()
	sc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	fd := -1
	if err := sc.Control(func(s uintptr) { fd = int(s) }); err != nil {
		t.Fatal(err)
	}
	return fd
}

func listenTCP(t *testing.T) *net.TCPListener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	return ln.(*net.TCPListener)
}

func listenUDP(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.(*net.UDPConn)
}

// fileOf returns a duplicate of c's socket as an *os.File, to hand to a
// child process.
func fileOf(t *testing.T, c interface{ File() (*os.File, error) }) *os.File {
	t.Helper()
	f, err := c.File()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// startSleeper starts `sleep 30` holding files as its fds 3, 4..., and kills
// it at the end of the test.
func startSleeper(t *testing.T, files ...*os.File) *exec.Cmd {
	t.Helper()
	sleep, err := exec.LookPath("sleep")
	if err != nil {
		t.Skipf("no sleep(1) to hold sockets in a child: %v", err)
	}
	cmd := exec.Command(sleep, "30")
	cmd.ExtraFiles = files
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
	})
	return cmd
}

// procSockets reads /proc/PID/fd: the socket fds of process pid.
func procSockets(t *testing.T, pid int) map[record]bool {
	t.Helper()
	dir := filepath.Join("/proc", strconv.Itoa(pid), "fd")
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	out := map[record]bool{}
	for _, e := range ents {
		fd, err := strconv.Atoi(e.Name())
		if err != nil {
			t.Fatalf("%s/%s: not an fd", dir, e.Name())
		}
		link, err := os.Readlink(filepath.Join(dir, e.Name()))
		if errors.Is(err, fs.ErrNotExist) {
			continue // closed since, such as the fd that read the directory
		}
		if err != nil {
			t.Fatal(err)
		}
		if rest, ok := strings.CutPrefix(link, "socket:["); ok {
			ino, err := strconv.ParseUint(strings.TrimSuffix(rest, "]"), 10, 64)
			if err != nil {
				t.Fatalf("%s/%s -> %s: %v", dir, e.Name(), link, err)
			}
			out[record{uint32(pid), uint32(fd), ino}] = true
		}
	}
	return out
}

func sorted(set map[record]bool) []record {
	return slices.SortedFunc(maps.Keys(set), func(a, b record) int {
		if a.pid != b.pid {
			return int(a.pid) - int(b.pid)
		}
		return int(a.fd) - int(b.fd)
	})
}

// TestIteratorOwnSockets: the iterator reports this process's sockets, a
// dup'ed one under both fds, and a regular file with inode 0.
func TestIteratorOwnSockets(t *testing.T) {
	it := openIterator(t)
	ln := listenTCP(t)
	udp := listenUDP(t)
	lfd, ufd := rawFD(t, ln), rawFD(t, udp)
	dup, err := unix.FcntlInt(uintptr(lfd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(dup)
	reg, err := os.Create(filepath.Join(t.TempDir(), "regular"))
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()

	recs := readRecords(t, it)
	self := os.Getpid()
	for _, c := range []struct {
		what string
		fd   int
	}{{"TCP listener", lfd}, {"UDP socket", ufd}, {"dup of the TCP listener", dup}} {
		want := record{uint32(self), uint32(c.fd), inodeOf(t, c.fd)}
		if !recs[want] {
			t.Errorf("%s %v not reported; this process has %v", c.what, want, sorted(ofPid(recs, self)))
		}
	}
	if inodeOf(t, dup) != inodeOf(t, lfd) {
		t.Errorf("dup has inode %d, the listener %d", inodeOf(t, dup), inodeOf(t, lfd))
	}
	// The regular file is reported as a file that is not a socket.
	for r := range recs {
		if r.pid == uint32(self) && r.fd == uint32(reg.Fd()) && r.inode != 0 {
			t.Errorf("regular file reported as a socket: %v", r)
		}
	}
	if want := (record{uint32(self), uint32(reg.Fd()), 0}); !recs[want] {
		t.Errorf("regular file not reported as %v", want)
	}
	// And nothing else: exactly the sockets /proc/self/fd shows.
	if got, want := ofPid(recs, self), procSockets(t, self); !maps.Equal(got, want) {
		t.Errorf("this process:\niterator %v\n   /proc %v", sorted(got), sorted(want))
	}
	runtime.KeepAlive(ln)
	runtime.KeepAlive(udp)
}

// TestOpenStates: an iterator for the states of listeners reports this
// process's TCP listener, unconnected UDP socket and Unix listener, and
// leaves out its connected TCP, UDP and Unix sockets, which the iterator
// for every state reports.
func TestOpenStates(t *testing.T) {
	openIterator(t) // skips where there is no iterator
	const listening = 1<<10 | 1<<7
	it, err := OpenStates(listening)
	if err != nil {
		t.Fatal(err)
	}
	defer it.Close()
	if !it.netns {
		t.Skip("this kernel's iterator does not read sockets' fields: it keeps every state")
	}
	if it.States() != listening || !it.Covers(1<<10) || it.Covers(1<<1) || it.Covers(0) {
		t.Errorf("States %#x; Covers(LISTEN) %v, Covers(ESTABLISHED) %v, Covers(all) %v",
			it.States(), it.Covers(1<<10), it.Covers(1<<1), it.Covers(0))
	}
	ln := listenTCP(t)
	udp := listenUDP(t)
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	connected, err := net.Dial("udp", udp.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer connected.Close()
	pair, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(pair[0])
	defer unix.Close(pair[1])
	ul, err := unix.Socket(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(ul)
	if err := unix.Bind(ul, &unix.SockaddrUnix{Name: "@"}); err != nil { // an autobound abstract name
		t.Fatal(err)
	}
	if err := unix.Listen(ul, 1); err != nil {
		t.Fatal(err)
	}

	self := uint32(os.Getpid())
	kept := map[string]int{"TCP listener": rawFD(t, ln), "UDP unconnected": rawFD(t, udp), "Unix listener": ul}
	left := map[string]int{"TCP client": rawFD(t, client.(*net.TCPConn)), "TCP server": rawFD(t, server.(*net.TCPConn)),
		"UDP connected": rawFD(t, connected.(*net.UDPConn)), "connected Unix socket": pair[0]}
	recs := readRecords(t, it)
	every := readRecords(t, openIterator(t))
	for what, fd := range kept {
		if r := (record{self, uint32(fd), inodeOf(t, fd)}); !recs[r] {
			t.Errorf("%s %v not reported; this process has %v", what, r, sorted(ofPid(recs, int(self))))
		}
	}
	for what, fd := range left {
		r := record{self, uint32(fd), inodeOf(t, fd)}
		if !every[r] {
			t.Errorf("%s %v not reported by the iterator for every state", what, r)
		}
		for got := range recs {
			if got.pid == self && got.fd == uint32(fd) {
				t.Errorf("%s reported: %v", what, got)
			}
		}
	}
}

// TestIteratorChild: another process's socket is reported under its pid and
// its own fd number.
func TestIteratorChild(t *testing.T) {
	it := openIterator(t)
	ln := listenTCP(t)
	f := fileOf(t, ln)
	child := startSleeper(t, f)
	pid := child.Process.Pid

	got := ofPid(readRecords(t, it), pid)
	want := map[record]bool{{uint32(pid), 3, inodeOf(t, int(f.Fd()))}: true}
	if !maps.Equal(got, want) {
		t.Errorf("child %d: got %v, want %v", pid, sorted(got), sorted(want))
	}
}

// TestIteratorMatchesProc: for processes that hold still, the iterator and
// /proc/PID/fd agree exactly.
func TestIteratorMatchesProc(t *testing.T) {
	it := openIterator(t)
	var pids []int
	for range 5 {
		ln, udp := listenTCP(t), listenUDP(t)
		child := startSleeper(t, fileOf(t, ln), fileOf(t, udp))
		pids = append(pids, child.Process.Pid)
	}
	recs := readRecords(t, it)
	for _, pid := range pids {
		got, want := ofPid(recs, pid), procSockets(t, pid)
		if len(want) != 2 {
			t.Errorf("child %d has %d sockets in /proc, want 2: %v", pid, len(want), sorted(want))
		}
		if !maps.Equal(got, want) {
			t.Errorf("child %d:\niterator %v\n   /proc %v", pid, sorted(got), sorted(want))
		}
	}
}

// TestIteratorCancelled: Read gives up with the context's error.
func TestIteratorCancelled(t *testing.T) {
	it := openIterator(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := it.Read(ctx, nil); !errors.Is(err, context.Canceled) {
		t.Errorf("Read with a cancelled context: %v, want %v", err, context.Canceled)
	}
	ctx, cancel = context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	defer cancel()
	if _, err := it.Read(ctx, nil); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Read past its deadline: %v, want %v", err, context.DeadlineExceeded)
	}
	// The iterator still works afterwards.
	if _, err := it.Read(context.Background(), nil); err != nil {
		t.Errorf("Read after a cancelled one: %v", err)
	}
}

// TestIteratorRepeat: Reads in a row, each reusing the last one's buffer,
// report the same sockets for a process that holds still.
func TestIteratorRepeat(t *testing.T) {
	it := openIterator(t)
	ln, udp := listenTCP(t), listenUDP(t)
	child := startSleeper(t, fileOf(t, ln), fileOf(t, udp))
	self, pid := os.Getpid(), child.Process.Pid

	var buf []byte
	var first map[record]bool
	for i := range 4 {
		var err error
		buf, err = it.Read(context.Background(), buf)
		if err != nil {
			t.Fatalf("Read %d: %v", i, err)
		}
		recs := parseSet(t, buf)
		mine := ofPid(recs, self)
		maps.Copy(mine, ofPid(recs, pid))
		if len(ofPid(recs, pid)) != 2 || len(ofPid(recs, self)) < 3 {
			t.Fatalf("Read %d: too few sockets: %v", i, sorted(mine))
		}
		if i == 0 {
			first = mine
		} else if !maps.Equal(mine, first) {
			t.Errorf("Read %d: %v\nfirst Read: %v", i, sorted(mine), sorted(first))
		}
	}
}

// TestIteratorReadFunc: the batches ReadFunc hands over are whole records
// and, end to end, what it returns.
func TestIteratorReadFunc(t *testing.T) {
	it := openIterator(t)
	listenTCP(t)
	var batches []byte
	calls := 0
	out, err := it.ReadFunc(context.Background(), nil, func(b []byte) {
		calls++
		if len(b) == 0 || len(b)%RecordSize != 0 {
			t.Errorf("batch of %d bytes", len(b))
		}
		batches = append(batches, b...)
	})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(batches, out) {
		t.Errorf("batches hold %d bytes, the result %d", len(batches), len(out))
	}
	if len(out) > 0 && calls == 0 {
		t.Errorf("no batch for %d bytes", len(out))
	}
}

// TestIteratorClose: Close may be called twice.
func TestIteratorClose(t *testing.T) {
	it := openIterator(t)
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
	if err := it.Close(); err != nil {
		t.Fatal(err)
	}
}

const (
	helperEnv  = "PORTEIRO_TASKFD_HELPER"
	pidNSEnv   = "PORTEIRO_TASKFD_PARENT_PIDNS" // the parent's PID namespace
	ownProcEnv = "PORTEIRO_TASKFD_OWN_PROC"     // whether /proc is the namespace's own
	depthEnv   = "PORTEIRO_TASKFD_PARENT_DEPTH" // the parent's PID namespace depth
)

// TestPIDNamespace runs TestHelperInPIDNamespace in a new PID namespace,
// where the iterator must report pids as that namespace numbers them: once
// with a /proc of its own, as in a container, where /proc/self/status does
// not show how deep the namespace is, and once with the parent's /proc,
// where it does.
func TestPIDNamespace(t *testing.T) {
	if os.Getenv(helperEnv) == "1" {
		t.Skip("this is the child run by TestPIDNamespace")
	}
	if os.Geteuid() != 0 {
		t.Skip("task-file iterator in a new PID namespace needs root (unshare --pid, CAP_BPF and CAP_PERFMON)")
	}
	unshare, err := exec.LookPath("unshare")
	if err != nil {
		t.Skipf("unshare(1) is needed to make a PID namespace: %v", err)
	}
	it := openIterator(t) // as root, must work here before it is tried there
	depth, exact := it.Depth()
	if !exact {
		t.Fatalf("the iterator here is built for depth %d or deeper, not for the exact depth", depth)
	}
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		t.Fatal(err)
	}
	for _, ownProc := range []bool{true, false} {
		name := map[bool]string{true: "own /proc", false: "parent's /proc"}[ownProc]
		t.Run(name, func(t *testing.T) {
			args := []string{"--pid", "--fork", "--kill-child"}
			if ownProc {
				args = append(args, "--mount-proc")
			}
			args = append(args, os.Args[0], "-test.run", "^TestHelperInPIDNamespace$", "-test.count", "1", "-test.v")
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, unshare, args...)
			cmd.Env = append(os.Environ(), helperEnv+"=1", pidNSEnv+"="+ns, ownProcEnv+"="+strconv.FormatBool(ownProc), depthEnv+"="+strconv.Itoa(depth))
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("%v failed: %v\n%s", cmd.Args, err, out)
			}
			if !bytes.Contains(out, []byte("--- PASS: TestHelperInPIDNamespace")) {
				t.Fatalf("the child did not run TestHelperInPIDNamespace:\n%s", out)
			}
			t.Logf("child:\n%s", out)
		})
	}
}

// TestHelperInPIDNamespace is the body of TestPIDNamespace.
func TestHelperInPIDNamespace(t *testing.T) {
	if os.Getenv(helperEnv) != "1" {
		t.Skip("this is the child body of TestPIDNamespace, which runs it in a new PID namespace")
	}
	ns, err := os.Readlink("/proc/self/ns/pid")
	if err != nil {
		t.Fatal(err)
	}
	if parent := os.Getenv(pidNSEnv); ns == parent {
		t.Fatalf("in the parent's PID namespace %s", ns)
	}
	self := os.Getpid()
	if self != 1 {
		t.Fatalf("pid %d in a new PID namespace, want 1", self)
	}
	// With a /proc of its own, NSpid shows one pid, as in the initial
	// namespace; with the parent's, two.
	ownProc := os.Getenv(ownProcEnv) == "true"
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	var nspid []string
	for line := range strings.Lines(string(status)) {
		if rest, ok := strings.CutPrefix(line, "NSpid:"); ok {
			nspid = strings.Fields(rest)
		}
	}
	if want := map[bool]int{true: 1, false: 2}[ownProc]; len(nspid) != want {
		t.Fatalf("NSpid %v, want %d pids", nspid, want)
	}
	t.Logf("pid %d in %s (the parent is in %s), NSpid %v", self, ns, os.Getenv(pidNSEnv), nspid)

	it := openIterator(t)
	// The depth program sees one level more than the parent's, whatever
	// /proc shows: the program is built for that depth, and its pids
	// (the probe socket's, checked by the first Read) are right.
	parent, _ := strconv.Atoi(os.Getenv(depthEnv))
	if depth, exact := it.Depth(); !exact || depth != parent+1 {
		t.Errorf("iterator built for depth %d (exact %v); the parent is at %d, so want %d, exact", depth, exact, parent, parent+1)
	}
	ln := listenTCP(t)
	lfd := rawFD(t, ln)
	recs := readRecords(t, it) // the first Read checks the probe socket's pid
	if want := (record{uint32(self), uint32(lfd), inodeOf(t, lfd)}); !recs[want] {
		t.Errorf("listener %v not reported; this process has %v", want, sorted(ofPid(recs, self)))
	}
	// Only the processes of this namespace are visited, by their pids
	// here: each is in the /proc mounted for the namespace.
	for r := range recs {
		if !ownProc {
			break
		}
		if _, err := os.Stat(filepath.Join("/proc", strconv.Itoa(int(r.pid)))); err != nil {
			t.Errorf("record %v: its process is not in this namespace: %v", r, err)
		}
	}
}

// TestIteratorNetNS checks the network namespace of each socket: a socket
// opened in a new namespace, which this process then leaves (so only the
// socket leads to it), is reported with that namespace's inode, and the
// other sockets with this process's.
func TestIteratorNetNS(t *testing.T) {
	it := openIterator(t)
	if !it.NetNS() {
		t.Skip("this kernel's iterator does not give network namespaces (no bpf_sock_from_file for tracing programs)")
	}
	var self unix.Stat_t
	if err := unix.Stat("/proc/thread-self/ns/net", &self); err != nil {
		t.Fatal(err)
	}
	here, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(here)
	var (
		away   = -1
		awayNS uint64
		errc   = make(chan error, 1)
	)
	go func() {
		runtime.LockOSThread()
		orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			errc <- err
			return
		}
		defer unix.Close(orig)
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		var st unix.Stat_t
		unix.Stat("/proc/thread-self/ns/net", &st)
		awayNS = st.Ino
		away, err = unix.Socket(unix.AF_INET6, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
		if unix.Setns(orig, unix.CLONE_NEWNET) != nil {
			errc <- errors.New("could not return to the original namespace")
			return // the thread stays locked and dies
		}
		runtime.UnlockOSThread()
		errc <- err
	}()
	if err := <-errc; err != nil {
		if errors.Is(err, unix.EPERM) {
			t.Skipf("cannot create a network namespace here: %v", err)
		}
		t.Fatal(err)
	}
	defer unix.Close(away)
	b, err := it.Read(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	got := map[int]uint32{}
	pid := uint32(os.Getpid())
	ParseRecords(b, func(p, fd uint32, inode uint64, netns uint32) {
		if p == pid && (fd == uint32(here) || fd == uint32(away)) {
			got[int(fd)] = netns
		}
	})
	if got[here] != uint32(self.Ino) {
		t.Errorf("socket in this namespace: netns %d, want %d", got[here], self.Ino)
	}
	if got[away] != uint32(awayNS) || awayNS == self.Ino {
		t.Errorf("socket in the namespace it alone leads to: netns %d, want %d (this process's: %d)", got[away], awayNS, self.Ino)
	}
}

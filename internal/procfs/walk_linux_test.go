package procfs

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/porteiro/porteiro/internal/procfs/procfstest"
)

func wantSet(inodes ...uint64) map[uint64]struct{} {
	m := map[uint64]struct{}{}
	for _, i := range inodes {
		m[i] = struct{}{}
	}
	return m
}

func sorted(hs []Holder) []Holder {
	sort.Slice(hs, func(i, j int) bool {
		if hs[i].PID != hs[j].PID {
			return hs[i].PID < hs[j].PID
		}
		return hs[i].FD < hs[j].FD
	})
	return hs
}

func TestWalkFixture(t *testing.T) {
	if os.Geteuid() != 0 {
		// As a normal user the mode-000 fd dir is denied, as it should be;
		// the privileged expectations below need root's DAC override.
		t.Skip("needs root: the fixture's mode-000 fd directory is readable only with CAP_DAC_OVERRIDE")
	}
	tr := procfstest.Standard(t)
	for _, workers := range []int{1, 2, 7} {
		w := &Walker{Root: tr.Root, Workers: workers}
		res, err := w.Walk(context.Background(), wantSet(1000, 1001, 2000, 4000, 5000, 9000))
		if err != nil {
			t.Fatal(err)
		}
		want := standardHolders()
		got := map[uint64][]Holder{}
		for k, v := range res.Holders {
			got[k] = sorted(v)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("workers=%d: holders = %v\nwant %v", workers, got, want)
		}
		if res.Scanned != 6 || res.Denied != 0 {
			t.Errorf("workers=%d: scanned=%d denied=%d, want 6, 0", workers, res.Scanned, res.Denied)
		}
	}
}

// TestWalkEmit checks that with Emit set, every record goes to Emit, from
// a worker in range, and none to the result's Holders.
func TestWalkEmit(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the fixture's mode-000 fd directory is readable only with CAP_DAC_OVERRIDE")
	}
	tr := procfstest.Standard(t)
	var mu sync.Mutex
	got := map[uint64][]Holder{}
	w := &Walker{Root: tr.Root, Workers: 3}
	w.Emit = func(wk, pid, fd int, inode uint64) {
		if wk < 0 || wk >= w.NumWorkers() {
			t.Errorf("record from worker %d of %d", wk, w.NumWorkers())
		}
		mu.Lock()
		got[inode] = append(got[inode], Holder{PID: pid, FD: fd})
		mu.Unlock()
	}
	res, err := w.Walk(context.Background(), wantSet(1000, 1001, 2000, 4000, 5000, 9000))
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Holders) != 0 {
		t.Errorf("Holders = %v, want empty with Emit", res.Holders)
	}
	for k, v := range got {
		got[k] = sorted(v)
	}
	want := standardHolders()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("emitted %v\nwant %v", got, want)
	}
}

// TestWalkUnprivileged runs the walk as an unprivileged user, in a child
// process, so the mode-000 fd directory is really refused by the kernel.
func TestWalkUnprivileged(t *testing.T) {
	if os.Getenv("PORTEIRO_WALK_CHILD") != "" {
		w := &Walker{Root: os.Getenv("PORTEIRO_WALK_CHILD")}
		res, err := w.Walk(context.Background(), wantSet(1000, 5000))
		if err != nil {
			t.Fatal(err)
		}
		if res.Denied != 1 || len(res.Holders[5000]) != 0 || len(res.Holders[1000]) != 3 {
			t.Fatalf("as uid %d: denied=%d holders=%v; want denied=1, 5000 unseen, 1000 with 3 holders", os.Geteuid(), res.Denied, res.Holders)
		}
		return
	}
	tr := procfstest.Standard(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestWalkUnprivileged$", "-test.v")
	cmd.Env = append(os.Environ(), "PORTEIRO_WALK_CHILD="+tr.Root)
	if os.Geteuid() == 0 {
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		// The test binary lives in a private temp dir; let nobody run it.
		exe, _ := os.Executable()
		// Up to, not including, the temp dir itself: /tmp must keep its
		// sticky, world-writable mode.
		for d := parentDir(exe); d != "/" && d != "." && d != os.TempDir(); d = parentDir(d) {
			os.Chmod(d, 0o755)
		}
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("walk as an unprivileged user: %v\n%s", err, out)
	}
}

func parentDir(p string) string {
	for i := len(p) - 1; i > 0; i-- {
		if p[i] == '/' {
			return p[:i]
		}
	}
	return "/"
}

// TestWalkCancel proves that cancelling the context stops the walk: after
// the cancel, no more process directories are opened.
func TestWalkCancel(t *testing.T) {
	tr := procfstest.New(t)
	for pid := 1000; pid < 1200; pid++ {
		tr.Add(t, procfstest.Proc{PID: pid, PPID: 1, Comm: "p" + strconv.Itoa(pid), FDs: map[int]string{3: "socket:[" + strconv.Itoa(pid) + "]"}})
	}
	ctx, cancel := context.WithCancel(context.Background())
	var visited atomic.Int64
	w := &Walker{Root: tr.Root, Workers: 1, visit: func(int) {
		if visited.Add(1) == 10 {
			cancel()
		}
	}}
	_, err := w.Walk(ctx, wantSet(1000))
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if n := visited.Load(); n != 10 {
		t.Errorf("visited %d processes after cancelling at 10 of 200", n)
	}
}

func TestReadProcessFixture(t *testing.T) {
	tr := procfstest.Standard(t)
	p, err := ReadProcess(tr.Root, 200)
	if err != nil {
		t.Fatal(err)
	}
	if p.Stat.Comm != "my (odd) prog" || p.Exe != "/opt/app/server" || !p.ExeDeleted || p.UID != 1000 ||
		!reflect.DeepEqual(p.Cmdline, []string{"/opt/app/server", "--port", "8080"}) || p.Cgroup.Container == "" {
		t.Errorf("ReadProcess(200) = %+v", p)
	}
	// Brief reads the same stat, user and command line, and leaves out
	// the executable and the cgroup.
	var buf []byte
	b, err := ReadProcessFields(tr.Root, 200, &buf, true)
	if err != nil {
		t.Fatal(err)
	}
	if b.Stat != p.Stat || b.UID != p.UID || !b.UIDKnown || !reflect.DeepEqual(b.Cmdline, p.Cmdline) ||
		b.Exe != "" || b.ExeDeleted || b.Cgroup != (Cgroup{}) {
		t.Errorf("brief ReadProcessFields(200) = %+v", b)
	}
	z, err := ReadProcess(tr.Root, 300)
	if err != nil || z.Stat.State != "Z" || z.Cmdline != nil {
		t.Errorf("zombie = %+v, %v", z, err)
	}
	if _, err := ReadProcess(tr.Root, 400); !errors.Is(err, ErrExited) {
		t.Errorf("vanished process: err = %v, want ErrExited", err)
	}
	if _, err := ReadProcess(tr.Root, 999); !errors.Is(err, ErrExited) {
		t.Errorf("missing process: err = %v, want ErrExited", err)
	}
	if st, ok := StartTicks(tr.Root, 100); !ok || st != 500 {
		t.Errorf("StartTicks(100) = %d, %v", st, ok)
	}
}

// TestWalkSelf checks the walker on the real /proc: a socket this test
// opens must be found under this process with the right fd.
func TestWalkSelf(t *testing.T) {
	fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer syscall.Close(fd)
	link, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		t.Fatal(err)
	}
	ino, ok := ParseSocketLink([]byte(link))
	if !ok {
		t.Fatalf("fd link %q", link)
	}
	res, err := (&Walker{Root: "/proc"}).Walk(context.Background(), wantSet(ino))
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, h := range res.Holders[ino] {
		if h.PID == os.Getpid() && h.FD == fd {
			found = true
		}
	}
	if !found {
		t.Errorf("holders of %d = %v, want pid %d fd %d", ino, res.Holders[ino], os.Getpid(), fd)
	}
}

// TestPassFixture checks Start and Each: every socket of every process
// comes, whether or not anyone wants it, each once, and the result counts
// the processes as Walk does.
func TestPassFixture(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the fixture's mode-000 fd directory is readable only with CAP_DAC_OVERRIDE")
	}
	tr := procfstest.Standard(t)
	for _, workers := range []int{1, 3} {
		p := (&Walker{Root: tr.Root, Workers: workers}).Start(context.Background())
		got := map[uint64][]Holder{}
		res, err := p.Each(func(pid, fd int, inode uint64) {
			got[inode] = append(got[inode], Holder{PID: pid, FD: fd})
		})
		if err != nil {
			t.Fatal(err)
		}
		for k, v := range got {
			got[k] = sorted(v)
		}
		want := standardHolders()
		if !reflect.DeepEqual(got, want) {
			t.Errorf("workers=%d: records %v\nwant %v", workers, got, want)
		}
		if res.Scanned != 6 || res.Denied != 0 || len(res.Holders) != 0 {
			t.Errorf("workers=%d: scanned=%d denied=%d holders=%v, want 6, 0, none", workers, res.Scanned, res.Denied, res.Holders)
		}
	}
}

// TestPassUncollected checks that a walk nobody collects still ends, on
// its one worker, and keeps its records for a late Each.
func TestPassUncollected(t *testing.T) {
	tr := procfstest.New(t)
	for pid := 1000; pid < 1050; pid++ {
		tr.Add(t, procfstest.Proc{PID: pid, PPID: 1, Comm: "p", FDs: map[int]string{3: "socket:[" + strconv.Itoa(pid) + "]"}})
	}
	var visited atomic.Int64
	p := (&Walker{Root: tr.Root, Workers: 4, visit: func(int) { visited.Add(1) }}).Start(context.Background())
	deadline := time.Now().Add(30 * time.Second)
	for {
		p.mu.Lock()
		done := p.done
		p.mu.Unlock()
		if done {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the walk did not end without Each (%d of 50 processes visited)", visited.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	n := 0
	res, err := p.Each(func(int, int, uint64) { n++ })
	if err != nil || n != 50 || res.Scanned != 50 {
		t.Errorf("late Each: %d records, %+v, %v; want 50 records of 50 processes", n, res, err)
	}
}

// TestPassCancel proves that a started walk stops when its context is
// cancelled, and that Each says so.
func TestPassCancel(t *testing.T) {
	tr := procfstest.New(t)
	for pid := 1000; pid < 1200; pid++ {
		tr.Add(t, procfstest.Proc{PID: pid, PPID: 1, Comm: "p" + strconv.Itoa(pid), FDs: map[int]string{3: "socket:[" + strconv.Itoa(pid) + "]"}})
	}
	ctx, cancel := context.WithCancel(context.Background())
	var visited atomic.Int64
	w := &Walker{Root: tr.Root, Workers: 1, visit: func(int) {
		if visited.Add(1) == 10 {
			cancel()
		}
	}}
	n := 0
	_, err := w.Start(ctx).Each(func(int, int, uint64) { n++ })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
	if v := visited.Load(); v != 10 || n > 10 {
		t.Errorf("visited %d processes and got %d records after cancelling at 10 of 200", v, n)
	}
}

// openSockets opens n sockets in this process and returns their fds and
// inodes; they are closed when the test ends.
func openSockets(t *testing.T, n int) (fds []int, inodes map[uint64]int) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil || lim.Cur < uint64(n)+256 {
		t.Skipf("needs %d open files, RLIMIT_NOFILE is %d", n+256, lim.Cur)
	}
	inodes = map[uint64]int{}
	for range n {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_DGRAM, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { syscall.Close(fd) })
		var st syscall.Stat_t
		if err := syscall.Fstat(fd, &st); err != nil {
			t.Fatal(err)
		}
		fds = append(fds, fd)
		inodes[st.Ino] = fd
	}
	return fds, inodes
}

// TestWalkManyFDs checks a process whose fd directory takes several
// getdents calls (3,000 fds, where one 8 KiB buffer holds about 300):
// the walk must not stop after the first batch.
func TestWalkManyFDs(t *testing.T) {
	_, inodes := openSockets(t, 3000)
	want := map[uint64]struct{}{}
	for ino := range inodes {
		want[ino] = struct{}{}
	}
	self := os.Getpid()
	w := &Walker{Root: "/proc", Skip: func(pid int) bool { return pid != self }}
	res, err := w.Walk(context.Background(), want)
	if err != nil {
		t.Fatal(err)
	}
	for ino, fd := range inodes {
		if hs := res.Holders[ino]; len(hs) != 1 || hs[0] != (Holder{PID: self, FD: fd}) {
			t.Fatalf("holders of %d = %v, want pid %d fd %d (found %d of %d sockets)", ino, hs, self, fd, len(res.Holders), len(inodes))
		}
	}
	// Start keeps them all too, without a wanted set.
	n := 0
	if _, err := w.Start(context.Background()).Each(func(pid, fd int, ino uint64) {
		if inodes[ino] == fd && pid == self {
			n++
		}
	}); err != nil {
		t.Fatal(err)
	}
	if n != len(inodes) {
		t.Errorf("Start found %d of %d sockets", n, len(inodes))
	}
}

// TestPassLive checks Start against Walk on the real /proc: the sockets of
// a child process (fds 3 to 7, inherited) come with the child's pid, and
// every record Walk finds for the same inodes is among Start's.
func TestPassLive(t *testing.T) {
	fds, inodes := openSockets(t, 5)
	// The child gets duplicates: an os.File owns its fd, and would close
	// it (or, after a reuse, another) when collected.
	files := make([]*os.File, len(fds))
	for i, fd := range fds {
		d, err := syscall.Dup(fd)
		if err != nil {
			t.Fatal(err)
		}
		files[i] = os.NewFile(uintptr(d), "socket")
	}
	cmd := exec.Command("sleep", "60")
	cmd.ExtraFiles = files
	err := cmd.Start()
	for _, f := range files {
		f.Close()
	}
	if err != nil {
		t.Skipf("starting sleep: %v", err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	want := map[uint64]struct{}{}
	for ino := range inodes {
		want[ino] = struct{}{}
	}
	res, err := (&Walker{Root: "/proc"}).Walk(context.Background(), want)
	if err != nil {
		t.Fatal(err)
	}
	got := map[uint64][]Holder{}
	if _, err := (&Walker{Root: "/proc"}).Start(context.Background()).Each(func(pid, fd int, ino uint64) {
		if _, ok := want[ino]; ok {
			got[ino] = append(got[ino], Holder{PID: pid, FD: fd})
		}
	}); err != nil {
		t.Fatal(err)
	}
	child := cmd.Process.Pid
	for ino, fd := range inodes {
		i := slices.Index(fds, fd)
		if !slices.Contains(got[ino], Holder{PID: child, FD: 3 + i}) {
			t.Errorf("socket %d: Start found %v, want pid %d fd %d among them", ino, got[ino], child, 3+i)
		}
		for _, h := range res.Holders[ino] {
			if !slices.Contains(got[ino], h) {
				t.Errorf("socket %d: Walk found %v, Start did not", ino, h)
			}
		}
	}
}

// TestReadFileSizes checks readFile at the edges of its buffer: a file that
// fills it exactly must be read on (the short read that ends the loop has
// not come), and a huge one stops at maxFileSize.
func TestReadFileSizes(t *testing.T) {
	dir := t.TempDir()
	var reused []byte
	for _, size := range []int{0, 1, 511, 4095, 4096, 4097, 8192, 100_000, maxFileSize, 3 * maxFileSize} {
		want := make([]byte, size)
		for i := range want {
			want[i] = byte('a' + i%26)
		}
		path := dir + "/f" + strconv.Itoa(size)
		if err := os.WriteFile(path, want, 0o600); err != nil {
			t.Fatal(err)
		}
		if size > maxFileSize {
			want = want[:maxFileSize]
		}
		var fresh []byte
		for _, buf := range []*[]byte{&fresh, &reused} {
			got, err := readFile(path, buf)
			if err != nil {
				t.Fatalf("size %d: %v", size, err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("size %d: read %d bytes, want %d", size, len(got), len(want))
			}
		}
	}
}

// TestBriefNameMatchesStat: the name a brief read takes from status is the
// comm that stat gives, for a hostile one too (a newline, a backslash, an
// escape sequence, a tab, parentheses). The kernel lets a process rename
// only itself, so the test renames its own process for a moment.
func TestBriefNameMatchesStat(t *testing.T) {
	old, err := os.ReadFile("/proc/self/comm")
	if err != nil {
		t.Fatal(err)
	}
	const name = "a\nb\\n)(\x1b[3\t" // within the comm's 15 bytes
	if err := os.WriteFile("/proc/self/comm", []byte(name), 0); err != nil {
		t.Skipf("cannot rename this process: %v", err)
	}
	t.Cleanup(func() { os.WriteFile("/proc/self/comm", bytes.TrimSuffix(old, []byte("\n")), 0) })
	pid := os.Getpid()
	var buf []byte
	full, err := ReadProcessFields("/proc", pid, &buf, false)
	if err != nil {
		t.Fatal(err)
	}
	brief, err := ReadProcessFields("/proc", pid, &buf, true)
	if err != nil {
		t.Fatal(err)
	}
	if full.Stat.Comm != name {
		t.Fatalf("stat comm = %q, want %q", full.Stat.Comm, name)
	}
	if brief.Stat.Comm != full.Stat.Comm || brief.Stat.PPID != full.Stat.PPID ||
		brief.UID != full.UID || !reflect.DeepEqual(brief.Cmdline, full.Cmdline) {
		t.Errorf("brief %+v differs from full %+v", brief, full)
	}
}

// standardHolders are the holders that a walk finds of
// procfstest.Standard's sockets, sorted.
func standardHolders() map[uint64][]Holder {
	return map[uint64][]Holder{
		1000: {{100, 3}, {100, 7}, {101, 3}},
		1001: {{100, 4}},
		2000: {{200, 3}},
		4000: {{400, 3}},
		5000: {{500, 3}},
	}
}

// TestWalkGivenPIDs walks the processes a listing names instead of
// listing the root: a process the listing lacks is not opened, and one
// it names that is gone is skipped.
func TestWalkGivenPIDs(t *testing.T) {
	tr := procfstest.New(t)
	for pid := 1000; pid < 1010; pid++ {
		tr.Add(t, procfstest.Proc{PID: pid, PPID: 1, Comm: "p" + strconv.Itoa(pid), FDs: map[int]string{3: "socket:[" + strconv.Itoa(pid) + "]"}})
	}
	var mu sync.Mutex
	visited := map[int]bool{}
	w := &Walker{Root: tr.Root, Workers: 2, PIDs: []int{1001, 1003, 4242}, visit: func(pid int) {
		mu.Lock()
		visited[pid] = true
		mu.Unlock()
	}}
	want := map[uint64]struct{}{1001: {}, 1002: {}, 1003: {}}
	res, err := w.Walk(context.Background(), want)
	if err != nil {
		t.Fatal(err)
	}
	for pid := range visited {
		if pid != 1001 && pid != 1003 && pid != 4242 {
			t.Errorf("walked pid %d, which the listing does not name", pid)
		}
	}
	var got []int
	for _, hs := range res.Holders {
		for _, h := range hs {
			got = append(got, h.PID)
		}
	}
	slices.Sort(got)
	if !slices.Equal(got, []int{1001, 1003}) {
		t.Errorf("holders %v, want those of 1001 and 1003 only", res.Holders)
	}
}

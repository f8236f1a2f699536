package taskfd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// openTasks opens the task iterator, skipping the test where this process
// or machine cannot load BPF programs, and closes it at the end.
func openTasks(tb testing.TB) *Tasks {
	tb.Helper()
	tk, err := OpenTasks()
	if err != nil {
		if Unavailable(err) {
			tb.Skipf("the task iterator is not available here (it needs root, or CAP_BPF and CAP_PERFMON, and a kernel with BTF): %v", err)
		}
		tb.Fatalf("OpenTasks: %v", err)
	}
	tb.Cleanup(func() { tk.Close() })
	return tk
}

// procTask is what /proc says of a process: the oracle.
type procTask struct {
	name, state     []byte
	ppid, uid       string
	threads         string
	start           string
	cmdline         []byte
	netns           uint64
	kthread, exists bool
}

func readProcTask(pid uint32) procTask {
	dir := filepath.Join("/proc", strconv.Itoa(int(pid)))
	var p procTask
	status, err1 := os.ReadFile(filepath.Join(dir, "status"))
	stat, err2 := os.ReadFile(filepath.Join(dir, "stat"))
	cmdline, err3 := os.ReadFile(filepath.Join(dir, "cmdline"))
	if err1 != nil || err2 != nil || err3 != nil {
		return p
	}
	p.exists, p.cmdline = true, cmdline
	for line := range bytes.Lines(status) {
		line = bytes.TrimSuffix(line, []byte("\n"))
		k, v, _ := bytes.Cut(line, []byte(":\t"))
		switch string(k) {
		case "Name":
			p.name = unescapeStatusName(v)
		case "State":
			p.state = v[:1]
		case "PPid":
			p.ppid = string(v)
		case "Uid":
			p.uid = strings.Fields(string(v))[0]
		case "Threads":
			p.threads = string(v)
		}
	}
	// stat: "pid (comm) state ppid ..."; the fields after the last ')'.
	f := strings.Fields(string(stat[bytes.LastIndexByte(stat, ')')+1:]))
	p.start = f[19] // field 22
	flags, _ := strconv.ParseUint(f[6], 10, 64)
	p.kthread = flags&PFKthread != 0
	var st unix.Stat_t
	if unix.Stat(filepath.Join(dir, "ns/net"), &st) == nil {
		p.netns = st.Ino
	}
	return p
}

// unescapeStatusName undoes the escapes of status' Name line (\n and \\).
func unescapeStatusName(v []byte) []byte {
	var out []byte
	for i := 0; i < len(v); i++ {
		if v[i] == '\\' && i+1 < len(v) {
			i++
			if v[i] == 'n' {
				out = append(out, '\n')
				continue
			}
		}
		out = append(out, v[i])
	}
	return out
}

// hostileComms and hostileArgs attack whoever prints or parses them.
var (
	hostileComms = []string{"a\nb\x1b[2J\r\u202ec", `x",pid=1,fd=9`, "=1+\xff\u2066\t\x7f"}
	hostileArgs  = []string{"--title=\x1b]0;pwned\x07", "line\nbreak", "\u202egpj.exe", "bad\xc0\xafutf8", ""}
)

// startShell starts sh reading its stdin, with comm and args, and returns
// its pid once it has renamed itself.
func startShell(t *testing.T, comm string, args ...string) int {
	t.Helper()
	return startScript(t, `printf '%s' "$0" > /proc/$$/comm && echo ready && read x`, append([]string{comm}, args...)...)
}

// startScript starts sh -c script with args, which prints "ready" and
// then reads its stdin, and returns its pid once it is ready. The shell
// ends with the test.
func startScript(t *testing.T, script string, args ...string) int {
	t.Helper()
	cmd := exec.Command("/bin/sh", append([]string{"-c", script}, args...)...)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() })
	if line, err := bufio.NewReader(stdout).ReadString('\n'); err != nil || line != "ready\n" {
		t.Fatalf("sh did not start: %q %v", line, err)
	}
	return cmd.Process.Pid
}

// TestTasksMatchProc compares every record with /proc: name, parent,
// user, start time, network namespace, kernel thread or not, and the
// command line, on processes with hostile names and arguments and one
// whose command line is longer than the program copies.
func TestTasksMatchProc(t *testing.T) {
	tk := openTasks(t)
	ours := map[int]bool{}
	for _, c := range hostileComms {
		ours[startShell(t, c, hostileArgs...)] = true
	}
	long := strings.Repeat("x", TaskCmdMax+100)
	longPID := startShell(t, "long", long)
	ours[longPID] = true

	before, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	// What /proc says before the pass: a process whose details change
	// meanwhile (one that execs, or is re-parented, as the processes of
	// a build beside the test do) is not compared.
	was := map[uint32]procTask{}
	for _, e := range before {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			was[uint32(pid)] = readProcTask(uint32(pid))
		}
	}
	b, err := tk.Read(context.Background(), nil)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	seen := map[uint32]bool{}
	compared := 0
	if err := ParseTasks(b, func(k *Task) {
		if seen[k.PID] {
			t.Errorf("pid %d reported twice", k.PID)
		}
		seen[k.PID] = true
		p := readProcTask(k.PID)
		if !p.exists || !reflect.DeepEqual(p, was[k.PID]) {
			return // exited, or changed, meanwhile
		}
		compared++
		check := func(what string, got, want any) {
			if got != want {
				t.Errorf("pid %d (%q): %s %v, /proc says %v", k.PID, p.name, what, got, want)
			}
		}
		if p.kthread {
			// /proc shows a kernel thread's full name (a workqueue's
			// included); comm is its first 15 bytes.
			if !bytes.HasPrefix(p.name, k.Comm) || len(k.Comm) == 0 {
				t.Errorf("kernel thread %d: name %q is not the start of %q", k.PID, k.Comm, p.name)
			}
		} else {
			check("name", string(k.Comm), string(p.name))
		}
		check("ppid", strconv.Itoa(int(k.PPID)), p.ppid)
		check("uid", strconv.Itoa(int(k.UID)), p.uid)
		check("start", strconv.FormatUint(k.StartTicks(), 10), p.start)
		check("kernel thread", k.Kthread(), p.kthread)
		check("threads", strconv.Itoa(int(k.Threads)), p.threads)
		if p.netns != 0 {
			check("netns", uint64(k.NetNS), p.netns)
		}
		if k.CmdlineComplete() {
			check("cmdline", string(k.Cmdline), string(p.cmdline))
		} else if k.PID == uint32(longPID) {
			check("argument area", k.Args, uint64(len(p.cmdline)))
			check("copied", len(k.Cmdline), TaskCmdMax)
		}
		if ours[int(k.PID)] {
			// Blocked in read: a stable state.
			check("state", string(k.StateLetter()), string(p.state))
			if k.PID != uint32(longPID) && !k.CmdlineComplete() {
				t.Errorf("pid %d: hostile command line %q not complete (area %d)", k.PID, k.Cmdline, k.Args)
			}
		}
	}); err != nil {
		t.Fatal(err)
	}
	for pid := range ours {
		if !seen[uint32(pid)] {
			t.Errorf("our child %d not reported", pid)
		}
	}
	// Processes of one executable key share /proc/PID/exe, and of one
	// cgroup key /proc/PID/cgroup: the keys stand for what /proc says.
	exes, cgroups := map[[2]uint64]string{}, map[uint64]string{}
	exeShared, cgShared := 0, 0
	ParseTasks(b, func(k *Task) {
		if k.Kthread() {
			return
		}
		dir := filepath.Join("/proc", strconv.Itoa(int(k.PID)))
		exe, err1 := os.Readlink(filepath.Join(dir, "exe"))
		cg, err2 := os.ReadFile(filepath.Join(dir, "cgroup"))
		if err1 != nil || err2 != nil {
			return // exited, or hidden
		}
		if k.ExeMnt == 0 || k.ExeDentry == 0 || k.CSSSet == 0 {
			t.Errorf("pid %d (%q): executable %#x:%#x, cgroups %#x", k.PID, k.Comm, k.ExeMnt, k.ExeDentry, k.CSSSet)
			return
		}
		key := [2]uint64{k.ExeMnt, k.ExeDentry}
		if prev, ok := exes[key]; ok {
			exeShared++
			if prev != exe {
				t.Errorf("pid %d: executable %q under the key of %q", k.PID, exe, prev)
			}
		}
		exes[key] = exe
		if prev, ok := cgroups[k.CSSSet]; ok {
			cgShared++
			if prev != string(cg) {
				t.Errorf("pid %d: cgroups %q under the key of %q", k.PID, cg, prev)
			}
		}
		cgroups[k.CSSSet] = string(cg)
	})
	// Our children all run /bin/sh in our cgroups: keys are shared.
	if exeShared < len(ours)-1 || cgShared < len(ours)-1 {
		t.Errorf("keys shared by %d processes' executables and %d processes' cgroups, want at least %d", exeShared, cgShared, len(ours)-1)
	}
	if k, ok := findTask(b, uint32(longPID)); !ok || k.CmdlineComplete() {
		t.Errorf("the long command line (%d bytes) was taken as complete", len(long))
	}
	// Every process /proc showed before the pass and still shows is
	// reported, but for one that the kernel hides even from root (its
	// files cannot be read: a security module's doing, as for PID 1 on
	// some sandboxed hosts), which the iterators do not visit either.
	for _, e := range before {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || seen[uint32(pid)] {
			continue
		}
		if _, err := os.Stat(filepath.Join("/proc", e.Name())); err != nil {
			continue // exited
		}
		if _, err := os.Readlink(filepath.Join("/proc", e.Name(), "fd", "0")); errors.Is(err, os.ErrPermission) {
			t.Logf("process %d is hidden from root: not reported, as expected", pid)
			continue
		}
		t.Errorf("process %d, in /proc, not reported", pid)
	}
	if compared < len(ours)+1 {
		t.Fatalf("only %d processes compared", compared)
	}
	t.Logf("%d processes, %d compared with /proc, %d bytes", len(seen), compared, len(b))
}

func findTask(b []byte, pid uint32) (Task, bool) {
	var out Task
	found := false
	ParseTasks(b, func(k *Task) {
		if k.PID == pid {
			out, found = *k, true
			out.Comm, out.Cmdline = bytes.Clone(k.Comm), bytes.Clone(k.Cmdline)
		}
	})
	return out, found
}

// TestTasksRepeat reads twice with one program, reusing the buffer.
func TestTasksRepeat(t *testing.T) {
	tk := openTasks(t)
	b, err := tk.Read(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := findTask(b, uint32(os.Getpid())); !ok {
		t.Fatal("this process not reported")
	}
	b2, err := tk.Read(context.Background(), b)
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := findTask(b2, uint32(os.Getpid())); !ok {
		t.Fatal("this process not reported the second time")
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := tk.Read(ctx, nil); !errors.Is(err, context.Canceled) {
		t.Fatalf("Read with a cancelled context: %v", err)
	}
}

// TestTasksStats compares what the record gives of CPU time and resident
// memory with /proc/PID/stat, for a shell that has spent some CPU time and
// now waits: its CPU time in clock ticks, and its resident pages.
func TestTasksStats(t *testing.T) {
	tk := openTasks(t)
	l, err := kernelLayout()
	if err != nil {
		t.Fatal(err)
	}
	if !l.Task.HasStats {
		t.Skip("this kernel's types give no CPU time or resident pages to the task program (before Linux 6.2): /proc is read")
	}
	pid := startScript(t, `i=0; while [ $i -lt 200000 ]; do i=$((i+1)); done; echo ready; read x`)
	b, err := tk.Read(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	k, ok := findTask(b, uint32(pid))
	if !ok {
		t.Fatalf("no record of pid %d", pid)
	}
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		t.Fatal(err)
	}
	// The fields after the command's closing parenthesis: state is the
	// 3rd field of stat, utime the 14th, stime the 15th, rss the 24th.
	f := strings.Fields(string(raw[bytes.LastIndexByte(raw, ')')+2:]))
	num := func(i int) uint64 {
		v, err := strconv.ParseUint(f[i-3], 10, 64)
		if err != nil {
			t.Fatalf("stat field %d: %v", i, err)
		}
		return v
	}
	ticks := num(14) + num(15)
	got := (k.Runtime + k.ExitedRuntime) / 1e7 // ns to clock ticks (USER_HZ 100)
	t.Logf("pid %d: %d ns (%d ticks) and %d pages; /proc: %d ticks and %d pages", pid, k.Runtime+k.ExitedRuntime, got, k.RSSPages, ticks, num(24))
	if ticks == 0 || got+1 < ticks || got > ticks+1 {
		t.Errorf("CPU time %d ticks, /proc says %d", got, ticks)
	}
	if k.RSSPages == 0 || k.RSSPages != num(24) {
		t.Errorf("resident pages %d, /proc says %d", k.RSSPages, num(24))
	}
}

package taskfd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Tasks is the loaded task iterator program (tasks.go). Each Read runs it
// once over every process. It is not safe for concurrent use.
type Tasks struct {
	prog, link, buf int
	level           int
	checked         bool
	stats           bool // the records carry CPU time and resident pages
}

// mapCreateAttr is bpf(BPF_MAP_CREATE)'s attribute, as far as used.
type mapCreateAttr struct {
	mapType    uint32
	keySize    uint32
	valueSize  uint32
	maxEntries uint32
	mapFlags   uint32
	_          [13]uint32
}

// OpenTasks loads the task iterator program for the running kernel. It
// fails, and callers read /proc instead, where Open would, and also on a
// kernel older than 5.18 (no sleepable task iterator) or whose types the
// program does not know.
func OpenTasks() (*Tasks, error) {
	level, l, err := readerLayout()
	if err != nil {
		return nil, err
	}
	if !l.Task.Has {
		return nil, fmt.Errorf("%w: no task iterator types in %s", ErrLayout, VmlinuxBTF)
	}
	t := &Tasks{prog: -1, link: -1, buf: -1, level: level, stats: l.Task.HasStats}
	mattr := mapCreateAttr{mapType: unix.BPF_MAP_TYPE_ARRAY, keySize: 4, valueSize: TaskCmdMax, maxEntries: 1}
	if t.buf, err = bpf(unix.BPF_MAP_CREATE, unsafe.Pointer(&mattr), unsafe.Sizeof(mattr)); err != nil {
		return nil, fmt.Errorf("creating the task iterator's buffer: %w", err)
	}
	code, err := TaskProgram(l, level, t.buf)
	if err != nil {
		t.Close()
		return nil, err
	}
	if t.prog, err = loadIterProgram(code, l.Task.AttachID, "porteiro_tasks", unix.BPF_F_SLEEPABLE); err != nil {
		t.Close()
		if layoutCached {
			dropCache()
		}
		return nil, fmt.Errorf("loading the task iterator: %w", err)
	}
	if t.link, err = createLink(t.prog); err != nil {
		t.Close()
		return nil, fmt.Errorf("attaching the task iterator: %w", err)
	}
	return t, nil
}

// Stats reports whether the records give CPU time and resident pages
// (Task.Runtime, ExitedRuntime and RSSPages).
func (t *Tasks) Stats() bool { return t.stats }

// Close releases the program.
func (t *Tasks) Close() error {
	closeFDs(&t.link, &t.prog, &t.buf)
	return nil
}

// Read runs the iterator once and returns what it wrote, appended to
// buf[:0] (see ParseTasks). The first Read checks the record of porteiro's
// own process against what the kernel says of it otherwise; a mismatch
// (offsets that are wrong for this kernel) is an error, and the layout
// cache is dropped.
func (t *Tasks) Read(ctx context.Context, buf []byte) ([]byte, error) {
	out, err := readIter(ctx, t.link, buf[:0], "task iterator", 0, nil)
	if err != nil {
		return out, err
	}
	if !t.checked {
		if err := t.check(out); err != nil {
			if layoutCached {
				dropCache()
			}
			return out, err
		}
		t.checked = true
	}
	return out, nil
}

// check finds porteiro's own record in out and compares it with what the
// process knows of itself: pid, parent, user, command line (Go keeps argv
// as the kernel gave it), name, state (alive, not a kernel thread), start
// time and network namespace.
func (t *Tasks) check(out []byte) error {
	self := uint32(os.Getpid())
	var comm [16]byte
	if err := unix.Prctl(unix.PR_GET_NAME, uintptr(unsafe.Pointer(&comm[0])), 0, 0, 0); err != nil {
		return fmt.Errorf("reading the process name: %w", err)
	}
	name := comm[:]
	if i := bytes.IndexByte(name, 0); i >= 0 {
		name = name[:i]
	}
	var cmdline []byte
	for _, a := range os.Args {
		cmdline = append(append(cmdline, a...), 0)
	}
	var ns unix.Stat_t
	nsErr := unix.Stat("/proc/thread-self/ns/net", &ns)
	var boot unix.Timespec
	unix.ClockGettime(unix.CLOCK_BOOTTIME, &boot)
	found := 0
	var bad string
	err := ParseTasks(out, func(tk *Task) {
		if tk.PID != self {
			return
		}
		found++
		switch {
		case tk.PPID != uint32(os.Getppid()):
			bad = fmt.Sprintf("parent %d, not %d", tk.PPID, os.Getppid())
		case tk.UID != uint32(os.Getuid()):
			bad = fmt.Sprintf("user %d, not %d", tk.UID, os.Getuid())
		case !bytes.Equal(tk.Comm, name):
			bad = fmt.Sprintf("name %q, not %q", tk.Comm, name)
		case tk.Kthread() || tk.ExitState != 0 || !bytes.ContainsRune([]byte("RSD"), rune(tk.StateLetter())):
			bad = fmt.Sprintf("flags %#x and state %#x/%#x for a live process", tk.Flags, tk.State, tk.ExitState)
		case tk.StartBoottime == 0 || tk.StartBoottime > uint64(boot.Nano()):
			bad = fmt.Sprintf("start time %d ns after boot, now %d", tk.StartBoottime, boot.Nano())
		case tk.ExeMnt == 0 || tk.ExeDentry == 0 || tk.CSSSet == 0 || tk.Threads == 0:
			bad = fmt.Sprintf("executable %#x:%#x, cgroups %#x and %d threads", tk.ExeMnt, tk.ExeDentry, tk.CSSSet, tk.Threads)
		case nsErr == nil && uint64(tk.NetNS) != ns.Ino:
			bad = fmt.Sprintf("network namespace %d, not %d", tk.NetNS, ns.Ino)
		case uint64(len(cmdline)) <= TaskCmdMax && (!tk.CmdlineComplete() || !bytes.Equal(tk.Cmdline, cmdline)):
			bad = fmt.Sprintf("command line %q, not %q", tk.Cmdline, cmdline)
		}
	})
	switch {
	case err != nil:
		return err
	case found != 1:
		return fmt.Errorf("task iterator reported this process (pid %d, pid namespace level %d) %d times", self, t.level, found)
	case bad != "":
		return errors.New("task iterator gave this process's " + bad)
	}
	return nil
}

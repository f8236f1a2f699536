package taskfd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"sync"
	"unsafe"

	"github.com/porteiro/porteiro/internal/procfs"
	"golang.org/x/sys/unix"
)

// VmlinuxBTF is where the running kernel publishes its BTF.
const VmlinuxBTF = "/sys/kernel/btf/vmlinux"

// Iterator is the loaded program, attached to the task-file iterator. Each
// Read runs it once over every process. It is not safe for concurrent use.
type Iterator struct {
	prog, link int
	level      int    // the reader's PID namespace depth, or its least
	exact      bool   // level is the depth, and the program is built for it
	probe      int    // a socket of our own, to check the first pass
	probeIno   uint64 // its inode
	probeNS    uint64 // its network namespace
	netns      bool   // the records carry network namespaces
	states     uint32 // the socket states the program keeps; 0: all
	checked    bool   // the first pass reported the probe right
}

var (
	layoutOnce sync.Once
	layout     Layout
	layoutErr  error
	// layoutCached says layout came from the cache (cache.go).
	layoutCached bool
)

func kernelLayout() (Layout, error) {
	layoutOnce.Do(func() {
		key, kerr := currentKey()
		if kerr == nil {
			if l, err := readCache(cachePath, key); err == nil {
				layout, layoutCached = l, true
				return
			}
		}
		b, unmap, err := mapFile(VmlinuxBTF)
		if err != nil {
			layoutErr = fmt.Errorf("reading kernel BTF: %w", err)
			return
		}
		layout, layoutErr = ParseLayout(b)
		unmap()
		if layoutErr != nil {
			layoutErr = fmt.Errorf("reading %s: %w", VmlinuxBTF, layoutErr)
			return
		}
		if kerr == nil {
			writeCache(cachePath, key, layout)
		}
	})
	return layout, layoutErr
}

// mapFile maps a file read-only, or reads it where it cannot be mapped
// (sysfs offers mmap of the kernel's BTF from Linux 6.16; it is 2.5x faster
// than reading its 5 MB in page-sized pieces).
func mapFile(path string) ([]byte, func(), error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, nil, err
	}
	if n := st.Size(); n > 0 && n < 1<<30 {
		m, err := unix.Mmap(int(f.Fd()), 0, int(n), unix.PROT_READ, unix.MAP_PRIVATE)
		if err == nil {
			return m, func() { unix.Munmap(m) }, nil
		}
	}
	b, err := io.ReadAll(f)
	return b, func() {}, err
}

// Open loads the iterator program for the running kernel. It fails, and the
// caller should walk /proc instead, when the kernel has no BTF or no
// task-file iterator, or when the caller lacks CAP_BPF and CAP_PERFMON.
func Open() (*Iterator, error) { return OpenStates(0) }

// OpenStates is Open for a reader that wants only the IPv4 and IPv6
// sockets in the given states (bit n for the kernel's state n, as
// sock_diag takes them; 0 means all): the iterator leaves the others out,
// and spends no memory access on their inodes. Other sockets, and the
// files that are not sockets, are reported as by Open. Iterator.States
// says what the program keeps.
func OpenStates(states uint32) (*Iterator, error) {
	level, l, err := readerLayout()
	if err != nil {
		return nil, err
	}
	it := &Iterator{prog: -1, link: -1, probe: -1, level: level, netns: l.NetNS()}
	// The program for the exact depth, when the kernel tells it; else
	// the one that finds it for every file, which keeps every socket.
	if l.Task.Has {
		if d, err := readerDepth(l); err == nil && d >= level {
			if _, err := ExactInstructions(l, d, states); err == nil {
				it.level, it.exact = d, true
			}
		}
	}
	program := func(l Layout) ([]byte, error) {
		if it.exact {
			it.states = SocketStates(l, states)
			return ExactProgram(l, it.level, states)
		}
		it.states = 0
		return Program(l, it.level)
	}
	code, err := program(l)
	if err != nil {
		return nil, err
	}
	if it.prog, err = loadProgram(code, l.AttachID); err != nil && l.NetNS() {
		// A kernel without bpf_sock_from_file (before 5.11) for this
		// program type: the iterator without namespaces.
		l.HasNetNS, it.netns = false, false
		if code, err = program(l); err != nil {
			return nil, err
		}
		it.prog, err = loadProgram(code, l.AttachID)
	}
	if err != nil {
		if layoutCached {
			dropCache() // the cached layout may be what the kernel refused
		}
		return nil, fmt.Errorf("loading the task-file iterator: %w", err)
	}
	if it.link, err = createLink(it.prog); err != nil {
		it.Close()
		return nil, fmt.Errorf("attaching the task-file iterator: %w", err)
	}
	// A socket of our own: the first pass must report it under our pid,
	// which proves the pid namespace level and the field offsets right.
	if it.probe, err = unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
		it.Close()
		return nil, fmt.Errorf("opening a probe socket: %w", err)
	}
	var st unix.Stat_t
	if err := unix.Fstat(it.probe, &st); err != nil {
		it.Close()
		return nil, fmt.Errorf("reading the probe socket: %w", err)
	}
	it.probeIno = st.Ino
	if it.netns {
		var ns unix.Stat_t
		if err := unix.Stat("/proc/thread-self/ns/net", &ns); err != nil {
			it.netns = false
		} else {
			it.probeNS = ns.Ino
		}
	}
	return it, nil
}

// readerLayout returns readerLevel and the kernel's layout: what both
// programs are built from.
func readerLayout() (int, Layout, error) {
	level, err := readerLevel()
	if err != nil {
		return 0, Layout{}, err
	}
	l, err := kernelLayout()
	return level, l, err
}

// readerLevel returns the least depth of porteiro's PID namespace (see
// Instructions), or ErrNoCapability when it may not load the programs.
func readerLevel() (int, error) {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0, fmt.Errorf("reading pid namespace depth: %w", err)
	}
	status, err := procfs.ParseStatus(b)
	switch {
	case err != nil:
		return 0, err
	case !status.LevelKnown:
		return 0, errors.New("/proc/self/status has no NSpid line (kernel older than 4.1)")
	case !status.CapEffKnown:
		return 0, errors.New("/proc/self/status has no CapEff line")
	}
	if !canLoad(status) {
		return 0, ErrNoCapability // before the BTF is read, which takes time
	}
	return status.Level, nil
}

// States returns the socket states the program reports IPv4 and IPv6
// sockets in, as OpenStates takes them; 0 means all of them.
func (it *Iterator) States() uint32 { return it.states }

// Covers reports whether the program reports every socket a reader that
// wants the given states (as OpenStates takes them) wants.
func (it *Iterator) Covers(states uint32) bool {
	return it.states == 0 || (states != 0 && states&^it.states == 0)
}

// Depth returns the depth of porteiro's PID namespace the program was
// built for, and whether it is exact (the depth program's) or the least
// /proc/self/status shows, with the program finding the depth itself.
func (it *Iterator) Depth() (depth int, exact bool) { return it.level, it.exact }

// Close releases the program.
func (it *Iterator) Close() error {
	closeFDs(&it.probe, &it.link, &it.prog)
	return nil
}

// closeFDs closes each fd that is open and marks it closed (-1).
func closeFDs(fds ...*int) {
	for _, fd := range fds {
		if *fd >= 0 {
			unix.Close(*fd)
			*fd = -1
		}
	}
}

// Read runs the iterator once and returns what it wrote, appended to
// buf[:0]: one record per open file of every process (see RecordSize and
// ParseRecords).
func (it *Iterator) Read(ctx context.Context, buf []byte) ([]byte, error) {
	return it.ReadFunc(ctx, buf, nil)
}

// ReadFunc is Read that also hands each batch of whole records to each as
// it arrives, so the caller can work on them while the kernel produces the
// rest. The batches are parts of the returned slice. If ReadFunc fails,
// what each saw must be discarded.
func (it *Iterator) ReadFunc(ctx context.Context, buf []byte, each func([]byte)) ([]byte, error) {
	out := buf[:0]
	if want := openFiles() * RecordSize; cap(out) < want {
		// One buffer of the size the kernel's count of open files
		// predicts, rather than doubling from small: each doubling
		// copies and touches everything read so far.
		out = make([]byte, 0, want)
	}
	out, err := readIter(ctx, it.link, out, "task-file iterator", RecordSize, each)
	if err != nil {
		return out, err
	}
	if !it.checked {
		if err := it.check(out); err != nil {
			return out, err
		}
		it.checked = true
	}
	return out, nil
}

// readIter runs the iterator behind link once, appending what it writes
// to out, and hands each batch of whole records of recSize bytes to each
// as it arrives (when each is set).
func readIter(ctx context.Context, link int, out []byte, what string, recSize int, each func([]byte)) ([]byte, error) {
	attr := iterCreateAttr{linkFD: uint32(link)}
	fd, err := bpf(unix.BPF_ITER_CREATE, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	if err != nil {
		return out, fmt.Errorf("starting the %s: %w", what, err)
	}
	defer unix.Close(fd)
	handed := len(out) // out[:handed] went to each
	for {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		if cap(out)-len(out) < 32*1024 {
			out = slices.Grow(out, max(cap(out), 64*1024))
		}
		n, err := unix.Read(fd, out[len(out):cap(out)])
		switch {
		case err == unix.EINTR || err == unix.EAGAIN:
			// EAGAIN: the kernel paused after many objects without output.
			continue
		case err != nil:
			return out, fmt.Errorf("reading the %s: %w", what, err)
		case n == 0:
			return out, nil
		}
		out = out[:len(out)+n]
		if each != nil {
			// A read may end inside a record; hand over whole ones.
			if end := len(out) - (len(out)-handed)%recSize; end > handed {
				each(out[handed:end])
				handed = end
			}
		}
	}
}

// openFiles is the kernel's count of open files
// (/proc/sys/fs/file-nr), plus room for what opens during a pass, and at
// least enough for a small host. Files shared by several fd tables give
// more records than files; the buffer then grows.
func openFiles() int {
	const least = 64 * 1024 / RecordSize
	var b [64]byte
	fd, err := unix.Open("/proc/sys/fs/file-nr", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return least
	}
	n, err := unix.Read(fd, b[:])
	unix.Close(fd)
	if err != nil || n <= 0 {
		return least
	}
	v := 0
	for _, c := range b[:n] {
		if c < '0' || c > '9' {
			break
		}
		v = v*10 + int(c-'0')
		if v > 1<<24 {
			break // a bound on the buffer, not a count to trust
		}
	}
	return max(least, v+v/8)
}

// check looks for the probe socket in the first pass.
func (it *Iterator) check(out []byte) error {
	self := uint32(os.Getpid())
	found := false
	var netns uint32
	err := ParseRecords(out, func(pid, fd uint32, inode uint64, ns uint32) {
		if inode == it.probeIno && fd == uint32(it.probe) && pid == self {
			found, netns = true, ns
		}
	})
	if err != nil {
		return err
	}
	if !found {
		err = fmt.Errorf("task-file iterator did not report this process's socket under pid %d (pid namespace level %d)", self, it.level)
	} else if it.netns && uint64(netns) != it.probeNS {
		err = fmt.Errorf("task-file iterator gave network namespace %d for this process's socket, not %d", netns, it.probeNS)
	}
	if err != nil && layoutCached {
		// The offsets may be what is wrong: the next run reads the BTF.
		dropCache()
	}
	return err
}

// NetNS reports whether the records carry the sockets' network namespaces.
func (it *Iterator) NetNS() bool { return it.netns }

// bpf(2) attributes, laid out as in include/uapi/linux/bpf.h.
type progLoadAttr struct {
	progType           uint32
	insnCnt            uint32
	insns              uint64
	license            uint64
	logLevel           uint32
	logSize            uint32
	logBuf             uint64
	kernVersion        uint32
	progFlags          uint32
	progName           [16]byte
	progIfindex        uint32
	expectedAttachType uint32
	progBTFFD          uint32
	funcInfoRecSize    uint32
	funcInfo           uint64
	funcInfoCnt        uint32
	lineInfoRecSize    uint32
	lineInfo           uint64
	lineInfoCnt        uint32
	attachBTFID        uint32
	attachProgFD       uint32
	_                  uint32
}

type linkCreateAttr struct {
	progFD      uint32
	targetFD    uint32
	attachType  uint32
	flags       uint32
	iterInfo    uint64
	iterInfoLen uint32
	_           uint32
}

type iterCreateAttr struct {
	linkFD uint32
	flags  uint32
}

func bpf(cmd int, attr unsafe.Pointer, size uintptr) (int, error) {
	r, _, e := unix.Syscall(unix.SYS_BPF, uintptr(cmd), uintptr(attr), size)
	if e != 0 {
		return -1, e
	}
	return int(r), nil
}

// The program declares a GPL-compatible license because bpf_seq_write is
// only offered to such programs.
var license = []byte("Dual MIT/GPL\x00")

func loadProgram(code []byte, attachID uint32) (int, error) {
	return loadIterProgram(code, attachID, "porteiro_fds", 0)
}

// loadIterProgram loads an iterator program of the given name and flags.
func loadIterProgram(code []byte, attachID uint32, name string, flags uint32) (int, error) {
	attr := progLoadAttr{
		progFlags:          flags,
		progType:           unix.BPF_PROG_TYPE_TRACING,
		insnCnt:            uint32(len(code) / 8),
		insns:              uint64(uintptr(unsafe.Pointer(&code[0]))),
		license:            uint64(uintptr(unsafe.Pointer(&license[0]))),
		expectedAttachType: unix.BPF_TRACE_ITER,
		attachBTFID:        attachID,
	}
	copy(attr.progName[:], name)
	fd, err := bpf(unix.BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	runtime.KeepAlive(code)
	if err == nil || err == unix.EPERM || err == unix.ENOSYS {
		return fd, err
	}
	// Load again with the verifier's log, to say why.
	log := make([]byte, 64*1024)
	attr.logLevel, attr.logSize = 1, uint32(len(log))
	attr.logBuf = uint64(uintptr(unsafe.Pointer(&log[0])))
	fd, err2 := bpf(unix.BPF_PROG_LOAD, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	runtime.KeepAlive(code)
	runtime.KeepAlive(log)
	if err2 == nil {
		return fd, nil
	}
	if i := bytes.IndexByte(log, 0); i >= 0 {
		log = log[:i]
	}
	lines := strings.Split(strings.TrimSpace(string(log)), "\n")
	return -1, fmt.Errorf("%w (verifier: %s)", err, lines[len(lines)-1])
}

func createLink(prog int) (int, error) {
	attr := linkCreateAttr{progFD: uint32(prog), attachType: unix.BPF_TRACE_ITER}
	return bpf(unix.BPF_LINK_CREATE, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
}

// createTaskLink attaches a task iterator program to one thread, tid as
// porteiro's PID namespace numbers it (union bpf_iter_link_info's task
// member, Linux 6.1).
func createTaskLink(prog, tid int) (int, error) {
	info := [4]uint32{uint32(tid)} // tid, pid, pid_fd, and padding
	attr := linkCreateAttr{progFD: uint32(prog), attachType: unix.BPF_TRACE_ITER,
		iterInfo: uint64(uintptr(unsafe.Pointer(&info[0]))), iterInfoLen: uint32(unsafe.Sizeof(info))}
	fd, err := bpf(unix.BPF_LINK_CREATE, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	runtime.KeepAlive(&info)
	return fd, err
}

// readerDepth runs the depth program (depth.go): the depth of porteiro's
// PID namespace, which the kernel alone knows.
func readerDepth(l Layout) (int, error) {
	code, err := DepthProgram(l)
	if err != nil {
		return 0, err
	}
	prog, err := loadIterProgram(code, l.Task.AttachID, "porteiro_depth", 0)
	if err != nil {
		return 0, fmt.Errorf("loading the depth program: %w", err)
	}
	defer unix.Close(prog)
	// The link names this thread, so the program runs once.
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	link, err := createTaskLink(prog, unix.Gettid())
	if err != nil {
		// A kernel before 6.1 visits every task, and the program
		// writes the same depth for each: the first records do.
		if link, err = createLink(prog); err != nil {
			return 0, fmt.Errorf("attaching the depth program: %w", err)
		}
	}
	defer unix.Close(link)
	attr := iterCreateAttr{linkFD: uint32(link)}
	fd, err := bpf(unix.BPF_ITER_CREATE, unsafe.Pointer(&attr), unsafe.Sizeof(attr))
	if err != nil {
		return 0, fmt.Errorf("starting the depth program: %w", err)
	}
	defer unix.Close(fd)
	var buf [64]byte
	n := 0
	for n < len(buf) {
		m, err := unix.Read(fd, buf[n:])
		if err == unix.EINTR || err == unix.EAGAIN {
			continue
		}
		if err != nil {
			return 0, fmt.Errorf("reading the depth program: %w", err)
		}
		if m == 0 {
			break
		}
		n += m
	}
	return ParseDepth(buf[:n])
}

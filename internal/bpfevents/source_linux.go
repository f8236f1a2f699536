package bpfevents

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"
)

// Options tunes Open. The zero value works.
type Options struct {
	// RingBytes is the size of the ring buffer: a power of two, at least
	// one page. 0 means 1 MiB, room for 13,000 events between two reads.
	RingBytes int
	// Cgroup is the cgroup2 directory the UDP hooks attach to. Empty means
	// the root of the cgroup2 hierarchy, found in /proc/self/mountinfo, so
	// every process and container is seen.
	Cgroup string
	// ProcRoot is where /proc is mounted, to read command lines and
	// executables. Empty means /proc.
	ProcRoot string
	// NoProcDetails skips reading Cmdline and Exe.
	NoProcDetails bool
}

// Source is the loaded and attached programs and the reader of their ring
// buffer. Read is for one goroutine; Drops and Close may be called from any.
type Source struct {
	objs  listenerObjects
	links []link.Link
	rd    *ringbuf.Reader
	opts  Options
	rec   ringbuf.Record
	buf   []byte
	close sync.Once
	err   error
	// loadID and loadedAt name this load, for the readers of Closed.
	loadID   string
	loadedAt time.Time
	// closedMu guards the buffers Closed reads the table into.
	closedMu   sync.Mutex
	closedKeys []listenerClosedKey
	closedVals []listenerClosedVal
}

// Open checks the capabilities, loads the programs and attaches them. Its
// error wraps ErrNotSupported when this process or kernel cannot run them
// (a *CapabilityError when capabilities are missing); other errors are
// porteiro's own bugs, such as the verifier refusing a program.
func Open(opts Options) (*Source, error) {
	miss, err := missingCaps()
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrNotSupported, err)
	}
	if len(miss) > 0 {
		return nil, &CapabilityError{Missing: miss}
	}
	if opts.RingBytes == 0 {
		opts.RingBytes = 1 << 20
	}
	if n := opts.RingBytes; n < os.Getpagesize() || n&(n-1) != 0 {
		return nil, fmt.Errorf("ring buffer size %d: want a power of two of at least %d", n, os.Getpagesize())
	}
	if opts.ProcRoot == "" {
		opts.ProcRoot = "/proc"
	}
	if opts.Cgroup == "" {
		mi, err := os.ReadFile("/proc/self/mountinfo")
		if err != nil {
			return nil, fmt.Errorf("%w: reading /proc/self/mountinfo: %w", ErrNotSupported, err)
		}
		if opts.Cgroup, err = Cgroup2Root(mi); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrNotSupported, err)
		}
	}
	if _, err := os.Stat("/sys/kernel/btf/vmlinux"); err != nil {
		return nil, fmt.Errorf("%w: the kernel has no BTF (/sys/kernel/btf/vmlinux: %w)", ErrNotSupported, err)
	}

	spec, err := loadListener()
	if err != nil {
		return nil, fmt.Errorf("reading the embedded programs: %w", err)
	}
	spec.Maps[listenerMapEvents].MaxEntries = uint32(opts.RingBytes)
	// Pids as the reader sees them in /proc, even in a container.
	var st unix.Stat_t
	if err := unix.Stat("/proc/self/ns/pid", &st); err == nil {
		if err := spec.Variables[listenerVarPidnsDev].Set(uint64(st.Dev)); err != nil {
			return nil, fmt.Errorf("setting pidns_dev: %w", err)
		}
		if err := spec.Variables[listenerVarPidnsIno].Set(st.Ino); err != nil {
			return nil, fmt.Errorf("setting pidns_ino: %w", err)
		}
	}
	s := &Source{opts: opts, buf: make([]byte, maxCmdline), loadID: newLoadID(), loadedAt: time.Now()}
	if err := spec.LoadAndAssign(&s.objs, nil); err != nil {
		return nil, loadError("loading the listener programs", err)
	}
	attach := func(what string, l link.Link, err error) error {
		if err != nil {
			return loadError("attaching "+what, err)
		}
		s.links = append(s.links, l)
		return nil
	}
	l, err := link.AttachTracing(link.TracingOptions{Program: s.objs.InetSockSetState, AttachType: ebpf.AttachTraceRawTp})
	if err = attach("tp_btf/inet_sock_set_state", l, err); err != nil {
		s.Close()
		return nil, err
	}
	for _, h := range []struct {
		name string
		typ  ebpf.AttachType
		prog *ebpf.Program
	}{
		{"cgroup/post_bind4", ebpf.AttachCGroupInet4PostBind, s.objs.PostBind4},
		{"cgroup/post_bind6", ebpf.AttachCGroupInet6PostBind, s.objs.PostBind6},
		{"cgroup/sock_release", ebpf.AttachCgroupInetSockRelease, s.objs.SockRelease},
		{"sockops", ebpf.AttachCGroupSockOps, s.objs.TcpListenDone},
	} {
		l, err := link.AttachCgroup(link.CgroupOptions{Path: opts.Cgroup, Attach: h.typ, Program: h.prog})
		if err = attach(h.name+" at "+opts.Cgroup, l, err); err != nil {
			s.Close()
			return nil, err
		}
	}
	if s.rd, err = ringbuf.NewReader(s.objs.Events); err != nil {
		s.Close()
		return nil, fmt.Errorf("opening the ring buffer: %w", err)
	}
	return s, nil
}

// loadError wraps err with ErrNotSupported when it means the kernel or a
// sandbox refuses the programs (EPERM from lockdown or seccomp, ENOSYS, a
// missing program type or helper, no BTF), and leaves it alone when it is
// porteiro's to fix (the verifier refusing a program: EINVAL, EACCES).
func loadError(op string, err error) error {
	var ve *ebpf.VerifierError
	switch {
	case errors.As(err, &ve):
		return fmt.Errorf("%s: %w", op, err)
	case errors.Is(err, ebpf.ErrNotSupported), errors.Is(err, syscall.EPERM),
		errors.Is(err, syscall.ENOSYS), errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%w: %s: %w", ErrNotSupported, op, err)
	}
	return fmt.Errorf("%s: %w", op, err)
}

// Read returns the next event, waiting for one. It returns ctx.Err() when
// ctx ends, and an error wrapping os.ErrClosed after Close. A record that
// does not decode is returned as an error; the next Read goes on.
func (s *Source) Read(ctx context.Context) (Event, error) {
	if err := ctx.Err(); err != nil {
		return Event{}, err
	}
	dl, _ := ctx.Deadline()
	s.rd.SetDeadline(dl)
	// Flush wakes the reader when ctx ends; it is safe from any goroutine,
	// unlike SetDeadline, which waits for Read to return.
	stop := context.AfterFunc(ctx, func() { s.rd.Flush() })
	defer stop()
	for {
		err := s.rd.ReadInto(&s.rec)
		if err != nil {
			if ctx.Err() != nil {
				return Event{}, ctx.Err()
			}
			if errors.Is(err, ringbuf.ErrFlushed) {
				continue // a wake-up left from an earlier Read
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				return Event{}, context.DeadlineExceeded
			}
			return Event{}, fmt.Errorf("reading the ring buffer: %w", err)
		}
		ev, err := Decode(s.rec.RawSample)
		if err != nil {
			return Event{}, err
		}
		ev.Time = bootToWall(ev.BootNS)
		if !s.opts.NoProcDetails && ev.PID > 0 {
			ev.Cmdline, ev.Exe = procDetails(s.opts.ProcRoot, ev.PID, s.buf)
		}
		return ev, nil
	}
}

// bootToWall converts a CLOCK_BOOTTIME reading to wall-clock time, by the
// distance between the two clocks now.
func bootToWall(ns uint64) time.Time {
	var b unix.Timespec
	if unix.ClockGettime(unix.CLOCK_BOOTTIME, &b) != nil {
		return time.Now()
	}
	now := time.Now()
	return now.Add(-time.Duration(b.Nano() - int64(ns)))
}

// Drops is the number of events the kernel could not put in the ring
// buffer because it was full since Open. Each one is a listener opened or
// closed that Read will not return: the caller should rescan.
func (s *Source) Drops() uint64 { return s.counter(0) }

// Untracked is the number of UDP binds whose release will not be reported,
// because the table of bound UDP sockets was full.
func (s *Source) Untracked() uint64 { return s.counter(1) }

func (s *Source) counter(idx uint32) uint64 {
	var per []uint64
	if s.objs.Counters == nil || s.objs.Counters.Lookup(idx, &per) != nil {
		return 0
	}
	var n uint64
	for _, v := range per {
		n += v
	}
	return n
}

// Close detaches the programs and frees them. It interrupts a Read. Calls
// after the first return the first one's result.
func (s *Source) Close() error {
	s.close.Do(func() {
		var errs []error
		if s.rd != nil {
			errs = append(errs, s.rd.Close())
		}
		for _, l := range s.links {
			errs = append(errs, l.Close())
		}
		errs = append(errs, s.objs.Close())
		s.err = errors.Join(errs...)
	})
	return s.err
}

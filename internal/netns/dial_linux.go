package netns

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"

	"golang.org/x/sys/unix"

	"github.com/porteiro/porteiro/internal/sockdiag"
)

// ErrRefused means the kernel refused to let porteiro enter a namespace
// (setns needs CAP_SYS_ADMIN): read its tables from /proc/PID/net
// instead, through a member.
var ErrRefused = errors.New("entering the network namespace was refused")

// ErrGone means nothing that led to the namespace is there any more.
var ErrGone = errors.New("the network namespace is gone")

// Dial opens a sock_diag socket inside n. The socket keeps answering for
// n from any goroutine until it is closed.
func (s *Set) Dial(n *Namespace) (*sockdiag.Conn, error) {
	if n.Self {
		return sockdiag.Dial()
	}
	fd, err := n.open()
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	return DialFD(fd)
}

// open returns an fd of the namespace, through the first path that still
// leads to it: a member that has exited, and whose pid was reused, leads
// elsewhere, which the inode check catches.
func (n *Namespace) open() (int, error) {
	var last error = ErrGone
	for _, p := range n.enter {
		fd, err := unix.Open(p, unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			if errors.Is(err, unix.EACCES) || errors.Is(err, unix.EPERM) {
				last = fmt.Errorf("%w: opening %s: %v", ErrRefused, p, err)
			}
			continue
		}
		var st unix.Stat_t
		if err := unix.Fstat(fd, &st); err != nil || st.Ino != n.Inode {
			unix.Close(fd)
			continue
		}
		return fd, nil
	}
	return -1, last
}

// MemberPIDs returns a few pids of member processes, lowest first, whose
// /proc/PID/net shows the namespace's tables.
func (n *Namespace) MemberPIDs() []int { return n.members }

// AddSocketLed records a namespace that a socket led to (its fd came
// from SIOCGSKNS, and DialFD opens it): no member, no mount names it.
func (s *Set) AddSocketLed(ino uint64) *Namespace {
	n := s.get(ino)
	if n.Members == 0 && len(n.Mounts) == 0 {
		n.FromSocket = true
	}
	return n
}

// DialFD opens a sock_diag socket inside the network namespace that nsfd
// refers to. It runs on a locked OS thread that enters the namespace and
// comes back; if it cannot come back, the thread is never unlocked, so the
// runtime ends it rather than run anything else there.
func DialFD(nsfd int) (*sockdiag.Conn, error) {
	var (
		conn *sockdiag.Conn
		derr error
	)
	err := Do(nsfd, func() { conn, derr = sockdiag.Dial() })
	if err != nil {
		if conn != nil {
			conn.Close()
		}
		return nil, err
	}
	return conn, derr
}

// ErrEnter means setns into the namespace failed: fn did not run. It
// wraps ErrRefused when the kernel refused it for want of privilege.
var ErrEnter = errors.New("entering the network namespace failed")

// VisitorComm is the name porteiro gives a thread while it is inside
// another network namespace (Do). Discovery does not count a thread of
// that name as being in the namespace: it is a scan passing through (a
// porteirod audit probing every port, another porteiro's dump), and would
// otherwise give an orphan namespace its process's name for as long as
// the visit lasts. A process that names a thread so hides only that
// thread's part in naming a namespace; its sockets are still found
// through their fds.
const VisitorComm = "porteiro:netns"

// Do runs fn inside the network namespace nsfd refers to, on an OS thread
// of its own that it locks, names VisitorComm, enters the namespace with,
// and brings back. That thread is never the process's first one, whose
// name is the process's. If the thread cannot come back, it stays locked,
// so the runtime ends it with its goroutine rather than run anything else
// there; Do then returns an error that is not ErrEnter (fn did run).
func Do(nsfd int, fn func()) error {
	var err error
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		if unix.Gettid() != unix.Getpid() {
			err = do(nsfd, fn)
			runtime.UnlockOSThread()
			return
		}
		// This goroutine holds the first thread, so the runtime runs
		// the next one on another thread.
		inner := make(chan struct{})
		go func() {
			defer close(inner)
			runtime.LockOSThread()
			err = do(nsfd, fn)
			runtime.UnlockOSThread()
		}()
		<-inner
		runtime.UnlockOSThread()
	}()
	<-done
	return err
}

// do enters, runs fn and comes back, on the calling goroutine's locked
// thread. When it cannot come back it leaves one more lock on the thread,
// which then dies with its goroutine.
func do(nsfd int, fn func()) error {
	orig, err := unix.Open("/proc/thread-self/ns/net", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("%w: opening /proc/thread-self/ns/net: %w", ErrEnter, err)
	}
	defer unix.Close(orig)
	// The thread's name, through its comm file: no pointer to hand the
	// kernel across a stack that may move.
	const comm = "/proc/thread-self/comm"
	name, err := os.ReadFile(comm)
	named := err == nil && os.WriteFile(comm, []byte(VisitorComm), 0) == nil
	rename := func() {
		if named {
			_ = os.WriteFile(comm, bytes.TrimSuffix(name, []byte("\n")), 0)
		}
	}
	if err := unix.Setns(nsfd, unix.CLONE_NEWNET); err != nil {
		rename()
		if errors.Is(err, unix.EPERM) {
			return fmt.Errorf("%w: %w: setns: %w", ErrEnter, ErrRefused, err)
		}
		return fmt.Errorf("%w: setns: %w", ErrEnter, err)
	}
	fn()
	if err := unix.Setns(orig, unix.CLONE_NEWNET); err != nil {
		// One more lock: this thread dies with the goroutine.
		runtime.LockOSThread()
		return fmt.Errorf("returning to porteiro's network namespace: %w", err)
	}
	rename()
	return nil
}

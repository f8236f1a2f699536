package inventory

import (
	"golang.org/x/sys/unix"
)

// maxPidfds bounds the descriptors an incremental scanner keeps open; the
// owners past it are checked by reading their stat file.
const maxPidfds = 4096

// aliveSet tells which cached owners are still running, for the
// incremental scanner. It keeps a pidfd per owner: a pidfd refers to one
// process, not to a pid number, and becomes readable when that process
// exits, so one poll(2) over all of them answers for hundreds of owners,
// where reading each one's /proc/PID/stat costs three system calls and the
// kernel's formatting of the whole file, every scan.
//
// It is used on the live /proc only: a fixture tree's processes are not
// the kernel's.
type aliveSet struct {
	fds   map[Identity]int // -1: no pidfd (the stat file is read)
	poll  []unix.PollFd
	ids   []Identity // the identity of each poll entry
	dirty bool
}

// check sets ids[id] to false for each identity whose process is not
// running (the caller sets them all true). A process is known by a pidfd
// only once its start time has been checked against /proc, right after
// the pidfd was opened.
func (a *aliveSet) check(procRoot string, ids map[Identity]bool) {
	if a.fds == nil {
		a.fds = map[Identity]int{}
	}
	for id := range ids {
		fd, ok := a.fds[id]
		if !ok {
			fd = -1
			if len(a.fds) < maxPidfds {
				if f, err := unix.PidfdOpen(id.PID, 0); err == nil {
					fd = f
				}
			}
			// The pidfd names whatever process has the pid now: it is
			// the owner only if the start time is the owner's.
			if !processAlive(procRoot, id.PID, id.StartTicks) {
				if fd >= 0 {
					unix.Close(fd)
				}
				ids[id] = false
				continue
			}
			a.fds[id] = fd
			a.dirty = true
			ids[id] = true
			if fd >= 0 {
				continue // just checked
			}
		}
		if fd < 0 {
			ids[id] = processAlive(procRoot, id.PID, id.StartTicks)
		}
	}
	// Forget the owners no socket has any more.
	for id, fd := range a.fds {
		if _, ok := ids[id]; !ok {
			if fd >= 0 {
				unix.Close(fd)
			}
			delete(a.fds, id)
			a.dirty = true
		}
	}
	if a.dirty {
		a.poll, a.ids = a.poll[:0], a.ids[:0]
		for id, fd := range a.fds {
			if fd >= 0 {
				a.poll = append(a.poll, unix.PollFd{Fd: int32(fd), Events: unix.POLLIN})
				a.ids = append(a.ids, id)
			}
		}
		a.dirty = false
	}
	if len(a.poll) == 0 {
		return
	}
	for i := range a.poll {
		a.poll[i].Revents = 0
	}
	n, err := unix.Poll(a.poll, 0)
	for err == unix.EINTR {
		n, err = unix.Poll(a.poll, 0)
	}
	if err != nil {
		// Cannot happen with valid descriptors; be safe and read the
		// stat files.
		for _, id := range a.ids {
			ids[id] = processAlive(procRoot, id.PID, id.StartTicks)
		}
		return
	}
	if n == 0 {
		return
	}
	for i := range a.poll {
		if a.poll[i].Revents != 0 {
			// Exited (POLLIN), or a descriptor gone bad: either way the
			// owner is not to be trusted.
			id := a.ids[i]
			ids[id] = false
			unix.Close(int(a.poll[i].Fd))
			delete(a.fds, id)
			a.dirty = true
		}
	}
}

// close releases every pidfd.
func (a *aliveSet) close() {
	for id, fd := range a.fds {
		if fd >= 0 {
			unix.Close(fd)
		}
		delete(a.fds, id)
	}
	a.poll, a.ids = nil, nil
}

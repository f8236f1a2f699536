package inventory

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// inodeFence returns a socket inode number below which every socket was
// created before the call, or 0 when it cannot tell.
//
// Socket inodes come from get_next_ino(): each CPU hands out numbers from
// its own batch, and takes a new batch, above every earlier one, when its
// batch runs out. So a socket made later on CPU c has a number at least
// that of a socket made now on c, and the least of those over the CPUs is
// a fence: a socket numbered below it is older. One throwaway socket per
// CPU the scanner may run on tells. (CPUs outside porteiro's affinity
// mask are not sampled; a socket made there may pass the fence unseen,
// which is only what happens without a fence.)
//
// The one-shot scan runs the task-file iterator beside the socket dump,
// so a socket opened by a process the iterator has already passed is in
// the dump without a holder. The fence tells such sockets from old ones
// that have no holder (kernel sockets, other PID namespaces'), and only
// they get a second look.
func inodeFence() uint64 {
	fence := uint64(0)
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		var orig unix.CPUSet
		if err := unix.SchedGetaffinity(0, &orig); err != nil {
			runtime.UnlockOSThread()
			return
		}
		restored := true
		for cpu := 0; cpu < len(orig)*64; cpu++ {
			if !orig.IsSet(cpu) {
				continue
			}
			var one unix.CPUSet
			one.Set(cpu)
			if unix.SchedSetaffinity(0, &one) != nil {
				fence = 0
				break
			}
			restored = false
			ino, ok := freshSocketInode()
			if !ok {
				fence = 0
				break
			}
			if fence == 0 || ino < fence {
				fence = ino
			}
		}
		if !restored && unix.SchedSetaffinity(0, &orig) != nil {
			// Leave the thread locked: it dies with this goroutine
			// rather than run others on one CPU.
			fence = 0
			return
		}
		runtime.UnlockOSThread()
	}()
	<-done
	return fence
}

// freshSocketInode makes a socket, reads its inode and closes it.
func freshSocketInode() (uint64, bool) {
	fd, err := unix.Socket(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return 0, false
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil {
		return 0, false
	}
	return st.Ino, true
}

// newerThan reports whether socket inode ino may have been made after
// fence was taken (inode numbers are 32 bits and wrap).
func newerThan(ino, fence uint64) bool {
	if fence == 0 {
		return false
	}
	return uint32(ino-fence) < 1<<31
}

package inventory

import (
	"io"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/porteiro/porteiro/internal/procfs"
	"golang.org/x/sys/unix"
)

// procState is what porteiro's mount table says of the procfs at
// procRoot, read once per Resolver.
type procState struct {
	// hides is true when the procfs hides other users' processes from
	// this process (hidepid=1, 2 or 4, without the gid= group and without
	// CAP_SYS_PTRACE). A walk of it then finds no process to deny, and
	// would take sockets of hidden processes for sockets of none.
	hides bool
	// mountsKnown says mounted is the whole list of the process
	// directories something is mounted over; else each is asked
	// (procfs.IsMountPoint).
	mountsKnown bool
	mounted     map[int]bool
}

// readProcState reads porteiro's mountinfo for the procfs at procRoot.
func readProcState(procRoot string) procState {
	var ps procState
	b, err := readSmall(filepath.Join(procRoot, "self", "mountinfo"))
	if err != nil {
		return ps // a fixture tree, or no procfs
	}
	mounts, err := procfs.ParseMountInfo(b)
	if err != nil {
		return ps
	}
	m, ok := procMount(procRoot, mounts)
	if !ok {
		return ps
	}
	// Something mounted over /proc/PID hides that process from whoever
	// reads /proc; the mount table lists them all at once.
	ps.mountsKnown = true
	for _, o := range mounts {
		dir, name := path.Split(o.MountPoint)
		if path.Clean(dir) != m.MountPoint {
			continue
		}
		if pid, err := strconv.Atoi(name); err == nil && pid > 0 && strconv.Itoa(pid) == name {
			if ps.mounted == nil {
				ps.mounted = map[int]bool{}
			}
			ps.mounted[pid] = true
		}
	}
	ps.hides = hidepidHides(procRoot, m)
	return ps
}

// mountedOver reports whether something is mounted over procRoot/pid, and
// whether that is known.
func (ps procState) mountedOver(procRoot string, pid int) (mount, known bool) {
	if ps.mountsKnown {
		return ps.mounted[pid], true
	}
	return procfs.IsMountPoint(procRoot, pid)
}

// hidepidHides reports whether the procfs mount m, at procRoot, hides
// other users' processes from this process.
func hidepidHides(procRoot string, m procfs.Mount) bool {
	o := procfs.ParseProcOptions(m.SuperOptions)
	if o.HidePID == procfs.HidePIDOff {
		return false
	}
	if b, err := readSmall(filepath.Join(procRoot, "self", "status")); err == nil {
		if st, err := procfs.ParseStatus(b); err == nil && st.HasCap(procfs.CapSysPtrace) {
			return false // ptrace_may_access lets it see every process
		}
	}
	if o.GID >= 0 {
		if int64(os.Getegid()) == o.GID {
			return false
		}
		if gs, err := os.Getgroups(); err == nil && slices.Contains(gs, int(o.GID)) {
			return false
		}
	}
	return true
}

// procMount finds the procfs mount at procRoot: by mount id where statx
// gives it (Linux 5.8), else by its path. The last of stacked mounts is the
// one seen.
func procMount(procRoot string, mounts []procfs.Mount) (procfs.Mount, bool) {
	var stx unix.Statx_t
	if err := unix.Statx(unix.AT_FDCWD, procRoot, 0, unix.STATX_MNT_ID, &stx); err == nil && stx.Mask&unix.STATX_MNT_ID != 0 {
		for _, m := range mounts {
			if uint64(m.ID) == stx.Mnt_id && m.FSType == "proc" {
				return m, true
			}
		}
		return procfs.Mount{}, false
	}
	path, err := filepath.EvalSymlinks(procRoot)
	if err != nil {
		return procfs.Mount{}, false
	}
	path, _ = filepath.Abs(path)
	for i := len(mounts) - 1; i >= 0; i-- {
		if mounts[i].MountPoint == path && mounts[i].FSType == "proc" {
			return mounts[i], true
		}
	}
	return procfs.Mount{}, false
}

// readSmall reads a procfs file of at most 4 MiB: a host with that many
// mounts is broken, and porteiro should not grow without bound on it.
func readSmall(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, 4<<20))
}

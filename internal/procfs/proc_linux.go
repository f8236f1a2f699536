package procfs

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Info is what porteiro shows about one process.
type Info struct {
	Stat       Stat
	Cmdline    []string
	Exe        string
	ExeDeleted bool
	UID        uint32
	UIDKnown   bool
	Cgroup     Cgroup
}

// ReadProcess reads the details of one process under root. It returns an
// error wrapping ErrExited when the process is gone. Files that cannot be
// read for lack of permission (exe of another user's process) are left
// empty rather than failing the whole read.
func ReadProcess(root string, pid int) (*Info, error) {
	var buf []byte
	return ReadProcessBuf(root, pid, &buf)
}

// ReadProcessBuf is ReadProcess with a caller-owned scratch buffer, reused
// across processes so that reading hundreds of them allocates little.
func ReadProcessBuf(root string, pid int, buf *[]byte) (*Info, error) {
	return ReadProcessFields(root, pid, buf, false)
}

// ReadProcessFields is ReadProcessBuf that, when brief, reads only what a
// plain listing shows, from two files instead of four and a link: the name,
// state, parent and user from status, and the command line. Stat then holds
// only PID, Comm, State and PPID (no times, no RSS), and the executable and
// the cgroup (unit, container) are left out. On a host of hundreds of
// processes that saves a third of the time spent reading them.
func ReadProcessFields(root string, pid int, buf *[]byte, brief bool) (*Info, error) {
	dir, dfd, err := openProc(root, pid)
	if err != nil {
		return nil, err
	}
	defer unix.Close(dfd)
	if brief {
		return readBrief(dir, dfd, pid, buf)
	}
	b, err := readRequired(dir, dfd, "stat", buf)
	if err != nil {
		return nil, err
	}
	st, err := ParseStat(b)
	if err != nil {
		return nil, fmt.Errorf("%s/stat: %w", dir, err)
	}
	info := &Info{Stat: st}
	if b, err := readFileAt(dfd, "status", buf); err == nil {
		if st, err := ParseStatus(b); err == nil {
			info.UID, info.UIDKnown = st.UID, st.UIDKnown
		}
	} else if gone(err) {
		return nil, fmt.Errorf("reading %s/status: %w", dir, ErrExited)
	}
	if b, err := readFileAt(dfd, "cmdline", buf); err == nil {
		info.Cmdline = ParseCmdline(b)
	}
	readExeCgroup(dfd, info, buf)
	return info, nil
}

// ReadStat reads and parses root/PID/stat. An error wraps ErrExited when
// the process is gone.
func ReadStat(root string, pid int, buf *[]byte) (Stat, error) {
	b, path, err := readPIDFile(root, pid, "stat", buf)
	if err != nil {
		return Stat{}, err
	}
	st, err := ParseStat(b)
	if err != nil {
		return Stat{}, fmt.Errorf("%s: %w", path, err)
	}
	return st, nil
}

// readPIDFile reads root/PID/name by its path, for a caller that reads one
// file of the process (openProc's directory fd pays for itself from two).
// An error wraps ErrExited when the process is gone.
func readPIDFile(root string, pid int, name string, buf *[]byte) ([]byte, string, error) {
	path := filepath.Join(root, strconv.Itoa(pid), name)
	b, err := readFileAt(unix.AT_FDCWD, path, buf)
	if err != nil {
		if gone(err) {
			return nil, path, fmt.Errorf("reading %s: %w", path, ErrExited)
		}
		return nil, path, fmt.Errorf("reading %s: %w", path, err)
	}
	return b, path, nil
}

// ReadExe reads the root/PID/exe link: the executable's path, and whether
// it was deleted.
func ReadExe(root string, pid int) (exe string, deleted bool, err error) {
	var lbuf [4096]byte
	n, err := unix.Readlink(filepath.Join(root, strconv.Itoa(pid), "exe"), lbuf[:])
	if err != nil {
		return "", false, err
	}
	exe, deleted = strings.CutSuffix(string(lbuf[:n]), " (deleted)")
	return exe, deleted, nil
}

// ReadCgroup reads and parses root/PID/cgroup.
func ReadCgroup(root string, pid int, buf *[]byte) (Cgroup, error) {
	b, _, err := readPIDFile(root, pid, "cgroup", buf)
	if err != nil {
		return Cgroup{}, err
	}
	return ParseCgroup(b), nil
}

// readExeCgroup fills the executable and the cgroup of info, from the
// process directory dfd, where they can be read.
func readExeCgroup(dfd int, info *Info, buf *[]byte) {
	var lbuf [4096]byte
	if n, err := unix.Readlinkat(dfd, "exe", lbuf[:]); err == nil {
		info.Exe, info.ExeDeleted = strings.CutSuffix(string(lbuf[:n]), " (deleted)")
	}
	if b, err := readFileAt(dfd, "cgroup", buf); err == nil {
		info.Cgroup = ParseCgroup(b)
	}
}

// ReadCmdline reads root/PID/cmdline alone, for a caller that has the
// rest of a process's details from elsewhere (the kernel's task
// iterator). An error wraps ErrExited when the process is gone.
func ReadCmdline(root string, pid int, buf *[]byte) ([]string, error) {
	b, _, err := readPIDFile(root, pid, "cmdline", buf)
	if err != nil {
		return nil, err
	}
	return ParseCmdline(b), nil
}

// IsMountPoint reports whether root/PID is the root of a mount (statx's
// STATX_ATTR_MOUNT_ROOT, Linux 5.8): something mounted over a process's
// directory hides it from whoever reads /proc. known is false when the
// kernel cannot say, or the directory is not there.
func IsMountPoint(root string, pid int) (mount, known bool) {
	var st unix.Statx_t
	dir := filepath.Join(root, strconv.Itoa(pid))
	if err := unix.Statx(unix.AT_FDCWD, dir, unix.AT_SYMLINK_NOFOLLOW|unix.AT_STATX_DONT_SYNC, 0, &st); err != nil ||
		st.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT == 0 {
		return false, false
	}
	return st.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0, true
}

// openProc opens root/pid as a directory fd: every file is then opened
// relative to it, and the kernel resolves /proc/PID once instead of once
// per file.
func openProc(root string, pid int) (string, int, error) {
	dir := filepath.Join(root, strconv.Itoa(pid))
	dfd, err := unix.Open(dir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		if err == unix.ENOENT || err == unix.ESRCH {
			return dir, -1, fmt.Errorf("opening %s: %w", dir, ErrExited)
		}
		return dir, -1, fmt.Errorf("opening %s: %w", dir, err)
	}
	return dir, dfd, nil
}

// readRequired reads a file the process cannot be described without: an
// error wraps ErrExited when the process is gone.
func readRequired(dir string, dfd int, name string, buf *[]byte) ([]byte, error) {
	b, err := readFileAt(dfd, name, buf)
	if err != nil {
		if gone(err) {
			return nil, fmt.Errorf("reading %s/%s: %w", dir, name, ErrExited)
		}
		return nil, fmt.Errorf("reading %s/%s: %w", dir, name, err)
	}
	return b, nil
}

func readBrief(dir string, dfd, pid int, buf *[]byte) (*Info, error) {
	b, err := readRequired(dir, dfd, "status", buf)
	if err != nil {
		return nil, err
	}
	st, err := ParseStatus(b)
	if err != nil {
		return nil, fmt.Errorf("%s/status: %w", dir, err)
	}
	info := &Info{Stat: Stat{PID: pid, Comm: st.Name, State: st.State, PPID: st.PPID}, UID: st.UID, UIDKnown: st.UIDKnown}
	if !st.NameKnown || !st.StateKnown || !st.PPIDKnown {
		// A status without these lines (not a kernel's): take them
		// from stat.
		b, err := readRequired(dir, dfd, "stat", buf)
		if err != nil {
			return nil, err
		}
		if info.Stat, err = ParseStat(b); err != nil {
			return nil, fmt.Errorf("%s/stat: %w", dir, err)
		}
	}
	if b, err := readFileAt(dfd, "cmdline", buf); err == nil {
		info.Cmdline = ParseCmdline(b)
	}
	return info, nil
}

// readFile reads a whole (procfs) file into *buf, growing it as needed.
// procfs files report a size of 0, so os.ReadFile would start small and
// reallocate; a reused buffer avoids that.
func readFile(path string, buf *[]byte) ([]byte, error) {
	return readFileAt(unix.AT_FDCWD, path, buf)
}

// maxFileSize bounds what readFileAt reads of one file: more than any
// stat, status or cgroup file holds, and than a command line shown to a
// person needs (a hostile one may be as big as the process's memory).
const maxFileSize = 1 << 20

// readFileAt is readFile relative to a directory fd. It reads the files of
// /proc/PID that the kernel writes whole at the first read (stat, status,
// cgroup: single_open; cmdline, which fills what it is asked for): a read
// that leaves the buffer with room is the end, and saves a second read
// that would return 0, one syscall per file on every process shown. A
// regular file under a fixture root also returns less than asked only at
// its end. Past maxFileSize the rest is not read.
func readFileAt(dirfd int, path string, buf *[]byte) ([]byte, error) {
	fd, err := unix.Openat(dirfd, path, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &fs.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(fd)
	if cap(*buf) < 512 {
		*buf = make([]byte, 4096)
	}
	b := (*buf)[:cap(*buf)]
	n := 0
	for {
		if n == len(b) {
			b = append(b, make([]byte, len(b))...)
			b = b[:cap(b)]
			*buf = b
		}
		end := min(len(b), maxFileSize)
		m, err := unix.Read(fd, b[n:end])
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			return nil, &fs.PathError{Op: "read", Path: path, Err: err}
		}
		n += m
		if m == 0 || n < end || n == maxFileSize {
			return b[:n], nil
		}
	}
}

// StartTicks reads just the start time of pid, to check a process's
// identity cheaply. ok is false when the process is gone.
func StartTicks(root string, pid int) (uint64, bool) {
	var buf [1024]byte
	s := buf[:0]
	st, err := ReadStat(root, pid, &s)
	if err != nil {
		return 0, false
	}
	return st.StartTicks, true
}

// BootTime reads btime from root/stat.
func BootTime(root string) (int64, error) {
	b, err := os.ReadFile(filepath.Join(root, "stat"))
	if err != nil {
		return 0, fmt.Errorf("reading %s/stat: %w", root, err)
	}
	return ParseBootTime(b)
}

// NetNS returns the inode of the network namespace of root/self.
func NetNS(root string, pid string) (uint64, error) {
	l, err := os.Readlink(filepath.Join(root, pid, "ns", "net"))
	if err != nil {
		return 0, fmt.Errorf("reading network namespace: %w", err)
	}
	v, ok := ParseNSLink([]byte(l))
	if !ok {
		return 0, fmt.Errorf("unexpected namespace link %q", l)
	}
	return v, nil
}

func gone(err error) bool {
	return errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ESRCH)
}

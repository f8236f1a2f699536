package store

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// LockName is the lock file in the state directory: one daemon (or one
// `porteirod once`) at a time writes the database.
const LockName = "porteiro.lock"

// LockedError says that another process holds the state directory.
type LockedError struct {
	Dir string
	PID int // 0 when the holder did not write its pid
}

func (e *LockedError) Error() string {
	who := "another porteirod"
	if e.PID > 0 {
		who = fmt.Sprintf("another porteirod (pid %d)", e.PID)
	}
	return fmt.Sprintf("%s holds the state directory %s; one daemon per state directory (stop it, or set another state_dir)", who, e.Dir)
}

// ErrUntrusted is wrapped by the errors of a state directory that someone
// other than the daemon's user could change under it.
var ErrUntrusted = errors.New("untrusted state directory")

// checkTrusted refuses a state directory that another user could tamper
// with, the way ssh's StrictModes treats ~/.ssh: the directory and every
// directory above it must be owned by root or by the daemon's user, and
// not writable by anyone else (a sticky directory such as /tmp excepted
// above it), and the files the store opens must be regular files of the
// daemon's user, not symlinks. Otherwise a user who owns the directory
// could plant porteiro.db -> /etc/something and have root's daemon write
// there. Given that, the checks cannot be raced: nobody else can change
// the directory between the check and the open.
func checkTrusted(dir string) error {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	euid := uint32(os.Geteuid())
	for p, first := abs, true; ; p, first = filepath.Dir(p), false {
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil {
			return fmt.Errorf("checking %s: %w", p, err)
		}
		mode := os.FileMode(st.Mode & 0o7777)
		switch {
		case st.Mode&unix.S_IFMT == unix.S_IFLNK:
			return fmt.Errorf("%w: %s is a symlink; give the real path", ErrUntrusted, p)
		case st.Mode&unix.S_IFMT != unix.S_IFDIR:
			return fmt.Errorf("%s is not a directory", p)
		case st.Uid != 0 && st.Uid != euid:
			return fmt.Errorf("%w: %s is owned by uid %d, not by root or by this process's user (uid %d); run porteirod as that user, or chown the directory", ErrUntrusted, p, st.Uid, euid)
		case mode&0o022 != 0 && (first || mode&os.FileMode(unix.S_ISVTX) == 0):
			return fmt.Errorf("%w: %s is writable by its group or others (mode %04o); chmod go-w %s", ErrUntrusted, p, mode&0o777, p)
		}
		if p == "/" || p == "." {
			break
		}
	}
	for _, name := range []string{FileName, FileName + "-wal", FileName + "-shm", LockName} {
		p := filepath.Join(abs, name)
		var st unix.Stat_t
		err := unix.Lstat(p, &st)
		if errors.Is(err, unix.ENOENT) {
			continue
		}
		switch {
		case err != nil:
			return fmt.Errorf("checking %s: %w", p, err)
		case st.Mode&unix.S_IFMT != unix.S_IFREG:
			return fmt.Errorf("%w: %s is not a regular file (a symlink?); remove it", ErrUntrusted, p)
		case st.Uid != euid:
			return fmt.Errorf("%w: %s is owned by uid %d, not by this process's user (uid %d)", ErrUntrusted, p, st.Uid, euid)
		case st.Mode&0o022 != 0:
			return fmt.Errorf("%w: %s is writable by its group or others; chmod go-w %s", ErrUntrusted, p, p)
		}
	}
	return nil
}

// lock takes the state directory's lock, without waiting, and writes this
// process's pid into it for the next one to name.
func lock(dir string) (*os.File, error) {
	p := filepath.Join(dir, LockName)
	f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the lock %s: %w", p, err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		defer f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			b, _ := io.ReadAll(io.LimitReader(f, 32))
			pid, _ := strconv.Atoi(strings.TrimSpace(string(b)))
			return nil, &LockedError{Dir: dir, PID: pid}
		}
		return nil, fmt.Errorf("locking %s: %w", p, err)
	}
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f, nil
}

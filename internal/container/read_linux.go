package container

import (
	"fmt"
	"io"
	"os"

	"golang.org/x/sys/unix"
)

// readBounded reads a whole file of at most max bytes. It does not follow a
// symlink in the last element (a state file that is a link was not written
// by the runtime), does not block on a FIFO, and refuses anything but a
// regular file, so a link to /dev/zero or a pipe costs nothing.
func readBounded(path string, max int64) ([]byte, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("reading %s: %w", path, ErrNotRegular)
	}
	if st.Size() > max {
		return nil, fmt.Errorf("reading %s: %d bytes: %w", path, st.Size(), ErrTooBig)
	}
	// procfs files say size 0, and a file can grow after the stat.
	b, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", path, err)
	}
	if int64(len(b)) > max {
		return nil, fmt.Errorf("reading %s: over %d bytes: %w", path, max, ErrTooBig)
	}
	return b, nil
}

package bpfevents

import (
	"strconv"
	"strings"

	"golang.org/x/sys/unix"

	"github.com/porteiro/porteiro/internal/procfs"
)

// maxCmdline bounds the read of /proc/PID/cmdline: a process can make its
// command line as long as it likes, and an event must not wait on it.
const maxCmdline = 64 << 10

// procDetails reads the command line and the executable of pid, if it is
// still there. Errors mean the process is gone or hidden; they leave the
// fields empty. buf is reused across calls.
func procDetails(procRoot string, pid int, buf []byte) (cmdline []string, exe string) {
	dir := procRoot + "/" + strconv.Itoa(pid)
	if fd, err := unix.Open(dir+"/cmdline", unix.O_RDONLY|unix.O_CLOEXEC|unix.O_NOFOLLOW, 0); err == nil {
		n := 0
		for n < len(buf) {
			m, err := unix.Read(fd, buf[n:])
			if err == unix.EINTR {
				continue
			}
			if err != nil || m <= 0 {
				break
			}
			n += m
		}
		unix.Close(fd)
		cmdline = procfs.ParseCmdline(buf[:n])
	}
	var lbuf [4096]byte
	if n, err := unix.Readlink(dir+"/exe", lbuf[:]); err == nil {
		exe = strings.TrimSuffix(string(lbuf[:n]), " (deleted)")
	}
	return cmdline, exe
}

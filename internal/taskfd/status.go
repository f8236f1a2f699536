package taskfd

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"strconv"
	"syscall"
)

// Capabilities, from include/uapi/linux/capability.h.
const (
	capSysAdmin = 21
	capPerfmon  = 38
	capBPF      = 39
)

// ErrNoCapability means the process may not load the iterator program: it
// needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN (root has all three).
var ErrNoCapability = errors.New("loading BPF iterators needs CAP_BPF and CAP_PERFMON (or root)")

// Status is what Open needs from /proc/self/status.
type Status struct {
	// Level is the number of pids on the NSpid line, minus one: the depth
	// of the process's PID namespace below the one /proc was mounted from.
	// That is a lower bound of its real depth (a container's own /proc
	// says 0), which the program reads from the kernel.
	Level int
	// CapEff is the effective capability set.
	CapEff uint64
}

// CanLoad reports whether the capabilities allow loading the program.
func (s Status) CanLoad() bool {
	has := func(c uint) bool { return s.CapEff&(1<<c) != 0 }
	return has(capSysAdmin) || (has(capBPF) && has(capPerfmon))
}

// ParseStatus reads the NSpid and CapEff lines of a /proc/PID/status file.
func ParseStatus(b []byte) (Status, error) {
	var s Status
	var sawNS, sawCap bool
	for line := range bytes.Lines(b) {
		key, val, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		switch string(key) {
		case "NSpid":
			n := len(bytes.Fields(val))
			if n == 0 {
				return s, errors.New("status: empty NSpid line")
			}
			s.Level, sawNS = n-1, true
		case "CapEff":
			v, err := strconv.ParseUint(string(bytes.TrimSpace(val)), 16, 64)
			if err != nil {
				return s, fmt.Errorf("status: CapEff: %w", err)
			}
			s.CapEff, sawCap = v, true
		}
	}
	switch {
	case !sawNS:
		return s, errors.New("status: no NSpid line (kernel older than 4.1)")
	case !sawCap:
		return s, errors.New("status: no CapEff line")
	}
	return s, nil
}

// Unavailable reports whether err, from Open, means that this process or
// machine does not offer the iterator: no CAP_BPF and CAP_PERFMON, a kernel
// without BTF (ENOENT) or without bpf(2) (ENOSYS), or bpf(2) refused by a
// sandbox or lockdown (EPERM). Other errors, such as the verifier rejecting
// the program (EACCES, EINVAL) or a layout porteiro cannot read, are
// porteiro's to fix.
func Unavailable(err error) bool {
	return errors.Is(err, ErrNoCapability) || errors.Is(err, fs.ErrNotExist) ||
		errors.Is(err, syscall.ENOSYS) || errors.Is(err, syscall.EPERM)
}

package taskfd

import (
	"errors"
	"io/fs"
	"syscall"

	"github.com/porteiro/porteiro/internal/procfs"
)

// ErrNoCapability means the process may not load the iterator program: it
// needs CAP_BPF and CAP_PERFMON, or CAP_SYS_ADMIN (root has all three).
var ErrNoCapability = errors.New("loading BPF iterators needs CAP_BPF and CAP_PERFMON (or root)")

// canLoad reports whether the capabilities of s allow loading the program.
func canLoad(s procfs.Status) bool {
	return s.HasCap(procfs.CapSysAdmin) || (s.HasCap(procfs.CapBPF) && s.HasCap(procfs.CapPerfmon))
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

package bpfevents

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// Capabilities, from include/uapi/linux/capability.h.
const (
	capNetAdmin = 12
	capSysAdmin = 21
	capPerfmon  = 38
	capBPF      = 39
)

// missingCaps names the capabilities this process lacks to load and attach
// the programs: CAP_BPF to load, CAP_PERFMON for the tracing program and its
// pointer reads, CAP_NET_ADMIN for the cgroup socket hooks. CAP_SYS_ADMIN
// stands in for CAP_BPF and CAP_PERFMON, as the kernel allows.
func missingCaps() ([]string, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return nil, fmt.Errorf("reading capabilities (capget): %w", err)
	}
	eff := uint64(data[0].Effective) | uint64(data[1].Effective)<<32
	has := func(c uint) bool { return eff&(1<<c) != 0 }
	var miss []string
	if !has(capBPF) && !has(capSysAdmin) {
		miss = append(miss, "CAP_BPF")
	}
	if !has(capPerfmon) && !has(capSysAdmin) {
		miss = append(miss, "CAP_PERFMON")
	}
	if !has(capNetAdmin) {
		miss = append(miss, "CAP_NET_ADMIN")
	}
	return miss, nil
}

// CapabilityError is returned by Open when capabilities are missing. It
// wraps ErrNotSupported.
type CapabilityError struct {
	Missing []string
}

func (e *CapabilityError) Error() string {
	return fmt.Sprintf("%v: missing %s (run as root, or grant CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN)",
		ErrNotSupported, strings.Join(e.Missing, ", "))
}

func (e *CapabilityError) Unwrap() error { return ErrNotSupported }

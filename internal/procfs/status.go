package procfs

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
)

// Capabilities porteiro checks, from include/uapi/linux/capability.h.
const (
	CapSysPtrace = 19
	CapSysAdmin  = 21
	CapPerfmon   = 38
	CapBPF       = 39
)

// Status is what porteiro reads from /proc/PID/status. Each field has a
// flag that says whether its line was there: kernels and procfs mounts
// differ in which lines they show.
type Status struct {
	// UID is the effective uid, the user that ps shows (Uid line).
	UID      uint32
	UIDKnown bool
	// Level is the number of pids on the NSpid line, minus one: the depth
	// of the process's PID namespace below the one /proc was mounted from.
	Level      int
	LevelKnown bool // no NSpid line before Linux 4.1
	// CapEff is the effective capability set.
	CapEff      uint64
	CapEffKnown bool
	// Name is the comm, as stat gives it: the kernel escapes a newline
	// and a backslash in the Name line, and ParseStatus undoes that.
	Name      string
	NameKnown bool
	// State is the state letter, PPID the parent's pid.
	State      string
	PPID       int
	StateKnown bool
	PPIDKnown  bool
}

// HasCap reports whether the effective set holds capability c.
func (s Status) HasCap(c uint) bool { return c < 64 && s.CapEff&(1<<c) != 0 }

// ParseStatus reads the Name, State, PPid, Uid, NSpid and CapEff lines of
// a /proc/PID/status file. A line that is there but malformed is an error; a missing one
// leaves its Known flag false.
func ParseStatus(b []byte) (Status, error) {
	var s Status
	for line := range bytes.Lines(b) {
		key, val, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		switch string(key) {
		case "Name":
			// "Name:\t" and the escaped comm; only a newline ends it.
			v := bytes.TrimSuffix(val, []byte("\n"))
			v = bytes.TrimPrefix(v, []byte("\t"))
			s.Name, s.NameKnown = unescapeName(v), true
		case "State":
			f := fields(val, 1)
			if len(f) < 1 {
				return s, errors.New("status: empty State line")
			}
			s.State, s.StateKnown = string(f[0]), true
		case "PPid":
			f := fields(val, 1)
			if len(f) < 1 {
				return s, errors.New("status: empty PPid line")
			}
			n, err := strconv.Atoi(string(f[0]))
			if err != nil || n < 0 {
				return s, fmt.Errorf("status: bad PPid %q", f[0])
			}
			s.PPID, s.PPIDKnown = n, true
		case "Uid":
			// Real, effective, saved and filesystem uids.
			f := fields(val, 2)
			if len(f) < 2 {
				return s, errors.New("status: short Uid line")
			}
			u, err := strconv.ParseUint(string(f[1]), 10, 32)
			if err != nil {
				return s, fmt.Errorf("status: bad effective uid: %w", err)
			}
			s.UID, s.UIDKnown = uint32(u), true
		case "NSpid":
			n := len(bytes.Fields(val))
			if n == 0 {
				return s, errors.New("status: empty NSpid line")
			}
			s.Level, s.LevelKnown = n-1, true
		case "CapEff":
			v, err := strconv.ParseUint(string(bytes.TrimSpace(val)), 16, 64)
			if err != nil {
				return s, fmt.Errorf("status: bad CapEff: %w", err)
			}
			s.CapEff, s.CapEffKnown = v, true
		}
	}
	return s, nil
}

// unescapeName undoes the Name line's escapes (fs/proc/array.c,
// proc_task_name: "\\n" for a newline, "\\\\" for a backslash); any other
// byte, control characters included, is there as it is in the comm.
func unescapeName(b []byte) string {
	if bytes.IndexByte(b, '\\') < 0 {
		return string(b)
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] == '\\' && i+1 < len(b) {
			switch b[i+1] {
			case 'n':
				out = append(out, '\n')
				i++
				continue
			case '\\':
				out = append(out, '\\')
				i++
				continue
			}
		}
		out = append(out, b[i])
	}
	return string(out)
}

// fields returns up to n space- or tab-separated fields of b, without
// allocating more than the slice header array.
func fields(b []byte, n int) [][]byte {
	out := make([][]byte, 0, n)
	for len(out) < n {
		b = bytes.TrimLeft(b, " \t\n")
		if len(b) == 0 {
			break
		}
		i := bytes.IndexAny(b, " \t\n")
		if i < 0 {
			i = len(b)
		}
		out = append(out, b[:i])
		b = b[i:]
	}
	return out
}

package procfs

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"
)

// Mount is one line of /proc/PID/mountinfo, the fields porteiro uses.
type Mount struct {
	ID int
	// Root is the path inside the filesystem that is mounted: for an nsfs
	// mount, the namespace ("net:[4026532280]").
	Root       string
	MountPoint string // unescaped
	FSType     string
	// SuperOptions are the filesystem's own options, such as a procfs
	// mount's hidepid=2.
	SuperOptions string
}

// ParseMountInfo decodes /proc/PID/mountinfo (proc(5)). A line that does
// not have the documented shape is an error that names it.
func ParseMountInfo(b []byte) ([]Mount, error) {
	var out []Mount
	n := 0
	for line := range bytes.Lines(b) {
		n++
		line = bytes.TrimRight(line, "\n")
		if len(line) == 0 {
			continue
		}
		f := strings.Fields(string(line))
		// ID, parent, major:minor, root, mount point, options, optional
		// fields, "-", fstype, source, super options.
		sep := -1
		for i := 6; i < len(f); i++ {
			if f[i] == "-" {
				sep = i
				break
			}
		}
		if len(f) < 6 || sep < 0 || len(f) < sep+3 {
			return nil, fmt.Errorf("mountinfo line %d: %d fields, no \" - fstype source\" part", n, len(f))
		}
		id, err := strconv.Atoi(f[0])
		if err != nil || id < 0 {
			return nil, fmt.Errorf("mountinfo line %d: bad mount id %q", n, f[0])
		}
		m := Mount{ID: id, Root: unescapeOctal(f[3]), MountPoint: unescapeOctal(f[4]), FSType: f[sep+1]}
		if len(f) > sep+3 {
			m.SuperOptions = f[sep+3]
		}
		out = append(out, m)
	}
	return out, nil
}

// unescapeOctal undoes the kernel's \ooo escapes of space, tab, newline and
// backslash in mountinfo paths.
func unescapeOctal(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			v := (s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0')
			b.WriteByte(v)
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

// HidePID levels of a procfs mount (proc(5)).
const (
	HidePIDOff        = 0 // every process is visible
	HidePIDNoAccess   = 1 // visible, but its files are not readable
	HidePIDInvisible  = 2 // other users' processes are not listed
	HidePIDPtraceable = 4 // only processes the caller may ptrace are listed
)

// ProcOptions is what porteiro reads from a procfs mount's options.
type ProcOptions struct {
	HidePID int
	// GID is the group exempt from hidepid (gid=), or -1.
	GID int64
}

// ParseProcOptions reads hidepid= and gid= from a procfs mount's super
// options, as both the numbers (before Linux 5.8) and the names show them.
// Unknown values of hidepid count as the strictest, invisible.
func ParseProcOptions(opts string) ProcOptions {
	o := ProcOptions{GID: -1}
	for _, kv := range strings.Split(opts, ",") {
		k, v, _ := strings.Cut(kv, "=")
		switch k {
		case "hidepid":
			switch v {
			case "0", "off":
				o.HidePID = HidePIDOff
			case "1", "noaccess":
				o.HidePID = HidePIDNoAccess
			case "2", "invisible":
				o.HidePID = HidePIDInvisible
			case "4", "ptraceable":
				o.HidePID = HidePIDPtraceable
			default:
				o.HidePID = HidePIDInvisible
			}
		case "gid":
			if g, err := strconv.ParseUint(v, 10, 32); err == nil {
				o.GID = int64(g)
			}
		}
	}
	return o
}

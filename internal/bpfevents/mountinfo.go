package bpfevents

import (
	"bytes"
	"errors"
	"strconv"
)

// errNoCgroup2 means no cgroup2 file system is mounted.
var errNoCgroup2 = errors.New("no cgroup2 file system is mounted (see /proc/self/mountinfo)")

// Cgroup2Root finds the mount point of the cgroup2 hierarchy in the text of
// /proc/self/mountinfo: /sys/fs/cgroup on a unified layout,
// /sys/fs/cgroup/unified on a hybrid one. A mount of the hierarchy's root
// ("/") is preferred to a mount of a subtree, which sees fewer sockets.
func Cgroup2Root(mountinfo []byte) (string, error) {
	sub := ""
	for line := range bytes.Lines(mountinfo) {
		// id parent major:minor root mountpoint options [optional...] - fstype source superopts
		pre, post, ok := bytes.Cut(line, []byte(" - "))
		if !ok {
			continue
		}
		if f := bytes.Fields(post); len(f) == 0 || string(f[0]) != "cgroup2" {
			continue
		}
		f := bytes.Fields(pre)
		if len(f) < 5 {
			continue
		}
		mp := unescapeOctal(f[4])
		if string(f[3]) == "/" {
			return mp, nil
		}
		if sub == "" {
			sub = mp
		}
	}
	if sub != "" {
		return sub, nil
	}
	return "", errNoCgroup2
}

// unescapeOctal undoes the kernel's \NNN escaping of spaces, tabs,
// newlines and backslashes in mountinfo paths.
func unescapeOctal(b []byte) string {
	if bytes.IndexByte(b, '\\') < 0 {
		return string(b)
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if b[i] == '\\' && i+4 <= len(b) {
			if n, err := strconv.ParseUint(string(b[i+1:i+4]), 8, 8); err == nil {
				out = append(out, byte(n))
				i += 3
				continue
			}
		}
		out = append(out, b[i])
	}
	return string(out)
}

// Package procfs reads what porteiro needs from a procfs tree: the
// per-process stat, status, cmdline and cgroup files, and the fd links that
// tie sockets to processes. Parsers take []byte and run anywhere; the walk
// over /proc lives in walk_linux.go. Every reader takes the mount point, so
// tests run on fixture trees.
package procfs

import (
	"bytes"
	"fmt"
	"strconv"
	"strings"

	"github.com/porteiro/porteiro/internal/container"
)

// Stat is the part of /proc/PID/stat porteiro uses.
type Stat struct {
	PID        int
	Comm       string
	State      string
	PPID       int
	UTime      uint64 // clock ticks
	STime      uint64 // clock ticks
	StartTicks uint64 // field 22: clock ticks after boot
	RSSPages   int64  // field 24
}

// ParseStat decodes /proc/PID/stat. The comm field may hold spaces and
// parentheses, so it runs from the first '(' to the last ')'.
func ParseStat(b []byte) (Stat, error) {
	var s Stat
	open := bytes.IndexByte(b, '(')
	end := bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return s, fmt.Errorf("stat: no (comm) field")
	}
	pid, err := strconv.Atoi(string(bytes.TrimSpace(b[:open])))
	if err != nil {
		return s, fmt.Errorf("stat: bad pid: %w", err)
	}
	s.PID = pid
	s.Comm = string(b[open+1 : end])
	// Fields after comm, numbered from 3 (state).
	rest := b[end+1:]
	var f [24][]byte
	n := 0
	for n < len(f) {
		for len(rest) > 0 && rest[0] == ' ' {
			rest = rest[1:]
		}
		if len(rest) == 0 {
			break
		}
		i := bytes.IndexAny(rest, " \n")
		if i < 0 {
			i = len(rest)
		}
		f[n] = rest[:i]
		rest = rest[i:]
		n++
		if len(rest) > 0 && rest[0] == '\n' {
			break
		}
	}
	// f[0] is field 3 (state); field k is f[k-3]. We need up to field 24.
	if n < 22 {
		return s, fmt.Errorf("stat: %d fields after comm, want at least 22", n)
	}
	s.State = string(f[0])
	if s.PPID, err = strconv.Atoi(string(f[1])); err != nil {
		return s, fmt.Errorf("stat: bad ppid: %w", err)
	}
	if s.UTime, err = strconv.ParseUint(string(f[14-3]), 10, 64); err != nil {
		return s, fmt.Errorf("stat: bad utime: %w", err)
	}
	if s.STime, err = strconv.ParseUint(string(f[15-3]), 10, 64); err != nil {
		return s, fmt.Errorf("stat: bad stime: %w", err)
	}
	if s.StartTicks, err = strconv.ParseUint(string(f[22-3]), 10, 64); err != nil {
		return s, fmt.Errorf("stat: bad starttime: %w", err)
	}
	if s.RSSPages, err = strconv.ParseInt(string(f[24-3]), 10, 64); err != nil {
		return s, fmt.Errorf("stat: bad rss: %w", err)
	}
	return s, nil
}

// ParseCmdline splits /proc/PID/cmdline into argv. Kernel threads and
// zombies have an empty cmdline and get nil. A process that rewrote its
// argv as one space-separated string keeps it as one element.
func ParseCmdline(b []byte) []string {
	b = bytes.TrimRight(b, "\x00")
	if len(b) == 0 {
		return nil
	}
	parts := bytes.Split(b, []byte{0})
	out := make([]string, len(parts))
	for i, p := range parts {
		out[i] = string(p)
	}
	return out
}

// Cgroup is what /proc/PID/cgroup says about a process's service manager.
type Cgroup struct {
	// Unit is the systemd unit: a .service or a non-container .scope.
	Unit string
	// Container is a container id (docker, podman, containerd, cri-o,
	// kubernetes) or an LXC or systemd-nspawn machine name.
	Container string
}

// isContainerScope reports whether a cgroup path element is a scope that
// holds a container, which is not the process's service: one of
// "docker-", "libpod-", "cri-containerd-", "crio-", "containerd-", then 12
// to 64 lowercase hex digits, then ".scope". It is written out rather than
// a regexp: compiling that one ({12,64} unrolls into 64 states) cost every
// porteiro command about a millisecond and 800 allocations at start-up.
func isContainerScope(e string) bool {
	id, ok := strings.CutSuffix(e, ".scope")
	if !ok {
		return false
	}
	for _, p := range [...]string{"docker-", "libpod-", "cri-containerd-", "crio-", "containerd-"} {
		if h, ok := strings.CutPrefix(id, p); ok {
			return isHexID(h)
		}
	}
	return false
}

// isHexID reports whether s is 12 to 64 lowercase hex digits.
func isHexID(s string) bool {
	if len(s) < 12 || len(s) > 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// ParseCgroup reads /proc/PID/cgroup (v1 or v2). It prefers the unified
// (v2) line, then the v1 name=systemd line, then any other.
func ParseCgroup(b []byte) Cgroup {
	var paths []string
	var v2, sd string
	for _, line := range strings.Split(string(b), "\n") {
		if line == "" {
			continue
		}
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		switch {
		case parts[0] == "0" && parts[1] == "":
			v2 = parts[2]
		case parts[1] == "name=systemd":
			sd = parts[2]
		default:
			paths = append(paths, parts[2])
		}
	}
	ordered := append([]string{v2, sd}, paths...)
	var c Cgroup
	for _, p := range ordered {
		if p == "" || p == "/" {
			continue
		}
		if c.Container == "" {
			c.Container = containerOf(p)
		}
		if c.Unit == "" {
			c.Unit = unitOf(p)
		}
	}
	return c
}

// containerOf names the container of one cgroup path: its id, or the
// name of an LXC or systemd-nspawn container, which have no other. The
// patterns live in package container.
func containerOf(p string) string {
	i, ok := container.FromPath(p)
	if !ok {
		return ""
	}
	if i.ID != "" {
		return i.ID
	}
	return i.Name
}

// unitOf returns the innermost systemd unit of a cgroup path: the last
// element ending in .service or .scope, skipping container scopes and the
// user@UID.service manager itself when a unit below it exists.
func unitOf(p string) string {
	elems := strings.Split(p, "/")
	for i := len(elems) - 1; i >= 0; i-- {
		e := elems[i]
		if isContainerScope(e) {
			continue
		}
		if strings.HasSuffix(e, ".service") || strings.HasSuffix(e, ".scope") {
			return e
		}
	}
	return ""
}

// ParseBootTime returns btime (seconds since the epoch) from /proc/stat.
func ParseBootTime(b []byte) (int64, error) {
	for _, line := range bytes.Split(b, []byte{'\n'}) {
		if bytes.HasPrefix(line, []byte("btime ")) {
			v, err := strconv.ParseInt(string(bytes.TrimSpace(line[6:])), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("stat: bad btime: %w", err)
			}
			return v, nil
		}
	}
	return 0, fmt.Errorf("stat: no btime line")
}

// ParseSocketLink returns the inode of an fd link "socket:[12345]".
func ParseSocketLink(b []byte) (uint64, bool) {
	const pfx = "socket:["
	if len(b) < len(pfx)+2 || string(b[:len(pfx)]) != pfx || b[len(b)-1] != ']' {
		return 0, false
	}
	var n uint64
	for _, c := range b[len(pfx) : len(b)-1] {
		if c < '0' || c > '9' {
			return 0, false
		}
		if n > (1<<64-1)/10 {
			return 0, false
		}
		n = n*10 + uint64(c-'0')
	}
	return n, true
}

// ParseNSLink returns the inode of a namespace link "net:[4026531840]".
func ParseNSLink(b []byte) (uint64, bool) {
	i := bytes.IndexByte(b, '[')
	if i < 0 || b[len(b)-1] != ']' {
		return 0, false
	}
	v, err := strconv.ParseUint(string(b[i+1:len(b)-1]), 10, 64)
	return v, err == nil
}

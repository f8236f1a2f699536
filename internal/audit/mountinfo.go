package audit

import (
	"bytes"
	"strings"

	"github.com/porteiro/porteiro/internal/procfs"
)

// NSMounts returns the network namespaces that nsfs mounts in a
// /proc/PID/mountinfo name (`ip netns add` bind-mounts them under
// /run/netns), with the mount point of each. Malformed lines are skipped:
// the file comes from the kernel, and a line it could not have written
// names nothing.
func NSMounts(mountinfo []byte) map[uint64]string {
	out := map[uint64]string{}
	for len(mountinfo) > 0 {
		line := mountinfo
		if i := bytes.IndexByte(mountinfo, '\n'); i >= 0 {
			line, mountinfo = mountinfo[:i], mountinfo[i+1:]
		} else {
			mountinfo = nil
		}
		// 36 35 0:4 net:[4026532280] /run/netns/blue rw shared:5 - nsfs nsfs rw
		fields := strings.Fields(string(line))
		sep := -1
		for i, f := range fields {
			if f == "-" {
				sep = i
				break
			}
		}
		if sep < 5 || sep+1 >= len(fields) || fields[sep+1] != "nsfs" {
			continue
		}
		ino, ok := procfs.ParseNSLink([]byte(fields[3]))
		if !ok || !strings.HasPrefix(fields[3], "net:") {
			continue
		}
		if _, dup := out[ino]; !dup {
			out[ino] = unescapeMount(fields[4])
		}
	}
	return out
}

// unescapeMount undoes the octal escapes (\040 for a space) that the kernel
// writes in mount points.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }

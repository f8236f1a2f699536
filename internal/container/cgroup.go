package container

import (
	"bytes"
	"strings"
)

// FromCgroup derives the runtime and the id of a process's container from
// the text of /proc/PID/cgroup: cgroup v1, v2 or both (hybrid). It tries
// the unified (v2) line first, then the v1 name=systemd line, then the
// others, and takes the first that names a container. It reports false
// for a process outside any container, and for the runtimes' own helpers
// (podman's and CRI-O's conmon, the systemd-nspawn supervisor), which run
// next to a container but not in it.
//
// Kubernetes on cgroupfs leaves a bare id under pod<uid>, which docker
// (cri-dockerd) and containerd both do; FromCgroup says containerd and
// Namer.Complete corrects it when docker's state knows the id.
func FromCgroup(b []byte) (Info, bool) {
	var v2, sd string
	var others []string
	for len(b) > 0 {
		var line []byte
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			line, b = b, nil
		}
		// hierarchy-ID:controller-list:cgroup-path; the path may hold ':'.
		c1 := bytes.IndexByte(line, ':')
		if c1 < 0 {
			continue
		}
		c2 := bytes.IndexByte(line[c1+1:], ':')
		if c2 < 0 {
			continue
		}
		id, ctrl, path := string(line[:c1]), string(line[c1+1:c1+1+c2]), string(line[c1+2+c2:])
		switch {
		case id == "0" && ctrl == "":
			v2 = path
		case ctrl == "name=systemd":
			sd = path
		default:
			others = append(others, path)
		}
	}
	for _, p := range append([]string{v2, sd}, others...) {
		if p == "" || p == "/" {
			continue
		}
		if info, ok := FromPath(p); ok {
			return info, true
		}
	}
	return Info{}, false
}

// FromPath reads one cgroup path, as FromCgroup does for each line. It
// looks at the innermost element first: a container nested in another
// (docker in an LXC container, a kind node's pods) is the inner one, whose
// network namespace the process is in.
func FromPath(p string) (Info, bool) {
	elems := strings.Split(p, "/")
	for i := len(elems) - 1; i >= 0; i-- {
		e := elems[i]
		parent := ""
		if i > 0 {
			parent = elems[i-1]
		}
		child := ""
		if i+1 < len(elems) {
			child = elems[i+1]
		}
		base := strings.TrimSuffix(e, ".scope")
		switch {
		case strings.HasPrefix(base, "libpod-conmon-"), strings.HasPrefix(base, "crio-conmon-"):
			// The runtime's monitor: on the host, not in the container.
			return Info{}, false
		case strings.HasPrefix(base, "docker-") && isID(base[len("docker-"):]):
			return withPod(Info{Runtime: Docker, ID: base[len("docker-"):]}, elems), true
		case strings.HasPrefix(base, "libpod-") && isID(base[len("libpod-"):]):
			// libpod-<id>.scope under systemd; libpod_parent/libpod-<id>
			// under cgroupfs (hosts without systemd).
			return withPod(Info{Runtime: Podman, ID: base[len("libpod-"):]}, elems), true
		case strings.HasPrefix(base, "cri-containerd-") && isID(base[len("cri-containerd-"):]):
			return withPod(Info{Runtime: Containerd, ID: base[len("cri-containerd-"):]}, elems), true
		case strings.HasPrefix(base, "crio-") && isID(base[len("crio-"):]):
			return withPod(Info{Runtime: CRIO, ID: base[len("crio-"):]}, elems), true
		case strings.HasPrefix(e, "machine-") && strings.HasSuffix(e, ".scope") && parent == "machine.slice":
			if child == "supervisor" {
				// systemd-nspawn itself runs here, on the host.
				return Info{}, false
			}
			name := unescapeUnit(e[len("machine-") : len(e)-len(".scope")])
			if name == "" || strings.HasPrefix(name, "qemu-") {
				// libvirt registers its VMs as machines too; a qemu
				// process runs on the host.
				return Info{}, false
			}
			name = cleanName(name)
			return Info{Runtime: Nspawn, Name: name}, name != ""
		case strings.HasPrefix(e, "lxc.monitor."):
			return Info{}, false
		case strings.HasPrefix(e, "lxc.payload.") && len(e) > len("lxc.payload."):
			name := cleanName(e[len("lxc.payload."):])
			return Info{Runtime: LXC, Name: name}, name != ""
		case parent == "lxc" && e != "":
			// Before LXC 4.0 a container's cgroup was /lxc/NAME.
			name := cleanName(e)
			return Info{Runtime: LXC, Name: name}, name != ""
		case isHex(e) && len(e) == 64:
			switch {
			case parent == "docker", parent == "actions_job", i >= 2 && elems[i-2] == "ecs":
				// /docker/<id> is docker on cgroupfs; GitHub's runner
				// and ECS use docker with their own cgroup parents.
				return withPod(Info{Runtime: Docker, ID: e}, elems), true
			case podUID(parent) != "":
				return withPod(Info{Runtime: Containerd, ID: e}, elems), true
			}
		}
	}
	return Info{}, false
}

// isID accepts the ids that runtimes put in cgroup names: 64 hex digits,
// or at least 12 of them from runtimes that shorten it.
func isID(s string) bool {
	return len(s) >= 12 && len(s) <= 64 && isHex(s)
}

// withPod adds the Kubernetes pod UID when the container's cgroup lies in
// a kubepods pod cgroup.
func withPod(i Info, elems []string) Info {
	for _, e := range elems {
		if !strings.Contains(e, "kubepods") && !strings.HasPrefix(e, "pod") {
			continue
		}
		if uid := podUID(e); uid != "" {
			i.PodUID = uid
		}
	}
	return i
}

// podUID reads a pod cgroup's name: "pod<uid>" under cgroupfs,
// "kubepods-<qos>-pod<uid>.slice" under systemd, where the UID's dashes
// are written as underscores since a dash separates slice levels.
func podUID(e string) string {
	e = strings.TrimSuffix(e, ".slice")
	var uid string
	switch {
	case strings.HasPrefix(e, "pod"):
		uid = e[3:]
	case strings.Contains(e, "kubepods"):
		// kind and other nested kubelets prefix the slice: kubelet-kubepods-…
		i := strings.LastIndex(e, "-pod")
		if i < 0 {
			return ""
		}
		uid = e[i+4:]
	default:
		return ""
	}
	uid = strings.ReplaceAll(uid, "_", "-")
	if len(uid) < 32 || len(uid) > 36 {
		return ""
	}
	digits := 0
	for i := 0; i < len(uid); i++ {
		switch c := uid[i]; {
		case c >= '0' && c <= '9', c >= 'a' && c <= 'f':
			digits++
		case c == '-':
		default:
			return ""
		}
	}
	if digits != 32 {
		return ""
	}
	return uid
}

// unescapeUnit undoes systemd's unit name escaping (\xNN for a byte that
// may not appear in a unit name, such as '-').
func unescapeUnit(s string) string {
	if !strings.Contains(s, `\x`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && s[i+1] == 'x' {
			if v, ok := unhex2(s[i+2], s[i+3]); ok {
				b.WriteByte(v)
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func unhex2(a, b byte) (byte, bool) {
	h, ok1 := unhex(a)
	l, ok2 := unhex(b)
	return h<<4 | l, ok1 && ok2
}

func unhex(c byte) (byte, bool) {
	switch {
	case c >= '0' && c <= '9':
		return c - '0', true
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10, true
	case c >= 'A' && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}

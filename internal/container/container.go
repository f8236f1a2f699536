// Package container tells which container a process runs in and what the
// container is called. The runtime and the id come from the process's
// cgroup path (FromCgroup); the names come from the runtimes' own state
// files, read without asking any daemon (Namer). Every state file is
// written by someone porteiro does not trust, so every read is bounded and
// every name is kept as raw data, only capped in length and refused when it
// holds a NUL; whoever prints a name escapes it.
package container

import (
	"strings"
	"unicode/utf8"
)

// The runtimes porteiro recognises, as they appear in Info.Runtime.
const (
	Docker     = "docker"
	Podman     = "podman"
	Containerd = "containerd"
	CRIO       = "cri-o"
	LXC        = "lxc"
	Nspawn     = "systemd-nspawn"
)

// MaxName is the longest name kept, in bytes: a DNS name's limit, which
// is also what Kubernetes allows for a pod name. Longer names are cut on a
// rune boundary, so the same long name always yields the same label.
const MaxName = 253

// Info is what porteiro knows of a container. Its JSON is part of
// porteiro's schema.
type Info struct {
	Runtime   string `json:"runtime"` // docker, podman, containerd, cri-o, lxc, systemd-nspawn
	ID        string `json:"id,omitempty"`
	Name      string `json:"name,omitempty"`      // the runtime's name ("web-1"), or the k8s pod/container
	Pod       string `json:"pod,omitempty"`       // Kubernetes pod name
	Namespace string `json:"namespace,omitempty"` // Kubernetes namespace
	Container string `json:"container,omitempty"` // Kubernetes container name
	PodUID    string `json:"pod_uid,omitempty"`
}

// Label returns a short human label: the runtime's name ("web-1"),
// "namespace/pod/container" for Kubernetes, or "runtime:short-id" when the
// name is unknown. The label is raw: escape it before printing.
func (i Info) Label() string {
	if i.Pod != "" {
		parts := make([]string, 0, 3)
		if i.Namespace != "" {
			parts = append(parts, i.Namespace)
		}
		parts = append(parts, i.Pod)
		if i.Container != "" {
			parts = append(parts, i.Container)
		}
		return strings.Join(parts, "/")
	}
	if i.Name != "" {
		return i.Name
	}
	if i.ID != "" {
		id := i.ID
		if len(id) > 12 && isHex(id) {
			id = id[:12]
		}
		return i.Runtime + ":" + id
	}
	if i.PodUID != "" {
		return i.Runtime + ":pod-" + i.PodUID
	}
	return i.Runtime
}

// cleanName makes a name read from a state file or a cgroup path safe to
// keep: NUL is refused (it would cut the name short in C tools and logs)
// and the length is capped. Everything else, escapes included, stays as it
// is, since rendering escapes it.
func cleanName(s string) string {
	if strings.IndexByte(s, 0) >= 0 {
		return ""
	}
	if len(s) <= MaxName {
		return s
	}
	cut := MaxName
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	if cut == 0 {
		// Not UTF-8 at all: a byte cut is as good as any.
		cut = MaxName
	}
	return s[:cut]
}

func isHex(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return s != ""
}

// clean applies cleanName to every field a state file can set.
func (i *Info) clean() {
	i.Name = cleanName(i.Name)
	i.Pod = cleanName(i.Pod)
	i.Namespace = cleanName(i.Namespace)
	i.Container = cleanName(i.Container)
	i.PodUID = cleanName(i.PodUID)
}

package container

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Read limits. A state file bigger than this is not the runtime's: it is
// refused, not read.
const (
	maxStateFile  = 1 << 20  // config.v2.json, config.json, daemon.json
	maxListFile   = 16 << 20 // containers.json lists every container of the host
	maxCgroupFile = 64 << 10 // /proc/PID/cgroup: a dozen short lines
	maxNamespaces = 64       // containerd namespaces looked into
	maxCache      = 4096     // ids remembered before the cache starts over
)

// ErrTooBig is wrapped when a file is larger than porteiro reads.
var ErrTooBig = errors.New("file too big")

// ErrNotRegular is wrapped when a state file is a device, a FIFO, a socket
// or a directory: a runtime writes only regular files.
var ErrNotRegular = errors.New("not a regular file")

// Namer completes Infos from the runtimes' own state files under Root (""
// means "/"). It caches what it finds per container, for TTL (default one
// minute: a container can be renamed, and a new one's files can appear
// just after its first process). The zero value is ready; it is safe for
// concurrent use.
type Namer struct {
	Root string
	TTL  time.Duration

	mu    sync.Mutex
	cache map[string]cached
	lists map[string]list
	now   func() time.Time // tests replace it
}

type cached struct {
	found Info
	at    time.Time
}

// list is a parsed containers.json, valid while the file's size and
// modification time stay the same.
type list struct {
	size  int64
	mtime time.Time
	names map[string]string
}

func (n *Namer) root() string {
	if n.Root == "" {
		return "/"
	}
	return n.Root
}

func (n *Namer) clock() time.Time {
	if n.now != nil {
		return n.now()
	}
	return time.Now()
}

func (n *Namer) ttl() time.Duration {
	if n.TTL > 0 {
		return n.TTL
	}
	return time.Minute
}

func (n *Namer) path(p ...string) string {
	return filepath.Join(append([]string{n.root()}, p...)...)
}

// ForPID reads procRoot/PID/cgroup and, when the process is in a
// container, completes what the cgroup path says. It reports false for a
// process outside any container and for one that is gone.
func (n *Namer) ForPID(procRoot string, pid int) (Info, bool) {
	b, err := readBounded(filepath.Join(procRoot, strconv.Itoa(pid), "cgroup"), maxCgroupFile)
	if err != nil {
		return Info{}, false
	}
	i, ok := FromCgroup(b)
	if !ok {
		return Info{}, false
	}
	n.Complete(&i)
	return i, true
}

// Complete fills the empty fields of i (name, Kubernetes pod, namespace
// and container) from the state files of i's runtime. It corrects the
// runtime when a bare Kubernetes id turns out to be docker's. Fields
// already set are kept. An Info it cannot complete keeps its runtime and
// id, which Label shows.
func (n *Namer) Complete(i *Info) {
	if i == nil || i.ID == "" || !safeID(i.ID) {
		finish(i)
		return
	}
	key := i.Runtime + "/" + i.ID
	now := n.clock()
	n.mu.Lock()
	c, hit := n.cache[key]
	n.mu.Unlock()
	if !hit || now.Sub(c.at) >= n.ttl() {
		c = cached{found: n.lookup(i.Runtime, i.ID), at: now}
		n.mu.Lock()
		if n.cache == nil || len(n.cache) >= maxCache {
			// Containers come and go; a long-running daemon must not
			// remember every id it ever saw.
			n.cache = make(map[string]cached)
		}
		n.cache[key] = c
		n.mu.Unlock()
	}
	f := c.found
	if f.Runtime != "" {
		i.Runtime = f.Runtime
	}
	fill(&i.Name, f.Name)
	fill(&i.Pod, f.Pod)
	fill(&i.Namespace, f.Namespace)
	fill(&i.Container, f.Container)
	fill(&i.PodUID, f.PodUID)
	finish(i)
}

// finish names a Kubernetes container after its pod and container when
// its runtime gave it no name of its own.
func finish(i *Info) {
	if i == nil {
		return
	}
	if i.Name == "" && i.Pod != "" {
		i.Name = i.Pod
		if i.Container != "" {
			i.Name += "/" + i.Container
		}
	}
	i.clean()
}

// safeID refuses ids that would leave the runtime's state directory when
// joined to a path. FromCgroup's ids are hex; Complete may be handed
// anything.
func safeID(id string) bool {
	return len(id) <= 128 && id != "." && id != ".." && !strings.ContainsAny(id, "/\x00")
}

// lookup finds what the runtime's state says of one container. Its Runtime
// is set only to correct the caller's.
func (n *Namer) lookup(runtime, id string) Info {
	switch runtime {
	case Docker:
		f, _ := n.docker(id)
		f.Runtime = ""
		return f
	case Podman:
		return Info{Name: n.storageName(id)}
	case CRIO:
		f, ok := n.ociBundle(id)
		if !ok || (f.Name == "" && f.Pod == "") {
			f.Name = n.storageName(id)
		}
		return f
	case Containerd:
		if f, ok := n.containerd(id); ok {
			return f
		}
		// Kubernetes on cgroupfs looks the same with docker and with
		// containerd.
		if f, ok := n.docker(id); ok {
			return f
		}
	}
	return Info{}
}

// docker reads <data-root>/containers/<id>/config.v2.json.
func (n *Namer) docker(id string) (Info, bool) {
	roots := []string{"/var/lib/docker"}
	if b, err := readBounded(n.path("etc/docker/daemon.json"), maxStateFile); err == nil {
		if dr := parseDockerDaemonJSON(b); filepath.IsAbs(dr) {
			roots = append([]string{dr}, roots...)
		}
	}
	for _, r := range roots {
		b, err := readBounded(n.path(r, "containers", id, "config.v2.json"), maxStateFile)
		if err != nil {
			continue
		}
		if f, err := parseDockerConfig(b); err == nil {
			f.Runtime = Docker
			return f, true
		}
	}
	return Info{}, false
}

// The containers-storage roots of rootful podman and CRI-O: graphroot and
// runroot, where <driver>-containers/ holds containers.json, and
// volatile-containers.json for containers that need not survive a reboot.
var storageRoots = []string{"/var/lib/containers/storage", "/run/containers/storage"}

// storageName finds a podman or CRI-O container's name in
// containers-storage's lists, whatever the storage driver.
func (n *Namer) storageName(id string) string {
	for _, r := range storageRoots {
		dirs, err := os.ReadDir(n.path(r))
		if err != nil {
			continue
		}
		for _, d := range dirs {
			if !d.IsDir() || !strings.HasSuffix(d.Name(), "-containers") {
				continue
			}
			for _, f := range []string{"containers.json", "volatile-containers.json"} {
				if name := n.listName(n.path(r, d.Name(), f), id); name != "" {
					return name
				}
			}
		}
	}
	return ""
}

// listName looks id up in one containers.json, parsing the file again only
// when it changed.
func (n *Namer) listName(p, id string) string {
	st, err := os.Lstat(p)
	if err != nil || !st.Mode().IsRegular() {
		return ""
	}
	n.mu.Lock()
	l, ok := n.lists[p]
	n.mu.Unlock()
	if !ok || l.size != st.Size() || !l.mtime.Equal(st.ModTime()) {
		b, err := readBounded(p, maxListFile)
		if err != nil {
			return ""
		}
		names, err := parseStorageContainers(b)
		if err != nil {
			return ""
		}
		l = list{size: st.Size(), mtime: st.ModTime(), names: names}
		n.mu.Lock()
		if n.lists == nil {
			n.lists = make(map[string]list)
		}
		n.lists[p] = l
		n.mu.Unlock()
	}
	return l.names[id]
}

// ociBundle reads the OCI spec that podman and CRI-O write next to the
// container's storage: runroot for CRI-O, graphroot for podman.
func (n *Namer) ociBundle(id string) (Info, bool) {
	for _, r := range []string{"/run/containers/storage", "/var/lib/containers/storage"} {
		dirs, err := os.ReadDir(n.path(r))
		if err != nil {
			continue
		}
		for _, d := range dirs {
			if !d.IsDir() || !strings.HasSuffix(d.Name(), "-containers") {
				continue
			}
			b, err := readBounded(n.path(r, d.Name(), id, "userdata", "config.json"), maxStateFile)
			if err != nil {
				continue
			}
			if f, err := parseOCIConfig(b); err == nil {
				return f, true
			}
		}
	}
	return Info{}, false
}

// containerdTaskRoots hold one bundle per running task, per containerd
// namespace (k8s.io for Kubernetes, moby for docker, default for ctr):
// the v2 shims', the old v1 runtime's, and k3s's own containerd.
var containerdTaskRoots = []string{
	"/run/containerd/io.containerd.runtime.v2.task",
	"/run/containerd/io.containerd.runtime.v1.linux",
	"/run/k3s/containerd/io.containerd.runtime.v2.task",
}

// containerd reads the bundle's config.json of a running containerd task.
func (n *Namer) containerd(id string) (Info, bool) {
	for _, r := range containerdTaskRoots {
		nss, err := os.ReadDir(n.path(r))
		if err != nil {
			continue
		}
		if len(nss) > maxNamespaces {
			nss = nss[:maxNamespaces]
		}
		for _, ns := range nss {
			if !ns.IsDir() {
				continue
			}
			b, err := readBounded(n.path(r, ns.Name(), id, "config.json"), maxStateFile)
			if err != nil {
				continue
			}
			if f, err := parseOCIConfig(b); err == nil {
				return f, true
			}
		}
	}
	return Info{}, false
}

// Package inventory is porteiro's engine: it knows every TCP/UDP socket on the
// host and every process that holds each one.
//
// The API is small and synchronous. A Scanner takes one Snapshot per call to
// Scan; the caller owns any loop around it. Comparing snapshots over time is the daemon's (internal/watch).
// The JSON encoding of the types in this file is porteiro's public schema
// (docs/schema.md); change it only together with SchemaVersion.
package inventory

import (
	"fmt"
	"net/netip"
	"strconv"
	"time"
)

// SchemaVersion is the version of the JSON schema of Socket and Process.
const SchemaVersion = 1

// Proto is a transport protocol.
type Proto string

// Protocols porteiro knows.
const (
	TCP Proto = "tcp"
	UDP Proto = "udp"
)

// Family is an address family.
type Family string

// Address families.
const (
	IPv4 Family = "ipv4"
	IPv6 Family = "ipv6"
)

// Exposure says from where a socket can be reached.
type Exposure string

const (
	// ExposureLoopback: bound to a loopback address (127.0.0.0/8, ::1).
	ExposureLoopback Exposure = "loopback"
	// ExposureSpecific: bound to one non-loopback address.
	ExposureSpecific Exposure = "specific"
	// ExposureAll: bound to the wildcard address, so every interface.
	ExposureAll Exposure = "all"
)

// Reason explains why a socket has no owning process.
type Reason string

const (
	// ReasonNone: the socket has owners.
	ReasonNone Reason = ""
	// ReasonNotPermitted: some /proc/PID/fd could not be read.
	ReasonNotPermitted Reason = "not_permitted"
	// ReasonNoProcess: no process in this PID namespace holds the socket
	// (it belongs to another PID namespace, or to the kernel).
	ReasonNoProcess Reason = "no_process_in_pid_namespace"
	// ReasonExited: the holder exited, or closed the socket, while the
	// scan ran.
	ReasonExited Reason = "process_exited"
	// ReasonKernel: the socket has no inode, so no process can hold it
	// (TIME-WAIT, or an orphan the kernel is closing).
	ReasonKernel Reason = "kernel"
)

// The texts below are the only place that says why a socket has no owner.
// Tables, notes, policy findings and alerts all take their words from here,
// so `list`, `check` and the daemon tell the same story.

// Short is the few words a table shows in place of a process:
// "not permitted", "process exited". It is "" for ReasonNone.
func (r Reason) Short() string {
	switch r {
	case ReasonNotPermitted:
		return "not permitted"
	case ReasonNoProcess:
		return "no process in this pid namespace"
	case ReasonExited:
		return "process exited"
	case ReasonKernel:
		return "kernel"
	}
	return ""
}

// Hint is a one-line, user-facing explanation of a Reason, with what to do
// about it. It is "" for ReasonNone.
func (r Reason) Hint() string {
	switch r {
	case ReasonNotPermitted:
		return "not permitted: run as root, or grant CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH"
	case ReasonNoProcess:
		return "no process in this PID namespace holds it: another PID namespace does, or the kernel"
	case ReasonExited:
		return "the process exited, or closed the socket, during the scan"
	case ReasonKernel:
		return "held by the kernel (TIME-WAIT or closing); no process owns it"
	}
	return ""
}

// Holder names who holds a socket without a visible process, for a
// sentence such as "held by ..." or "opened by ...":
// "no visible process (not permitted: run as root, ...)".
func (r Reason) Holder() string {
	if h := r.Hint(); h != "" {
		return "no visible process (" + h + ")"
	}
	return "no visible process"
}

// Endpoint is an address and a port. The zero Addr means "not set".
type Endpoint struct {
	Address netip.Addr `json:"address"`
	Port    uint16     `json:"port"`
}

// String formats the endpoint as ss does: 127.0.0.1:22, [::1]:53, *:80.
func (e Endpoint) String() string {
	if !e.Address.IsValid() || e.Address.IsUnspecified() {
		return "*:" + strconv.Itoa(int(e.Port))
	}
	if e.Address.Is6() && !e.Address.Is4In6() {
		return "[" + e.Address.String() + "]:" + strconv.Itoa(int(e.Port))
	}
	return e.Address.Unmap().String() + ":" + strconv.Itoa(int(e.Port))
}

// Socket is one kernel socket and the processes that hold it.
type Socket struct {
	Proto  Proto    `json:"proto"`
	Family Family   `json:"family"`
	State  State    `json:"state"`
	Local  Endpoint `json:"local"`
	Remote Endpoint `json:"remote"`
	// Inode identifies the socket within its network namespace.
	Inode uint64 `json:"inode"`
	// NetNS is the inode of the socket's network namespace.
	NetNS uint64 `json:"netns"`
	// NetNSName names the namespace: "host" (PID 1's), the container's
	// name, the `ip netns` name, "pid N (comm)" for its first member
	// process, or "orphan" when no process is a member.
	NetNSName string `json:"netns_name,omitempty"`
	// Container is the container whose network namespace the socket is
	// in, when it is one's.
	Container *Container `json:"container,omitempty"`
	// Forward is, for a published port (docker-proxy's listener), the
	// container address and port it forwards to.
	Forward *Forward `json:"forwards_to,omitempty"`
	// Interface is the device the socket is bound to (SO_BINDTODEVICE), if any.
	Interface string   `json:"interface,omitempty"`
	Exposure  Exposure `json:"exposure"`
	// Processes holds every process with an fd on the socket, by pid.
	Processes []Process `json:"processes"`
	// UnattributedReason is set when Processes is empty.
	UnattributedReason Reason `json:"unattributed_reason,omitempty"`
	// The small fields come last, together: a Socket is 16 bytes smaller
	// than with each padded to 8 bytes where JSON has it (MarshalJSON
	// writes the fields in JSON's order, not this one).

	// UID is the socket's owner as the kernel records it.
	UID uint32 `json:"uid"`
	// DualStack is true for an IPv6 wildcard socket that also accepts IPv4
	// (IPV6_V6ONLY off): it serves both families.
	DualStack bool `json:"dual_stack"`
	// Listening is true for TCP LISTEN, and for UDP bound and not connected.
	Listening bool `json:"listening"`
}

// Container names a container. Its fields come from the members'
// cgroup paths and the runtime's own state files.
type Container struct {
	// Runtime is docker, podman, containerd, cri-o, lxc or systemd-nspawn.
	Runtime string `json:"runtime"`
	ID      string `json:"id,omitempty"`
	// Name is the runtime's name for it ("web-1"); for Kubernetes, the
	// pod's.
	Name string `json:"name,omitempty"`
	// Pod, Namespace and Container are Kubernetes' names.
	Pod       string `json:"pod,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Container string `json:"container,omitempty"`
}

// ContainerName is the name policy rules and the daemon know a container
// by: its name, else the Kubernetes namespace/pod/container, else
// runtime:short-id. It is "" outside containers.
func (s *Socket) ContainerName() string {
	c := s.Container
	if c == nil {
		return ""
	}
	switch {
	case c.Pod != "":
		name := c.Pod
		if c.Namespace != "" {
			name = c.Namespace + "/" + name
		}
		if c.Container != "" {
			name += "/" + c.Container
		}
		return name
	case c.Name != "":
		return c.Name
	}
	id := c.ID
	if len(id) > 12 {
		id = id[:12]
	}
	return c.Runtime + ":" + id
}

// NamespaceLabel says which namespace the socket is in, for a sentence:
// "netns blue", "netns pid 4242 (python3)", "the host".
func (s *Socket) NamespaceLabel() string {
	switch s.NetNSName {
	case "", "host":
		return "the host"
	}
	if c := s.ContainerName(); c != "" {
		return "container " + c
	}
	return "netns " + s.NetNSName
}

// Key identifies a socket across scans. Inodes are unique per boot.
type Key struct {
	NetNS uint64
	Inode uint64
}

// Key returns the socket's identity.
func (s *Socket) Key() Key { return Key{NetNS: s.NetNS, Inode: s.Inode} }

// ListenerKey identifies a listener by what it offers rather than by inode,
// so that a restarted service (new inode, same port) maps to the same key.
// Its namespace is a name, not an inode: inodes are reused, and a
// container that is recreated gets a new namespace with the same name.
type ListenerKey struct {
	// NetNS is the namespace's name (Socket.NetNSName); "" for the host.
	NetNS   string
	Proto   Proto
	Address netip.Addr
	Port    uint16
}

// ListenerKey returns the socket's listener identity.
func (s *Socket) ListenerKey() ListenerKey {
	ns := s.NetNSName
	switch ns {
	case "host":
		ns = ""
	case "orphan":
		// Several namespaces may be orphans at once, and nothing else
		// names them: their inodes tell them apart.
		ns = "orphan [" + strconv.FormatUint(s.NetNS, 10) + "]"
	}
	return ListenerKey{NetNS: ns, Proto: s.Proto, Address: s.Local.Address, Port: s.Local.Port}
}

// String formats a listener key as "tcp 127.0.0.1:22". Wildcards stay
// explicit, "tcp 0.0.0.0:22" and "tcp [::]:22", as in the policy's finding
// keys: the two are different listeners, and events and alerts must not
// give them one name. Outside the host the namespace follows:
// "tcp 0.0.0.0:80 in web-1".
func (k ListenerKey) String() string {
	port := strconv.Itoa(int(k.Port))
	var s string
	switch {
	case !k.Address.IsValid():
		s = string(k.Proto) + " *:" + port
	case k.Address.Is6() && !k.Address.Is4In6():
		s = string(k.Proto) + " [" + k.Address.String() + "]:" + port
	default:
		s = string(k.Proto) + " " + k.Address.Unmap().String() + ":" + port
	}
	if k.NetNS != "" {
		s += " in " + k.NetNS
	}
	return s
}

// PIDs returns the pids of the socket's owners.
func (s *Socket) PIDs() []int {
	out := make([]int, len(s.Processes))
	for i, p := range s.Processes {
		out[i] = p.PID
	}
	return out
}

// Covers reports whether a socket serves family f. A dual-stack IPv6 socket
// serves IPv4 too.
func (s *Socket) Covers(f Family) bool {
	return s.Family == f || (f == IPv4 && s.DualStack)
}

// Process is one process that holds a socket: the process's details,
// which every socket it holds shares, and the descriptors by which it
// holds this one. A scan of 100,000 sockets held by 2,000 processes keeps
// 2,000 ProcessInfos, not one per socket; so a ProcessInfo that a scan
// returned is read-only: writing to it would change every socket the
// process holds. Its JSON is that of one flat object, "fds" between "uid"
// and "start_time" (MarshalJSON).
type Process struct {
	*ProcessInfo
	// FDs are the descriptors by which the process holds the socket.
	FDs []int `json:"fds"`
}

// ProcessInfo is what porteiro knows of a process.
type ProcessInfo struct {
	PID  int `json:"pid"`
	PPID int `json:"ppid"`
	// Name is the kernel's comm (at most 15 bytes).
	Name string `json:"name"`
	// Exe is the target of /proc/PID/exe; empty when unreadable.
	Exe string `json:"exe"`
	// ExeDeleted is true when the executable was replaced or removed on disk.
	ExeDeleted bool     `json:"exe_deleted,omitempty"`
	Cmdline    []string `json:"cmdline"`
	User       string   `json:"user"`
	UID        uint32   `json:"uid"`
	// StartTime is when the process started. With PID it is the process's
	// identity: a PID alone can be reused.
	StartTime time.Time `json:"start_time"`
	// StartTicks is field 22 of /proc/PID/stat, in clock ticks since boot.
	StartTicks uint64 `json:"start_ticks"`
	// Unit is the systemd unit (service or scope), if any.
	Unit string `json:"unit,omitempty"`
	// Container is the container id, if the process runs in one.
	Container string `json:"container,omitempty"`
	// CPUPercent is the average CPU use over the process's lifetime.
	CPUPercent float64 `json:"cpu_percent"`
	// RSSBytes is the resident memory.
	RSSBytes uint64 `json:"rss_bytes"`
	// State is the one-letter process state (R, S, Z, ...).
	State string `json:"state"`
	// Hidden is true for a process that the kernel's file tables name
	// but /proc does not show: something hides it. Only the pid, the name
	// and the user are known then, from the kernel (taskstats).
	Hidden bool `json:"hidden,omitempty"`
}

// Identity is a process's (pid, start time) identity.
type Identity struct {
	PID        int
	StartTicks uint64
}

// Identity returns the process identity.
func (p *ProcessInfo) Identity() Identity { return Identity{PID: p.PID, StartTicks: p.StartTicks} }

// CommandLine returns the command line joined with spaces, or [name] for
// kernel threads and zombies, as ps does.
func (p *ProcessInfo) CommandLine() string {
	if p.Hidden {
		return "(hidden from /proc: only the kernel shows pid " + strconv.Itoa(p.PID) + ")"
	}
	if len(p.Cmdline) == 0 {
		return "[" + p.Name + "]"
	}
	n := 0
	for _, a := range p.Cmdline {
		n += len(a) + 1
	}
	b := make([]byte, 0, n)
	for i, a := range p.Cmdline {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, a...)
	}
	return string(b)
}

// Snapshot is the result of one scan.
type Snapshot struct {
	Time time.Time `json:"time"`
	// Source names the socket source: "netlink" or "procfs".
	Source string `json:"source"`
	// Resolver names how owners were found: "taskfd" (the kernel's
	// task-file iterator) or "procfs" (the /proc walk); empty when no owner
	// was looked up.
	Resolver string   `json:"resolver,omitempty"`
	Sockets  []Socket `json:"sockets"`
	// Notes are honest remarks about what could not be seen, one line each.
	Notes []string `json:"notes,omitempty"`
	// Privileged is true when every process's fds could be read.
	Privileged bool `json:"privileged"`
}

// Listeners returns the listening sockets of the snapshot.
func (s *Snapshot) Listeners() []Socket {
	var out []Socket
	for _, so := range s.Sockets {
		if so.Listening {
			out = append(out, so)
		}
	}
	return out
}

// ExposureOf classifies a local address.
func ExposureOf(a netip.Addr) Exposure {
	switch {
	case !a.IsValid() || a.IsUnspecified():
		return ExposureAll
	case a.Unmap().IsLoopback():
		return ExposureLoopback
	default:
		return ExposureSpecific
	}
}

// ParseProto parses "tcp" or "udp".
func ParseProto(s string) (Proto, error) {
	switch s {
	case "tcp":
		return TCP, nil
	case "udp":
		return UDP, nil
	}
	return "", fmt.Errorf("unknown protocol %q: want tcp or udp", s)
}

// NetNS returns the network namespace of the snapshot's sockets (0 if none).
func (s *Snapshot) NetNS() uint64 {
	if len(s.Sockets) == 0 {
		return 0
	}
	return s.Sockets[0].NetNS
}

// MarshalJSON writes the process as one flat object, its descriptors
// between "uid" and "start_time" (AppendProcessJSON).
func (p Process) MarshalJSON() ([]byte, error) { return AppendProcessJSON(nil, &p), nil }

// MarshalJSON writes the socket as AppendSocketJSON does: the bytes
// encoding/json would write, without its reflection.
func (s Socket) MarshalJSON() ([]byte, error) { return AppendSocketJSON(nil, &s), nil }

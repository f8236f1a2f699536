// Package netns finds every network namespace of the host and opens
// sock_diag sockets inside them.
//
// A namespace is found through any of the ways the kernel leads to it: a
// process or thread that is a member (/proc/PID/ns/net and
// /proc/PID/task/TID/ns/net), an nsfs bind mount (`ip netns add`, Docker's
// /run/docker/netns, CNI), or, for a namespace that neither names, a
// socket that a process holds in it (the caller passes those in, since
// only the owner scan sees them).
//
// A sock_diag socket answers for the namespace it was opened in, whatever
// thread reads it later. So Dial enters a namespace on one locked OS
// thread, opens the socket, and goes back; the socket is then used from
// any goroutine. A thread that cannot go back stays locked, and the Go
// runtime retires it with its goroutine, so no other goroutine ever runs
// in the wrong namespace.
package netns

import (
	"cmp"
	"slices"
	"strconv"
)

// Namespace is one network namespace and what names it.
type Namespace struct {
	// Inode is the namespace's inode number, the number in "net:[N]".
	Inode uint64
	// Host is true for the namespace of PID 1 (the kernel's initial one).
	Host bool
	// Self is true for the namespace porteiro runs in.
	Self bool
	// Names are the `ip netns` names: nsfs mounts under /run/netns.
	Names []string
	// Mounts are every nsfs bind mount of the namespace, as seen from the
	// mount namespace of the process listed in MountsVia (0: porteiro's).
	Mounts []string
	// Members counts the processes (thread groups) in the namespace.
	Members int
	// First is the lowest pid of a member, 0 when no process is a member.
	First int
	// FirstComm is First's comm (raw; escape it to show it).
	FirstComm string
	// FromSocket is true when only a socket leads to the namespace.
	FromSocket bool

	// enter are the paths that open the namespace, best first.
	enter []string
	// members are a few member pids, lowest first, to try in turn.
	members []int
	// threadPIDs are the processes that have a thread, not themselves,
	// in the namespace; threadEnter the paths of those threads.
	threadPIDs  []int
	threadEnter []string
}

// Name is the namespace's stable description when nothing better (a
// container's name) is known: "host", the first `ip netns` name,
// "pid 4242 (python3)" for the first member process, or "orphan".
func (n *Namespace) Name() string {
	switch {
	case n.Host:
		return "host"
	case len(n.Names) > 0:
		return n.Names[0]
	case n.First > 0:
		return "pid " + strconv.Itoa(n.First) + " (" + n.FirstComm + ")"
	}
	return "orphan"
}

// Orphan is true when no process is a member and no mount names the
// namespace: only sockets keep it alive.
func (n *Namespace) Orphan() bool { return n.Members == 0 && len(n.Mounts) == 0 }

// Set is every namespace found by one discovery.
type Set struct {
	ByInode map[uint64]*Namespace
	// Host and Self are the inodes of PID 1's namespace and porteiro's.
	Host, Self uint64
	// Notes say what could not be seen, one line each.
	Notes []string
	// PIDs is the listing of the procfs root the discovery walked, in
	// increasing order.
	PIDs []int
}

// Sorted returns the namespaces: the host first, then by inode.
func (s *Set) Sorted() []*Namespace {
	out := make([]*Namespace, 0, len(s.ByInode))
	for _, n := range s.ByInode {
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b *Namespace) int {
		if a.Host != b.Host {
			if a.Host {
				return -1
			}
			return 1
		}
		return cmp.Compare(a.Inode, b.Inode)
	})
	return out
}

// get returns the namespace of inode, adding it if new.
func (s *Set) get(ino uint64) *Namespace {
	n := s.ByInode[ino]
	if n == nil {
		n = &Namespace{Inode: ino, Host: ino == s.Host && s.Host != 0, Self: ino == s.Self}
		s.ByInode[ino] = n
	}
	return n
}

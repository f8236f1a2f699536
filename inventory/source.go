package inventory

import (
	"context"
	"errors"
	"path"
	"slices"

	"github.com/porteiro/porteiro/internal/procfs"
)

// ErrUnsupported is returned on systems where porteiro cannot read sockets.
var ErrUnsupported = errors.New("not supported on this operating system")

// Query says which sockets a scan wants. The zero Query asks for every
// listening TCP and UDP socket, IPv4 and IPv6.
type Query struct {
	// Protos limits the protocols; empty means TCP and UDP.
	Protos []Proto
	// Families limits the families; empty means both. A dual-stack IPv6
	// socket is kept when IPv4 is asked for.
	Families []Family
	// States is the set of kernel states; zero means listening only
	// (TCP LISTEN, UDP unconnected).
	States StateMask
	// Keep, if set, drops sockets before their owners are looked up, so a
	// question about one port reads the details of its holders only. It
	// sees every field a SocketSource fills, and Exposure.
	Keep func(*Socket) bool
	// LocalPorts, if set, limits the sockets to these local ports, as
	// inclusive ranges. The sock_diag source has the kernel filter them
	// (INET_DIAG_REQ_BYTECODE), so the dump carries only those; Keep
	// still decides.
	LocalPorts [][2]uint16
	// NetNS limits the network namespaces: each entry is "all", "host",
	// a namespace inode, or a name (a glob, as in path.Match). Empty means
	// every namespace. Namespaces left out are not read at all.
	NetNS []string

	// exactFamilies makes Families mean the sockets' own families, without
	// the IPv6 sockets that may be dual-stack (the scanner's second look
	// at sockets without a holder knows their families).
	exactFamilies bool
}

// WantsProto reports whether the query includes protocol p.
func (q Query) WantsProto(p Proto) bool {
	if len(q.Protos) == 0 {
		return true
	}
	for _, x := range q.Protos {
		if x == p {
			return true
		}
	}
	return false
}

// WantsFamily reports whether the query includes sockets of family f.
// IPv6 sockets are wanted for IPv4 queries too, because a dual-stack socket
// serves IPv4; the scanner drops the v6-only ones afterwards.
func (q Query) WantsFamily(f Family) bool {
	if len(q.Families) == 0 {
		return true
	}
	for _, x := range q.Families {
		if x == f || (x == IPv4 && f == IPv6 && !q.exactFamilies) {
			return true
		}
	}
	return false
}

// Mask returns the kernel state mask for protocol p.
//
// A TCP mask never holds CLOSE, which is the state of a listening UDP
// socket: a dump shows no TCP socket in CLOSE (a closed one is unhashed; a
// bound-only one is TCP_BOUND_INACTIVE), and with the bit set the kernel
// walks the whole table of connections to find none.
func (q Query) Mask(p Proto) StateMask {
	if q.States != 0 {
		if p == TCP && q.States&^(1<<TCPClose) != 0 {
			return q.States &^ (1 << TCPClose)
		}
		return q.States
	}
	if p == UDP {
		return MaskUDPListen
	}
	return MaskTCPListen
}

// SocketSource lists sockets. It fills every Socket field except Processes,
// UnattributedReason and NetNS.
type SocketSource interface {
	// Name is a short name for notes and logs, such as "netlink".
	Name() string
	Sockets(ctx context.Context, q Query) ([]Socket, error)
}

// HoldersOf returns the holders of socket ino, in pid and fd order, or nil.
func (own *Owners) HoldersOf(ino uint64) []Holder {
	if hs, ok := own.Holders[ino]; ok {
		return hs
	}
	var i int
	var found bool
	if own.pos != nil && ino != 0 {
		i, found = own.pos.find(ino)
	} else {
		i, found = slices.BinarySearch(own.inodes, ino)
	}
	if !found {
		return nil
	}
	j := i + 1
	for j < len(own.inodes) && own.inodes[j] == ino {
		j++
	}
	return own.index[i:j:j]
}

// setHolders makes hs the holders of socket ino.
func (own *Owners) setHolders(ino uint64, hs []Holder) {
	if own.Holders == nil {
		own.Holders = map[uint64][]Holder{}
	}
	own.Holders[ino] = hs
}

// eachHolders calls fn with the holders of every socket that has some.
func (own *Owners) eachHolders(fn func(ino uint64, hs []Holder)) {
	for ino, hs := range own.Holders {
		fn(ino, hs)
	}
	for i := 0; i < len(own.inodes); {
		j := i + 1
		for j < len(own.inodes) && own.inodes[j] == own.inodes[i] {
			j++
		}
		if _, ok := own.Holders[own.inodes[i]]; !ok {
			fn(own.inodes[i], own.index[i:j:j])
		}
		i = j
	}
}

// Holder is one (pid, fd) that holds a socket inode.
type Holder = procfs.Holder

// Owners is what an OwnerResolver found.
type Owners struct {
	// Holders maps a socket inode to every (pid, fd) holding it. Read it
	// through HoldersOf: the Resolver keeps most holders in a sorted
	// index instead, which on a host of 100,000 sockets is a third of a
	// map's size and is built without one.
	Holders map[uint64][]Holder
	// index holds the holders of every socket, ordered by inode, pid and
	// fd; inodes[i] is the socket of index[i]. Holders, if it has the
	// inode, overrides it.
	index  []Holder
	inodes []uint64
	// pos, if set, finds an inode's run in inodes.
	pos *inodeIndex
	// Processes has the details of every pid in Holders. A pid that is
	// missing here exited before its details could be read.
	Processes map[int]*ProcessInfo
	// Denied counts processes whose fd directory could not be read.
	Denied int
	// Hidden is true when procfs hides other users' processes from this
	// process (hidepid): some holders may be missing, though none was
	// denied.
	Hidden bool
	// Scanned counts processes whose fds were read.
	Scanned int
	// vanished holds the inodes of sockets that closed while the scan
	// ran, before any holder was seen (the scanner fills it).
	vanished map[uint64]struct{}
	// noFiles are the processes the /proc walk found without files.
	noFiles []int
	// Foreign maps each network namespace that the socket source did not
	// read, and that sockets held by processes are in, to one holder of
	// such a socket: the way into a namespace nothing else leads to.
	Foreign map[uint64]Holder
	// fence is the inode fence (inodeFence) of an iterator pass that ran
	// beside the socket dump: sockets at or above it may have been opened
	// after the pass went by their holder. 0 when there was no such race.
	fence uint64
	// Via names the method: "taskfd" (the kernel's task-file iterator) or
	// "procfs" (the /proc/PID/fd walk).
	Via string
}

// inodeChecker is a SocketSource that can tell which of some sockets
// still exist without building Sockets, to recheck sockets without owners.
type inodeChecker interface {
	liveInodes(ctx context.Context, q Query, inodes map[uint64]struct{}) (map[uint64]struct{}, error)
}

// nsAware is an OwnerResolver that can report sockets in namespaces the
// source did not read (Owners.Foreign).
type nsAware interface {
	setKnownNS(known func(netns uint64) bool)
}

// foreignReader is a SocketSource that can read the namespaces that only
// sockets lead to, through those sockets.
type foreignReader interface {
	readForeign(ctx context.Context, q Query, via map[uint64]Holder) []Socket
}

// secondLooker is an OwnerResolver that can look again for the holders
// of a few sockets.
type secondLooker interface {
	secondLook(ctx context.Context, inodes map[uint64]struct{}) (*Owners, error)
}

// exitingFinder is an OwnerResolver that can find sockets held only by the
// last threads of exiting processes.
type exitingFinder interface {
	exitingHolders(ctx context.Context, own *Owners, inodes map[uint64]struct{}) (map[uint64]int, error)
}

// processNSUser is a source that finds network namespaces by the
// processes in them, and can take some processes' namespace from the
// caller for its next discovery.
type processNSUser interface {
	useProcessNS(known func(pid int) (uint64, bool))
}

// processNSKnower is a resolver that knows some processes' network
// namespace for the scan it prefetched (from its task pass), or returns
// nil.
type processNSKnower interface {
	processNS() func(pid int) (uint64, bool)
}

// pidLister is a source that listed the procfs root during its last
// Sockets call (to find network namespaces), and gives that listing once.
type pidLister interface{ takePIDs() []int }

// pidUser is a resolver that can take, for its next Resolve, a listing of
// the procfs root made moments before in the same scan, rather than list
// it again: reading /proc's directory costs a millisecond or two on a
// busy host.
type pidUser interface{ usePIDs(pids []int) }

// taskWanter is a resolver that can describe owners from a pass of the
// task iterator, which pays for itself when a scan describes many.
type taskWanter interface{ wantTasks(on bool) }

// stateWanter is a resolver that can leave out, in the kernel, the TCP
// and UDP sockets in states a scan does not want: most of a host's
// sockets, when it lists listeners. Reading their holders costs a memory
// access per socket that the records of the others do not need.
type stateWanter interface{ wantStates(m StateMask) }

// socketStates is the set of states of the sockets q wants, of either
// protocol (a state set is not per protocol there).
func (q Query) socketStates() StateMask {
	var m StateMask
	for _, p := range []Proto{TCP, UDP} {
		if q.WantsProto(p) {
			m |= q.Mask(p)
		}
	}
	return m
}

// prefetcher is an OwnerResolver that can start its work before it knows
// which inodes are wanted. A prefetch that no Resolve collects stops when
// its context is cancelled.
type prefetcher interface {
	Prefetch(ctx context.Context)
}

// OwnerResolver finds the processes that hold socket inodes.
type OwnerResolver interface {
	// Resolve walks the processes and returns the holders of the inodes in
	// want. Races with exiting processes are not errors.
	Resolve(ctx context.Context, want map[uint64]struct{}) (*Owners, error)
}

// globMatch matches name against a path.Match pattern; a malformed
// pattern matches only itself.
func globMatch(pattern, name string) bool {
	ok, err := path.Match(pattern, name)
	if err != nil {
		return pattern == name
	}
	return ok
}

package inventory

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/porteiro/porteiro/internal/container"
	"github.com/porteiro/porteiro/internal/netns"
	"github.com/porteiro/porteiro/internal/sockdiag"
	"github.com/porteiro/porteiro/internal/sockfd"
)

// NamespacesSource lists the sockets of every network namespace: it finds
// them (internal/netns), keeps one sock_diag socket open inside each, and
// dumps them in parallel. A namespace porteiro may not enter (setns needs
// CAP_SYS_ADMIN) is read from /proc/PID/net of a member instead, and a
// note says so. Each Socket comes back with NetNS set.
type NamespacesSource struct {
	ProcRoot string

	// Namer names containers from their runtimes' state files; nil
	// means the live host's.
	Namer *container.Namer

	// DiscoverEvery, when set, reuses the namespaces found for that long
	// instead of looking for them at every Sockets call: finding them
	// reads a link of every process, which a view refreshed every second
	// ("porteiro top") need not pay each time. A namespace that appears
	// meanwhile is read from the next discovery on.
	DiscoverEvery time.Duration

	mu     sync.Mutex
	known  func(pid int) (uint64, bool) // for the next discovery (useProcessNS)
	found  time.Time                    // when set was discovered
	self   *NetlinkSource
	others map[uint64]*nsEntry
	set    *netns.Set
	listed []int // the pids of the discovery of the last Sockets call, for takePIDs
	notes  []string
	names  map[uint64]NamespaceInfo
}

// takePIDs implements pidLister: the listing of /proc the discovery of
// the last Sockets call made, once; nil when that call reused an earlier
// discovery.
func (s *NamespacesSource) takePIDs() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	pids := s.listed
	s.listed = nil
	return pids
}

// useProcessNS implements processNSUser: the next Sockets call takes the
// network namespace of the processes known returns one for from it,
// rather than from /proc.
func (s *NamespacesSource) useProcessNS(known func(pid int) (uint64, bool)) {
	s.mu.Lock()
	s.known = known
	s.mu.Unlock()
}

// nsEntry is how one namespace other than porteiro's is read.
type nsEntry struct {
	src SocketSource
	// procPID is the member whose /proc/PID/net is read, when entering
	// was refused; 0 for sock_diag.
	procPID int
}

// NamespaceInfo names a network namespace.
type NamespaceInfo struct {
	Inode uint64
	// Name is the container's name, the `ip netns` name, "host",
	// "pid N (comm)" or "orphan".
	Name string
	Host bool
	// Orphan is true when no process is a member and no mount names it.
	Orphan bool
	// Container is the container the namespace belongs to, if any.
	Container *Container
	// Member is a member process, 0 when none is.
	Member int
}

// NewNamespacesSource returns a source over every network namespace.
func NewNamespacesSource(procRoot string) *NamespacesSource {
	if procRoot == "" {
		procRoot = "/proc"
	}
	return &NamespacesSource{ProcRoot: procRoot, self: &NetlinkSource{}, others: map[uint64]*nsEntry{}, Namer: &container.Namer{}}
}

// Name implements SocketSource.
func (*NamespacesSource) Name() string { return "netlink" }

// Sockets implements SocketSource.
func (s *NamespacesSource) Sockets(ctx context.Context, q Query) ([]Socket, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	defer func() { s.known = nil }() // for one discovery only
	// porteiro's own namespace is dumped while the others are found.
	var (
		selfSocks []Socket
		selfErr   error
		wg        sync.WaitGroup
	)
	wg.Add(1)
	go func() {
		defer wg.Done()
		selfSocks, selfErr = s.self.Sockets(ctx, q)
	}()
	set := s.set
	var err error
	if reuse := set != nil && s.DiscoverEvery > 0 && time.Since(s.found) < s.DiscoverEvery; !reuse {
		set, err = netns.DiscoverKnown(ctx, s.ProcRoot, s.known)
	}
	wg.Wait()
	if selfErr != nil {
		return nil, selfErr
	}
	if err != nil {
		return nil, fmt.Errorf("finding network namespaces: %w", err)
	}
	s.listed = nil
	if set != s.set {
		s.set, s.found = set, time.Now()
		s.names = s.name(set)
		s.listed = set.PIDs
	}
	s.notes = slices.Clone(set.Notes)
	for i := range selfSocks {
		selfSocks[i].NetNS = set.Self
	}
	// Forget the namespaces that are gone, and their sockets.
	for ino, e := range s.others {
		if _, ok := set.ByInode[ino]; !ok {
			closeSource(e.src)
			delete(s.others, ino)
		}
	}
	var todo []*netns.Namespace
	for _, n := range set.Sorted() {
		if n.Self || !q.wantsNamespace(s.names[n.Inode]) {
			continue
		}
		todo = append(todo, n)
	}
	if !q.wantsNamespace(s.names[set.Self]) {
		selfSocks = selfSocks[:0]
	}
	if len(todo) == 0 {
		return selfSocks, nil
	}
	results := make([][]Socket, len(todo))
	errs := make([]error, len(todo))
	next := make(chan int)
	workers := min(len(todo), max(2, runtime.GOMAXPROCS(0)))
	var mu sync.Mutex // guards s.others and s.notes
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				results[i], errs[i] = s.dumpOne(ctx, q, todo[i], &mu)
			}
		}()
	}
	for i := range todo {
		next <- i
	}
	close(next)
	wg.Wait()
	n := len(selfSocks)
	for i := range results {
		n += len(results[i])
	}
	out := make([]Socket, 0, n)
	out = append(out, selfSocks...)
	for i, r := range results {
		if errs[i] != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			s.notes = append(s.notes, fmt.Sprintf("network namespace %s not read: %v", s.names[todo[i].Inode].Name, errs[i]))
			continue
		}
		out = append(out, r...)
	}
	return out, nil
}

// dumpOne lists the sockets of namespace n, entering it the first time.
func (s *NamespacesSource) dumpOne(ctx context.Context, q Query, n *netns.Namespace, mu *sync.Mutex) ([]Socket, error) {
	mu.Lock()
	e := s.others[n.Inode]
	mu.Unlock()
	if e == nil {
		conn, err := s.set.Dial(n)
		switch {
		case err == nil:
			e = &nsEntry{src: &NetlinkSource{conn: conn, foreign: true, dial: closedDial}}
		case errors.Is(err, netns.ErrRefused) && len(n.MemberPIDs()) > 0:
			pid := n.MemberPIDs()[0]
			e = &nsEntry{src: &ProcNetSource{ProcRoot: s.ProcRoot, PID: pid}, procPID: pid}
		default:
			return nil, err
		}
		mu.Lock()
		s.others[n.Inode] = e
		mu.Unlock()
	}
	socks, err := e.src.Sockets(ctx, q)
	if err != nil {
		// The next scan enters it again (a member may have exited).
		mu.Lock()
		closeSource(e.src)
		delete(s.others, n.Inode)
		mu.Unlock()
		return nil, err
	}
	if e.procPID > 0 {
		mu.Lock()
		s.notes = append(s.notes, fmt.Sprintf("network namespace %s read from /proc/%d/net: entering it was refused (not root)", s.names[n.Inode].Name, e.procPID))
		mu.Unlock()
	}
	for i := range socks {
		socks[i].NetNS = n.Inode
	}
	return socks, nil
}

// ForEachOther calls f with the sock_diag socket of every network
// namespace other than porteiro's that the last Sockets call read through
// one, that namespace's inode, and a member process (0 when none is
// known), for dumps of its own (the connections "porteiro top" samples).
// Namespaces read from /proc/PID/net have no such socket and are skipped.
// f must not keep c; an error from f stops the loop and is returned.
func (s *NamespacesSource) ForEachOther(f func(netns uint64, member int, c *sockdiag.Conn) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for ino, e := range s.others {
		n, ok := e.src.(*NetlinkSource)
		if !ok {
			continue
		}
		n.mu.Lock()
		var err error
		if n.conn != nil {
			err = f(ino, s.names[ino].Member, n.conn)
		}
		n.mu.Unlock()
		if err != nil {
			return err
		}
	}
	return nil
}

// readForeign implements foreignReader: it enters each namespace through
// a socket a process holds in it, and dumps it.
func (s *NamespacesSource) readForeign(ctx context.Context, q Query, via map[uint64]Holder) []Socket {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.set == nil {
		return nil
	}
	var out []Socket
	for ino, h := range via {
		n := s.set.AddSocketLed(ino)
		ni := NamespaceInfo{Inode: ino, Name: n.Name(), Host: n.Host, Orphan: n.Orphan()}
		s.names[ino] = ni
		if !q.wantsNamespace(ni) {
			continue
		}
		e := s.others[ino]
		if e == nil {
			nsfd, got, err := sockfd.NetNSOf(h.PID, h.FD)
			if err == nil && got != ino {
				unix.Close(nsfd)
				err = fmt.Errorf("the socket moved to namespace %d", got)
			}
			if err != nil {
				s.notes = append(s.notes, fmt.Sprintf("network namespace %d, which only a socket of pid %d leads to, not read: %v", ino, h.PID, err))
				continue
			}
			conn, err := netns.DialFD(nsfd)
			unix.Close(nsfd)
			if err != nil {
				s.notes = append(s.notes, fmt.Sprintf("network namespace %d, which only a socket of pid %d leads to, not read: %v", ino, h.PID, err))
				continue
			}
			e = &nsEntry{src: &NetlinkSource{conn: conn, foreign: true, dial: closedDial}}
			s.others[ino] = e
		}
		socks, err := e.src.Sockets(ctx, q)
		if err != nil {
			closeSource(e.src)
			delete(s.others, ino)
			continue
		}
		for i := range socks {
			socks[i].NetNS = ino
		}
		out = append(out, socks...)
	}
	return out
}

// closedDial is the dialer of a namespace's source whose socket was
// opened from inside it: once closed, the next scan enters it again.
func closedDial() (*sockdiag.Conn, error) {
	return nil, errors.New("the namespace's sock_diag socket was closed")
}

// name gives each namespace its name: a container's, when its first
// member runs in one, else the namespace's own (netns.Namespace.Name).
// The host's processes are not looked at: a host may run in a container
// cgroup of its own (a CI runner), and its namespace is still "host".
func (s *NamespacesSource) name(set *netns.Set) map[uint64]NamespaceInfo {
	out := make(map[uint64]NamespaceInfo, len(set.ByInode))
	for ino, n := range set.ByInode {
		ni := NamespaceInfo{Inode: ino, Name: n.Name(), Host: n.Host, Orphan: n.Orphan()}
		if m := n.MemberPIDs(); len(m) > 0 {
			ni.Member = m[0]
		}
		if !n.Host && s.Namer != nil {
			for _, pid := range n.MemberPIDs() {
				if info, ok := s.Namer.ForPID(s.ProcRoot, pid); ok {
					ni.Container = containerOf(info)
					ni.Name = info.Label()
					if ni.Name == "host" || ni.Name == "orphan" {
						// A container may be called so; the name must
						// not pass for the host or an orphan.
						ni.Name = info.Runtime + ":" + ni.Name
					}
					break
				}
			}
		}
		out[ino] = ni
	}
	return out
}

// containerOf converts the container package's Info to the schema's.
func containerOf(i container.Info) *Container {
	return &Container{Runtime: i.Runtime, ID: i.ID, Name: i.Name, Pod: i.Pod, Namespace: i.Namespace, Container: i.Container}
}

// liveInodes implements inodeChecker over every namespace read last.
func (s *NamespacesSource) liveInodes(ctx context.Context, q Query, inodes map[uint64]struct{}) (map[uint64]struct{}, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	live, err := s.self.liveInodes(ctx, q, inodes)
	if err != nil {
		return nil, err
	}
	for _, e := range s.others {
		var more map[uint64]struct{}
		if c, ok := e.src.(inodeChecker); ok {
			more, err = c.liveInodes(ctx, q, inodes)
		} else {
			more, err = liveBySockets(ctx, e.src, q, inodes)
		}
		if err != nil {
			continue // a namespace that went away holds nothing live
		}
		for ino := range more {
			live[ino] = struct{}{}
		}
	}
	return live, nil
}

// notesAndNames implements namespaceNamer.
func (s *NamespacesSource) notesAndNames() ([]string, map[uint64]NamespaceInfo) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.notes, s.names
}

// Close closes every sock_diag socket.
func (s *NamespacesSource) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	err := s.self.Close()
	for ino, e := range s.others {
		closeSource(e.src)
		delete(s.others, ino)
	}
	return err
}

func closeSource(src SocketSource) {
	if c, ok := src.(interface{ Close() error }); ok {
		c.Close()
	}
}

// namespaceNamer is a source that names the namespaces it read.
type namespaceNamer interface {
	notesAndNames() ([]string, map[uint64]NamespaceInfo)
}

// nsLabel is the name a namespace selector matches: its name, its inode,
// "host", or "all".
func (q Query) wantsNamespace(ni NamespaceInfo) bool {
	if len(q.NetNS) == 0 {
		return true
	}
	for _, sel := range q.NetNS {
		if MatchNetNS(sel, ni) {
			return true
		}
	}
	return false
}

// MatchNetNS reports whether selector sel names namespace ni: "all",
// "host", the inode in decimal, or the name (a shell glob, as in
// path.Match).
func MatchNetNS(sel string, ni NamespaceInfo) bool {
	switch sel {
	case "all", "*":
		return true
	case "host":
		return ni.Host
	case strconv.FormatUint(ni.Inode, 10):
		return true
	}
	return globMatch(sel, ni.Name)
}

// NamespaceNames names the namespaces in inodes for a scan that did not
// discover them (the pid path): the host's alone costs one readlink, any
// other a discovery. A namespace that discovery does not find is one only
// sockets lead to.
func NamespaceNames(ctx context.Context, procRoot string, inodes map[uint64]bool) map[uint64]NamespaceInfo {
	host := netns.HostInode(procRoot)
	out := map[uint64]NamespaceInfo{}
	if host != 0 {
		out[host] = NamespaceInfo{Inode: host, Name: "host", Host: true}
	}
	need := false
	for ino := range inodes {
		if _, ok := out[ino]; !ok {
			need = true
		}
	}
	if !need {
		return out
	}
	if set, err := netns.Discover(ctx, procRoot); err == nil {
		out = (&NamespacesSource{ProcRoot: procRoot, Namer: &container.Namer{}}).name(set)
	}
	for ino := range inodes {
		if _, ok := out[ino]; !ok {
			out[ino] = NamespaceInfo{Inode: ino, Name: "orphan", Orphan: true}
		}
	}
	return out
}

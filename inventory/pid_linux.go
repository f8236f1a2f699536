package inventory

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"

	"golang.org/x/sys/unix"

	"github.com/porteiro/porteiro/internal/procfs"
	"github.com/porteiro/porteiro/internal/sockfd"
)

// openPIDFD opens a process's pidfd. Tests replace it with a function that
// refuses, to stand for a kernel without pidfd_getfd or a caller without
// the right to ptrace (fault injection: the fallback must work).
var openPIDFD = sockfd.Open

// errOtherProcRoot says that the pidfd path cannot serve a procfs root
// other than the live /proc: a fixture tree's pids are not the kernel's.
var errOtherProcRoot = errors.New("the procfs root is not the /proc of this pid namespace, whose pids pidfd_open takes")

// ScanPIDs returns the sockets that the processes pids hold, as Scan would
// give them with the sockets of other processes left out: the same fields,
// the same order, each socket's holders with their details and fds.
//
// Its cost follows the processes, not the host: it reads their fd
// directories, takes each socket through pidfd_getfd and asks it directly
// (package sockfd), instead of dumping every socket of the host and
// walking every process. It sees the sockets in whatever network namespace
// they are; Scan sees the scanner's namespace only.
//
// One thing differs from Scan: a socket that processes outside pids hold
// too lists only its holders among pids. Finding the others takes the walk
// of every process, which is what ScanPIDs saves. Like the dump, it leaves
// out TCP sockets in state CLOSE (bound only, or reset by the peer and not
// yet closed by the process), though the process holds them.
//
// When the kernel refuses pidfd_getfd (no right to ptrace a process, or a
// kernel before 5.6), or the procfs root is not /proc, ScanPIDs falls back
// to Scan and keeps the sockets held by pids; Snapshot.Source then says
// which source answered, and a note says why.
func (s *Scanner) ScanPIDs(ctx context.Context, pids []int, q Query) (*Snapshot, error) {
	snap, err := s.scanPIDs(ctx, pids, q)
	if err == nil || !(errors.Is(err, sockfd.ErrRefused) || errors.Is(err, sockfd.ErrTooMany) || errors.Is(err, errOtherProcRoot)) {
		return snap, err
	}
	snap, serr := s.Scan(ctx, q)
	if serr != nil {
		return nil, serr
	}
	want := make(map[int]bool, len(pids))
	for _, p := range pids {
		want[p] = true
	}
	kept := snap.Sockets[:0]
	for i := range snap.Sockets {
		for _, p := range snap.Sockets[i].Processes {
			if want[p.PID] {
				kept = append(kept, snap.Sockets[i])
				break
			}
		}
	}
	snap.Sockets = kept
	// The notes of the dump speak of other processes' sockets: every
	// socket kept has a holder.
	snap.Notes = []string{fmt.Sprintf("the sockets were found in a dump of every socket of the host: %v", err)}
	return snap, nil
}

// pidHolder is one (pid, fd) of a wanted socket.
type pidHolder struct {
	idx int // in the snapshot's sockets
	pid int
	fd  int
}

func (s *Scanner) scanPIDs(ctx context.Context, pids []int, q Query) (*Snapshot, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if s.opts.ProcRoot != "/proc" || !ownPIDNamespace(s.opts.ProcRoot) {
		return nil, errOtherProcRoot
	}
	if s.netns == 0 {
		s.netns = selfNetNS(s.opts.ProcRoot)
	}
	now := s.opts.Now()
	pids = slices.Clone(pids)
	slices.Sort(pids)
	pids = slices.Compact(pids)

	var (
		socks   []Socket
		byKey   = map[Key]int{}
		holders []pidHolder
		procs   = map[int]*ProcessInfo{}
		buf     []sockfd.Socket
		// The scan's own reader of process details. Its init is not
		// run: the iterator is not wanted, nor the hidepid check, which
		// reads every mount of the host.
		res  = &Resolver{ProcRoot: s.opts.ProcRoot}
		dbuf []byte
	)
	res.btime, _ = procfs.BootTime(s.opts.ProcRoot)
	for _, pid := range pids {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		p, err := openPIDFD(pid)
		if errors.Is(err, sockfd.ErrNoProcess) {
			continue
		}
		if err != nil {
			return nil, err
		}
		buf, err = p.Sockets(s.opts.ProcRoot, buf[:0])
		if err != nil {
			p.Close()
			if errors.Is(err, sockfd.ErrNoProcess) {
				continue
			}
			return nil, err
		}
		h0 := len(holders)
		for i := range buf {
			so, ok := s.pidSocket(&buf[i], q)
			if !ok {
				continue
			}
			k := so.Key()
			idx, seen := byKey[k]
			if !seen {
				idx = len(socks)
				byKey[k] = idx
				socks = append(socks, so)
			}
			holders = append(holders, pidHolder{idx: idx, pid: pid, fd: buf[i].FD})
		}
		if len(holders) > h0 {
			// Details read while the pidfd is open and the process
			// still alive after them are that process's: its pid
			// cannot have been reused in between.
			if d := res.process(pid, now, &dbuf); d != nil && p.Alive() {
				procs[pid] = d
			} else {
				holders = holders[:h0] // exited meanwhile
			}
		}
		p.Close()
	}
	socks = s.attachPIDHolders(socks, holders, procs)
	socks = filterFamilies(socks, q)
	inodes := map[uint64]bool{}
	for i := range socks {
		inodes[socks[i].NetNS] = true
	}
	names := NamespaceNames(ctx, s.opts.ProcRoot, inodes)
	named := socks[:0]
	for i := range socks {
		ni, ok := names[socks[i].NetNS]
		if ok {
			socks[i].NetNSName, socks[i].Container = ni.Name, ni.Container
		}
		if q.wantsNamespace(ni) {
			named = append(named, socks[i])
		}
	}
	socks = named
	if q.Keep != nil {
		kept := socks[:0]
		for i := range socks {
			if q.Keep(&socks[i]) {
				kept = append(kept, socks[i])
			}
		}
		socks = kept
	}
	sortSockets(socks)
	return &Snapshot{Time: now, Source: "pidfd", Resolver: "pidfd", Sockets: socks, Privileged: true}, nil
}

// ownPIDNamespace reports whether procRoot is the procfs of porteiro's own
// pid namespace, whose pids pidfd_open takes: a /proc mounted by the
// host, seen from a container, names other processes by the same numbers.
func ownPIDNamespace(procRoot string) bool {
	l, err := os.Readlink(procRoot + "/self")
	return err == nil && l == strconv.Itoa(os.Getpid())
}

// pidSocket builds the Socket that the dump would give for what a socket
// said of itself, or reports false when the dump would not list it (a
// state q does not ask for, or no local port).
func (s *Scanner) pidSocket(ss *sockfd.Socket, q Query) (Socket, bool) {
	p, fam := TCP, IPv4
	if ss.Protocol != unix.IPPROTO_TCP { // sockfd gives only TCP and UDP
		p = UDP
	}
	if ss.Family == unix.AF_INET6 {
		fam = IPv6
	}
	if !q.WantsProto(p) || !q.WantsFamily(fam) || !q.Mask(p).Has(ss.State) {
		return Socket{}, false
	}
	if p == TCP && ss.State == TCPClose {
		// Bound only, or closed by the peer: in none of the tables the
		// dump reads (Linux 6.8 lists bound-only sockets, but under a
		// state bit of their own that no query sets).
		return Socket{}, false
	}
	so := newSocket(p, fam, ss.State, ss.Local, ss.Remote, ss.UID, ss.Inode)
	if so.Local.Port == 0 {
		return Socket{}, false // UDP not bound: fillDiag drops it
	}
	if fam == IPv6 && so.Local.Address.IsUnspecified() {
		so.DualStack = !ss.V6Only
	}
	so.NetNS = ss.NetNS
	if so.NetNS == 0 {
		// SIOCGSKNS refused: the dump would stamp the scanner's own.
		so.NetNS = s.netns
	}
	if ss.IfIndex != 0 {
		switch {
		case so.NetNS == s.netns:
			so.Interface = ifName(ss.IfIndex) // as the dump names it
		case ss.Interface != "":
			so.Interface = ss.Interface // named in its own namespace
		default:
			so.Interface = "if" + strconv.Itoa(int(ss.IfIndex))
		}
	}
	so.Exposure = ExposureOf(so.Local.Address)
	return so, true
}

// attachPIDHolders gives each socket its holders, ordered by pid and fd as
// buildOwners orders them, one Process per pid with its fds, and drops the
// sockets left without a holder (their process exited meanwhile). The
// holders come in pid order (scanPIDs goes through the pids in order), so
// a stable counting sort by socket keeps that order, and no generic sort
// is instantiated for them (the client's size is budgeted).
func (s *Scanner) attachPIDHolders(socks []Socket, holders []pidHolder, procs map[int]*ProcessInfo) []Socket {
	pos := make([]int, len(socks)+1)
	for _, h := range holders {
		pos[h.idx+1]++
	}
	for i := 1; i < len(pos); i++ {
		pos[i] += pos[i-1]
	}
	byIdx := make([]pidHolder, len(holders))
	for _, h := range holders {
		byIdx[pos[h.idx]] = h
		pos[h.idx]++
	}
	// One array of fds and one of Processes for all sockets, each socket
	// a capped part of them, as newOwnerArena does for the scan.
	fds := make([]int, 0, len(holders))
	arena := make([]Process, 0, len(holders))
	for i := 0; i < len(byIdx); {
		idx, p0 := byIdx[i].idx, len(arena)
		for i < len(byIdx) && byIdx[i].idx == idx {
			pid, f0 := byIdx[i].pid, len(fds)
			for i < len(byIdx) && byIdx[i].idx == idx && byIdx[i].pid == pid {
				fds = append(fds, byIdx[i].fd)
				i++
			}
			if d, ok := procs[pid]; ok {
				cp := Process{ProcessInfo: d, FDs: fds[f0:len(fds):len(fds)]}
				slices.Sort(cp.FDs) // the fd directory lists them in order already
				arena = append(arena, cp)
			}
		}
		if len(arena) > p0 {
			socks[idx].Processes = arena[p0:len(arena):len(arena)]
		}
	}
	kept := socks[:0]
	for i := range socks {
		if len(socks[i].Processes) > 0 {
			kept = append(kept, socks[i])
		}
	}
	return kept
}

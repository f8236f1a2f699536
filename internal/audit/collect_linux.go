package audit

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/porteiro/porteiro/internal/kview"
	"github.com/porteiro/porteiro/internal/netns"
	"github.com/porteiro/porteiro/internal/procfs"
	"github.com/porteiro/porteiro/internal/procnet"
	"github.com/porteiro/porteiro/internal/sockdiag"
	"github.com/porteiro/porteiro/internal/sockfd"
	"github.com/porteiro/porteiro/inventory"
)

// maxMountinfo bounds a mountinfo read; a host with more mounts than this is
// audited from what fits.
const maxMountinfo = 16 << 20

type collector struct {
	o       Options
	progs   *kview.Programs
	self    uint32
	skipped map[View]string
	hostNS  uint64
	holders map[uint64][]FD // this round's: netns → processes holding a socket there (maxHolders)
}

// running serialises audits in one process: two bind probes at once would
// each see the other's sockets as busy ports.
var running sync.Mutex

// Run audits the host: every network namespace it can find, and the
// processes. It returns an error only when the audit could not run; a
// report whose Compared is false proves nothing. Concurrent calls run one
// after the other.
func Run(ctx context.Context, o Options) (*Report, error) {
	running.Lock()
	defer running.Unlock()
	o.defaults()
	start := time.Now()
	c := &collector{o: o, self: uint32(os.Getpid()), skipped: map[View]string{}}
	host, err := nsInode(filepath.Join(o.ProcRoot, "thread-self/ns/net"))
	if err != nil {
		return nil, fmt.Errorf("reading the audit's own network namespace: %w", err)
	}
	c.hostNS = host
	if os.Geteuid() != 0 {
		why := "needs root"
		c.skipped[ViewBPFSock], c.skipped[ViewBPFFile], c.skipped[ViewBPFTask] = why, why, why
		c.skipped[ViewBind] = "needs root (ports below 1024, and the kernel's view to explain busy ports)"
	} else if p, err := kview.Open(); err != nil {
		why := err.Error()
		c.skipped[ViewBPFSock], c.skipped[ViewBPFFile], c.skipped[ViewBPFTask] = why, why, why
		c.skipped[ViewBind] = "needs the kernel's view of the sockets processes hold, to explain ports bound but not listening"
	} else {
		c.progs = p
		defer p.Close()
	}
	if o.NoProbe {
		c.skipped[ViewBind] = "--no-probe"
	}
	if c.progs == nil {
		// /proc is compared against the kernel's lists; without them there
		// is nothing to hold it against.
		c.skipped[ViewProcFD] = "nothing to compare it with: needs " + string(ViewBPFFile)
		c.skipped[ViewProc] = "nothing to compare it with: needs " + string(ViewBPFTask)
	}
	if why := c.pidNSProblem(); why != "" {
		c.skipped[ViewBPFTask] = why
		c.skipped[ViewProc] = why
	}

	rep := &Report{SchemaVersion: SchemaVersion, Rounds: o.Rounds}
	var rounds []*Round
	var busy map[uint64][]Port // by namespace: busy and unexplained in the last round
	for i := 0; i < o.Rounds; i++ {
		if i > 0 {
			// Let what was opening or closing settle before looking again.
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
		r, err := c.round(ctx)
		if err != nil {
			return nil, err
		}
		if _, skip := c.skipped[ViewBind]; !skip {
			next := map[uint64][]Port{}
			for _, ns := range sortedNS(r) {
				if ns.Tables == nil || (o.ProbeHostOnly && ns.Inode != c.hostNS) {
					continue // not entered this round: nothing to explain a busy port with
				}
				if i > 0 && len(busy[ns.Inode]) == 0 {
					continue
				}
				b, probed, explained, err := c.probeNS(ctx, r, ns, i == 0, busy[ns.Inode])
				if err != nil {
					return nil, err
				}
				if i == 0 {
					rep.PortsProbed += probed
					rep.PortsSkipped += explained
				}
				if len(b) > 0 {
					next[ns.Inode] = b
				}
			}
			busy = next
			r.Busy = next
		}
		rounds = append(rounds, r)
		rep.Namespaces = len(r.Namespaces)
	}
	rep.Findings = Compare(rounds)
	if rep.Findings == nil {
		rep.Findings = []Finding{}
	}
	rep.Clean = len(rep.Findings) == 0
	for _, v := range []View{ViewSockDiag, ViewProcNet, ViewBPFSock, ViewBPFFile, ViewProcFD, ViewBind, ViewBPFTask, ViewProc, ViewNSMember, ViewNSMount} {
		why, skip := c.skipped[v]
		rep.Views = append(rep.Views, ViewStatus{View: v, Ran: !skip, Skipped: why})
	}
	_, noSD := c.skipped[ViewSockDiag]
	_, noPN := c.skipped[ViewProcNet]
	_, noBPF := c.skipped[ViewBPFSock]
	ran := 0
	for _, b := range []bool{noSD, noPN, noBPF} {
		if !b {
			ran++
		}
	}
	rep.Compared = ran >= 2 || c.progs != nil
	rep.DurationMS = durationMS(time.Since(start))
	return rep, nil
}

// pidNSProblem says why the kernel's pids cannot be compared with /proc's:
// iter/task numbers processes as the initial pid namespace does.
func (c *collector) pidNSProblem() string {
	b, err := readBounded(filepath.Join(c.o.ProcRoot, "self/status"), 1<<20)
	if err != nil {
		return fmt.Sprintf("reading %s/self/status: %v", c.o.ProcRoot, err)
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		if rest, ok := bytes.CutPrefix(line, []byte("NSpid:")); ok && len(bytes.Fields(rest)) > 1 {
			return "porteiro runs in a child pid namespace: the kernel's pids are not /proc's"
		}
	}
	return ""
}

func (c *collector) round(ctx context.Context) (*Round, error) {
	r := &Round{HostNS: c.hostNS, Namespaces: map[uint64]*Namespace{}}
	pids, err := netns.ListPIDs(c.o.ProcRoot)
	if err != nil {
		return nil, err
	}
	// Namespaces: members and mounts.
	mntSeen := map[uint64]bool{}
	for _, pid := range pids {
		ino, err := nsInode(filepath.Join(c.o.ProcRoot, strconv.Itoa(pid), "ns/net"))
		if err == nil {
			if ns := r.Namespaces[ino]; ns == nil {
				r.Namespaces[ino] = &Namespace{Inode: ino, Member: pid}
			}
		}
		mnt, err := nsInode(filepath.Join(c.o.ProcRoot, strconv.Itoa(pid), "ns/mnt"))
		if err != nil || mntSeen[mnt] {
			continue
		}
		mntSeen[mnt] = true
		b, err := readBounded(filepath.Join(c.o.ProcRoot, strconv.Itoa(pid), "mountinfo"), maxMountinfo)
		if err != nil {
			continue
		}
		for ino, mp := range NSMounts(b) {
			ns := r.Namespaces[ino]
			if ns == nil {
				ns = &Namespace{Inode: ino}
				r.Namespaces[ino] = ns
			}
			if ns.Mount == "" {
				ns.Mount = filepath.Join(c.o.ProcRoot, strconv.Itoa(pid), "root", mp)
			}
		}
	}
	if r.Namespaces[c.hostNS] == nil {
		r.Namespaces[c.hostNS] = &Namespace{Inode: c.hostNS, Member: int(c.self)}
	}

	// The kernel's file tables: who holds which socket, in any namespace.
	holders := map[uint64][]FD{} // netns → a few holders, to enter namespaces nothing names
	c.holders = holders
	if c.progs != nil {
		r.KernelFDs = []FD{}
		err := c.progs.TaskFiles(ctx, func(k kview.Record) {
			if k.TGID == c.self {
				return
			}
			fd := int(k.FD)
			f := FD{
				Owner: Owner{PID: k.TGID, Comm: k.Comm, UID: k.UID, CgroupID: k.CgroupID, FD: &fd},
				NetNS: uint64(k.NetNS),
				Sock:  sockOf(k),
			}
			r.KernelFDs = append(r.KernelFDs, f)
		})
		if err != nil {
			return nil, fmt.Errorf("reading the kernel's file tables: %w", err)
		}
		r.KernelFDs = c.faultFDs(r.KernelFDs)
		for ino := range holders {
			delete(holders, ino)
		}
		for _, f := range r.KernelFDs {
			if hs := holders[f.NetNS]; len(hs) < maxHolders && (len(hs) == 0 || hs[len(hs)-1].Owner.PID != f.Owner.PID) {
				holders[f.NetNS] = append(hs, f)
			}
		}
		for ino := range holders {
			if r.Namespaces[ino] == nil {
				r.Namespaces[ino] = &Namespace{Inode: ino}
			}
		}
	}

	// The socket tables of every namespace, from inside it.
	for _, ns := range r.Namespaces {
		fd, err := c.openNS(ns, holders)
		if err != nil {
			continue // gone, or not enterable: no table this round, so no finding either
		}
		err = inNetNS(fd, ns.Inode == c.hostNS, func() { ns.Tables = c.tables(ctx, ns) })
		unix.Close(fd)
		if err != nil {
			return nil, err
		}
	}

	// /proc/PID/fd against the kernel's file tables.
	if r.KernelFDs != nil {
		r.ProcFDMissing = map[int]string{}
		var buf [64]byte
		for i, f := range r.KernelFDs {
			if f.Sock.Inode == 0 {
				continue
			}
			pidDir := filepath.Join(c.o.ProcRoot, strconv.Itoa(int(f.Owner.PID)))
			n, err := unix.Readlink(filepath.Join(pidDir, "fd", strconv.Itoa(*f.Owner.FD)), buf[:])
			switch {
			case err == nil:
				if ino, ok := procfs.ParseSocketLink(buf[:n]); !ok || ino != f.Sock.Inode {
					r.ProcFDMissing[i] = fmt.Sprintf("fd %d is %q", *f.Owner.FD, buf[:n])
				}
			case errors.Is(err, unix.ENOENT):
				// Only when the process itself is visible: a hidden
				// process is its own finding.
				if _, serr := os.Stat(filepath.Join(pidDir, "stat")); serr == nil {
					r.ProcFDMissing[i] = fmt.Sprintf("no fd %d", *f.Owner.FD)
				}
			}
			// EACCES and the like: unreadable, which is not hidden (porteiro
			// list says so through unattributed_reason).
		}
	}

	// Processes: the kernel's task list against /proc.
	if _, skip := c.skipped[ViewBPFTask]; !skip && c.progs != nil {
		r.Tasks = map[uint32]Task{}
		if err := c.progs.Tasks(ctx, func(k kview.Record) {
			r.Tasks[k.TGID] = Task{TGID: k.TGID, Comm: k.Comm, UID: k.UID, CgroupID: k.CgroupID}
		}); err != nil {
			return nil, fmt.Errorf("reading the kernel's task list: %w", err)
		}
		listed := make(map[uint32]bool, len(pids))
		for _, p := range pids {
			listed[uint32(p)] = true
		}
		r.ProcHidden = map[uint32]string{}
		for tgid := range r.Tasks {
			if tgid == 0 {
				continue // the idle task has no /proc entry
			}
			if !listed[tgid] {
				r.ProcHidden[tgid] = "readdir does not list it"
				continue
			}
			stat := filepath.Join(c.o.ProcRoot, strconv.Itoa(int(tgid)), "stat")
			if _, err := os.Stat(stat); errors.Is(err, os.ErrNotExist) {
				r.ProcHidden[tgid] = fmt.Sprintf("it is listed, but %s does not exist", stat)
			}
		}
	}
	return r, nil
}

// tables reads the table views on the calling thread, which is in ns.
func (c *collector) tables(ctx context.Context, ns *Namespace) map[View][]Sock {
	out := map[View][]Sock{}
	fault := func(v View, s []Sock) []Sock {
		if c.o.Fault != nil {
			return c.o.Fault(v, ns.Inode, s)
		}
		return s
	}
	if s, err := sockDiagAll(); err == nil {
		out[ViewSockDiag] = fault(ViewSockDiag, s)
	} else if ns.Inode == c.hostNS {
		c.skipped[ViewSockDiag] = err.Error()
	}
	netDir := filepath.Join(c.o.ProcRoot, "thread-self/net")
	if ns.Member != 0 && ns.Inode != c.hostNS {
		netDir = filepath.Join(c.o.ProcRoot, strconv.Itoa(ns.Member), "net")
	}
	if s, err := procNetAll(netDir); err == nil {
		out[ViewProcNet] = fault(ViewProcNet, s)
	} else if ns.Inode == c.hostNS {
		c.skipped[ViewProcNet] = err.Error()
	}
	if c.progs != nil {
		var socks []Sock
		if err := c.progs.Sockets(ctx, func(k kview.Record) { socks = append(socks, sockOf(k)) }); err == nil {
			out[ViewBPFSock] = fault(ViewBPFSock, socks)
		}
	}
	return out
}

// faultFDs passes the kernel's file tables through Options.Fault (tests
// only), as the sockets they hold.
func (c *collector) faultFDs(fds []FD) []FD {
	if c.o.Fault == nil {
		return fds
	}
	socks := make([]Sock, len(fds))
	for i, f := range fds {
		socks[i] = f.Sock
	}
	keep := map[sockKey]bool{}
	for _, s := range c.o.Fault(ViewBPFFile, 0, socks) {
		keep[keyOf(s)] = true
	}
	out := fds[:0]
	for _, f := range fds {
		if keep[keyOf(f.Sock)] {
			out = append(out, f)
		}
	}
	return out
}

// probeNS runs the bind probe inside ns: every port the first time, the
// ports still suspect in later rounds. A port busy for the probe is checked
// once more against a sock_diag dump taken right after it, since a socket
// opened after the views and before bind() explains it too.
func (c *collector) probeNS(ctx context.Context, r *Round, ns *Namespace, all bool, suspect []Port) (busy []Port, probed, explained int, err error) {
	exp := ExplainedBy(r, ns.Inode)
	host := ns.Inode == c.hostNS
	var in func(func()) error
	if !host {
		fd, err := c.openNS(ns, c.holders)
		if err != nil {
			return nil, 0, 0, nil // gone since the views: no finding this round
		}
		defer unix.Close(fd)
		in = func(fn func()) error { return netns.Do(fd, fn) }
	}
	if all {
		busy, probed, explained = probeAll(ctx, exp, c.o.Workers, in)
	} else {
		busy = probe(ctx, suspect, exp, c.o.Workers, in)
	}
	if len(busy) == 0 {
		return nil, probed, explained, nil
	}
	var after []Sock
	var derr error
	if host {
		after, derr = sockDiagAll()
	} else if err := in(func() { after, derr = sockDiagAll() }); errors.Is(err, netns.ErrEnter) {
		derr = fmt.Errorf("entering network namespace %d: %w", ns.Inode, err)
	}
	if derr != nil {
		return nil, probed, explained, nil // cannot re-check: not a finding
	}
	return unexplained(busy, after), probed, explained, nil
}

func sockDiagAll() ([]Sock, error) {
	conn, err := sockdiag.Dial()
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	out := []Sock{}
	for _, fam := range []uint8{unix.AF_INET, unix.AF_INET6} {
		for _, proto := range []uint8{unix.IPPROTO_TCP, unix.IPPROTO_UDP} {
			err := conn.Dump(fam, proto, uint32(inventory.MaskAll), func(m sockdiag.Msg) {
				out = append(out, Sock{Proto: proto, Local: norm(m.Local, fam), Remote: norm(m.Remote, fam),
					State: m.State, Inode: uint64(m.Inode), V6Only: m.V6Only && m.V6OnlyKnown})
			})
			if err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

func procNetAll(dir string) ([]Sock, error) {
	out := []Sock{}
	for _, t := range []struct {
		file  string
		proto uint8
		fam   uint8
	}{{"tcp", 6, unix.AF_INET}, {"tcp6", 6, unix.AF_INET6}, {"udp", 17, unix.AF_INET}, {"udp6", 17, unix.AF_INET6}} {
		f, err := os.Open(filepath.Join(dir, t.file))
		if err != nil {
			if errors.Is(err, os.ErrNotExist) && (t.file == "tcp6" || t.file == "udp6") {
				continue // IPv6 disabled
			}
			return nil, fmt.Errorf("opening %s: %w", filepath.Join(dir, t.file), err)
		}
		err = procnet.Parse(io.LimitReader(f, 1<<30), uint32(inventory.MaskAll), func(e procnet.Entry) {
			out = append(out, Sock{Proto: t.proto, Local: norm(e.Local, t.fam), Remote: norm(e.Remote, t.fam), State: e.State, Inode: e.Inode})
		})
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("reading %s: %w", filepath.Join(dir, t.file), err)
		}
	}
	return out, nil
}

// norm makes every view spell an address the same way: AF_INET6 sockets in
// 16 bytes, AF_INET in 4.
func norm(a netip.AddrPort, fam uint8) netip.AddrPort {
	if fam == unix.AF_INET6 && a.Addr().Is4() {
		return netip.AddrPortFrom(netip.AddrFrom16(a.Addr().As16()), a.Port())
	}
	if fam == unix.AF_INET && a.Addr().Is4In6() {
		return netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
	}
	return a
}

func sockOf(k kview.Record) Sock {
	return Sock{Proto: k.Proto, Local: norm(k.Local, k.Family), Remote: norm(k.Remote, k.Family),
		State: k.State, Inode: k.Inode, V6Only: k.V6Only}
}

// maxHolders is how many processes holding a socket in a namespace an
// audit keeps, to enter it through the next when one's socket is gone.
const maxHolders = 8

// openNS returns an fd for the namespace: through a member, a mount, or
// (for a namespace nothing names) a socket a process holds in it, which
// SIOCGSKNS turns into the namespace.
func (c *collector) openNS(ns *Namespace, holders map[uint64][]FD) (int, error) {
	var fd int
	var err error
	switch {
	case ns.Inode == c.hostNS:
		fd, err = unix.Open(filepath.Join(c.o.ProcRoot, "thread-self/ns/net"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	case ns.Member != 0:
		fd, err = unix.Open(filepath.Join(c.o.ProcRoot, strconv.Itoa(ns.Member), "ns/net"), unix.O_RDONLY|unix.O_CLOEXEC, 0)
	case ns.Mount != "":
		fd, err = unix.Open(ns.Mount, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	default:
		hs := holders[ns.Inode]
		if len(hs) == 0 {
			return -1, fmt.Errorf("no way into network namespace %d", ns.Inode)
		}
		// A holder's socket may be gone since the file tables were read
		// (a probe of another auditor, passing through): the next
		// holder of another process leads in as well.
		for _, h := range hs {
			var got uint64
			if fd, got, err = sockfd.NetNSOf(int(h.Owner.PID), *h.Owner.FD); err == nil && got != ns.Inode {
				unix.Close(fd)
				err = fmt.Errorf("the socket of pid %d moved to network namespace %d", h.Owner.PID, got)
			}
			if err == nil {
				break
			}
		}
	}
	if err != nil {
		return -1, err
	}
	// The member may have exited and its pid been reused: check.
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Ino != ns.Inode {
		unix.Close(fd)
		return -1, fmt.Errorf("network namespace %d changed under the audit", ns.Inode)
	}
	return fd, nil
}

// inNetNS runs fn inside the namespace fd (netns.Do). A namespace that
// cannot be entered (gone) gives no tables this round, and no error.
func inNetNS(fd int, here bool, fn func()) error {
	if here {
		fn()
		return nil
	}
	if err := netns.Do(fd, fn); err != nil && !errors.Is(err, netns.ErrEnter) {
		return err
	}
	return nil
}

func nsInode(path string) (uint64, error) {
	var buf [64]byte
	n, err := unix.Readlink(path, buf[:])
	if err != nil {
		return 0, fmt.Errorf("readlink %s: %w", path, err)
	}
	ino, ok := procfs.ParseNSLink(buf[:n])
	if !ok {
		return 0, fmt.Errorf("readlink %s: unexpected %q", path, buf[:n])
	}
	return ino, nil
}

func readBounded(path string, max int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, max))
}

package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"os/user"
	"runtime/debug"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/porteiro/porteiro/internal/cmdkit"
	"github.com/porteiro/porteiro/internal/hugeheap"
	"github.com/porteiro/porteiro/internal/render"
	"github.com/porteiro/porteiro/internal/services"
	"github.com/porteiro/porteiro/internal/target"
	"github.com/porteiro/porteiro/inventory"
)

// sockFlags are the selection flags shared by list, who, pid and kill.
type sockFlags struct {
	tcp, udp bool
	v4, v6   bool
	all      bool
	state    string
	ports    string
	pids     []string
	users    []string
	output   string
	procRoot string
	noOwners bool
	netns    []string

	// cmd is the command the flags belong to, to tell "--port ''" from
	// no --port.
	cmd *cobra.Command
}

func (f *sockFlags) changed(name string) bool {
	return f.cmd != nil && f.cmd.Flags().Changed(name)
}

// emptyFlag refuses a selection flag given with an empty value: it would
// select everything, the opposite of what was asked.
func (f *sockFlags) emptyFlag(name, value string, n int) error {
	if !f.changed(name) {
		return nil
	}
	if strings.TrimSpace(value) == "" && n == 0 {
		return usageErrorf("--%s: empty value: give what to select, or leave the flag out", name)
	}
	return nil
}

// parsePID parses a process id: decimal digits only ("+5" and "0x10" are
// typos, not pids), 1 or more.
func parsePID(s string) (int, error) {
	n, err := strconv.Atoi(s)
	if !target.IsDigits(s) || err != nil || n <= 0 {
		return 0, fmt.Errorf("%q is not a process id", s)
	}
	return n, nil
}

func (f *sockFlags) addProto(c *cobra.Command) {
	c.Flags().BoolVarP(&f.tcp, "tcp", "t", false, "only TCP sockets")
	c.Flags().BoolVarP(&f.udp, "udp", "u", false, "only UDP sockets")
	c.Flags().BoolVarP(&f.v4, "ipv4", "4", false, "only sockets that serve IPv4 (dual-stack [::] sockets included)")
	c.Flags().BoolVarP(&f.v6, "ipv6", "6", false, "only IPv6 sockets")
	c.Flags().StringVarP(&f.output, "output", "o", "table", "output format: table, wide, json, ndjson, csv")
	c.Flags().StringSliceVar(&f.netns, "netns", nil, "only these network namespaces: host, all, an inode, or a name (ip netns, container, \"pid N (comm)\", orphan; globs allowed); default all")
	c.Flags().StringVar(&f.procRoot, "proc", "/proc", "procfs mount point to read processes from")
	c.Flags().MarkHidden("proc")
	f.cmd = c
}

func (f *sockFlags) addSelect(c *cobra.Command) {
	c.Flags().BoolVarP(&f.all, "all", "a", false, "every state, not only listeners (connections, TIME-WAIT, ...)")
	c.Flags().StringVar(&f.state, "state", "", "only these states, comma-separated: listen, established, time-wait, unconn, connected, ... (implies --all)")
	c.Flags().StringVarP(&f.ports, "port", "p", "", "only these local ports: 80,443,8000-8100,ssh")
	c.Flags().StringSliceVar(&f.pids, "pid", nil, "only sockets held by these pids")
	c.Flags().StringSliceVar(&f.users, "user", nil, "only sockets held by processes of these users (name or uid)")
}

// query builds the scan query from the flags.
func (f *sockFlags) query() (inventory.Query, error) {
	var q inventory.Query
	if f.tcp {
		q.Protos = append(q.Protos, inventory.TCP)
	}
	if f.udp {
		q.Protos = append(q.Protos, inventory.UDP)
	}
	if f.v4 {
		q.Families = append(q.Families, inventory.IPv4)
	}
	if f.v6 {
		q.Families = append(q.Families, inventory.IPv6)
	}
	if f.all {
		q.States = inventory.MaskAll
	}
	if err := f.emptyFlag("netns", "", len(f.netns)); err != nil {
		return q, err
	}
	for _, n := range f.netns {
		if n = strings.TrimSpace(n); n == "" {
			return q, usageErrorf("--netns: empty namespace name")
		}
		q.NetNS = append(q.NetNS, n)
	}
	if err := f.emptyFlag("state", f.state, 0); err != nil {
		return q, err
	}
	if f.state != "" {
		m, err := inventory.ParseStates(f.state)
		if err != nil {
			return q, usageErrorf("--state: %v", err)
		}
		q.States = m
	}
	if err := render.CheckFormat(f.output); err != nil {
		return q, usageErrorf("%v", err)
	}
	return q, nil
}

// netnsQuery is the query of a --netns flag for the commands that have no
// other selection (check, baseline).
func netnsQuery(sel []string) (inventory.Query, error) {
	var q inventory.Query
	for _, n := range sel {
		if n = strings.TrimSpace(n); n == "" {
			return q, usageErrorf("--netns: empty namespace name")
		}
		q.NetNS = append(q.NetNS, n)
	}
	return q, nil
}

// sockFilter selects sockets after the scan.
type sockFilter struct {
	ports []target.Range
	pids  map[int]bool
	uids  map[uint32]bool
	tgt   *target.Target
}

func (f *sockFlags) filter() (*sockFilter, error) {
	sf := &sockFilter{}
	for _, e := range []error{f.emptyFlag("port", f.ports, 0), f.emptyFlag("pid", "", len(f.pids)), f.emptyFlag("user", "", len(f.users))} {
		if e != nil {
			return nil, e
		}
	}
	if f.ports != "" {
		rs, err := target.ParsePorts(f.ports, services.System())
		if err != nil {
			return nil, usageErrorf("--port: %v", err)
		}
		sf.ports = rs
	}
	for _, p := range f.pids {
		n, err := parsePID(strings.TrimSpace(p))
		if err != nil {
			return nil, usageErrorf("--pid: %v", err)
		}
		if sf.pids == nil {
			sf.pids = map[int]bool{}
		}
		sf.pids[n] = true
	}
	for _, u := range f.users {
		uid, err := lookupUser(u)
		if err != nil {
			return nil, err
		}
		if sf.uids == nil {
			sf.uids = map[uint32]bool{}
		}
		sf.uids[uid] = true
	}
	return sf, nil
}

func lookupUser(u string) (uint32, error) {
	u = strings.TrimSpace(u)
	if u == "" {
		return 0, usageErrorf("--user: empty user name")
	}
	if n, err := strconv.ParseUint(u, 10, 32); err == nil {
		return uint32(n), nil
	}
	pw, err := user.Lookup(u)
	if err != nil {
		return 0, usageErrorf("--user: unknown user %q", u)
	}
	n, err := strconv.ParseUint(pw.Uid, 10, 32)
	if err != nil {
		return 0, usageErrorf("--user: user %q has a non-numeric uid %q", u, pw.Uid)
	}
	return uint32(n), nil
}

// keep is the part of the filter that needs no owners; the scanner applies
// it before looking owners up.
func (sf *sockFilter) keep(s *inventory.Socket) bool {
	if sf.ports != nil && !target.InRanges(s.Local.Port, sf.ports) {
		return false
	}
	if t := sf.tgt; t != nil {
		if t.Port != s.Local.Port || (t.Proto != "" && t.Proto != string(s.Proto)) {
			return false
		}
		if t.Addr.IsValid() && !addrMatches(t, s) {
			return false
		}
	}
	return true
}

func (sf *sockFilter) match(s *inventory.Socket) bool {
	if !sf.keep(s) {
		return false
	}
	if sf.pids != nil || sf.uids != nil {
		ok := false
		for i := range s.Processes {
			p := &s.Processes[i]
			if (sf.pids == nil || sf.pids[p.PID]) && (sf.uids == nil || sf.uids[p.UID]) {
				ok = true
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// addrMatches reports whether a socket serves the target's address: an
// exact bind, or a wildcard bind of a family that covers it.
func addrMatches(t *target.Target, s *inventory.Socket) bool {
	a := s.Local.Address
	want := t.Addr.Unmap()
	if a.Unmap() == want {
		return true
	}
	if !a.IsUnspecified() {
		return false
	}
	if want.Is4() {
		return s.Family == inventory.IPv4 || s.DualStack
	}
	return s.Family == inventory.IPv6
}

func (sf *sockFilter) apply(socks []inventory.Socket) []inventory.Socket {
	out := socks[:0]
	for i := range socks {
		if sf.match(&socks[i]) {
			out = append(out, socks[i])
		}
	}
	return out
}

// scan runs one scan, interruptible with Ctrl-C. brief skips what only
// the detailed outputs show of a process (inventory.Options.Brief).
func scan(f *sockFlags, q inventory.Query, brief bool) (*inventory.Snapshot, error) {
	collectForSize(q)
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sc := inventory.NewScanner(inventory.Options{ProcRoot: f.procRoot, NoOwners: f.noOwners, Brief: brief})
	defer sc.Close()
	snap, err := sc.Scan(ctx, q)
	if err != nil {
		return nil, exitWith(ExitUsage, fmt.Errorf("%w; porteiro needs the sock_diag netlink interface or a readable /proc/net", err))
	}
	return snap, nil
}

// kernelSocketCount is inventory.KernelSocketCount; TestCollectForSize
// gives fixed counts instead, as the host's changes while other tests run.
var kernelSocketCount = inventory.KernelSocketCount

// bigScan is the kernel's socket count from which a scan of every state
// collects garbage sooner (collectForSize).
const bigScan = 32 << 10

// hugeHeapSize is the heap a whole listing marks for huge pages.
const hugeHeapSize = 32 << 20

// The memory limit of a scan that does not collect garbage: past it the
// runtime collects after all. A scan's heap is about 1 KB per socket it
// lists; the limit is far above that, a guard against the unforeseen.
const (
	noCollectBase      = 256 << 20
	noCollectPerSocket = 2 << 10
)

// collectForSize sets how a one-shot scan collects garbage, by the
// kernel's count of sockets, in a process that runs one command
// (MainProcess). GOGC or GOMEMLIMIT, when set, decides.
//
//   - A scan of every state and every port, on a host of bigScan sockets
//     or more, collects at 1.5 times the live heap, not at twice it. Such
//     a scan's heap is its sockets, which live until the command exits,
//     and the passing work of finding their owners: collecting at twice
//     the heap that survived counts the sockets twice (at 100,000 sockets,
//     15 MB more at the peak for no CPU saved).
//   - Any other scan does not collect at all, under a memory limit
//     (noCollectBase plus noCollectPerSocket per socket of the host). Its
//     heap is mostly what it prints, which lives to the end: collecting
//     frees little, and costs the collector's work and the fresh pages
//     its own metadata faults in (10% of a listing at 100,000 sockets).
//
// A whole listing also backs its heap with huge pages (see hugeheap): its
// heap grows to several MB, whose first faults they make cheap. A scan of
// some ports touches too little to gain from it.
func collectForSize(q inventory.Query) {
	if !oneShotProcess {
		return // a caller that runs many commands keeps its settings
	}
	if len(q.LocalPorts) == 0 {
		hugeheap.Enable(hugeHeapSize)
	}
	if os.Getenv("GOGC") != "" || os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	n := kernelSocketCount()
	allStates := q.States&^(inventory.MaskTCPListen|inventory.MaskUDPListen) != 0
	if n >= bigScan && allStates && len(q.LocalPorts) == 0 {
		debug.SetGCPercent(50)
		return
	}
	debug.SetMemoryLimit(noCollectBase + int64(n)*noCollectPerSocket)
	debug.SetGCPercent(-1)
}

// printNotes writes the snapshot's notes to stderr, once each.
func printNotes(env *Env, snap *inventory.Snapshot, socks []inventory.Socket) {
	counts := map[inventory.Reason]int{}
	for i := range socks {
		if r := socks[i].UnattributedReason; r != "" {
			counts[r]++
		}
	}
	for _, r := range []inventory.Reason{inventory.ReasonNotPermitted, inventory.ReasonNoProcess, inventory.ReasonExited} {
		// ReasonKernel (TIME-WAIT) is normal and needs no note.
		if n := counts[r]; n > 0 {
			fmt.Fprintf(env.Stderr, "porteiro: note: %d socket(s) shown without a process: %s\n", n, r.Hint())
		}
	}
	if !snap.Privileged && counts[inventory.ReasonNotPermitted] == 0 {
		fmt.Fprintf(env.Stderr, "porteiro: note: not running as root; other users' processes may be missing (grant CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH, or use sudo)\n")
	}
	for _, n := range snap.Notes {
		// The notes about owners are written above, for the sockets
		// shown; the namespaces' are written as they are. As root, a
		// process whose namespace cannot be read is one that refuses
		// even root (a PID 1 that does): its sockets are explained by
		// their own note.
		if strings.Contains(n, "socket(s) without a process") || (strings.HasPrefix(n, "the network namespace of") && snap.Privileged) {
			continue
		}
		fmt.Fprintf(env.Stderr, "porteiro: note: %s\n", render.Escape(n))
	}
	if snap.Source == "procfs" {
		fmt.Fprintf(env.Stderr, "porteiro: note: sock_diag netlink was refused; read /proc/net instead (dual-stack detection uses the system default)\n")
	}
}

// tableOptions fits tables to the terminal on stdout.
func tableOptions(env *Env) render.Options { return cmdkit.TableOptions(env) }

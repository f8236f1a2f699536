package topcmd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"github.com/porteiro/porteiro/internal/cli"
	"github.com/porteiro/porteiro/internal/cmdkit"
	"io"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"
	"golang.org/x/sys/unix"

	"github.com/porteiro/porteiro/internal/procfs"
	"github.com/porteiro/porteiro/internal/render"
	"github.com/porteiro/porteiro/internal/top"
	"github.com/porteiro/porteiro/inventory"
)

// topFlags are the options of "porteiro top", as the client parsed and
// checked them.
type topFlags = cli.TopOptions

// Run runs top with options o: batch or interactive. It is what
// porteiro-top runs for "porteiro top" (cli.MainTop).
func Run(env *cmdkit.Env, o *cli.TopOptions) error {
	if o.Batch {
		return runTopBatch(env, o)
	}
	return runTopTUI(env, o)
}

func model(f *topFlags) *top.Model {
	opts := top.Options{Policy: f.Policy}
	if f.Policy != nil {
		opts.PolicyFile = f.PolicyPath
	}
	return top.NewModel(opts)
}

func interval(f *topFlags) time.Duration { return time.Duration(f.Delay * float64(time.Second)) }

// sampleOnce takes a sample and updates the model.
func sampleOnce(ctx context.Context, s *topSampler, m *top.Model) (*top.View, error) {
	smp, err := s.Sample(ctx)
	if err != nil {
		return nil, cmdkit.Exit(cmdkit.ExitUsage, fmt.Errorf("%w; porteiro needs the sock_diag netlink interface", err))
	}
	return m.Update(smp), nil
}

func runTopBatch(env *cmdkit.Env, f *topFlags) error {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	s := newTopSampler(f)
	defer s.Close()
	m := model(f)
	host, _ := os.Hostname()
	hostNS := hostNetNS(f.ProcRoot)
	var buf bytes.Buffer
	// The first sample is the baseline that the first rates are measured
	// from; it is not printed.
	if _, err := sampleOnce(ctx, s, m); err != nil {
		return err
	}
	next := time.Now()
	for i := 0; f.Iterations == 0 || i < f.Iterations; i++ {
		next = next.Add(interval(f))
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(time.Until(next)):
		}
		v, err := sampleOnce(ctx, s, m)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		if f.Output == "ndjson" {
			err = v.WriteNDJSON(env.Stdout, host)
		} else {
			err = writeTopTextBuf(env.Stdout, &buf, v, host, hostNS, render.TerminalWidth(env.Stdout))
		}
		if err != nil {
			return fmt.Errorf("writing snapshot: %w", err)
		}
	}
	return nil
}

// hostNetNS is the network namespace of PID 1, or of porteiro when PID 1's
// is unreadable (not root).
func hostNetNS(procRoot string) uint64 {
	if ns, err := procfs.NetNS(procRoot, "1"); err == nil {
		return ns
	}
	ns, _ := procfs.NetNS(procRoot, "self")
	return ns
}

func ownersLine(v *top.View) string {
	if v.Privileged {
		return "owners complete"
	}
	return "owners incomplete (not root)"
}

func writeTopText(w io.Writer, v *top.View, host string, hostNS uint64, width int) error {
	return writeTopTextBuf(w, new(bytes.Buffer), v, host, hostNS, width)
}

// writeTopTextBuf is writeTopText with the caller's buffer, which a batch
// run reuses: a snapshot of thousands of listeners is a megabyte of text.
func writeTopTextBuf(w io.Writer, b *bytes.Buffer, v *top.View, host string, hostNS uint64, width int) error {
	b.Reset()
	b.Grow(len(v.Listeners)*160 + 1024)
	fmt.Fprintf(b, "porteiro top - %s  host %s  interval %.2fs  scan %s  %s\n",
		v.Time.Format("2006-01-02 15:04:05"), render.Escape(host), v.Interval.Seconds(), v.ScanTime.Round(time.Millisecond), ownersLine(v))
	fmt.Fprintf(b, "listeners %d  connections %d  new/s %s  in/s %s  out/s %s%s\n",
		len(v.Listeners), v.Conns, top.PerSec(v.NewPerSec), top.Rate(v.InPerSec), top.Rate(v.OutPerSec), policySummary(v))
	cols := topColumns(v, hostNS)
	rows := make([][]string, 0, len(v.Listeners))
	for i := range v.Listeners {
		rows = append(rows, listenerCells(&v.Listeners[i]))
	}
	lines := layoutTable(cols, rows, width)
	for _, l := range lines {
		b.WriteString(strings.TrimRight(l, " "))
		b.WriteByte('\n')
	}
	for _, n := range v.Notes {
		b.WriteString("note: " + render.Escape(n) + "\n")
	}
	for _, n := range policyNotes(v) {
		b.WriteString("note: " + n + "\n")
	}
	b.WriteString("note: " + v.RateNote() + "\n\n")
	_, err := w.Write(b.Bytes())
	return err
}

// policySummary is the header's word on the policy: how many listeners
// break it and how many required services do not listen; "" without one.
func policySummary(v *top.View) string {
	p := v.Policy
	if p == nil {
		return ""
	}
	s := fmt.Sprintf("  policy: %d !", p.Violations)
	if len(p.Missing) > 0 {
		s += fmt.Sprintf(", %d missing", len(p.Missing))
	}
	return s
}

// policyNotes say which required services do not listen, and how many
// listeners could not be checked.
func policyNotes(v *top.View) []string {
	p := v.Policy
	if p == nil {
		return nil
	}
	var out []string
	for _, m := range p.Missing {
		out = append(out, "policy: "+render.Escape(m.Message))
	}
	if p.Unverified > 0 {
		out = append(out, fmt.Sprintf("policy: %d listener(s) not checked: a rule needs their owners, which could not be seen (run as root)", p.Unverified))
	}
	return out
}

// topColumns lists the columns to show: "!" only with a policy, NETNS only
// when some listener is outside the host's network namespace.
func topColumns(v *top.View, hostNS uint64) []top.Column {
	cols := []top.Column{top.ColPolicy, top.ColProto, top.ColLocal, top.ColExposure, top.ColNetNS, top.ColPID, top.ColUser,
		top.ColCommand, top.ColConns, top.ColNew, top.ColIn, top.ColOut, top.ColTopPeer}
	if v.Policy == nil {
		cols = cols[1:]
	}
	for i := range v.Listeners {
		if v.Listeners[i].Socket.NetNS != hostNS {
			return cols
		}
	}
	return slices.DeleteFunc(cols, func(c top.Column) bool { return c == top.ColNetNS })
}

// listenerCells are a listener's cells, indexed by top.Column, escaped.
func listenerCells(l *top.Listener) []string {
	s := &l.Socket
	c := make([]string, top.NumColumns)
	if l.Violation != nil {
		c[top.ColPolicy] = "!"
	}
	c[top.ColProto] = string(s.Proto)
	c[top.ColLocal] = render.Local(s)
	c[top.ColExposure] = render.Escape(render.Exposure(s))
	c[top.ColNetNS] = strconv.FormatUint(s.NetNS, 10)
	if len(s.Processes) == 0 {
		c[top.ColPID], c[top.ColUser] = "-", "-"
		c[top.ColCommand] = render.Unattributed(s.UnattributedReason)
	} else {
		c[top.ColPID] = uniqueJoin(s.Processes, func(p *inventory.Process) string { return strconv.Itoa(p.PID) })
		c[top.ColUser] = render.Escape(uniqueJoin(s.Processes, func(p *inventory.Process) string { return p.User }))
		c[top.ColCommand] = render.Escape(s.Processes[0].CommandLine())
	}
	trafficCells(c, l.Conns, l.NewPerSec, l.InPerSec, l.OutPerSec, l.TopPeer)
	return c
}

// trafficCells fills the columns from CONNS to TOP PEER.
func trafficCells(c []string, conns int, newPerSec, in, out float64, peer *top.Peer) {
	c[top.ColConns] = strconv.Itoa(conns)
	c[top.ColNew] = top.PerSec(newPerSec)
	c[top.ColIn] = top.Rate(in)
	c[top.ColOut] = top.Rate(out)
	c[top.ColTopPeer] = top.PeerString(peer)
}

func groupCells(g *top.Group) []string {
	c := make([]string, top.NumColumns)
	for i := range g.Listeners {
		if g.Listeners[i].Violation != nil {
			c[top.ColPolicy] = "!"
		}
	}
	c[top.ColProto] = strconv.Itoa(len(g.Listeners))
	c[top.ColLocal] = g.Ports()
	c[top.ColExposure] = worstExposure(g)
	c[top.ColNetNS] = strconv.FormatUint(g.Listeners[0].Socket.NetNS, 10)
	if p := g.Process; p != nil {
		c[top.ColPID] = strconv.Itoa(p.PID)
		c[top.ColUser] = render.Escape(p.User)
		c[top.ColCommand] = render.Escape(p.CommandLine())
	} else {
		c[top.ColPID], c[top.ColUser], c[top.ColCommand] = "-", "-", "(no process seen)"
	}
	trafficCells(c, g.Conns, g.NewPerSec, g.InPerSec, g.OutPerSec, g.TopPeer)
	return c
}

func worstExposure(g *top.Group) string {
	rank := map[inventory.Exposure]int{inventory.ExposureLoopback: 1, inventory.ExposureSpecific: 2, inventory.ExposureAll: 3}
	var e inventory.Exposure
	for i := range g.Listeners {
		if x := g.Listeners[i].Socket.Exposure; rank[x] > rank[e] {
			e = x
		}
	}
	return string(e)
}

func uniqueJoin(ps []inventory.Process, f func(*inventory.Process) string) string {
	var out []string
	for i := range ps {
		if v := f(&ps[i]); v != "" && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return strings.Join(out, ",")
}

// Column layout: widths capped so that one long value does not take the
// screen; COMMAND takes what is left. When the screen is too narrow the
// least useful columns go first.
var (
	colMax = map[top.Column]int{top.ColLocal: 28, top.ColUser: 10, top.ColPID: 12, top.ColTopPeer: 24, top.ColNetNS: 10, top.ColExposure: 16, top.ColPolicy: 1}
	// dropOrder: the columns given up, in order, when the width is short.
	dropOrder   = []top.Column{top.ColTopPeer, top.ColExposure, top.ColNetNS, top.ColUser, top.ColNew, top.ColPID}
	rightAlign  = map[top.Column]bool{top.ColConns: true, top.ColNew: true, top.ColIn: true, top.ColOut: true, top.ColPID: true}
	minCommand  = 12
	commandWide = 60 // COMMAND's width when the output has no width (a pipe)
)

// layoutTable renders the header and rows (cells indexed by top.Column) to
// lines of at most width cells (0: no limit). Cells are escaped already.
func layoutTable(cols []top.Column, rows [][]string, width int) []string {
	// Widths and alignment in arrays indexed by column: they are read for
	// every cell, thousands of rows a refresh.
	var w [top.NumColumns]int
	var right [top.NumColumns]bool
	for c, r := range rightAlign {
		right[c] = r
	}
	for _, c := range cols {
		w[c] = cellWidth(c.String())
	}
	for _, r := range rows {
		for _, c := range cols {
			if n := cellWidth(r[c]); n > w[c] {
				w[c] = n
			}
		}
	}
	for c, m := range colMax {
		w[c] = min(w[c], m)
	}
	fixed := func() int {
		n := 0
		for _, c := range cols {
			if c != top.ColCommand {
				n += w[c] + 1
			}
		}
		return n
	}
	if width > 0 {
		for _, d := range dropOrder {
			if fixed()+minCommand <= width {
				break
			}
			cols = slices.DeleteFunc(cols, func(c top.Column) bool { return c == d })
		}
		w[top.ColCommand] = max(min(w[top.ColCommand], width-fixed()), 1)
	} else {
		w[top.ColCommand] = min(w[top.ColCommand], commandWide)
	}
	// One reused line buffer, padding appended in place: at thousands of
	// rows a refresh, per-cell strings show in a profile.
	var buf []byte
	line := func(cells func(top.Column) string) string {
		buf = buf[:0]
		for i, c := range cols {
			if i > 0 {
				buf = append(buf, ' ')
			}
			buf = appendCell(buf, cells(c), w[c], right[c])
		}
		s := string(buf)
		if width > 0 && cellWidth(s) > width {
			s = ansi.Truncate(s, width, "")
		}
		return s
	}
	out := make([]string, 0, len(rows)+1)
	out = append(out, line(func(c top.Column) string { return c.String() }))
	for _, r := range rows {
		out = append(out, line(func(c top.Column) string { return r[c] }))
	}
	return out
}

const spaces = "                                                                                "

// appendCell appends s padded or truncated to exactly n cells.
func appendCell(b []byte, s string, n int, right bool) []byte {
	sw := cellWidth(s)
	if sw > n {
		s = ansi.Truncate(s, n, "…")
		sw = cellWidth(s)
	}
	pad := max(n-sw, 0)
	if !right {
		b = append(b, s...)
	}
	for pad > 0 {
		k := min(pad, len(spaces))
		b = append(b, spaces[:k]...)
		pad -= k
	}
	if right {
		b = append(b, s...)
	}
	return b
}

// cellWidth is ansi.StringWidth with a fast path for ASCII, which is
// nearly every cell; the grapheme segmentation shows in a profile at
// thousands of rows a second.
func cellWidth(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 || s[i] == 0x1b {
			return ansi.StringWidth(s)
		}
	}
	return len(s)
}

// fit pads or truncates s to exactly n cells.
func fit(s string, n int, right bool) string { return string(appendCell(nil, s, n, right)) }

// The interactive view.

type topMode int

const (
	modeTable topMode = iota
	modeFilter
	modeDetails
	modeConfirm
)

type sampleMsg struct {
	view *top.View
	err  error
}

type tickMsg struct{}

type topUI struct {
	f       *topFlags
	sampler *topSampler
	model   *top.Model
	host    string
	hostNS  uint64
	noColor bool

	width, height int
	view          *top.View
	err           error

	sortCol top.Column
	reverse bool
	grouped bool
	filter  top.Filter
	input   lineInput

	mode     topMode
	selected int
	offset   int
	// selID keeps the selection on the same row across refreshes.
	selID      rowID
	filterText string
	cache      rowCache
	status     string
	pending    []inventory.Process // what k will signal, once confirmed
}

func newTopUI(f *topFlags) *topUI {
	in := lineInput{prompt: "/", placeholder: "port:443 proc:nginx user: netns: or any word"}
	u := &topUI{
		f:       f,
		sampler: newTopSampler(f),
		model:   model(f),
		hostNS:  hostNetNS(f.ProcRoot),
		noColor: os.Getenv("NO_COLOR") != "",
		input:   in,
		width:   80,
		height:  24,
	}
	u.host, _ = os.Hostname()
	return u
}

func runTopTUI(env *cmdkit.Env, f *topFlags) error {
	u := newTopUI(f)
	defer u.sampler.Close()
	// 20 frames a second at most: the table changes once a refresh, and
	// keys feel no slower; the default 60 wakes the program for nothing.
	opts := []tea.ProgramOption{tea.WithOutput(env.Stdout), tea.WithFPS(20)}
	if r, ok := env.Stdin.(*os.File); ok {
		opts = append(opts, tea.WithInput(r))
	}
	// Bubble Tea restores the terminal on a normal quit, on SIGINT and
	// SIGTERM, and when Update or View panics (the panic is then returned
	// as ErrProgramPanic, printed after the terminal is back).
	_, err := tea.NewProgram(u, opts...).Run()
	switch {
	case err == nil, errors.Is(err, tea.ErrInterrupted):
		if u.err != nil {
			return u.err
		}
		return nil
	}
	return fmt.Errorf("terminal: %w", err)
}

func (u *topUI) sample() tea.Cmd {
	return func() tea.Msg {
		v, err := sampleOnce(context.Background(), u.sampler, u.model)
		return sampleMsg{view: v, err: err}
	}
}

func (u *topUI) Init() tea.Cmd { return u.sample() }

func (u *topUI) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		u.width, u.height = msg.Width, msg.Height
		return u, nil
	case sampleMsg:
		if msg.err != nil {
			if u.view == nil {
				u.err = msg.err
				return u, tea.Quit
			}
			u.status = "refresh failed: " + render.Escape(msg.err.Error())
		} else {
			u.view = msg.view
			u.keepSelection()
		}
		return u, tea.Tick(interval(u.f), func(time.Time) tea.Msg { return tickMsg{} })
	case tickMsg:
		return u, u.sample()
	case tea.KeyPressMsg:
		return u.key(msg)
	}
	return u, nil
}

func (u *topUI) key(msg tea.KeyPressMsg) (tea.Model, tea.Cmd) {
	k := msg.String()
	if k == "ctrl+c" {
		return u, tea.Quit
	}
	switch u.mode {
	case modeFilter:
		switch k {
		case "enter":
			u.mode = modeTable
			return u, nil
		case "esc":
			u.mode = modeTable
			u.setFilter("")
			return u, nil
		}
		u.input.key(msg)
		u.filter, u.filterText = top.ParseFilter(u.input.value), u.input.value
		u.selected, u.offset = 0, 0
		return u, nil
	case modeConfirm:
		if k == "y" || k == "Y" {
			u.status = u.signalPending()
		} else {
			u.status = "nothing signalled"
		}
		u.pending = nil
		u.mode = modeTable
		return u, nil
	case modeDetails:
		switch k {
		case "q":
			return u, tea.Quit
		case "esc", "enter", "backspace", "left":
			u.mode = modeTable
		case "k":
			u.askKill()
		}
		return u, nil
	}
	n := u.rowCount()
	switch k {
	case "q":
		return u, tea.Quit
	case "/":
		u.mode = modeFilter
		u.status = ""
		return u, nil
	case "esc":
		u.setFilter("")
		u.status = ""
	case "s", ">":
		u.sortCol = u.sortCol.Next()
		for !u.sortable(u.sortCol) {
			u.sortCol = u.sortCol.Next()
		}
	case "<":
		u.sortCol = u.sortCol.Prev()
		for !u.sortable(u.sortCol) {
			u.sortCol = u.sortCol.Prev()
		}
	case "r":
		u.reverse = !u.reverse
	case "p":
		u.grouped = !u.grouped
		u.selected, u.offset = 0, 0
	case "enter":
		if n > 0 {
			u.mode = modeDetails
		}
	case "k":
		u.askKill()
	case "up":
		u.selected--
	case "down":
		u.selected++
	case "pgup":
		u.selected -= u.tableRows()
	case "pgdown":
		u.selected += u.tableRows()
	case "home":
		u.selected = 0
	case "end":
		u.selected = n - 1
	}
	u.clampSelection(n)
	u.selID = u.idAt(u.selected)
	return u, nil
}

func (u *topUI) setFilter(text string) {
	u.input.value = text
	u.filter, u.filterText = top.ParseFilter(text), text
}

// sortable reports whether the sort keys go through c: not through the
// columns that are not shown.
func (u *topUI) sortable(c top.Column) bool {
	switch c {
	case top.ColNetNS:
		return u.view != nil && slices.Contains(topColumns(u.view, u.hostNS), top.ColNetNS)
	case top.ColPolicy:
		return u.f.Policy != nil
	}
	return true
}

// sortName is the sort key as the header names it.
func sortName(c top.Column) string {
	if c == top.ColPolicy {
		return "POLICY"
	}
	return c.String()
}

// rowCache is the filtered, sorted (and grouped) list, computed once per
// change of the view or of how it is shown: a host may have thousands of
// listeners, and Update and View both ask for the list.
type rowCache struct {
	view    *top.View
	sortCol top.Column
	reverse bool
	grouped bool
	filter  string
	ls      []top.Listener
	gs      []top.Group
}

// rowID identifies a row across refreshes: a listener by its socket, a
// group by its process.
type rowID struct {
	key   inventory.Key
	proto inventory.Proto
	proc  inventory.Identity
	valid bool
}

// listeners returns the visible listeners, filtered and sorted.
func (u *topUI) listeners() []top.Listener {
	ls, _ := u.rows()
	return ls
}

func (u *topUI) groups() []top.Group {
	_, gs := u.rows()
	return gs
}

func (u *topUI) rows() ([]top.Listener, []top.Group) {
	c := &u.cache
	if u.view == c.view && u.sortCol == c.sortCol && u.reverse == c.reverse && u.grouped == c.grouped && u.filterText == c.filter && c.view != nil {
		return c.ls, c.gs
	}
	*c = rowCache{view: u.view, sortCol: u.sortCol, reverse: u.reverse, grouped: u.grouped, filter: u.filterText}
	if u.view == nil {
		return nil, nil
	}
	if u.filter.Empty() && u.sortCol == top.ColTraffic && !u.reverse {
		// The model sorts by traffic already: show its list as it is.
		c.ls = u.view.Listeners
	} else {
		ls := make([]top.Listener, 0, len(u.view.Listeners))
		for i := range u.view.Listeners {
			if u.filter.Match(&u.view.Listeners[i]) {
				ls = append(ls, u.view.Listeners[i])
			}
		}
		top.SortListeners(ls, u.sortCol, u.reverse)
		c.ls = ls
	}
	if u.grouped {
		c.gs = top.GroupByProcess(c.ls)
	}
	return c.ls, c.gs
}

func (u *topUI) rowCount() int {
	ls, gs := u.rows()
	if u.grouped {
		return len(gs)
	}
	return len(ls)
}

func (u *topUI) idAt(i int) rowID {
	ls, gs := u.rows()
	if u.grouped {
		if i < 0 || i >= len(gs) {
			return rowID{}
		}
		if p := gs[i].Process; p != nil {
			return rowID{proc: p.Identity(), valid: true}
		}
		return rowID{valid: true}
	}
	if i < 0 || i >= len(ls) {
		return rowID{}
	}
	return rowID{key: ls[i].Socket.Key(), proto: ls[i].Socket.Proto, valid: true}
}

// keepSelection moves the cursor to where the selected row went after a
// refresh re-sorted the list.
func (u *topUI) keepSelection() {
	n := u.rowCount()
	if u.selID.valid {
		for i := 0; i < n; i++ {
			if u.idAt(i) == u.selID {
				u.selected = i
				break
			}
		}
	}
	u.clampSelection(n)
}

func (u *topUI) clampSelection(n int) {
	u.selected = max(min(u.selected, n-1), 0)
	rows := u.tableRows()
	if u.selected < u.offset {
		u.offset = u.selected
	}
	if u.selected >= u.offset+rows {
		u.offset = u.selected - rows + 1
	}
	u.offset = max(u.offset, 0)
}

// tableRows is how many rows fit: the screen less two header lines, the
// column header and two footer lines.
func (u *topUI) tableRows() int { return max(u.height-5, 1) }

// selectedOwners are the processes behind the selected row.
func (u *topUI) selectedOwners() (procs []inventory.Process, what string, reason inventory.Reason) {
	ls := u.listeners()
	if u.grouped {
		gs := u.groups()
		if u.selected >= len(gs) {
			return nil, "", ""
		}
		g := &gs[u.selected]
		if g.Process == nil {
			return nil, "these listeners", inventory.ReasonNoProcess
		}
		return []inventory.Process{*g.Process}, "pid " + strconv.Itoa(g.Process.PID), ""
	}
	if u.selected >= len(ls) {
		return nil, "", ""
	}
	s := &ls[u.selected].Socket
	return s.Processes, string(s.Proto) + " " + render.Local(s), s.UnattributedReason
}

func (u *topUI) askKill() {
	procs, what, reason := u.selectedOwners()
	if what == "" {
		return
	}
	if len(procs) == 0 {
		u.status = "no process to signal for " + what
		if h := reason.Hint(); h != "" {
			u.status += ": " + h
		}
		return
	}
	var parts []string
	for _, p := range procs {
		if err := cli.RefuseSignal(p); err != nil {
			u.status = render.Escape(err.Error())
			return
		}
		parts = append(parts, fmt.Sprintf("pid %d (%s, user %s)", p.PID, render.Escape(p.Name), render.Escape(p.User)))
	}
	u.pending = procs
	u.mode = modeConfirm
	u.status = "send SIGTERM to " + strings.Join(parts, ", ") + "? [y/N]"
}

// signalPending signals the confirmed processes, each only if it is still
// the process that was listed (pid and start time), as "porteiro kill" does.
func (u *topUI) signalPending() string {
	var out []string
	for _, p := range u.pending {
		if err := cli.SignalProcess(u.f.ProcRoot, p, unix.SIGTERM); err != nil {
			out = append(out, fmt.Sprintf("pid %d: %s", p.PID, render.Escape(err.Error())))
			continue
		}
		out = append(out, fmt.Sprintf("sent SIGTERM to pid %d (%s)", p.PID, render.Escape(p.Name)))
	}
	return strings.Join(out, "; ")
}

// Styles. With NO_COLOR only attributes are used (bold, faint, reverse),
// which NO_COLOR allows; a listener that breaks the policy then has only
// its "!" (red otherwise).
func (u *topUI) styles() (header, sel, newRow, gone, dim, bad lipgloss.Style) {
	header = lipgloss.NewStyle().Reverse(true)
	sel = lipgloss.NewStyle().Reverse(true).Bold(true)
	newRow = lipgloss.NewStyle().Bold(true)
	gone = lipgloss.NewStyle().Faint(true)
	dim = lipgloss.NewStyle().Faint(true)
	bad = lipgloss.NewStyle()
	if !u.noColor {
		header = header.Foreground(lipgloss.Color("6"))
		newRow = newRow.Foreground(lipgloss.Color("2"))
		gone = gone.Foreground(lipgloss.Color("8"))
		bad = bad.Foreground(lipgloss.Color("1"))
	}
	return
}

func (u *topUI) View() tea.View {
	v := tea.NewView(u.render())
	v.AltScreen = true
	v.WindowTitle = "porteiro top"
	return v
}

func (u *topUI) render() string {
	width := max(u.width, 20)
	header, sel, newRow, gone, dim, bad := u.styles()
	var lines []string
	if u.view == nil {
		return "porteiro top: taking the first sample..."
	}
	v := u.view
	ls := u.listeners()
	order := "▼"
	if u.reverse {
		order = "▲"
	}
	lines = append(lines, ansi.Truncate(fmt.Sprintf("porteiro top - %s  %s  every %gs  scan %s  %s",
		render.Escape(u.host), v.Time.Format("15:04:05"), u.f.Delay, v.ScanTime.Round(time.Millisecond), ownersLine(v)), width, "…"))
	shown := fmt.Sprintf("%d listeners", len(v.Listeners))
	if !u.filter.Empty() {
		shown = fmt.Sprintf("%d of %d listeners", len(ls), len(v.Listeners))
	}
	lines = append(lines, ansi.Truncate(fmt.Sprintf("%s  conns %d  new/s %s  in/s %s  out/s %s  sort %s%s%s%s",
		shown, v.Conns, top.PerSec(v.NewPerSec), top.Rate(v.InPerSec), top.Rate(v.OutPerSec), sortName(u.sortCol), order,
		map[bool]string{true: "  by process", false: ""}[u.grouped], policySummary(v)), width, "…"))

	if u.mode == modeDetails {
		lines = append(lines, u.details(ls, width)...)
	} else {
		cols := topColumns(v, u.hostNS)
		// Only the rows on screen get cells and a layout: widths follow
		// what is shown, and a host with thousands of listeners costs no
		// more per frame.
		n := u.rowCount()
		end := min(u.offset+u.tableRows(), n)
		start := min(u.offset, end)
		rows := make([][]string, 0, end-start)
		styles := make([]*lipgloss.Style, 0, end-start)
		for i := start; i < end; i++ {
			if u.grouped {
				rows = append(rows, groupCells(&u.groups()[i]))
				styles = append(styles, nil)
				continue
			}
			rows = append(rows, listenerCells(&ls[i]))
			switch {
			case ls[i].Gone:
				styles = append(styles, &gone)
			case ls[i].New:
				styles = append(styles, &newRow)
			case ls[i].Violation != nil && !u.noColor:
				styles = append(styles, &bad)
			default:
				styles = append(styles, nil)
			}
		}
		table := layoutTable(cols, rows, width)
		lines = append(lines, header.Render(fit(table[0], width, false)))
		for i := start; i < end; i++ {
			l := table[i-start+1]
			switch {
			case i == u.selected:
				l = sel.Render(fit(l, width, false))
			case styles[i-start] != nil:
				l = styles[i-start].Render(l)
			}
			lines = append(lines, l)
		}
		if n == 0 {
			lines = append(lines, dim.Render("(no listener matches)"))
		}
	}
	// Footer: pad so that it sits on the last two lines.
	for len(lines) < u.height-2 {
		lines = append(lines, "")
	}
	var status string
	switch {
	case u.mode == modeFilter:
		status = u.input.view(u.noColor)
	case u.status != "":
		status = u.status
	case !u.filter.Empty():
		status = "filter: " + render.Escape(u.input.value) + "   (/ to edit, Esc to clear)"
	default:
		status = "q quit  / filter  s < > sort  r reverse  p group  Enter details  k kill"
	}
	lines = append(lines, ansi.Truncate(status, width, "…"))
	note := (&top.View{}).ShortRateNote()
	if u.view != nil {
		note = u.view.ShortRateNote()
	}
	lines = append(lines, dim.Render(ansi.Truncate(note, width, "…")))
	return strings.Join(lines, "\n")
}

// details shows every owner and every connection of the selected row.
func (u *topUI) details(ls []top.Listener, width int) []string {
	var sel []top.Listener
	title := ""
	if u.grouped {
		gs := u.groups()
		if u.selected < len(gs) {
			sel = gs[u.selected].Listeners
			title = "process " + groupCells(&gs[u.selected])[top.ColPID]
		}
	} else if u.selected < len(ls) {
		sel = ls[u.selected : u.selected+1]
		title = string(sel[0].Socket.Proto) + " " + render.Local(&sel[0].Socket)
	}
	out := []string{"", "details: " + title + "   (Esc back, k kill, q quit)"}
	add := func(s string) { out = append(out, ansi.Truncate(s, width, "…")) }
	for i := range sel {
		l := &sel[i]
		s := &l.Socket
		add(fmt.Sprintf("%s %s  %s  inode %d  netns %d  conns %d  in/s %s  out/s %s  total in %s out %s",
			s.Proto, render.Local(s), render.Escape(render.Exposure(s)), s.Inode, s.NetNS, l.Conns, top.Rate(l.InPerSec), top.Rate(l.OutPerSec),
			render.HumanBytes(l.TotalIn), render.HumanBytes(l.TotalOut)))
		if x := l.Violation; x != nil {
			add("  ! policy " + x.Kind + ": " + render.Escape(x.Message))
			if x.RuleReason != "" {
				add("    rule " + render.Escape(x.Rule) + ": " + render.Escape(x.RuleReason))
			}
		}
		if len(s.Processes) == 0 {
			add("  owner: " + render.Unattributed(s.UnattributedReason) + " " + s.UnattributedReason.Hint())
		}
		for j := range s.Processes {
			p := &s.Processes[j]
			add(fmt.Sprintf("  pid %d  ppid %d  user %s  started %s  unit %s  %s", p.PID, p.PPID, render.Escape(p.User),
				render.StartTime(p.StartTime), render.Escape(dashIfEmpty(p.Unit)), render.Escape(p.CommandLine())))
		}
		top.SortConnections(l.Connections)
		if len(l.Connections) > 0 {
			add(fmt.Sprintf("  %-45s %-12s %8s %8s %9s %9s", "PEER", "STATE", "IN/s", "OUT/s", "BYTES IN", "BYTES OUT"))
		}
		for _, c := range l.Connections {
			if len(out) >= u.height-3 {
				add("  …")
				return out
			}
			mark := ""
			if c.New {
				mark = " new"
			}
			add(fmt.Sprintf("  %-45s %-12s %8s %8s %9s %9s%s", c.Remote, c.State, top.Rate(c.InPerSec), top.Rate(c.OutPerSec),
				render.HumanBytes(c.BytesIn), render.HumanBytes(c.BytesOut), mark))
		}
	}
	return out
}

func dashIfEmpty(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// lineInput is the filter's one-line editor: typed text is appended,
// Backspace removes a character, Ctrl+U clears. A full text-input widget
// (cursor movement, clipboard) would weigh more in porteiro than the
// filter needs.
type lineInput struct {
	prompt, placeholder, value string
}

func (in *lineInput) key(msg tea.KeyPressMsg) {
	switch msg.String() {
	case "backspace", "ctrl+h":
		if r := []rune(in.value); len(r) > 0 {
			in.value = string(r[:len(r)-1])
		}
		return
	case "ctrl+u":
		in.value = ""
		return
	}
	// Printable input only: keys with modifiers carry no text.
	if msg.Text != "" && len(in.value) < 256 {
		in.value += msg.Text
	}
}

func (in *lineInput) view(noColor bool) string {
	if in.value == "" {
		if noColor {
			return in.prompt + "█ " + in.placeholder
		}
		return in.prompt + "█ \x1b[2m" + in.placeholder + "\x1b[0m"
	}
	return in.prompt + render.Escape(in.value) + "█"
}

// Package render prints sockets and policy reports for people (aligned
// tables, CSV for spreadsheets) and programs (JSON, NDJSON). The JSON
// documents follow docs/schema.md and docs/check-json.md.
//
// Everything printed for a person goes through Escape: process names and
// command lines are chosen by whoever starts a process, and must not be able
// to drive the terminal. JSON stays raw data; encoding/json already escapes
// control characters.
package render

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/porteiro/porteiro/inventory"
)

// Formats accepted by -o.
var Formats = []string{"table", "wide", "json", "ndjson", "csv"}

// CheckFormat returns an error for an unknown -o value.
func CheckFormat(f string) error {
	for _, x := range Formats {
		if f == x {
			return nil
		}
	}
	return fmt.Errorf("unknown output format %q: want one of %s", f, strings.Join(Formats, ", "))
}

// Document is the JSON document of a listing.
type Document struct {
	SchemaVersion int                `json:"schema_version"`
	Time          time.Time          `json:"time"`
	Host          string             `json:"host"`
	Source        string             `json:"source"`
	Resolver      string             `json:"resolver,omitempty"`
	Privileged    bool               `json:"privileged"`
	Notes         []string           `json:"notes"`
	Sockets       []inventory.Socket `json:"sockets"`
}

// NewDocument wraps a snapshot's sockets for JSON output.
func NewDocument(snap *inventory.Snapshot, socks []inventory.Socket) Document {
	host, _ := os.Hostname()
	if socks == nil {
		socks = []inventory.Socket{}
	}
	notes := snap.Notes
	if notes == nil {
		notes = []string{}
	}
	for i := range socks {
		if socks[i].Processes == nil {
			socks[i].Processes = []inventory.Process{}
		}
	}
	return Document{SchemaVersion: inventory.SchemaVersion, Time: snap.Time, Host: host,
		Source: snap.Source, Resolver: snap.Resolver, Privileged: snap.Privileged, Notes: notes, Sockets: socks}
}

// Options tunes table output.
type Options struct {
	// Width truncates the last column to fit; 0 means no limit.
	Width int
	// Bold makes the header bold (terminals only).
	Bold bool
	// Color colours what a report marks (terminals only, unless NO_COLOR).
	Color bool
}

// TerminalWidth returns the width of w if it is a terminal, else 0.
func TerminalWidth(w io.Writer) int {
	f, ok := w.(*os.File)
	if !ok {
		return 0
	}
	ws, err := unix.IoctlGetWinsize(int(f.Fd()), unix.TIOCGWINSZ)
	if err != nil || ws.Col == 0 {
		return 0
	}
	return int(ws.Col)
}

// Sockets writes socks in the given format. Output is buffered: a listing
// of 100,000 sockets must not cost 100,000 write calls.
func Sockets(w io.Writer, format string, snap *inventory.Snapshot, socks []inventory.Socket, o Options) error {
	bw := bufio.NewWriterSize(w, 64*1024)
	if err := sockets(bw, format, snap, socks, o); err != nil {
		return err
	}
	return bw.Flush()
}

func sockets(w io.Writer, format string, snap *inventory.Snapshot, socks []inventory.Socket, o Options) error {
	switch format {
	case "json":
		return streamDocument(w, NewDocument(snap, socks))
	case "ndjson":
		var b []byte
		for i := range socks {
			if socks[i].Processes == nil {
				socks[i].Processes = []inventory.Process{}
			}
			b = append(inventory.AppendSocketJSON(b[:0], &socks[i]), '\n')
			if _, err := w.Write(b); err != nil {
				return err
			}
		}
		return nil
	case "csv":
		return writeCSV(w, socks)
	case "wide":
		return writeWide(w, socks, o)
	default:
		return writeTable(w, socks, o)
	}
}

// Local formats a socket's local endpoint: "*:22" for a dual-stack
// wildcard, "0.0.0.0:22" and "[::]:22" for single-family ones.
func Local(s *inventory.Socket) string {
	// Built in a stack buffer: one allocation per cell, not three.
	var buf [64]byte
	return string(appendLocal(buf[:0], s))
}

func appendLocal(b []byte, s *inventory.Socket) []byte {
	if s.DualStack {
		return strconv.AppendUint(append(b, "*:"...), uint64(s.Local.Port), 10)
	}
	return appendEndpoint(b, s.Local)
}

func endpoint(e inventory.Endpoint) string {
	var buf [64]byte
	return string(appendEndpoint(buf[:0], e))
}

func appendEndpoint(b []byte, e inventory.Endpoint) []byte {
	switch {
	case !e.Address.IsValid():
		b = append(b, '*')
	case e.Address.Is4():
		b = e.Address.AppendTo(b)
	default:
		b = append(e.Address.AppendTo(append(b, '[')), ']')
	}
	b = append(b, ':')
	return strconv.AppendUint(b, uint64(e.Port), 10)
}

// Remote formats the remote endpoint, "*" when there is none.
func Remote(s *inventory.Socket) string {
	if s.Remote.Port == 0 && (!s.Remote.Address.IsValid() || s.Remote.Address.IsUnspecified()) {
		return "*"
	}
	return endpoint(s.Remote)
}

// Exposure formats the exposure column. Exposure is about the socket's
// own network namespace: a container's 0.0.0.0 is every interface of the
// container, not of the host, and the cell says so: "all (in netns web-1)".
func Exposure(s *inventory.Socket) string {
	e := string(s.Exposure)
	if s.Interface != "" {
		e += "%" + s.Interface
	}
	if Foreign(s) && s.Exposure != inventory.ExposureLoopback {
		e += " (in " + s.NamespaceLabel() + ")"
	}
	return e
}

// Foreign reports whether s is in another network namespace than the
// host's.
func Foreign(s *inventory.Socket) bool { return s.NetNSName != "" && s.NetNSName != "host" }

// AnyForeign reports whether a NETNS column is needed: some socket is
// outside the host namespace.
func AnyForeign(socks []inventory.Socket) bool {
	for i := range socks {
		if Foreign(&socks[i]) {
			return true
		}
	}
	return false
}

// NetNS is the NETNS cell: the namespace's name, "-" when unknown.
func NetNS(s *inventory.Socket) string { return dash(s.NetNSName) }

// Unattributed is the table cell shown instead of a process:
// "(not permitted)". The words are inventory.Reason.Short's.
func Unattributed(r inventory.Reason) string {
	if s := r.Short(); s != "" {
		return "(" + s + ")"
	}
	return "-"
}

func joinUnique(ps []inventory.Process, f func(p *inventory.Process) string) string {
	if len(ps) == 1 {
		return f(&ps[0]) // the common case, and no allocation
	}
	var out []string
	for i := range ps {
		if v := f(&ps[i]); v != "" && !slices.Contains(out, v) {
			out = append(out, v)
		}
	}
	return strings.Join(out, ",")
}

// writeTable and writeWide stream the listing (Stream): a table of every
// socket of a big host would otherwise hold all of its text at once.
func writeTable(w io.Writer, socks []inventory.Socket, o Options) error {
	header := []string{"PROTO", "LOCAL", "EXPOSURE", "STATE", "PID", "USER", "PROCESS", "COMMAND"}
	withNS := AnyForeign(socks)
	if withNS {
		header = slices.Insert(header, 2, "NETNS")
	}
	var (
		cells []string
		local []byte
		procs procCells
	)
	return Stream(w, o, header, len(socks), func(i int, t *Table) {
		s := &socks[i]
		// The local endpoint is a view of a reused buffer: t.Row copies
		// it before the next row writes there.
		local = appendLocal(local[:0], s)
		cells = append(cells[:0], string(s.Proto), unsafe.String(unsafe.SliceData(local), len(local)))
		if withNS {
			cells = append(cells, NetNS(s))
		}
		cells = append(cells, Exposure(s), string(s.State))
		if len(s.Processes) == 0 {
			t.Row(append(cells, "-", "-", "-", Unattributed(s.UnattributedReason))...)
			return
		}
		pids := joinUnique(s.Processes, procs.pid)
		users := joinUnique(s.Processes, func(p *inventory.Process) string { return p.User })
		names := joinUnique(s.Processes, func(p *inventory.Process) string { return p.Name })
		cells = append(cells, pids, users, names)
		if t.Measuring() {
			t.Row(cells...) // the command is not measured
			return
		}
		cmd := procs.command(&s.Processes[0])
		for j := 1; j < len(s.Processes); j++ {
			if c := procs.command(&s.Processes[j]); !strings.Contains(cmd, c) {
				cmd += " | " + c
			}
		}
		t.Row(append(cells, cmd)...)
	})
}

// procCells keeps the cells of each process that a listing prints once
// per socket: the sockets a process holds share its ProcessInfo, so a
// process of 1,000 sockets formats its pid and joins its command line
// once, not 1,000 times.
type procCells map[*inventory.ProcessInfo]*[2]string

func (c *procCells) get(p *inventory.Process) *[2]string {
	if *c == nil {
		*c = procCells{}
	}
	e := (*c)[p.ProcessInfo]
	if e == nil {
		e = &[2]string{strconv.Itoa(p.PID)}
		(*c)[p.ProcessInfo] = e
	}
	return e
}

func (c *procCells) pid(p *inventory.Process) string { return c.get(p)[0] }

func (c *procCells) command(p *inventory.Process) string {
	e := c.get(p)
	if e[1] == "" {
		e[1] = p.CommandLine() // never empty: "[name]" at least
	}
	return e[1]
}

func writeWide(w io.Writer, socks []inventory.Socket, o Options) error {
	header := []string{"PROTO", "LOCAL", "REMOTE", "EXPOSURE", "STATE", "INODE", "PID", "PPID", "USER", "FDS", "STARTED", "UNIT", "CONTAINER", "EXE", "COMMAND"}
	withNS := AnyForeign(socks)
	if withNS {
		header = slices.Insert(header, 3, "NETNS")
	}
	var cells []string
	var fds []byte
	return Stream(w, o, header, len(socks), func(i int, t *Table) {
		s := &socks[i]
		cells = append(cells[:0], string(s.Proto), Local(s), Remote(s))
		if withNS {
			cells = append(cells, NetNS(s))
		}
		cells = append(cells, Exposure(s), string(s.State), strconv.FormatUint(s.Inode, 10))
		n := len(cells)
		if len(s.Processes) == 0 {
			t.Row(append(cells, "-", "-", "-", "-", "-", "-", "-", "-", Unattributed(s.UnattributedReason))...)
			return
		}
		// One row per process.
		for j := range s.Processes {
			p := &s.Processes[j]
			fds = fds[:0]
			for k, fd := range p.FDs {
				if k > 0 {
					fds = append(fds, ',')
				}
				fds = strconv.AppendInt(fds, int64(fd), 10)
			}
			exe := p.Exe
			if p.ExeDeleted {
				exe += " (deleted)"
			}
			cells = append(cells[:n], strconv.Itoa(p.PID), strconv.Itoa(p.PPID), dash(p.User), string(fds),
				StartTime(p.StartTime), dash(p.Unit), dash(short(p.Container)), dash(exe))
			if !t.Measuring() {
				cells = append(cells, p.CommandLine())
			}
			t.Row(cells...)
		}
	})
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// StartTime formats a start time like ps: the time today, else the date.
func StartTime(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	now := time.Now()
	if y, m, d := now.Date(); t.Year() == y && t.Month() == m && t.Day() == d {
		return t.Format("15:04:05")
	}
	return t.Format("2006-01-02 15:04")
}

// writeCSV writes one row per (socket, process). Cells are escaped for
// spreadsheets (csvCell): the file is meant to be opened by people.
func writeCSV(w io.Writer, socks []inventory.Socket) error {
	cw := csv.NewWriter(w)
	row := make([]string, 0, 19)
	write := func(cells ...string) {
		row = row[:0]
		for _, c := range cells {
			row = append(row, csvCell(c))
		}
		cw.Write(row)
	}
	write("proto", "family", "state", "local_address", "local_port", "remote_address", "remote_port",
		"exposure", "dual_stack", "inode", "netns", "netns_name", "pid", "user", "name", "exe", "cmdline", "unit", "container", "unattributed_reason")
	for i := range socks {
		s := &socks[i]
		base := []string{string(s.Proto), string(s.Family), string(s.State), addr(s.Local), strconv.Itoa(int(s.Local.Port)),
			addr(s.Remote), strconv.Itoa(int(s.Remote.Port)), string(s.Exposure), strconv.FormatBool(s.DualStack),
			strconv.FormatUint(s.Inode, 10), strconv.FormatUint(s.NetNS, 10), s.NetNSName}
		if len(s.Processes) == 0 {
			write(append(base, "", "", "", "", "", "", "", string(s.UnattributedReason))...)
			continue
		}
		for j := range s.Processes {
			p := &s.Processes[j]
			write(append(base, strconv.Itoa(p.PID), p.User, p.Name, p.Exe, p.CommandLine(), p.Unit, p.Container, "")...)
		}
	}
	cw.Flush()
	return cw.Error()
}

func addr(e inventory.Endpoint) string {
	if !e.Address.IsValid() {
		return ""
	}
	return e.Address.String()
}

// HumanBytes formats a byte count as ps-like "7.2M".
func HumanBytes(n uint64) string {
	switch {
	case n >= 1<<30:
		return strconv.FormatFloat(float64(n)/(1<<30), 'f', 1, 64) + "G"
	case n >= 1<<20:
		return strconv.FormatFloat(float64(n)/(1<<20), 'f', 1, 64) + "M"
	case n >= 1<<10:
		return strconv.FormatFloat(float64(n)/(1<<10), 'f', 0, 64) + "K"
	}
	return strconv.FormatUint(n, 10)
}

// streamDocument writes doc exactly as json.Encoder with a two-space indent
// would, but socket by socket: the header is encoded with an empty socket
// list, then each socket goes through one reused buffer. The whole
// document is never in memory, only the largest socket.
func streamDocument(w io.Writer, doc Document) error {
	socks := doc.Sockets
	doc.Sockets = []inventory.Socket{}
	var hdr bytes.Buffer
	enc := json.NewEncoder(&hdr)
	enc.SetIndent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return err
	}
	if len(socks) == 0 {
		_, err := w.Write(hdr.Bytes())
		return err
	}
	// The header ends with `"sockets": []` and the closing brace.
	const tail = "[]\n}\n"
	h := hdr.Bytes()
	if !bytes.HasSuffix(h, []byte(tail)) {
		return fmt.Errorf("encoding the document: unexpected header ending %q", h[max(0, len(h)-20):])
	}
	if _, err := w.Write(h[:len(h)-len(tail)]); err != nil {
		return err
	}
	// Each socket is written indented as json.Indent would indent it,
	// directly (inventory.SocketIndenter), into one reused buffer.
	var out []byte
	ind := inventory.NewSocketIndenter("    ", "  ")
	for i := range socks {
		if i == 0 {
			out = append(out[:0], "[\n    "...)
		} else {
			out = append(out[:0], ",\n    "...)
		}
		out = ind.Append(out, &socks[i])
		if _, err := w.Write(out); err != nil {
			return err
		}
	}
	_, err := io.WriteString(w, "\n  ]\n}\n")
	return err
}

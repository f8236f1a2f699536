package render

import (
	"encoding/json"
	"io"
	"strconv"
	"strings"

	"github.com/porteiro/porteiro/internal/localapi"
	"github.com/porteiro/porteiro/inventory"
)

// TracePrinter writes listener events one line at a time, as they come:
// an aligned table (names escaped), or one JSON object per line. Both
// `porteiro trace` (from the daemon) and `porteirod trace` (from the
// kernel) print with it.
type TracePrinter struct {
	w      io.Writer
	ndjson bool
	// open remembers the opened events by socket cookie, to complete the
	// closed ones (a UDP release or a TCP close knows less).
	open   map[uint64]localapi.TraceEvent
	widths [7]int
}

// NewTracePrinter returns a printer for format "table" or "ndjson"; the
// table's header is written at once.
func NewTracePrinter(w io.Writer, format string) *TracePrinter {
	p := &TracePrinter{w: w, ndjson: format == "ndjson", open: map[uint64]localapi.TraceEvent{}}
	if !p.ndjson {
		p.header()
	}
	return p
}

// complete fills what a closed event lacks from its opened event.
func (p *TracePrinter) complete(ev *localapi.TraceEvent) {
	switch ev.Kind {
	case "opened":
		if len(p.open) > 1<<16 { // a bound on memory if closes are missed
			clear(p.open)
		}
		p.open[ev.Cookie] = *ev
	case "closed":
		o, ok := p.open[ev.Cookie]
		if !ok {
			return
		}
		delete(p.open, ev.Cookie)
		if ev.Port == 0 {
			ev.Port = o.Port
		}
		if !ev.Address.IsValid() || (ev.Address.IsUnspecified() && !o.Address.IsUnspecified()) {
			ev.Address = o.Address
		}
	}
}

var traceHeader = [...]string{"TIME", "EVENT", "PROTO", "LOCAL", "NETNS", "PID", "USER", "COMMAND"}

func (p *TracePrinter) header() {
	for i := range p.widths {
		p.widths[i] = len(traceHeader[i])
	}
	// Room for the usual values, so that the columns rarely move.
	p.widths[0], p.widths[1], p.widths[3], p.widths[4], p.widths[5], p.widths[6] = 12, 6, 21, 10, 7, 8
	p.line(traceHeader[:])
}

// line pads every cell but the last to its column's width. A cell wider
// than its column widens it for the lines that follow: a stream cannot
// measure what is still to come.
func (p *TracePrinter) line(cells []string) error {
	var b strings.Builder
	for i, c := range cells {
		if i == len(cells)-1 {
			b.WriteString(c)
			break
		}
		n := Width(c)
		if n > p.widths[i] {
			p.widths[i] = n
		}
		b.WriteString(c)
		b.WriteString(strings.Repeat(" ", p.widths[i]-n+2))
	}
	b.WriteByte('\n')
	_, err := io.WriteString(p.w, b.String())
	return err
}

// Print writes one event. An error means the output is gone (trace |
// head): the caller stops.
func (p *TracePrinter) Print(ev localapi.TraceEvent) error {
	p.complete(&ev)
	if ev.User == "" {
		ev.User = inventory.UserName(ev.UID)
	}
	if p.ndjson {
		b, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		_, err = p.w.Write(append(b, '\n'))
		return err
	}
	pid := "-"
	if ev.PID > 0 {
		pid = strconv.Itoa(ev.PID)
	}
	cmd := "[" + ev.Comm + "]"
	if len(ev.Cmdline) > 0 {
		cmd = (&inventory.ProcessInfo{Cmdline: ev.Cmdline}).CommandLine()
	}
	local := inventory.Endpoint{Address: ev.Address, Port: ev.Port}.String()
	if ev.Family == string(inventory.IPv6) && ev.Address.IsUnspecified() && !ev.DualStack {
		local = "[::]:" + strconv.Itoa(int(ev.Port)) // IPv6 only, not every address
	}
	return p.line([]string{
		ev.Time.Local().Format("15:04:05.000"),
		ev.Kind,
		ev.Proto,
		local,
		strconv.FormatUint(ev.NetNS, 10),
		pid,
		Escape(ev.User),
		Escape(cmd),
	})
}

package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"os/user"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/spf13/cobra"

	"github.com/porteiro/porteiro/internal/bpfevents"
	"github.com/porteiro/porteiro/internal/render"
	"github.com/porteiro/porteiro/internal/services"
	"github.com/porteiro/porteiro/internal/target"
	"github.com/porteiro/porteiro/inventory"
)

func init() { register(62, newTraceCmd) }

type traceFlags struct {
	output string
	ports  []string
	// ready, if set, is called once the programs are attached: tests wait
	// for it before they open sockets.
	ready func()
}

func newTraceCmd(env *Env) *cobra.Command {
	f := &traceFlags{}
	c := &cobra.Command{
		Use:   "trace",
		Short: "Stream listeners as they open and close, from the kernel",
		Long: `Print every TCP listener and every bound UDP socket of this host the moment it
opens or closes, with the process that did it: pid, user, command. The kernel
reports each one through small BPF programs, so a listener that lives for a
millisecond is seen too, in every network namespace and container. Ctrl-C
stops it.

Columns: TIME, EVENT (opened or closed), PROTO, LOCAL (address:port; *
is every address), NETNS (the network namespace's inode), PID, USER, COMMAND
(the command line if the process is still there when the event is read,
else the kernel's short name in brackets). For "closed", PID and USER are of
whoever closed the socket, which may not be its owner. Names are escaped:
control characters and bidi overrides print as \x1b, \u202e and so on.

Not seen: UDP sockets that get a port without bind() (sendto on a fresh
socket), and the release of UDP sockets bound before trace started. Use
"porteiro list" for the whole picture at one moment.

Needs root, or CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN, on a kernel with BTF
(Linux 6.10 or newer). When the kernel cannot keep up, trace says on stderr
how many events were lost.

Exit status: 0 when stopped by Ctrl-C or SIGTERM; 2 on bad input, when the
privileges or the kernel features are missing (the message says which), or
when reading the events fails.`,
		Example: `  sudo porteiro trace
  sudo porteiro trace --port 22,80,8000-8100
  sudo porteiro trace -o ndjson | jq -c 'select(.kind == "opened")'`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runTrace(ctx, env, f, bpfevents.Options{})
		},
	}
	c.Flags().StringVarP(&f.output, "output", "o", "table", "output format: table, ndjson")
	c.Flags().StringSliceVarP(&f.ports, "port", "p", nil, "only these local ports, repeatable or comma-separated: 22,80,8000-8100,ssh")
	return c
}

// runTrace streams events until ctx ends. A cancelled ctx is a clean stop.
func runTrace(ctx context.Context, env *Env, f *traceFlags, opts bpfevents.Options) error {
	if f.output != "table" && f.output != "ndjson" {
		return usageErrorf("unknown output format %q: want table or ndjson", f.output)
	}
	var ports []target.Range
	if len(f.ports) > 0 {
		rs, err := target.ParsePorts(strings.Join(f.ports, ","), services.System())
		if err != nil {
			return usageErrorf("--port: %v", err)
		}
		ports = rs
	}
	src, err := bpfevents.Open(opts)
	if err != nil {
		var ce *bpfevents.CapabilityError
		if errors.As(err, &ce) {
			return usageErrorf("trace needs %s: run it as root, or grant CAP_BPF, CAP_PERFMON and CAP_NET_ADMIN", strings.Join(ce.Missing, ", "))
		}
		return exitWith(ExitUsage, fmt.Errorf("trace: %w", err))
	}
	defer src.Close()

	// Lost events are reported on stderr as they happen, once a second at
	// most, so a full ring buffer never goes unnoticed.
	var wg sync.WaitGroup
	done := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		reportDrops(env.Stderr, src, done)
	}()
	defer func() { close(done); wg.Wait() }()

	p := &tracePrinter{w: env.Stdout, ndjson: f.output == "ndjson", users: map[uint32]string{},
		open: map[uint64]bpfevents.Event{}}
	if !p.ndjson {
		p.header()
	}
	if f.ready != nil {
		f.ready()
	}
	for {
		ev, err := src.Read(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			if errors.Is(err, os.ErrClosed) {
				return nil
			}
			// A record that does not decode is a bug of porteiro's; say so
			// and go on with the next.
			if errors.Is(err, bpfevents.ErrBadRecord) {
				fmt.Fprintf(env.Stderr, "porteiro: %v\n", err)
				continue
			}
			return exitWith(ExitUsage, fmt.Errorf("trace: %w", err))
		}
		p.complete(&ev)
		if ports != nil && !target.InRanges(ev.Port, ports) {
			continue
		}
		if err := p.print(&ev); err != nil {
			return nil // stdout closed (trace | head): stop quietly
		}
	}
}

func reportDrops(w io.Writer, src *bpfevents.Source, done <-chan struct{}) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	var seen uint64
	for {
		select {
		case <-done:
			return
		case <-t.C:
		}
		if n := src.Drops(); n > seen {
			fmt.Fprintf(w, "porteiro: %d event(s) lost: the kernel's ring buffer was full (%d in all)\n", n-seen, n)
			seen = n
		}
	}
}

// tracePrinter writes events one line at a time, as they come.
type tracePrinter struct {
	w      io.Writer
	ndjson bool
	users  map[uint32]string
	// open remembers the opened events by socket cookie, to complete the
	// closed ones (a UDP release or a TCP close knows less).
	open   map[uint64]bpfevents.Event
	widths [7]int
}

// complete fills what a closed event lacks from its opened event.
func (p *tracePrinter) complete(ev *bpfevents.Event) {
	switch ev.Kind {
	case bpfevents.Opened:
		if len(p.open) > 1<<16 { // a bound on memory if closes are missed
			clear(p.open)
		}
		p.open[ev.Cookie] = *ev
	case bpfevents.Closed:
		o, ok := p.open[ev.Cookie]
		if !ok {
			return
		}
		delete(p.open, ev.Cookie)
		if ev.Port == 0 {
			ev.Port = o.Port
		}
		if !ev.Addr.IsValid() || (ev.Addr.IsUnspecified() && !o.Addr.IsUnspecified()) {
			ev.Addr = o.Addr
		}
	}
}

func (p *tracePrinter) user(uid uint32) string {
	if name, ok := p.users[uid]; ok {
		return name
	}
	name := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(name); err == nil {
		name = u.Username
	}
	p.users[uid] = name
	return name
}

var traceHeader = [...]string{"TIME", "EVENT", "PROTO", "LOCAL", "NETNS", "PID", "USER", "COMMAND"}

func (p *tracePrinter) header() {
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
func (p *tracePrinter) line(cells []string) error {
	var b strings.Builder
	for i, c := range cells {
		if i == len(cells)-1 {
			b.WriteString(c)
			break
		}
		n := utf8.RuneCountInString(c)
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

// traceJSON is one line of -o ndjson: the event and the user's name.
type traceJSON struct {
	*bpfevents.Event
	User string `json:"user"`
}

func (p *tracePrinter) print(ev *bpfevents.Event) error {
	if p.ndjson {
		b, err := json.Marshal(traceJSON{Event: ev, User: p.user(ev.UID)})
		if err != nil {
			return err
		}
		_, err = p.w.Write(append(b, '\n'))
		return err
	}
	pid, usr := "-", p.user(ev.UID)
	if ev.PID > 0 {
		pid = strconv.Itoa(ev.PID)
	}
	cmd := "[" + ev.Comm + "]"
	if len(ev.Cmdline) > 0 {
		cmd = (&inventory.Process{Cmdline: ev.Cmdline}).CommandLine()
	}
	local := ev.Endpoint().String()
	if ev.Family == inventory.IPv6 && ev.Addr.IsUnspecified() && !ev.DualStack {
		local = "[::]:" + strconv.Itoa(int(ev.Port)) // IPv6 only, not every address
	}
	return p.line([]string{
		ev.Time.Local().Format("15:04:05.000"),
		ev.Kind.String(),
		string(ev.Proto),
		local,
		strconv.FormatUint(ev.NetNS, 10),
		pid,
		render.Escape(usr),
		render.Escape(cmd),
	})
}

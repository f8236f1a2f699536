package daemoncli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/porteiro/porteiro/internal/bpfevents"
	"github.com/porteiro/porteiro/internal/cmdkit"
	"github.com/porteiro/porteiro/internal/render"
	"github.com/porteiro/porteiro/internal/services"
	"github.com/porteiro/porteiro/internal/target"
)

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
		Short: "Stream listeners as they open and close, from the kernel, without the daemon",
		Long: `Print every TCP listener and every bound UDP socket of this host the moment it
opens or closes, with the process that did it: pid, user, command. The kernel
reports each one through small BPF programs, so a listener that lives for a
millisecond is seen too, in every network namespace and container. Ctrl-C
stops it.

It loads the kernel programs itself, so it works whether or not the daemon
runs. "porteiro trace" shows the same events through the running daemon,
and needs only access to its socket.

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
		Example: `  sudo porteirod trace
  sudo porteirod trace --port 22,80,8000-8100
  sudo porteirod trace -o ndjson | jq -c 'select(.kind == "opened")'`,
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
		return cmdkit.Exit(cmdkit.ExitUsage, fmt.Errorf("trace: %w", err))
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

	p := render.NewTracePrinter(env.Stdout, f.output)
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
				fmt.Fprintf(env.Stderr, "porteirod: %v\n", err)
				continue
			}
			return cmdkit.Exit(cmdkit.ExitUsage, fmt.Errorf("trace: %w", err))
		}
		if ports != nil && ev.Port != 0 && !target.InRanges(ev.Port, ports) {
			continue
		}
		if err := p.Print(ev.Wire("")); err != nil {
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
			fmt.Fprintf(w, "porteirod: %d event(s) lost: the kernel's ring buffer was full (%d in all)\n", n-seen, n)
			seen = n
		}
	}
}

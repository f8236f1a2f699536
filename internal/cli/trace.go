package cli

import (
	"context"
	"errors"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/porteiro/porteiro/internal/localapi"
	"github.com/porteiro/porteiro/internal/render"
	"github.com/porteiro/porteiro/internal/services"
	"github.com/porteiro/porteiro/internal/target"
)

func init() { register(62, newTraceCmd) }

type traceFlags struct {
	output string
	ports  []string
	socket string
	config string
}

func newTraceCmd(env *Env) *cobra.Command {
	f := &traceFlags{}
	c := &cobra.Command{
		Use:   "trace",
		Short: "Stream listeners as they open and close, as the kernel reports them",
		Long: `Print every TCP listener and every bound UDP socket of this host the moment it
opens or closes, with the process that did it: pid, user, command. The kernel
reports each one to porteirod through small BPF programs, so a listener that
lives for a millisecond is seen too, in every network namespace and
container. Ctrl-C stops it.

It asks the running daemon on its local socket (--socket, else socket: of
the configuration -c, else ` + localapi.DefaultSocket + `), so it needs
access to that socket (root, or group ` + localapi.SocketGroup + `), not
CAP_BPF. When porteirod is not running, or runs without the kernel's events,
it says so; "sudo porteirod trace" loads the kernel programs itself.

Columns: TIME, EVENT (opened or closed), PROTO, LOCAL (address:port; *
is every address), NETNS (the network namespace's inode), PID, USER, COMMAND
(the command line if the process was still there when the event was read,
else the kernel's short name in brackets). For "closed", PID and USER are of
whoever closed the socket, which may not be its owner. Names are escaped:
control characters and bidi overrides print as \x1b, \u202e and so on.

Not seen: UDP sockets that get a port without bind() (sendto on a fresh
socket), and the release of UDP sockets bound before porteirod started. Use
"porteiro list" for the whole picture at one moment.

Exit status: 0 when stopped by Ctrl-C or SIGTERM; 2 on bad input, when the
daemon is not running or has no kernel events (the message says why), or
when the stream breaks.`,
		Example: `  porteiro trace
  porteiro trace --port 22,80,8000-8100
  porteiro trace -o ndjson | jq -c 'select(.kind == "opened")'`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, _ []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return runTrace(ctx, env, c, f)
		},
	}
	c.Flags().StringVarP(&f.output, "output", "o", "table", "output format: table, ndjson")
	c.Flags().StringSliceVarP(&f.ports, "port", "p", nil, "only these local ports, repeatable or comma-separated: 22,80,8000-8100,ssh")
	c.Flags().StringVar(&f.socket, "socket", "", "porteirod's local API socket (default: socket: of the configuration, else "+localapi.DefaultSocket+")")
	c.Flags().StringVarP(&f.config, "config", "c", defaultConfigFile, "porteirod's configuration, for its socket:")
	return c
}

// runTrace streams events until ctx ends. A cancelled ctx is a clean stop.
func runTrace(ctx context.Context, env *Env, c *cobra.Command, f *traceFlags) error {
	if f.output != "table" && f.output != "ndjson" {
		return usageErrorf("unknown output format %q: want table or ndjson", f.output)
	}
	// The ports are checked here, for a clear error, and sent as numbers.
	var ranges []string
	if len(f.ports) > 0 {
		rs, err := target.ParsePorts(strings.Join(f.ports, ","), services.System())
		if err != nil {
			return usageErrorf("--port: %v", err)
		}
		for _, r := range rs {
			ranges = append(ranges, r.String())
		}
	}
	sock := f.socket
	if sock == "" {
		var err error
		if sock, err = socketOf(f.config, c.Flags().Changed("config")); err != nil {
			return usageErrorf("%v", err)
		}
	}
	p := render.NewTracePrinter(env.Stdout, f.output)
	errOut := errors.New("output closed")
	err := (&localapi.Client{Socket: sock}).Trace(ctx, strings.Join(ranges, ","), func(ev localapi.TraceEvent) error {
		if p.Print(ev) != nil {
			return errOut // trace | head: stop quietly
		}
		return nil
	})
	var ae *localapi.Error
	switch {
	case err == nil, errors.Is(err, errOut):
		return nil
	case errors.Is(err, localapi.ErrNotRunning):
		return usageErrorf("%v; \"sudo porteirod trace\" traces without the daemon", err)
	case errors.As(err, &ae):
		return usageErrorf("%v", ae)
	}
	return usageErrorf("%v", err)
}

package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/porteiro/porteiro/internal/audit/report"
	"github.com/porteiro/porteiro/internal/cmdkit"
	"github.com/porteiro/porteiro/internal/localapi"
	"github.com/porteiro/porteiro/internal/render"
)

func init() { register(55, newAuditCmd) }

// exitFindings is porteiro audit's exit status when the audit found
// something, as porteirod audit's.
const exitFindings = 1

func newAuditCmd(env *Env) *cobra.Command {
	var output, socket, config string
	c := &cobra.Command{
		Use:   "audit",
		Short: "Ask porteirod to look for listeners and processes hidden from the usual tools",
		Long: `Ask the running daemon, porteirod, to audit the host now, and print its
report. The audit compares independent views of the kernel in every network
namespace and reports what one view shows and another hides:

  hidden_socket    a port that bind() finds in use, but that no socket view
                   shows (every port 1-65535, TCP and UDP, IPv4 and IPv6)
  hidden_process   a process that the kernel runs but /proc does not show
  orphan_netns     a network namespace with sockets that no process is a
                   member of and no mount names
  view_mismatch    a socket that one view shows and another does not

The audit needs root and loads BPF programs, which is why the daemon runs it
and this client only asks. If an audit is already running (porteirod runs
them on its own every audit_interval, when set), porteiro waits for it and
prints its report. Each finding also becomes a critical event and alert of
the daemon, once while it lasts ("porteiro events --kind violation").

An audit probes every port of every network namespace: about a second per
namespace on a small host, longer on a busy one.

porteiro asks through the daemon's local socket (--socket, else socket: in
the configuration -c, else ` + localapi.DefaultSocket + `), open to root
and to the members of group ` + localapi.SocketGroup + `. When porteirod is not running, start
it (systemctl start porteiro), or run "sudo porteirod audit", which audits
without the daemon and prints the same report.

Findings are printed as a table, or as JSON with -o json (schema in
docs/audit.md).

Exit status: 0 when the views agree, 1 when there are findings, 2 when the
audit could not run or could compare nothing, or no daemon answers.`,
		Example: `  porteiro audit
  porteiro audit -o json | jq '.findings[] | select(.kind=="hidden_socket")'`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if output != "table" && output != "json" {
				return usageErrorf("unknown output format %q: want table or json", output)
			}
			sock := socket
			if sock == "" {
				var err error
				if sock, err = socketOf(config, c.Flags().Changed("config")); err != nil {
					return usageErrorf("%v; \"sudo porteirod audit\" audits without the daemon", err)
				}
			}
			ctx := c.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			return runAudit(ctx, env, &localapi.Client{Socket: sock}, output)
		},
	}
	c.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	c.Flags().StringVar(&socket, "socket", "", "porteirod's local API socket (default: socket: of the configuration, else "+localapi.DefaultSocket+")")
	c.Flags().StringVarP(&config, "config", "c", defaultConfigFile, "porteirod's configuration, for its socket:")
	return c
}

func runAudit(ctx context.Context, env *Env, cl *localapi.Client, output string) error {
	var rep report.Report
	err := cl.Audit(ctx, &rep)
	var ae *localapi.Error
	switch {
	case errors.Is(err, localapi.ErrNotRunning):
		return usageErrorf("%v: start it (systemctl start porteiro), or run \"sudo porteirod audit\", which audits without the daemon", err)
	case errors.As(err, &ae):
		return usageErrorf("porteirod: %v", ae)
	case err != nil:
		return usageErrorf("%v", err)
	}
	for _, v := range rep.Views {
		if !v.Ran {
			fmt.Fprintf(env.Stderr, "porteiro: audit: view %s skipped: %s\n", v.View, render.Escape(v.Skipped))
		}
	}
	if output == "json" {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(&rep); err != nil {
			return err
		}
	} else if err := report.Table(env.Stdout, &rep, cmdkit.TableOptions(env)); err != nil {
		return err
	}
	switch {
	case !rep.Compared:
		fmt.Fprintln(env.Stderr, "porteiro: audit: no two views could be compared: porteirod needs root (or CAP_BPF, CAP_PERFMON, CAP_NET_ADMIN, CAP_SYS_ADMIN and CAP_SYS_PTRACE)")
		return silentExit(ExitUsage)
	case !rep.Clean:
		return silentExit(exitFindings)
	}
	return nil
}

package daemoncli

import (
	"context"
	"encoding/json"
	"fmt"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/porteiro/porteiro/internal/audit"
	"github.com/porteiro/porteiro/internal/audit/report"
	"github.com/porteiro/porteiro/internal/cmdkit"
	"github.com/porteiro/porteiro/internal/render"
)

// Exit code of porteirod audit when it found something.
const exitFindings = 1

func newAuditCmd(env *Env) *cobra.Command {
	var (
		output   string
		noProbe  bool
		hostOnly bool
		rounds   int
	)
	c := &cobra.Command{
		Use:   "audit",
		Short: "Look for listeners and processes hidden from the usual tools",
		Long: `Compare independent views of the kernel, in every network namespace, and
report what one view shows and another hides:

  hidden_socket    a port that bind() finds in use, but that no socket view
                   shows (every port 1-65535, TCP and UDP, IPv4 and IPv6)
  hidden_process   a process that the kernel runs but /proc does not show
  orphan_netns     a network namespace with sockets that no process is a
                   member of and no mount names
  view_mismatch    a socket that one view shows and another does not

The views: the sock_diag dump, /proc/PID/net/{tcp,tcp6,udp,udp6}, BPF
iterators over the kernel's socket tables, task list and open files,
/proc/PID/fd, readdir(/proc), and the bind probe. Every difference is
checked again (--rounds times in all) and reported only if every round
sees it, so sockets opening and closing during the audit are not findings.

Needs root for the BPF views and the probe of ports below 1024; without
them it compares what it can and says which views it skipped. The probe
binds each free port for an instant: a service starting at that very
moment could see "address in use" once. The probe runs in every network
namespace found, each costing about as much as the host's;
--probe-host-only limits it to porteiro's own, --no-probe skips it.

Findings are printed as a table, or as JSON with -o json (schema in
docs/audit.md).

Exit status: 0 when the views agree, 1 when there are findings, 2 when
the audit could not run or could compare nothing (bad usage, not root and
no two views available).`,
		Example: `  sudo porteirod audit
  sudo porteirod audit -o json | jq '.findings[] | select(.kind=="hidden_socket")'`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if output != "table" && output != "json" {
				return usageErrorf("unknown output format %q: want table or json", output)
			}
			if rounds < 3 || rounds > 10 {
				return usageErrorf("--rounds %d: want 3 to 10 (every difference is checked at least twice more)", rounds)
			}
			ctx := c.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
			defer stop()
			rep, err := audit.Run(ctx, audit.Options{Rounds: rounds, NoProbe: noProbe, ProbeHostOnly: hostOnly})
			if err != nil {
				return cmdkit.Exit(cmdkit.ExitUsage, fmt.Errorf("audit: %w", err))
			}
			for _, v := range rep.Views {
				if !v.Ran {
					fmt.Fprintf(env.Stderr, "porteiro: audit: view %s skipped: %s\n", v.View, render.Escape(v.Skipped))
				}
			}
			if output == "json" {
				enc := json.NewEncoder(env.Stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			} else if err := auditTable(env, rep); err != nil {
				return err
			}
			switch {
			case !rep.Compared:
				fmt.Fprintln(env.Stderr, "porteiro: audit: no two views could be compared; run as root")
				return silentExit(cmdkit.ExitUsage)
			case !rep.Clean:
				return silentExit(exitFindings)
			}
			return nil
		},
	}
	c.Flags().StringVarP(&output, "output", "o", "table", "output format: table or json")
	c.Flags().BoolVar(&noProbe, "no-probe", false, "skip the bind() probe of every port")
	c.Flags().BoolVar(&hostOnly, "probe-host-only", false, "probe porteiro's own network namespace only, not every namespace found")
	c.Flags().IntVar(&rounds, "rounds", 3, "how many rounds must see a difference before it is reported (3-10)")
	return c
}

func auditTable(env *Env, rep *audit.Report) error {
	return report.Table(env.Stdout, rep, cmdkit.TableOptions(env))
}

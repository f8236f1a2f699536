package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/porteiro/porteiro/inventory"
	"github.com/porteiro/porteiro/policy"
)

func init() { register(51, newBaselineCmd) }

func newBaselineCmd(env *Env) *cobra.Command {
	var require bool
	var procRoot string
	var netns []string
	c := &cobra.Command{
		Use:   "baseline",
		Short: "Write a policy that allows what listens now",
		Long: `Scan the listening TCP and UDP sockets and print a policy (YAML, on stdout)
that allows exactly them, ready to edit and to use with "porteiro check".
Checking the host right after gives no findings.

There is one rule per service, not one per socket: the IPv4 and IPv6 sockets
of a daemon, its worker processes and its SO_REUSEPORT groups share a rule,
and so do its ports when they have the same bind scope. A comment above each
rule names the processes (pid, user, systemd unit, command line) and the
sockets it covers. Each rule names the process and user that held the port,
so that another program on that port is a "wrong_owner" finding; UDP ports in
the kernel's ephemeral range (resolver and NTP client sockets, which change
at every restart) are allowed over the whole range for their process.

Run it as root: without root porteiro cannot see other users' processes, and
the policy then names no processes or users (a note in the file says so).

With --require, the rules go into the require list: every service running
now must keep running, and a stopped one is a "missing" finding.

Exit status: 0 when the policy was written, 2 when sockets could not be read.`,
		Example: `  porteiro baseline > /etc/porteiro/policy.yaml
  porteiro baseline --require > /etc/porteiro/policy.yaml
  porteiro baseline | diff /etc/porteiro/policy.yaml -   # what changed since`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			sc := inventory.NewScanner(inventory.Options{ProcRoot: procRoot})
			defer sc.Close()
			q, err := netnsQuery(netns)
			if err != nil {
				return err
			}
			snap, err := sc.Scan(ctx, q)
			if err != nil {
				return usageErrorf("%v; porteiro needs the sock_diag netlink interface or a readable /proc/net", err)
			}
			o := policy.BaselineOptions{Require: require, Time: snap.Time, Ephemeral: policy.DefaultEphemeral}
			o.Host, _ = os.Hostname()
			if data, err := os.ReadFile(filepath.Join(procRoot, "sys/net/ipv4/ip_local_port_range")); err == nil {
				if r, err := policy.ParseLocalPortRange(data); err == nil {
					o.Ephemeral = r
				}
			}
			if !snap.Privileged {
				fmt.Fprintln(env.Stderr, "porteiro: note: not running as root: the policy names no processes or users (run as root for owner conditions)")
			}
			return policy.Baseline(env.Stdout, snap, o)
		},
	}
	c.Flags().BoolVar(&require, "require", false, "write require rules: every service listening now must keep listening")
	c.Flags().StringSliceVar(&netns, "netns", nil, "only the listeners of these network namespaces: host, all, an inode or a name (globs allowed); default all")
	c.Flags().StringVar(&procRoot, "proc", "/proc", "procfs mount point to read processes from")
	c.Flags().MarkHidden("proc")
	return c
}

package cli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/porteiro/porteiro/internal/render"
	"github.com/porteiro/porteiro/inventory"
	"github.com/porteiro/porteiro/policy"
)

func init() { register(50, newCheckCmd) }

type checkFlags struct {
	policyPath string
	output     string
	notify     bool
	procRoot   string
	netns      []string
}

func newCheckCmd(env *Env) *cobra.Command {
	f := &checkFlags{}
	c := &cobra.Command{
		Use:   "check",
		Short: "Compare what listens with the policy; exit 1 on findings",
		Long: `Scan the listening TCP and UDP sockets once and compare them with the policy
(` + policy.DefaultPath + `, or -p FILE). Every difference is a finding:

  unexpected   listening, and no rule allows it
  missing      a require rule matches nothing that listens (a dead service)
  wrong_owner  a rule allows the port, but another process, user or unit holds it
  too_exposed  a rule allows the port on some addresses (say loopback), and it
               is bound wider (say all interfaces)

Each finding shows the socket as "porteiro list" does (protocol, address,
exposure, pids, user, process, command line) and the rule it concerns.

The policy format is described in docs/policy.md; "porteiro baseline" writes
one from what listens now. To send findings to alert channels from a
timer, use "porteirod once"; the daemon, porteirod, does it as they happen.

Run as root: a policy that names processes, users, units or containers
cannot be checked without seeing every process, and check then refuses
(exit 2) rather than report a host it could not see as clean.

Exit status:
  0  clean: everything that listens is allowed, everything required listens
  1  findings (printed on stdout)
  2  the check could not run: broken or missing policy (errors as
     FILE:LINE:COLUMN), sockets unreadable, or owners needed and not visible`,
		Example: `  porteiro baseline > /etc/porteiro/policy.yaml
  porteiro check
  porteiro check -p ./staging.yaml -o json | jq '.findings[] | .message'`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			return runCheck(env, f)
		},
	}
	c.Flags().StringVarP(&f.policyPath, "policy", "p", policy.DefaultPath, "policy file to check against")
	c.Flags().StringVarP(&f.output, "output", "o", "table", "output format: table or json")
	// --notify moved to the daemon's program; the flag stays to say where.
	c.Flags().BoolVar(&f.notify, "notify", false, "moved: use \"porteirod once\"")
	c.Flags().MarkHidden("notify")
	c.Flags().StringSliceVar(&f.netns, "netns", nil, "check only these network namespaces: host, all, an inode or a name (globs allowed); require rules about the others then count as missing")
	c.Flags().StringVar(&f.procRoot, "proc", "/proc", "procfs mount point to read processes from")
	c.Flags().MarkHidden("proc")
	return c
}

// loadPolicyOrExit reads the policy and turns every failure into an exit-2 error
// that says what to do.
func loadPolicyOrExit(path string) (*policy.Policy, error) {
	if path == "" {
		return nil, usageErrorf("-p needs a file: -p '' names none (the default is %s)", policy.DefaultPath)
	}
	pol, err := policy.Load(path)
	if err == nil {
		return pol, nil
	}
	var list policy.ErrorList
	switch {
	case errors.As(err, &list):
		return nil, exitWith(ExitUsage, fmt.Errorf("invalid policy:\n%w", err))
	case errors.Is(err, fs.ErrNotExist):
		return nil, usageErrorf("no policy at %s: write one with \"porteiro baseline > %s\", or pass -p FILE", path, path)
	}
	return nil, usageErrorf("%v", err)
}

func runCheck(env *Env, f *checkFlags) error {
	if f.output != "table" && f.output != "json" {
		return usageErrorf("unknown output format %q: want table or json", f.output)
	}
	// Refuse before scanning: a cron job asked for alerts, and should hear
	// where they went rather than get a report nobody reads.
	if f.notify {
		return usageErrorf("check --notify moved: run \"porteirod once\" (it reads the alert channels and the policy of %s)", defaultConfigFile)
	}
	pol, err := loadPolicyOrExit(f.policyPath)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sc := inventory.NewScanner(inventory.Options{ProcRoot: f.procRoot})
	defer sc.Close()
	q, err := netnsQuery(f.netns)
	if err != nil {
		return err
	}
	snap, err := sc.Scan(ctx, q)
	if err != nil {
		return usageErrorf("%v; porteiro needs the sock_diag netlink interface or a readable /proc/net", err)
	}
	if pol.NeedsOwners() && !snap.Privileged {
		return usageErrorf("the policy %s matches on processes, users, units or containers, but this scan could not see every process's sockets; run as root (or with CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH). Not reporting the host as clean", f.policyPath)
	}
	rep := pol.Check(snap)
	out := render.Check{Policy: f.policyPath, Rules: len(pol.Rules), Snap: snap, Report: rep}
	if f.output == "json" {
		err = render.CheckJSON(env.Stdout, out)
	} else {
		err = render.CheckTable(env.Stdout, out, tableOptions(env))
	}
	if err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	// The same notes as list, about the sockets that were checked.
	printNotes(env, snap, snap.Listeners())
	if !rep.Clean() {
		return silentExit(ExitNotFound)
	}
	return nil
}

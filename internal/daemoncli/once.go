package daemoncli

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/porteiro/porteiro/internal/cmdkit"
	"github.com/porteiro/porteiro/internal/render"
	"github.com/porteiro/porteiro/internal/watch"
	"github.com/porteiro/porteiro/inventory"
)

// onceTimeout bounds the deliveries of one run, so a dead mail server
// cannot pile up timer runs.
const onceTimeout = 60 * time.Second

func newOnceCmd(env *Env) *cobra.Command {
	var path string
	c := &cobra.Command{
		Use:   "once",
		Short: "Scan and check once, record the findings and send them as alerts (for a timer)",
		Long: `Scan the listening sockets once, compare them with the policy of the
configuration, record the findings in the daemon's state directory and send
the new ones (and the ones that ended) through the configuration's alert
channels. It is the timer's alternative to running the daemon
(porteiro-check.timer runs it every 15 minutes).

A finding already announced by an earlier run, or by the daemon, is not
announced again; one that is gone is sent as resolved. Alerts that cannot be
delivered stay in the state directory and the next run retries them. Only
problems are printed (one line per finding on stdout), so that cron mails
nothing on a quiet host.

Run as root: a policy that names processes, users, units or containers
cannot be checked without seeing every process, and once then refuses
(exit 2) rather than report a host it could not see as clean.

Exit status, as "porteiro check":
  0  clean, and any resolution was delivered
  1  findings, recorded and delivered
  2  it could not run, or alerts could not be delivered yet (they are kept
     and the next run retries them): no or broken configuration or
     policy, no alert channel, sockets unreadable, owners needed and not
     visible, or the state directory unusable`,
		Example: `  porteirod once
  porteirod once -c /etc/porteiro/porteiro.yaml`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			return runOnce(env, path)
		},
	}
	configFlag(c, &path, "configuration with the alert channels and the policy")
	return c
}

func runOnce(env *Env, path string) error {
	cfg, err := watch.LoadConfig(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return usageErrorf("no configuration at %s: once sends to the channels it defines (see docs/config.md); pass -c FILE", path)
		}
		return usageErrorf("%v", err)
	}
	rt, err := watch.Build(cfg)
	if err != nil {
		return usageErrorf("%v", err)
	}
	if len(rt.Sinks) == 0 {
		return usageErrorf("%s defines no alert channels; add one under channels: (see docs/config.md)", path)
	}
	if rt.PolicyRules == nil {
		p, _ := cfg.PolicyPath()
		return usageErrorf("no policy at %s: write one with \"porteiro baseline > %s\", or set policy: in %s", p, p, path)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sc := inventory.NewScanner(inventory.Options{})
	defer sc.Close()
	snap, err := sc.Scan(ctx, inventory.Query{})
	if err != nil {
		return usageErrorf("%v; porteirod needs the sock_diag netlink interface or a readable /proc/net", err)
	}
	if rt.PolicyRules.NeedsOwners() && !snap.Privileged {
		return usageErrorf("the policy %s matches on processes, users, units or containers, but this scan could not see every process's sockets; run as root (or with CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH). Not reporting the host as clean", rt.PolicyFile)
	}
	ctx, cancel := context.WithTimeout(ctx, onceTimeout)
	defer cancel()
	// Cron mails whatever is printed: only problems are logged.
	log := slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	findings := rt.Policy.Check(snap)
	for i := range findings {
		fmt.Fprintf(env.Stdout, "%s: %s\n", findings[i].Kind, render.Escape(findings[i].Message))
	}
	res, err := watch.NotifyOnce(ctx, cfg, rt.Sinks, snap, findings, log)
	if err != nil {
		return usageErrorf("sending notifications: %v (%d alert(s) kept in %s; the next run retries them)", err, res.Pending, cfg.StateDirPath())
	}
	if res.New > 0 || res.Resolved > 0 {
		fmt.Fprintf(env.Stderr, "porteirod: notified %d new finding(s), %d resolved\n", res.New, res.Resolved)
	}
	if len(findings) > 0 {
		return silentExit(cmdkit.ExitNotFound)
	}
	return nil
}

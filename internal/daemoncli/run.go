package daemoncli

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/porteiro/porteiro/internal/cmdkit"
	"github.com/porteiro/porteiro/internal/localapi"
	"github.com/porteiro/porteiro/internal/metrics"
	"github.com/porteiro/porteiro/internal/version"
	"github.com/porteiro/porteiro/internal/watch"
)

type watchFlags struct {
	config   string
	interval time.Duration
	stateDir string
	http     string
}

func newRunCmd(env *Env) *cobra.Command {
	f := &watchFlags{}
	c := &cobra.Command{
		Use:   "porteirod",
		Short: "The porteiro daemon: notice port changes, record them, alert",
		Long: `porteirod is porteiro's daemon. Without a command it runs in the foreground
(systemd runs it this way).

Every interval (2s by default) it scans the listening sockets and records
what changed in its event database (` + watch.DefaultStateDir + `), with the
process as it was at that moment:

  opened         a new listener
  closed         a listener gone for longer than the grace period (10s)
  owner_changed  another program now holds the listener
  restarted      closed and back within the grace period: a note, not an alert;
                 a listener that keeps coming back (flapping) gets one summary
                 once it is stable, instead of an event per cycle
  violation      the policy flags a listener (unexpected, wrong_owner, too_exposed)
  missing        a listener the policy requires is gone for the grace period
  resolved       a violation or a missing listener ended

Events go to the alert channels of the configuration (email, webhook,
Alertmanager, syslog, exec), grouped within the burst window (5s) and
retried with backoff; undelivered alerts survive restarts.

Without -c it reads ` + watch.DefaultConfigFile + ` if that exists, and runs
with the defaults otherwise. The policy is ` + watch.DefaultPolicyFile + `, if
present. Flags override the file.

It serves its local API on the unix socket ` + localapi.DefaultSocket + `
(mode 0660, group porteiro), which "porteiro events" asks, and /healthz and
/metrics on http://` + watch.DefaultListen + ` for monitoring.

Signals:
  SIGHUP   reload the configuration and the policy; a broken new file is
           logged and the running configuration stays
  SIGTERM  stop scanning, let deliveries in flight finish (up to
           shutdown_timeout, 10s), exit 0

Run it as root, or with CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH, to see every
process. "porteiro events" reads the history from the running daemon, and
"porteirod events" from the database while it is stopped; docs/watch.md has
the details.

Exit status: 0 after SIGTERM or SIGINT; 1 when it stopped with events that
the event store could not save (a full disk: their alerts went out from
memory, the events are lost); 2 when it cannot start (a broken
configuration, as FILE:LINE:COLUMN; an unusable state directory; the HTTP
address or the socket in use, or another porteirod on the state directory).

Commands:
  porteirod validate   check a configuration without starting anything
  porteirod once       scan and check once, and send the findings as alerts
                       (for a timer, instead of the daemon)
  porteirod events     read the event history from the database directly
  porteirod trace      stream listeners as they open and close, from the kernel`,
		Example: `  porteirod -c /etc/porteiro/porteiro.yaml
  porteirod --interval 1s --state-dir /tmp/porteiro --http 127.0.0.1:9466
  systemctl reload porteiro     # sends SIGHUP`,
		Args: noArgs,
		RunE: func(c *cobra.Command, args []string) error {
			return runWatch(env, c, f)
		},
	}
	configFlag(c, &f.config, "configuration file")
	c.Flags().DurationVar(&f.interval, "interval", 0, "scan interval, overriding the file (at least 250ms)")
	c.Flags().StringVar(&f.stateDir, "state-dir", "", "directory of the event database, overriding the file")
	c.Flags().StringVar(&f.http, "http", "", `HTTP listen address, overriding the file ("off" turns HTTP off)`)
	return c
}

// loadWatchRuntime reads the config (optional when it is the default and
// absent), applies the flag overrides, and builds the policy and channels.
func loadWatchRuntime(c *cobra.Command, f *watchFlags) (*watch.Runtime, error) {
	var cfg *watch.Config
	loaded, err := watch.LoadConfig(f.config)
	switch {
	case err == nil:
		cfg = loaded
	case errors.Is(err, fs.ErrNotExist) && !c.Flags().Changed("config"):
		cfg = &watch.Config{}
	default:
		return nil, err
	}
	if c.Flags().Changed("interval") {
		if f.interval < watch.MinInterval {
			return nil, usageErrorf("--interval %s is too short: the minimum is %s", f.interval, watch.MinInterval)
		}
		cfg.IntervalRaw = watch.NewDuration(f.interval)
	}
	if f.stateDir != "" {
		cfg.StateDir = f.stateDir
	}
	if c.Flags().Changed("http") {
		l := f.http
		if l == "off" {
			l = ""
		}
		cfg.HTTP.Listen = &l
	}
	return watch.Build(cfg)
}

func runWatch(env *Env, c *cobra.Command, f *watchFlags) error {
	rt, err := loadWatchRuntime(c, f)
	if err != nil {
		var ee *cmdkit.ExitError
		if errors.As(err, &ee) {
			return err
		}
		return usageErrorf("%v", err)
	}
	level := new(slog.LevelVar)
	level.Set(rt.Config.SlogLevel())
	log := newWatchLogger(env, rt.Config, level)
	if rt.PolicyFile != "" {
		log.Info("policy loaded", "file", rt.PolicyFile)
	} else {
		log.Info("no policy: reporting listener changes only")
	}
	d, err := watch.New(watch.Options{
		Config: rt.Config, Policy: rt.Policy, Sinks: rt.Sinks,
		Metrics: metrics.New(version.Get().Version), Logger: log, LogLevel: level,
	})
	if err != nil {
		if errors.Is(err, fs.ErrPermission) {
			return usageErrorf("%v: run as root, or choose a writable directory with --state-dir or state_dir", err)
		}
		return usageErrorf("%v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGHUP, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case s := <-sigs:
				if s != syscall.SIGHUP {
					log.Info("signal received: stopping", "signal", s.String())
					cancel()
					return
				}
				log.Info("SIGHUP: reloading", "file", f.config)
				nrt, err := loadWatchRuntime(c, f)
				if err != nil {
					log.Error("reload rejected; keeping the running configuration", "file", f.config, "err", err)
					continue
				}
				d.Reload(nrt.Config, nrt.Policy, nrt.Sinks)
			}
		}
	}()
	if err := d.Run(ctx); err != nil {
		if errors.Is(err, watch.ErrUnsaved) {
			// Stopped with events that the store refused: they are lost,
			// and the exit status must say so.
			return cmdkit.Exit(1, err)
		}
		return usageErrorf("%v", err)
	}
	return nil
}

// newWatchLogger writes the daemon's log to stderr (the journal, under
// systemd), as text or JSON. The journal stamps every line itself, so under
// systemd (JOURNAL_STREAM is set) the time is left out of text lines.
func newWatchLogger(env *Env, cfg *watch.Config, level *slog.LevelVar) *slog.Logger {
	o := &slog.HandlerOptions{Level: level}
	if os.Getenv("JOURNAL_STREAM") != "" && cfg.Log.Format != "json" {
		o.ReplaceAttr = func(groups []string, a slog.Attr) slog.Attr {
			if len(groups) == 0 && a.Key == slog.TimeKey {
				return slog.Attr{}
			}
			return a
		}
	}
	if cfg.Log.Format == "json" {
		return slog.New(slog.NewJSONHandler(env.Stderr, o))
	}
	return slog.New(slog.NewTextHandler(env.Stderr, o))
}

// noArgs rejects arguments to the daemon itself, pointing at the commands:
// "porteirod evnts" is a typo, not an argument to ignore.
func noArgs(c *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usageErrorf("unknown command %q for porteirod: want validate, once, events or version (see 'porteirod --help')", args[0])
	}
	return nil
}

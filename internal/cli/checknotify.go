//go:build !porteiro_lite

package cli

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

	"github.com/porteiro/porteiro/internal/notify"
	"github.com/porteiro/porteiro/internal/watch"
	"github.com/porteiro/porteiro/inventory"
	"github.com/porteiro/porteiro/policy"
)

func init() { checkNotify = runCheckNotify }

// checkNotifyTimeout bounds the deliveries of one `check --notify` run, so
// a dead mail server cannot pile up cron jobs.
const checkNotifyTimeout = 60 * time.Second

// runCheckNotify records a check's findings in the daemon's store and sends
// the new ones (and the resolutions) through the configured channels.
func runCheckNotify(env *Env, configPath string, snap *inventory.Snapshot, rep *policy.Report) error {
	cfg, err := watch.LoadConfig(configPath)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("no configuration at %s: --notify sends to the channels it defines (see docs/config.md), pass -c FILE", configPath)
		}
		return err
	}
	sinks, err := notify.Build(cfg.Channels, cfg.HostName())
	if err != nil {
		return cfg.Locate(err)
	}
	if len(sinks) == 0 {
		return fmt.Errorf("%s defines no alert channels; add one under channels: (see docs/config.md)", configPath)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, checkNotifyTimeout)
	defer cancel()
	// Cron mails whatever is printed: only problems are logged.
	log := slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	res, err := watch.NotifyOnce(ctx, cfg, sinks, snap, watch.FromReport(rep), log)
	if err != nil {
		return fmt.Errorf("%w (%d alert(s) kept in %s; the next run retries them)", err, res.Pending, cfg.StateDirPath())
	}
	if res.New > 0 || res.Resolved > 0 {
		fmt.Fprintf(env.Stderr, "porteiro: notified %d new finding(s), %d resolved\n", res.New, res.Resolved)
	}
	return nil
}

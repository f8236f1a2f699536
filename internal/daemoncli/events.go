package daemoncli

import (
	"context"
	"errors"
	"io/fs"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/porteiro/porteiro/internal/cmdkit"
	"github.com/porteiro/porteiro/internal/store"
	"github.com/porteiro/porteiro/internal/watch"
)

type eventsFlags struct {
	cmdkit.EventsFlags
	stateDir string
	config   string
}

func newEventsCmd(env *Env) *cobra.Command {
	f := &eventsFlags{}
	c := &cobra.Command{
		Use:   "events",
		Short: "Read the event history from the database, with the daemon stopped",
		Long: `Show the events recorded in the daemon's database, oldest first, reading the
database file directly (read-only). It is for when porteirod is not running:
after a crash, on a copy of the state directory, or for forensics. While the
daemon runs, "porteiro events" asks it instead, and needs no access to the
database.

The database is in the state directory: --state-dir, else state_dir of the
configuration (-c, ` + watch.DefaultConfigFile + `), else ` + watch.DefaultStateDir + `.

--since takes a duration back from now (90m, 24h, 7d) or a time
(2026-01-02T15:04:05Z). Kinds: ` + strings.Join(watch.Kinds, ", ") + `.

Exit status: 0 when events were found, 1 when none matched, 2 on bad usage
or when there is no database.`,
		Example: `  porteirod events --state-dir /var/lib/porteiro --since 7d
  porteirod events --state-dir ./copy-of-state --port 4444 -o json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			return runEvents(env, c, f)
		},
	}
	f.EventsFlags.Add(c)
	c.Flags().StringVar(&f.stateDir, "state-dir", "", "directory of the event database")
	configFlag(c, &f.config, "configuration file, for its state_dir")
	return c
}

// stateDirOf finds the state directory: the flag, else the config's, else
// the default. A missing default config is not an error.
func stateDirOf(c *cobra.Command, flagDir, configPath string) (string, error) {
	if flagDir != "" {
		return flagDir, nil
	}
	cfg, err := watch.LoadConfig(configPath)
	switch {
	case err == nil:
		return cfg.StateDirPath(), nil
	case errors.Is(err, fs.ErrNotExist) && !c.Flags().Changed("config"):
		return watch.DefaultStateDir, nil
	}
	return "", err
}

func runEvents(env *Env, c *cobra.Command, f *eventsFlags) error {
	q, err := f.Query()
	if err != nil {
		return err
	}
	flt, err := watch.ParseFilter(q.Since, q.Port, q.Kind, q.Limit, time.Now())
	if err != nil {
		return usageErrorf("%v", err)
	}
	dir, err := stateDirOf(c, f.stateDir, f.config)
	if err != nil {
		return usageErrorf("%v", err)
	}
	st, err := store.OpenReadOnly(dir)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return usageErrorf("%v: porteirod has not run with this state directory (--state-dir, or state_dir in %s)", err, f.config)
		}
		if errors.Is(err, fs.ErrPermission) {
			return usageErrorf("%v: run as root (sudo porteirod events) or as the daemon's user", err)
		}
		return usageErrorf("%v", err)
	}
	defer st.Close()
	evs, err := st.Events(context.Background(), flt)
	if err != nil {
		return usageErrorf("%v", err)
	}
	doc := watch.NewEventsDocument(evs)
	return cmdkit.PrintEvents(env, f.Output, &doc, "porteirod")
}

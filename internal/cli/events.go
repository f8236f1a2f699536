//go:build !porteiro_lite

package cli

import (
	"context"
	"encoding/json"
	"errors"
	"io/fs"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/porteiro/porteiro/internal/render"
	"github.com/porteiro/porteiro/internal/services"
	"github.com/porteiro/porteiro/internal/store"
	"github.com/porteiro/porteiro/internal/watch"
)

func init() { register(61, newEventsCmd) }

type eventsFlags struct {
	since    string
	port     string
	kind     string
	limit    int
	output   string
	stateDir string
	config   string
}

func newEventsCmd(env *Env) *cobra.Command {
	f := &eventsFlags{}
	c := &cobra.Command{
		Use:   "events",
		Short: "Show the history the daemon recorded: what opened or closed, when, and who",
		Long: `Show the events that "porteiro watch" recorded, oldest first: listeners that
opened, closed, changed owner or restarted, and policy violations and their
resolution. Each event keeps the process as it was when the event happened
(pid, user, command line), even if that process is long gone; -o json shows
all of it.

It reads the event database directly, read-only, while the daemon runs. The
database is in the state directory: --state-dir, else state_dir of the
configuration (-c, ` + watch.DefaultConfigFile + `), else ` + watch.DefaultStateDir + `.

--since takes a duration back from now (90m, 24h, 7d) or a time
(2026-01-02T15:04:05Z). Kinds: ` + strings.Join(watch.Kinds, ", ") + `.

Exit status: 0 when events were found, 1 when none matched, 2 on bad usage
or when there is no database (is "porteiro watch" running?).`,
		Example: `  porteiro events --since 24h
  porteiro events --port 4444 --since 7d
  porteiro events --port ssh --kind owner_changed
  porteiro events --kind violation -o json | jq '.events[].payload.socket.processes'`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			return runEvents(env, c, f)
		},
	}
	c.Flags().StringVar(&f.since, "since", "24h", `show events from this long ago (24h, 7d) or this time; "" for all`)
	c.Flags().StringVar(&f.port, "port", "", "only events of this port (a number or a service name: 22, ssh)")
	c.Flags().StringVar(&f.kind, "kind", "", "only events of this kind")
	c.Flags().IntVar(&f.limit, "limit", 1000, "show at most this many events (the newest)")
	c.Flags().StringVarP(&f.output, "output", "o", "table", "output format: table or json")
	c.Flags().StringVar(&f.stateDir, "state-dir", "", "directory of the event database")
	c.Flags().StringVarP(&f.config, "config", "c", watch.DefaultConfigFile, "configuration file, for its state_dir")
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
	if f.output != "table" && f.output != "json" {
		return usageErrorf("unknown output format %q: want table or json", f.output)
	}
	port := f.port
	if port != "" {
		if _, err := strconv.Atoi(port); err != nil {
			// A service name from /etc/services, as `porteiro who` takes.
			p, ok := services.System().Lookup(port, "")
			if !ok {
				return usageErrorf("--port %q is neither a port number nor a service name in /etc/services", port)
			}
			port = strconv.Itoa(int(p))
		}
	}
	if f.limit < 1 {
		return usageErrorf("--limit must be at least 1")
	}
	flt, err := watch.ParseFilter(f.since, port, f.kind, strconv.Itoa(f.limit), time.Now())
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
			return usageErrorf("%v: \"porteiro watch\" has not run with this state directory (--state-dir, or state_dir in %s)", err, f.config)
		}
		if errors.Is(err, fs.ErrPermission) {
			return usageErrorf("%v: run as root (sudo porteiro events) or as the daemon's user", err)
		}
		return usageErrorf("%v", err)
	}
	defer st.Close()
	evs, err := st.Events(context.Background(), flt)
	if err != nil {
		return usageErrorf("%v", err)
	}
	if f.output == "json" {
		enc := json.NewEncoder(env.Stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(watch.NewEventsDocument(evs)); err != nil {
			return err
		}
	} else if len(evs) > 0 {
		if err := writeEventsTable(env, evs); err != nil {
			return err
		}
	}
	if len(evs) == 0 {
		if f.output == "table" {
			env.Stderr.Write([]byte("porteiro: no events match\n"))
		}
		return silentExit(ExitNotFound)
	}
	return nil
}

func writeEventsTable(env *Env, evs []store.Event) error {
	t := render.NewTable("TIME", "KIND", "SEVERITY", "LISTENER", "PID", "USER", "PROCESS", "SUMMARY")
	for _, e := range evs {
		var p watch.Payload
		_ = json.Unmarshal(e.Payload, &p)
		pid, user, proc := "-", "-", "-"
		so := p.Socket
		if so != nil && len(so.Processes) > 0 {
			pr := so.Processes[0]
			pid, user, proc = strconv.Itoa(pr.PID), pr.User, pr.Name
		}
		t.Row(e.Time.Local().Format("2006-01-02 15:04:05"), e.Kind, e.Severity, e.Listener, pid, eventsDash(user), eventsDash(proc), p.Summary)
	}
	return t.Write(env.Stdout, tableOptions(env))
}

func eventsDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/spf13/cobra"

	"github.com/porteiro/porteiro/internal/cmdkit"
	"github.com/porteiro/porteiro/internal/localapi"
	"github.com/porteiro/porteiro/internal/yamlx"
)

func init() { register(61, newEventsCmd) }

type eventsFlags struct {
	cmdkit.EventsFlags
	socket   string
	config   string
	stateDir string
}

func newEventsCmd(env *Env) *cobra.Command {
	f := &eventsFlags{}
	c := &cobra.Command{
		Use:   "events",
		Short: "Show the history the daemon recorded: what opened or closed, when, and who",
		Long: `Show the events that porteirod recorded, oldest first: listeners that opened,
closed, changed owner or restarted, and policy violations and their
resolution. Each event keeps the process as it was when the event happened
(pid, user, command line), even if that process is long gone; -o json shows
all of it.

It asks the running daemon through its local socket (--socket, else socket:
in the configuration -c, else ` + localapi.DefaultSocket + `). The socket is
open to root and to the members of group ` + localapi.SocketGroup + `. When
the daemon is stopped, "porteirod events" reads the database directly.

--since takes a duration back from now (90m, 24h, 7d) or a time
(2026-01-02T15:04:05Z). Kinds: ` + strings.Join(localapi.Kinds, ", ") + `.

Exit status: 0 when events were found, 1 when none matched, 2 on bad usage
or when the daemon is not running.`,
		Example: `  porteiro events --since 24h
  porteiro events --port 4444 --since 7d
  porteiro events --port ssh --kind owner_changed
  porteiro events --kind violation -o json | jq '.events[].payload.socket.processes'`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			return runEvents(env, c, f)
		},
	}
	f.EventsFlags.Add(c)
	c.Flags().StringVar(&f.socket, "socket", "", "porteirod's local API socket (default: socket: of the configuration, else "+localapi.DefaultSocket+")")
	c.Flags().StringVarP(&f.config, "config", "c", defaultConfigFile, "porteirod's configuration, for its socket:")
	// --state-dir reads the database, which only porteirod does.
	c.Flags().StringVar(&f.stateDir, "state-dir", "", `moved: use "porteirod events --state-dir DIR"`)
	c.Flags().MarkHidden("state-dir")
	return c
}

func runEvents(env *Env, c *cobra.Command, f *eventsFlags) error {
	if f.stateDir != "" {
		return usageErrorf("porteiro events asks the running daemon; to read a state directory's database, run \"porteirod events --state-dir %s\"", f.stateDir)
	}
	q, err := f.Query()
	if err != nil {
		return err
	}
	sock := f.socket
	if sock == "" {
		sock, err = socketOf(f.config, c.Flags().Changed("config"))
		if err != nil {
			return usageErrorf("%v", err)
		}
	}
	cl := &localapi.Client{Socket: sock}
	doc, err := cl.Events(context.Background(), q)
	var ae *localapi.Error
	switch {
	case errors.Is(err, localapi.ErrNotRunning):
		return usageErrorf("%v; to read the history while it is stopped, run \"porteirod events\" (as root, or as the daemon's user)", err)
	case errors.As(err, &ae):
		return usageErrorf("%v", ae)
	case err != nil:
		return usageErrorf("%v", err)
	}
	return cmdkit.PrintEvents(env, f.Output, doc, "porteiro")
}

// socketOf reads socket: from porteirod's configuration. A missing default
// configuration means the default socket; the daemon validates the file,
// so the other keys are not porteiro's business here. The file is read as
// the daemon reads it: a regular file, bounded in size, nesting and
// aliases.
func socketOf(path string, explicit bool) (string, error) {
	b, err := yamlx.ReadFile(path, "porteirod's configuration")
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && !explicit {
			return localapi.DefaultSocket, nil
		}
		return "", err
	}
	if err := yamlx.Check(path, b); err != nil {
		return "", err
	}
	var cfg struct {
		Socket *string `yaml:"socket"`
	}
	if err := yaml.UnmarshalWithOptions(b, &cfg, yaml.AllowDuplicateMapKey()); err != nil {
		return "", fmt.Errorf("%s: %v (check it with \"porteirod validate -c %s\")", path, err, path)
	}
	switch {
	case cfg.Socket == nil:
		return localapi.DefaultSocket, nil
	case *cfg.Socket == "":
		return "", fmt.Errorf("%s turns the local API socket off (socket: \"\"); the daemon's history is then read with \"porteirod events\"", path)
	}
	return *cfg.Socket, nil
}

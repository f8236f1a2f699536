// Package cli holds porteiro's command-line interface: the client that
// admins type (list, who, pid, kill, baseline, check, policy, events, ...).
// Each command lives in its own file and registers itself with register()
// from init, so commands can be added without touching this file.
//
// The daemon, porteirod, has its own package (internal/daemoncli); this one
// must not link the daemon's store, mail or metrics code, so that porteiro
// stays small and quick to start. TestClientLinksNoDaemonCode checks it.
package cli

import (
	"io"

	"sort"

	"github.com/spf13/cobra"

	"github.com/porteiro/porteiro/internal/cmdkit"
)

// Exit codes shared by every command.
const (
	ExitOK       = cmdkit.ExitOK
	ExitNotFound = cmdkit.ExitNotFound
	ExitUsage    = cmdkit.ExitUsage
)

// Env is what every command gets: its streams.
type Env = cmdkit.Env

// defaultConfigFile is porteirod's configuration, which porteiro reads for
// the local API socket's path.
const defaultConfigFile = "/etc/porteiro/porteiro.yaml"

var (
	usageErrorf = cmdkit.UsageErrorf
	silentExit  = cmdkit.SilentExit
	exitWith    = cmdkit.Exit
)

type cmdFactory struct {
	order int
	make  func(env *Env) *cobra.Command
}

var factories []cmdFactory

// register adds a command to the root. order sorts the help listing.
func register(order int, f func(env *Env) *cobra.Command) {
	factories = append(factories, cmdFactory{order: order, make: f})
}

// rootHook lets list.go make `porteiro` alone behave as `porteiro list`.
var rootHook func(env *Env, root *cobra.Command)

// NewRoot builds the command tree.
func NewRoot(env *Env) *cobra.Command {
	root := &cobra.Command{
		Use:   "porteiro",
		Short: "Who is behind every port of this host",
		Long: `porteiro shows every listening TCP and UDP socket of this host, IPv4 and IPv6,
with every process that holds it: pid, user, command line, executable, start
time, systemd unit or container, and how exposed it is (loopback, one address,
all interfaces).

Without a command it runs "porteiro list".

Run as root (or with CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH) to see the
processes of other users; without them porteiro shows what it can and says
what is missing.

The daemon that watches for changes and sends alerts is a separate program,
porteirod (see "porteirod --help"); "porteiro events" asks it for its history.`,
	}
	cmdkit.Setup(root, env)
	sort.SliceStable(factories, func(i, j int) bool { return factories[i].order < factories[j].order })
	for _, f := range factories {
		root.AddCommand(f.make(env))
	}
	if rootHook != nil {
		rootHook(env, root)
	}
	for _, m := range movedCommands {
		root.AddCommand(movedCommand(m.use, m.to))
	}
	return root
}

// movedCommands are porteiro's former daemon commands. They stay, hidden,
// to tell scripts and fingers where the command went.
var movedCommands = []struct{ use, to string }{
	{"watch", "porteirod (the daemon runs in the foreground; same flags)"},
	{"config", "porteirod validate"},
}

func movedCommand(use, to string) *cobra.Command {
	return &cobra.Command{
		Use:                use,
		Hidden:             true,
		DisableFlagParsing: true,
		RunE: func(c *cobra.Command, args []string) error {
			return usageErrorf("\"porteiro %s\" moved: run %s", use, to)
		},
	}
}

// Main runs porteiro with args and returns the exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return run(args, stdin, stdout, stderr, false)
}

// oneShotProcess is set by MainProcess.
var oneShotProcess bool

// MainProcess is Main for a process that runs this one command and exits
// (the porteiro program): a scan may then set how the process collects
// garbage and lays out its heap for the scan's size (collectForSize).
// Main leaves the process as it is, for callers that run many commands.
func MainProcess(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return run(args, stdin, stdout, stderr, true)
}

func run(args []string, stdin io.Reader, stdout, stderr io.Writer, oneShot bool) int {
	oneShotProcess = oneShot
	env := &Env{Args: args, Stdin: stdin, Stdout: stdout, Stderr: stderr}
	return cmdkit.Run(NewRoot(env), env)
}

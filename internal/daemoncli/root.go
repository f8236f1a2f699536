// Package daemoncli is the command line of porteirod, the daemon: run in
// the foreground (what systemd starts), validate a configuration, run one
// check for a timer, and read the event history from the database while
// the daemon is stopped.
//
// porteiro, the client that admins type, is internal/cli; the two share
// only internal/cmdkit, so the client links none of the daemon's code.
package daemoncli

import (
	"io"

	"github.com/spf13/cobra"

	"github.com/porteiro/porteiro/internal/cmdkit"
	"github.com/porteiro/porteiro/internal/watch"
)

// Env is what every command gets: its streams.
type Env = cmdkit.Env

var (
	usageErrorf = cmdkit.UsageErrorf
	silentExit  = cmdkit.SilentExit
)

// NewRoot builds porteirod's command tree. The root command itself runs
// the daemon.
func NewRoot(env *Env) *cobra.Command {
	root := newRunCmd(env)
	cmdkit.Setup(root, env)
	root.AddCommand(
		newValidateCmd(env),
		newOnceCmd(env),
		newEventsCmd(env),
		newTraceCmd(env),
		newAuditCmd(env),
		cmdkit.VersionCommand(env, "porteirod"),
	)
	return root
}

// Main runs porteirod with args and returns the exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	env := &Env{Args: args, Stdin: stdin, Stdout: stdout, Stderr: stderr}
	return cmdkit.Run(NewRoot(env), env)
}

// configFlag is -c, which every command of porteirod takes.
func configFlag(c *cobra.Command, p *string, usage string) {
	c.Flags().StringVarP(p, "config", "c", watch.DefaultConfigFile, usage)
}

// Package cli holds porteiro's command-line interface. Each command lives in
// its own file and registers itself with register() from init, so commands
// can be added without touching this file.
package cli

import (
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/spf13/cobra"
)

// Exit codes shared by every command.
const (
	ExitOK       = 0 // something was found / clean
	ExitNotFound = 1 // nothing matched / findings
	ExitUsage    = 2 // bad usage or input, or the command could not run
)

// exitError carries an exit code through cobra. A nil err with a code
// just sets the code.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit status %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// usageErrorf returns an error that exits 2 with a one-line message.
func usageErrorf(format string, a ...any) error {
	return &exitError{code: ExitUsage, err: fmt.Errorf(format, a...)}
}

// silentExit sets the exit code without printing anything more.
func silentExit(code int) error { return &exitError{code: code} }

// Env is what every command gets: its streams. Commands must not use
// os.Stdout directly, so tests can run them in-process.
type Env struct {
	// Args are the command-line arguments, without the program name.
	Args   []string
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

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
what is missing.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetIn(env.Stdin)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	root.CompletionOptions.HiddenDefaultCmd = true
	sort.SliceStable(factories, func(i, j int) bool { return factories[i].order < factories[j].order })
	for _, f := range factories {
		root.AddCommand(f.make(env))
	}
	if rootHook != nil {
		rootHook(env, root)
	}
	setupVersion(root)
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &exitError{code: ExitUsage, err: fmt.Errorf("%w (see '%s --help')", err, c.CommandPath())}
	})
	return root
}

// Main runs porteiro with args and returns the exit code.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	env := &Env{Args: args, Stdin: stdin, Stdout: stdout, Stderr: stderr}
	root := NewRoot(env)
	root.SetArgs(args)
	err := root.Execute()
	if err == nil {
		return ExitOK
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.err != nil {
			fmt.Fprintf(stderr, "porteiro: %v\n", ee.err)
		}
		return ee.code
	}
	fmt.Fprintf(stderr, "porteiro: %v\n", err)
	// Cobra's own errors (unknown command, bad args) are usage errors.
	return ExitUsage
}

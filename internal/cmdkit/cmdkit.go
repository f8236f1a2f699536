// Package cmdkit is what porteiro's two programs share on the command line:
// the streams a command gets, the exit codes, errors that carry an exit
// code through cobra, and the one function that runs a command tree and
// turns its error into a message and a status.
//
// It links nothing but cobra, so the porteiro client stays small: the
// daemon's packages (SQLite, SMTP, Prometheus) are never reached from here.
package cmdkit

import (
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/porteiro/porteiro/internal/render"
	"github.com/porteiro/porteiro/internal/version"
)

// Exit codes shared by every command of both programs.
const (
	ExitOK       = 0 // something was found / clean
	ExitNotFound = 1 // nothing matched / findings
	ExitUsage    = 2 // bad usage or input, or the command could not run
)

// Env is what every command gets: its streams. Commands must not use
// os.Stdout directly, so tests can run them in-process.
type Env struct {
	// Args are the command-line arguments, without the program name.
	Args   []string
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
}

// ExitError carries an exit code through cobra. A nil Err with a code just
// sets the code.
type ExitError struct {
	Code int
	Err  error
}

func (e *ExitError) Error() string {
	if e.Err == nil {
		return fmt.Sprintf("exit status %d", e.Code)
	}
	return e.Err.Error()
}

func (e *ExitError) Unwrap() error { return e.Err }

// Exit returns an error that makes the program exit with code, printing
// err (if not nil) as the message.
func Exit(code int, err error) error { return &ExitError{Code: code, Err: err} }

// UsageErrorf returns an error that exits 2 with a one-line message.
func UsageErrorf(format string, a ...any) error {
	return &ExitError{Code: ExitUsage, Err: fmt.Errorf(format, a...)}
}

// SilentExit sets the exit code without printing anything more.
func SilentExit(code int) error { return &ExitError{Code: code} }

// Setup applies what every root command of porteiro has: errors printed
// once by Run, flag errors that exit 2 and point at --help, and
// `--version` printing the one-line build description.
func Setup(root *cobra.Command, env *Env) {
	root.SilenceUsage = true
	root.SilenceErrors = true
	root.SetIn(env.Stdin)
	root.SetOut(env.Stdout)
	root.SetErr(env.Stderr)
	root.CompletionOptions.HiddenDefaultCmd = true
	info := version.Get()
	root.Version = info.Version
	root.SetVersionTemplate(root.Name() + strings.TrimPrefix(info.String(), "porteiro") + "\n")
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &ExitError{Code: ExitUsage, Err: fmt.Errorf("%w (see '%s --help')", err, c.CommandPath())}
	})
}

// Run executes root with args and returns the exit code. Messages are
// prefixed with the program's name ("porteiro: ...").
func Run(root *cobra.Command, env *Env) int {
	root.SetArgs(env.Args)
	err := root.Execute()
	if err == nil {
		return ExitOK
	}
	var ee *ExitError
	if errors.As(err, &ee) {
		if ee.Err != nil {
			fmt.Fprintf(env.Stderr, "%s: %s\n", root.Name(), render.EscapeLines(ee.Err.Error()))
		}
		return ee.Code
	}
	fmt.Fprintf(env.Stderr, "%s: %s\n", root.Name(), render.EscapeLines(err.Error()))
	// Cobra's own errors (unknown command, bad args) are usage errors.
	return ExitUsage
}

// TableOptions fits tables to the terminal on stdout, and uses bold
// headers there unless NO_COLOR is set.
func TableOptions(env *Env) render.Options {
	w := render.TerminalWidth(env.Stdout)
	style := w > 0 && os.Getenv("NO_COLOR") == ""
	return render.Options{Width: w, Bold: style, Color: style}
}

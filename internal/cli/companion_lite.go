//go:build porteiro_lite

package cli

// The lite build is the porteiro that admins type: list, who, pid, kill,
// check, baseline and policy, without the daemon's SQLite store, SMTP client
// and Prometheus registry. Those triple the binary, and a bigger binary
// costs time and memory on every run (about 10 ms and 8 MB at 500
// processes). The daemon's commands stay available: they replace this
// process (same pid, same arguments) with the full build, porteiro-full,
// installed beside it or in /usr/lib/porteiro.

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"
)

// companionCommands are the commands only the full build has.
var companionCommands = []struct {
	order      int
	use, short string
	hidden     bool
}{
	{60, "watch", "Run the daemon: notice port changes within seconds, record them, alert", false},
	{61, "events", "Show the history the daemon recorded: what opened or closed, when, and who", false},
	{70, "config", "Work with the daemon's configuration file (validate)", false},
	{1000, "gen-docs", "Write the man pages and shell completions (for packagers)", true},
}

func init() {
	for _, c := range companionCommands {
		c := c
		register(c.order, func(env *Env) *cobra.Command {
			cmd := &cobra.Command{
				Use:                c.use,
				Short:              c.short,
				Hidden:             c.hidden,
				DisableFlagParsing: true,
				RunE: func(cmd *cobra.Command, args []string) error {
					return execFull(append([]string{c.use}, args...))
				},
			}
			// `porteiro help watch` shows the full build's help too.
			cmd.SetHelpFunc(func(cmd *cobra.Command, _ []string) {
				if err := execFull([]string{c.use, "--help"}); err != nil {
					fmt.Fprintf(env.Stderr, "porteiro: %v\n", err)
				}
			})
			return cmd
		})
	}
	// check --notify needs the alert channels: the whole command runs in
	// the full build.
	checkNotifyDelegate = func(args []string) error { return execFull(args) }
}

// fullPath finds porteiro-full: $PORTEIRO_FULL, beside this executable, or
// in /usr/lib/porteiro.
func fullPath() (string, error) {
	var tried []string
	if p := os.Getenv("PORTEIRO_FULL"); p != "" {
		tried = append(tried, p)
	}
	if self, err := os.Executable(); err == nil {
		tried = append(tried, filepath.Join(filepath.Dir(self), "porteiro-full"))
	}
	tried = append(tried, "/usr/lib/porteiro/porteiro-full")
	for _, p := range tried {
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode().Perm()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("this command needs porteiro-full, which is not installed (looked in %v); install the porteiro package, or build with `go build ./cmd/porteiro` (without -tags porteiro_lite)", tried)
}

// execFull replaces this process with porteiro-full, keeping the pid (so
// systemd's Type=notify and signals reach the daemon directly).
func execFull(args []string) error {
	p, err := fullPath()
	if err != nil {
		return usageErrorf("%v", err)
	}
	argv := append([]string{"porteiro"}, args...)
	err = syscall.Exec(p, argv, os.Environ())
	return &exitError{code: ExitUsage, err: fmt.Errorf("running %s: %w", p, err)}
}

package daemoncli

import (
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/porteiro/porteiro/internal/cmdkit"
	"github.com/porteiro/porteiro/internal/watch"
)

func newValidateCmd(env *Env) *cobra.Command {
	var path string
	var syntaxOnly bool
	c := &cobra.Command{
		Use:   "validate",
		Short: "Check the configuration for errors without starting anything",
		Long: `Read the configuration strictly and report every problem as FILE:LINE:COLUMN:
message: unknown keys (a typo is an error, not a silently ignored line),
durations that do not parse or are too short, bad addresses, alert channels
with missing or invalid fields. Then it does what the daemon does at start:
it reads the password and secret files of the channels and loads the policy
the configuration names, reporting their errors the same way. With
--syntax-only it stops after the file itself, for machines (CI, configuration
management) that do not hold the secrets.

Nothing is scanned and nothing is sent. Run it before "systemctl reload
porteiro": a reload with a broken file is refused by the daemon, which keeps
running the old configuration, so the mistake would only show in the log.

Exit status: 0 when the configuration is valid, 2 when it is not (or is
missing).`,
		Example: `  porteirod validate
  porteirod validate --syntax-only -c roles/porteiro/files/porteiro.yaml
  porteirod validate -c ./porteiro.yaml && systemctl reload porteiro`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			cfg, err := watch.LoadConfig(path)
			if err == nil && syntaxOnly {
				fmt.Fprintf(env.Stdout, "%s: ok (syntax only: secrets and policy not read)\n", path)
				return nil
			}
			if err == nil {
				var rt *watch.Runtime
				rt, err = watch.Build(cfg)
				if err == nil {
					fmt.Fprintf(env.Stdout, "%s: ok (%s)\n", path, describeRuntime(rt))
					return nil
				}
			}
			for _, e := range flatten(err) {
				fmt.Fprintln(env.Stderr, e)
			}
			return silentExit(cmdkit.ExitUsage)
		},
	}
	configFlag(c, &path, "configuration file to validate")
	c.Flags().BoolVar(&syntaxOnly, "syntax-only", false, "check the file only; do not read secret files or the policy")
	return c
}

// flatten lists the errors joined in err, one per line of output.
func flatten(err error) []string {
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		var out []string
		for _, e := range j.Unwrap() {
			out = append(out, flatten(e)...)
		}
		return out
	}
	var ce *watch.ConfigError
	if errors.As(err, &ce) {
		return []string{ce.Error()}
	}
	return []string{err.Error()}
}

func describeRuntime(rt *watch.Runtime) string {
	c := rt.Config
	var names []string
	for _, s := range rt.Sinks {
		names = append(names, s.Name())
	}
	ch := "no alert channels"
	if len(names) > 0 {
		ch = "channels: " + strings.Join(names, ", ")
	}
	pol := "no policy"
	if rt.PolicyFile != "" {
		pol = "policy " + rt.PolicyFile
	}
	http := c.Listen()
	if http == "" {
		http = "off"
	}
	return fmt.Sprintf("interval %s, grace %s, %s, %s, state in %s, http %s", c.Interval(), c.Grace(), pol, ch, c.StateDirPath(), http)
}

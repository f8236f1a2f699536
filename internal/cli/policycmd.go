package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/porteiro/porteiro/policy"
)

func init() { register(52, newPolicyCmd) }

func newPolicyCmd(env *Env) *cobra.Command {
	c := &cobra.Command{
		Use:   "policy",
		Short: "Work with policy files (validate)",
		Long: `Commands for porteiro policy files. The format is described in
docs/policy.md; "porteiro baseline" writes a policy from what listens now.`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			return usageErrorf("policy needs a command: validate (see 'porteiro policy --help')")
		},
	}
	c.AddCommand(newPolicyValidateCmd(env))
	return c
}

func newPolicyValidateCmd(env *Env) *cobra.Command {
	var path string
	c := &cobra.Command{
		Use:   "validate [FILE...]",
		Short: "Check policy files for errors without scanning",
		Long: `Read policy files strictly and report every problem as FILE:LINE:COLUMN:
message, the way compilers do: unknown keys, ports outside 1-65535, reversed
ranges, bad addresses or CIDRs, bad patterns, duplicate rule names, empty
files and files that are not YAML. Nothing is scanned, so it runs anywhere
(CI, configuration management) and needs no root.

Without FILE it validates -p FILE, by default ` + policy.DefaultPath + `.

Exit status: 0 when every file is valid, 2 when one is not (or is missing).`,
		Example: `  porteiro policy validate
  porteiro policy validate -p ./policy.yaml
  porteiro policy validate roles/*/files/porteiro-policy.yaml`,
		RunE: func(c *cobra.Command, args []string) error {
			if len(args) == 0 {
				args = []string{path}
			}
			bad := 0
			for _, file := range args {
				if file == "" {
					fmt.Fprintln(env.Stderr, "porteiro: empty policy file name: give a path, as -p /etc/porteiro/policy.yaml")
					bad++
					continue
				}
				pol, err := policy.Load(file)
				if err != nil {
					fmt.Fprintln(env.Stderr, err)
					bad++
					continue
				}
				fmt.Fprintf(env.Stdout, "%s: ok (%d allow, %d require, %d ignore rule(s); default %s)\n", file,
					pol.Count(policy.Allow), pol.Count(policy.Require), pol.Count(policy.Ignore), policyDefaultWord(pol))
			}
			if bad > 0 {
				return silentExit(ExitUsage)
			}
			return nil
		},
	}
	c.Flags().StringVarP(&path, "policy", "p", policy.DefaultPath, "policy file to validate")
	return c
}

func policyDefaultWord(p *policy.Policy) string {
	if p.DefaultAllow {
		return "allow"
	}
	return "deny"
}

package cmdkit

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/porteiro/porteiro/internal/version"
)

// VersionCommand is the `version` command of a program named prog.
func VersionCommand(env *Env, prog string) *cobra.Command {
	var output string
	c := &cobra.Command{
		Use:   "version",
		Short: "Show which " + prog + " build this is",
		Long: `Show the ` + prog + ` version, the source commit it was built from, the build
date, the Go version and the platform. Include this output in bug reports.

"` + prog + ` --version" prints the same on one line.

Exit status: 0, or 2 on bad usage.`,
		Example: `  ` + prog + ` version
  ` + prog + ` version -o json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			info := version.Get()
			switch output {
			case "text", "":
				modified := ""
				if info.Modified {
					modified = " (with uncommitted changes)"
				}
				_, err := fmt.Fprintf(env.Stdout, "%s %s\n  commit:   %s%s\n  built:    %s\n  go:       %s\n  platform: %s\n",
					prog, info.Version, info.Commit, modified, info.Date, info.GoVersion, info.Platform)
				return err
			case "json":
				enc := json.NewEncoder(env.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(info)
			}
			return UsageErrorf("unknown output format %q: want text or json", output)
		},
	}
	c.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return c
}

package cli

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/porteiro/porteiro/internal/version"
)

func init() {
	register(900, newVersionCmd)
}

func newVersionCmd(env *Env) *cobra.Command {
	var output string
	c := &cobra.Command{
		Use:   "version",
		Short: "Show which porteiro build this is",
		Long: `Show the porteiro version, the source commit it was built from, the build
date, the Go version and the platform. Include this output in bug reports.

"porteiro --version" prints the same on one line.

Exit status: 0, or 2 on bad usage.`,
		Example: `  porteiro version
  porteiro version -o json`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			info := version.Get()
			switch output {
			case "text", "":
				modified := ""
				if info.Modified {
					modified = " (with uncommitted changes)"
				}
				_, err := fmt.Fprintf(env.Stdout, "porteiro %s\n  commit:   %s%s\n  built:    %s\n  go:       %s\n  platform: %s\n",
					info.Version, info.Commit, modified, info.Date, info.GoVersion, info.Platform)
				return err
			case "json":
				enc := json.NewEncoder(env.Stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(info)
			}
			return usageErrorf("unknown output format %q: want text or json", output)
		},
	}
	c.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return c
}

// setupVersion makes `porteiro --version` print the one-line build
// description. NewRoot calls it.
func setupVersion(root *cobra.Command) {
	info := version.Get()
	root.Version = info.Version
	root.SetVersionTemplate(info.String() + "\n")
}

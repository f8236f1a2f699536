//go:build !porteiro_lite

package cli

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/porteiro/porteiro/internal/version"
)

func init() {
	register(1000, newGenDocsCmd)
}

// Completion file names, as packaging/nfpm.yaml installs them.
const (
	bashCompletionFile = "porteiro.bash"
	zshCompletionFile  = "_porteiro"
	fishCompletionFile = "porteiro.fish"
)

func newGenDocsCmd(env *Env) *cobra.Command {
	var manDir, complDir string
	c := &cobra.Command{
		Use:    "gen-docs",
		Short:  "Write the man pages and shell completions (for packagers)",
		Hidden: true,
		Long: `Write one man page per command (section 1) into the --man directory, and
bash, zsh and fish completion scripts into the --completions directory:
porteiro.bash, _porteiro and porteiro.fish. The directories are created if
needed. Set SOURCE_DATE_EPOCH for reproducible page dates.

Exit status: 0, or 2 on bad usage or when a file can't be written.`,
		Example: `  porteiro gen-docs --man dist/man --completions dist/completions`,
		Args:    cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if manDir == "" && complDir == "" {
				return usageErrorf("nothing to do: give --man DIR, --completions DIR or both")
			}
			root := c.Root()
			if manDir != "" {
				if err := genMan(root, manDir); err != nil {
					return &exitError{code: ExitUsage, err: err}
				}
				fmt.Fprintf(env.Stderr, "man pages written to %s\n", manDir)
			}
			if complDir != "" {
				if err := genCompletions(root, complDir); err != nil {
					return &exitError{code: ExitUsage, err: err}
				}
				fmt.Fprintf(env.Stderr, "completions written to %s\n", complDir)
			}
			return nil
		},
	}
	c.Flags().StringVar(&manDir, "man", "", "directory for the man pages")
	c.Flags().StringVar(&complDir, "completions", "", "directory for the completion scripts")
	return c
}

func genMan(root *cobra.Command, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	// The pages' date comes from SOURCE_DATE_EPOCH when set (cobra reads
	// it), so packages rebuild bit for bit; the footer would only say which
	// generator made the page, so it is left out.
	disableAutoGen(root)
	hdr := &doc.GenManHeader{
		Section: "1",
		Source:  "porteiro " + version.Get().Version,
		Manual:  "porteiro manual",
	}
	if err := doc.GenManTree(root, hdr, dir); err != nil {
		return fmt.Errorf("writing man pages to %s: %w", dir, err)
	}
	return nil
}

func disableAutoGen(c *cobra.Command) {
	c.DisableAutoGenTag = true
	for _, sub := range c.Commands() {
		disableAutoGen(sub)
	}
}

func genCompletions(root *cobra.Command, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	gens := []struct {
		name string
		gen  func(path string) error
	}{
		{bashCompletionFile, func(p string) error { return root.GenBashCompletionFileV2(p, true) }},
		{zshCompletionFile, root.GenZshCompletionFile},
		{fishCompletionFile, func(p string) error { return root.GenFishCompletionFile(p, true) }},
	}
	for _, g := range gens {
		p := filepath.Join(dir, g.name)
		if err := g.gen(p); err != nil {
			return fmt.Errorf("writing %s: %w", p, err)
		}
	}
	return nil
}

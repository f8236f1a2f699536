// Command gendocs writes the man pages and the shell completions of
// porteiro and porteirod, for packagers. It is a development tool, so that
// neither program carries the man page generator.
//
//	go run ./internal/tools/gendocs -man dist/man -completions dist/completions
//
// One page per command (section 1 for porteiro, section 8 for the daemon),
// and bash, zsh and fish completions for both. Set SOURCE_DATE_EPOCH for
// reproducible page dates.
package main

import (
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/porteiro/porteiro/internal/cli"
	"github.com/porteiro/porteiro/internal/cmdkit"
	"github.com/porteiro/porteiro/internal/daemoncli"
	"github.com/porteiro/porteiro/internal/version"
)

func main() {
	manDir := flag.String("man", "", "directory for the man pages")
	complDir := flag.String("completions", "", "directory for the completion scripts")
	flag.Parse()
	if *manDir == "" && *complDir == "" || flag.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: gendocs -man DIR -completions DIR")
		os.Exit(2)
	}
	if err := generate(*manDir, *complDir); err != nil {
		fmt.Fprintf(os.Stderr, "gendocs: %v\n", err)
		os.Exit(1)
	}
}

// program is one of the two programs and the man section of its pages.
type program struct {
	root    *cobra.Command
	section string
}

func programs() []program {
	env := &cmdkit.Env{Stdin: strings.NewReader(""), Stdout: io.Discard, Stderr: io.Discard}
	return []program{
		{cli.NewRoot(env), "1"},
		{daemoncli.NewRoot(env), "8"},
	}
}

func generate(manDir, complDir string) error {
	for _, p := range programs() {
		if manDir != "" {
			if err := genMan(p, manDir); err != nil {
				return err
			}
		}
		if complDir != "" {
			if err := genCompletions(p.root, complDir); err != nil {
				return err
			}
		}
	}
	return nil
}

func genMan(p program, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	// The pages' date comes from SOURCE_DATE_EPOCH when set (cobra reads
	// it), so packages rebuild bit for bit; the footer would only say which
	// generator made the page, so it is left out.
	disableAutoGen(p.root)
	hdr := &doc.GenManHeader{
		Section: p.section,
		Source:  p.root.Name() + " " + version.Get().Version,
		Manual:  "porteiro manual",
	}
	if err := doc.GenManTree(p.root, hdr, dir); err != nil {
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

// completionFiles are the completion scripts' names for a program, as
// packaging/nfpm.yaml installs them: NAME.bash, _NAME and NAME.fish.
func completionFiles(name string) (bash, zsh, fish string) {
	return name + ".bash", "_" + name, name + ".fish"
}

func genCompletions(root *cobra.Command, dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", dir, err)
	}
	bash, zsh, fish := completionFiles(root.Name())
	gens := []struct {
		name string
		gen  func(path string) error
	}{
		{bash, func(p string) error { return root.GenBashCompletionFileV2(p, true) }},
		{zsh, root.GenZshCompletionFile},
		{fish, func(p string) error { return root.GenFishCompletionFile(p, true) }},
	}
	for _, g := range gens {
		p := filepath.Join(dir, g.name)
		if err := g.gen(p); err != nil {
			return fmt.Errorf("writing %s: %w", p, err)
		}
	}
	return nil
}

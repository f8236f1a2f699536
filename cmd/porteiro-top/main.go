//go:build linux

// Command porteiro-top is the live view of "porteiro top": every listener
// with its owner, connections and traffic. porteiro runs it, with the
// same options, for "porteiro top"; it is a program of its own so that
// porteiro does not link the terminal interface's libraries, which every
// one of its commands would otherwise initialise at start.
package main

import (
	"os"

	"github.com/porteiro/porteiro/internal/cli"
	"github.com/porteiro/porteiro/internal/topcmd"
)

func main() {
	os.Exit(cli.MainTop(os.Args[1:], os.Stdin, os.Stdout, os.Stderr, topcmd.Run))
}

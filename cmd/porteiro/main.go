//go:build linux

// Command porteiro shows which process holds every TCP and UDP port of a
// Linux host, checks the ports against a policy, and watches for changes.
package main

import (
	"os"

	"github.com/porteiro/porteiro/internal/cli"
)

func main() {
	os.Exit(cli.MainProcess(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

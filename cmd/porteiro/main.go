//go:build linux

// Command porteiro shows which process holds every TCP and UDP port of a
// Linux host, checks the ports against a policy, and watches for changes.
package main

import (
	"os"
	"runtime/debug"
	"slices"

	"github.com/porteiro/porteiro/internal/cli"
)

func main() {
	if os.Getenv("GOGC") == "" && !slices.Contains(os.Args[1:], "top") {
		// Every command but top scans once and exits. Its heap is the
		// scan's sockets, which live to the end, and what finding their
		// owners takes, which does not: the runtime's default (collect
		// at twice the live heap) counts the sockets twice, so a listing
		// of 100,000 sockets would peak 15 MB higher for a few
		// milliseconds less of collection.
		debug.SetGCPercent(50)
	}
	os.Exit(cli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

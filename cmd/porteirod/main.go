//go:build linux

// Command porteirod is the porteiro daemon: it watches the listening ports
// of a Linux host, records every change with its owner, judges the ports
// against a policy, and sends alerts. "porteirod --help" says more; the
// porteiro command is the client that admins type.
package main

import (
	"os"

	"github.com/porteiro/porteiro/internal/daemoncli"
)

func main() {
	os.Exit(daemoncli.Main(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

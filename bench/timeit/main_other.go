//go:build !unix

package main

import (
	"fmt"
	"os"
)

func main() {
	fmt.Fprintln(os.Stderr, "timeit: needs a Unix system")
	os.Exit(1)
}

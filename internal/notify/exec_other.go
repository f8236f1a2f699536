//go:build !unix

package notify

import "os/exec"

// setProcessGroup does nothing where there are no process groups; the
// timeout kills the command itself.
func setProcessGroup(*exec.Cmd) {}

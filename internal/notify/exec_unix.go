//go:build unix

package notify

import (
	"os/exec"
	"syscall"
)

// setProcessGroup puts the command in its own process group and makes
// the timeout kill the whole group, so `sh -c 'sleep 60'` does not leave
// the sleep behind.
func setProcessGroup(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error {
		return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	}
}

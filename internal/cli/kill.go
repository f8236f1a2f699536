package cli

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"

	"github.com/porteiro/porteiro/internal/procfs"
	"github.com/porteiro/porteiro/internal/render"
	"github.com/porteiro/porteiro/inventory"
)

func init() { register(40, newKillCmd) }

func newKillCmd(env *Env) *cobra.Command {
	f := &sockFlags{}
	var (
		sigName string
		yes     bool
		dryRun  bool
	)
	c := &cobra.Command{
		Use:   "kill PORT...",
		Short: "Signal the processes that hold a port, safely",
		Long: `Send a signal (SIGTERM by default) to every process that holds a listening
port. PORT takes the same forms as in "porteiro who".

Safety:
  - it lists what it will signal and asks first when stdin is a terminal;
    without a terminal it needs --yes;
  - just before signalling it re-checks each process's identity (pid and
    start time), through a pidfd where the kernel has one, so a pid that was
    reused by another program is never hit;
  - it refuses PID 1 and porteiro itself.

Exit status: 0 when every process was signalled, 1 when nothing holds the
port, 2 on bad input or when refused, 3 when a signal could not be sent
(permission denied, or the process changed or exited).`,
		Example: `  porteiro kill 8080/tcp
  porteiro kill 8080/tcp --signal KILL --yes
  porteiro kill 127.0.0.1:5432 --dry-run`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			sig, err := parseSignal(sigName)
			if err != nil {
				return usageErrorf("--signal: %v", err)
			}
			_, snap, socks, err := scanTargets(f, args)
			if err != nil {
				return err
			}
			procs := map[inventory.Identity]inventory.Process{}
			hidden := 0
			for i := range socks {
				if len(socks[i].Processes) == 0 {
					hidden++
				}
				for _, p := range socks[i].Processes {
					procs[p.Identity()] = p
				}
			}
			if len(procs) == 0 {
				if hidden > 0 {
					printNotes(env, snap, socks)
					return exitWith(ExitNotFound, fmt.Errorf("the port is held, but by no process porteiro can see"))
				}
				return exitWith(ExitNotFound, fmt.Errorf("nothing listens on %s", render.Escape(strings.Join(args, ", "))))
			}
			list := make([]inventory.Process, 0, len(procs))
			for _, p := range procs {
				list = append(list, p)
			}
			sort.Slice(list, func(i, j int) bool { return list[i].PID < list[j].PID })
			for _, p := range list {
				if err := refuseSignal(p); err != nil {
					return err
				}
			}
			verb := "would send"
			if !dryRun {
				verb = "will send"
			}
			// Names and command lines are escaped: a process must not be able
			// to rewrite this list, or the prompt below, to name another one.
			for _, p := range list {
				fmt.Fprintf(env.Stdout, "%s %s to pid %d (%s, user %s): %s\n", verb, unix.SignalName(sig), p.PID,
					render.Escape(p.Name), render.Escape(p.User), render.Escape(p.CommandLine()))
			}
			if dryRun {
				return nil
			}
			if !yes {
				if !isTerminal(env.Stdin) {
					return usageErrorf("stdin is not a terminal: add --yes to signal without asking")
				}
				fmt.Fprint(env.Stdout, "Proceed? [y/N] ")
				line, _ := bufio.NewReader(env.Stdin).ReadString('\n')
				if a := strings.ToLower(strings.TrimSpace(line)); a != "y" && a != "yes" {
					fmt.Fprintln(env.Stdout, "nothing signalled")
					return silentExit(ExitUsage)
				}
			}
			failed := 0
			for _, p := range list {
				if err := signalProcess(f.procRoot, p, sig); err != nil {
					fmt.Fprintf(env.Stderr, "porteiro: pid %d: %v\n", p.PID, err)
					failed++
					continue
				}
				fmt.Fprintf(env.Stdout, "sent %s to pid %d (%s)\n", unix.SignalName(sig), p.PID, render.Escape(p.Name))
			}
			if failed > 0 {
				return silentExit(3)
			}
			return nil
		},
	}
	f.addProto(c)
	c.Flags().StringVarP(&sigName, "signal", "s", "TERM", "signal to send: a name (TERM, SIGKILL, HUP, ...) or a number")
	c.Flags().BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	c.Flags().BoolVarP(&dryRun, "dry-run", "n", false, "show what would be signalled, and signal nothing")
	return c
}

func parseSignal(s string) (syscall.Signal, error) {
	if n, err := strconv.Atoi(s); err == nil {
		if n <= 0 || n > 64 {
			return 0, fmt.Errorf("signal number %d is out of range 1-64", n)
		}
		return syscall.Signal(n), nil
	}
	name := strings.ToUpper(s)
	if !strings.HasPrefix(name, "SIG") {
		name = "SIG" + name
	}
	sig := unix.SignalNum(name)
	if sig == 0 {
		return 0, fmt.Errorf("unknown signal %q", s)
	}
	return sig, nil
}

func isTerminal(r any) bool {
	f, ok := r.(*os.File)
	if !ok {
		return false
	}
	_, err := unix.IoctlGetTermios(int(f.Fd()), unix.TCGETS)
	return err == nil
}

// refuseSignal returns the error for a process porteiro never signals:
// PID 1, and porteiro itself. "porteiro top" asks it too.
func refuseSignal(p inventory.Process) error {
	if p.PID == 1 {
		return usageErrorf("refusing to signal PID 1 (%s): stop the service through its manager instead", render.Escape(p.Name))
	}
	if p.PID == os.Getpid() {
		return usageErrorf("refusing to signal porteiro itself")
	}
	return nil
}

// errChanged means the pid now belongs to another process.
var errChanged = errors.New("the process exited or its pid was reused since the scan; not signalled")

// signalProcess signals p only if it is still the same process. With a
// pidfd, the check and the signal address one process even if the pid is
// reused in between; without one there is a tiny window, as with kill(1).
func signalProcess(procRoot string, p inventory.Process, sig syscall.Signal) error {
	pidfd, err := unix.PidfdOpen(p.PID, 0)
	if err == nil {
		defer unix.Close(pidfd)
		if t, ok := procfs.StartTicks(procRoot, p.PID); !ok || t != p.StartTicks {
			return errChanged
		}
		if err := unix.PidfdSendSignal(pidfd, sig, nil, 0); err != nil {
			return fmt.Errorf("sending %s: %w", unix.SignalName(sig), err)
		}
		return nil
	}
	if errors.Is(err, unix.ESRCH) {
		return errChanged
	}
	if t, ok := procfs.StartTicks(procRoot, p.PID); !ok || t != p.StartTicks {
		return errChanged
	}
	if err := unix.Kill(p.PID, sig); err != nil {
		return fmt.Errorf("sending %s: %w", unix.SignalName(sig), err)
	}
	return nil
}

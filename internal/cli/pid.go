package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/porteiro/porteiro/internal/render"
	"github.com/porteiro/porteiro/inventory"
)

func init() { register(30, newPidCmd) }

func newPidCmd(env *Env) *cobra.Command {
	f := &sockFlags{}
	var listening bool
	c := &cobra.Command{
		Use:   "pid PID...",
		Short: "Show the sockets that a process holds",
		Long: `Show every TCP and UDP socket that the given processes hold: listeners and
connections, in whatever network namespace they are. With --listening, only
listeners.

porteiro asks each of the processes' sockets directly (pidfd_getfd), so the
cost follows the processes, not the host. A socket that other processes share
lists only its holders among the given pids: "porteiro who PORT" lists them
all. Where pidfd_getfd is refused (no right to ptrace the process, a kernel
before 5.6), porteiro reads every socket of the host instead, as "list" does.

Exit status: 0 when the process holds at least one socket, 1 when it holds
none or does not exist, 2 on bad input.`,
		Example: `  porteiro pid 1683
  porteiro pid $(pidof nginx) --listening -o json`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			q, err := f.query()
			if err != nil {
				return err
			}
			if !listening {
				q.States = inventory.MaskAll
			}
			pids := map[int]bool{}
			for _, a := range args {
				n, err := parsePID(a)
				if err != nil {
					return usageErrorf("%v", err)
				}
				pids[n] = true
			}
			var missing []int
			for p := range pids {
				if _, err := os.Stat(filepath.Join(f.procRoot, strconv.Itoa(p))); err != nil {
					missing = append(missing, p)
				}
			}
			list := make([]int, 0, len(pids))
			for p := range pids {
				list = append(list, p)
			}
			snap, err := scanPIDs(f, list, q)
			if err != nil {
				return err
			}
			sf := &sockFilter{pids: pids}
			socks := sf.apply(snap.Sockets)
			for _, p := range missing {
				fmt.Fprintf(env.Stderr, "porteiro: no process %d (in this PID namespace)\n", p)
			}
			if len(socks) == 0 {
				if len(missing) < len(pids) {
					fmt.Fprintf(env.Stderr, "porteiro: no sockets held by %v\n", args)
					if !snap.Privileged {
						fmt.Fprintf(env.Stderr, "porteiro: note: not running as root; the fds of other users' processes can't be read\n")
					}
				}
				return silentExit(ExitNotFound)
			}
			if err := render.Sockets(env.Stdout, f.output, snap, socks, tableOptions(env)); err != nil {
				return err
			}
			return nil
		},
	}
	f.addProto(c)
	c.Flags().BoolVarP(&listening, "listening", "l", false, "only listening sockets")
	return c
}

// scanPIDs lists the sockets of pids, interruptible with Ctrl-C.
func scanPIDs(f *sockFlags, pids []int, q inventory.Query) (*inventory.Snapshot, error) {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	sc := inventory.NewScanner(inventory.Options{ProcRoot: f.procRoot, NoOwners: f.noOwners})
	defer sc.Close()
	snap, err := sc.ScanPIDs(ctx, pids, q)
	if err != nil {
		return nil, exitWith(ExitUsage, fmt.Errorf("%w; porteiro needs pidfd_getfd, the sock_diag netlink interface or a readable /proc/net", err))
	}
	return snap, nil
}

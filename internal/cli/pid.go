package cli

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"

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
connections. With --listening, only listeners.

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
			snap, err := scan(f, q)
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

package cli

import (
	"fmt"
	"slices"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/porteiro/porteiro/internal/render"
	"github.com/porteiro/porteiro/internal/services"
	"github.com/porteiro/porteiro/internal/target"
	"github.com/porteiro/porteiro/inventory"
)

func init() { register(20, newWhoCmd) }

func newWhoCmd(env *Env) *cobra.Command {
	f := &sockFlags{}
	c := &cobra.Command{
		Use:   "who PORT...",
		Short: "Show who holds a port: fuser and ps in one line",
		Long: `Show every process that holds a port, one line per process: the socket, then
pid, user, start time, CPU and memory, and the full command line. It answers
"fuser 22/tcp" followed by "ps aux | grep PID".

PORT can be:
  22               tcp and udp port 22
  22/tcp  53/udp   one protocol
  ssh  domain/udp  a service name from /etc/services
  127.0.0.1:8080   a port on one address (a wildcard socket that serves
  [::1]:53/udp     that address matches too)

By default only listeners are shown; --all adds connections on that port.
With -4, a dual-stack [::] socket counts, because it accepts IPv4 too.

Exit status: 0 when something holds the port, 1 when nothing does,
2 on bad input (port 0 or above 65535, unknown service, unknown protocol).`,
		Example: `  porteiro who 22
  porteiro who 8080/tcp -4
  porteiro who [::1]:53/udp
  porteiro who ssh -o json`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(c *cobra.Command, args []string) error {
			return runWho(env, f, args)
		},
	}
	f.addProto(c)
	c.Flags().BoolVarP(&f.all, "all", "a", false, "include connections on the port, not only listeners")
	return c
}

// scanTargets parses PORT arguments, scans, and returns the sockets that
// match any of them.
func scanTargets(f *sockFlags, args []string) ([]target.Target, *inventory.Snapshot, []inventory.Socket, error) {
	q, err := f.query()
	if err != nil {
		return nil, nil, nil, err
	}
	var tgts []target.Target
	for _, a := range args {
		t, err := target.Parse(a, services.System())
		if err != nil {
			return nil, nil, nil, usageErrorf("%v", err)
		}
		tgts = append(tgts, t)
	}
	// The kernel keeps only these ports in the dump.
	for _, t := range tgts {
		q.LocalPorts = append(q.LocalPorts, [2]uint16{t.Port, t.Port})
	}
	q.Keep = func(s *inventory.Socket) bool {
		for j := range tgts {
			if (&sockFilter{tgt: &tgts[j]}).keep(s) {
				return true
			}
		}
		return false
	}
	snap, err := scan(f, q, false)
	if err != nil {
		return nil, nil, nil, err
	}
	return tgts, snap, selectTargets(snap, tgts), nil
}

func selectTargets(snap *inventory.Snapshot, tgts []target.Target) []inventory.Socket {
	var out []inventory.Socket
	for i := range snap.Sockets {
		s := &snap.Sockets[i]
		for j := range tgts {
			sf := sockFilter{tgt: &tgts[j]}
			if sf.match(s) {
				out = append(out, *s)
				break
			}
		}
	}
	return out
}

func runWho(env *Env, f *sockFlags, args []string) error {
	tgts, snap, socks, err := scanTargets(f, args)
	if err != nil {
		return err
	}
	if len(socks) == 0 {
		if f.output == "json" {
			render.Sockets(env.Stdout, f.output, snap, socks, render.Options{})
		}
		for _, t := range tgts {
			fmt.Fprintf(env.Stderr, "porteiro: nothing %s %s\n", map[bool]string{false: "listens on", true: "uses"}[f.all], t)
		}
		return silentExit(ExitNotFound)
	}
	switch f.output {
	case "table":
		writeWho(env, socks)
	default:
		if err := render.Sockets(env.Stdout, f.output, snap, socks, tableOptions(env)); err != nil {
			return err
		}
	}
	printNotes(env, snap, socks)
	return nil
}

// writeWho prints one line per (socket, process).
func writeWho(env *Env, socks []inventory.Socket) {
	t := render.NewTable("PROTO", "LOCAL", "EXPOSURE", "STATE", "PID", "USER", "STARTED", "%CPU", "RSS", "UNIT", "COMMAND")
	withNS := render.AnyForeign(socks)
	if withNS {
		// Which namespace each match is in: the same port may be open
		// in the host and in every container.
		t = render.NewTable("PROTO", "LOCAL", "NETNS", "EXPOSURE", "STATE", "PID", "USER", "STARTED", "%CPU", "RSS", "UNIT", "COMMAND")
	}
	for i := range socks {
		s := &socks[i]
		row := func(cells ...string) {
			if withNS {
				cells = slices.Insert(cells, 2, render.NetNS(s))
			}
			t.Row(cells...)
		}
		if len(s.Processes) == 0 {
			row(string(s.Proto), render.Local(s), render.Exposure(s), string(s.State), "-", "-", "-", "-", "-", "-", render.Unattributed(s.UnattributedReason))
			continue
		}
		for j := range s.Processes {
			p := &s.Processes[j]
			unit := p.Unit
			if p.Container != "" {
				unit = "container:" + shortID(p.Container)
			}
			if unit == "" {
				unit = "-"
			}
			row(string(s.Proto), render.Local(s), render.Exposure(s), string(s.State), strconv.Itoa(p.PID), p.User,
				render.StartTime(p.StartTime), strconv.FormatFloat(p.CPUPercent, 'f', 1, 64), render.HumanBytes(p.RSSBytes), unit, p.CommandLine())
		}
	}
	t.Write(env.Stdout, tableOptions(env))
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

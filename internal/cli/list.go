package cli

import (
	"github.com/spf13/cobra"

	"github.com/porteiro/porteiro/internal/render"
)

func init() {
	register(10, newListCmd)
	rootHook = func(env *Env, root *cobra.Command) {
		// `porteiro` alone, or with list's flags, runs list.
		list := newListCmd(env)
		root.Flags().AddFlagSet(list.Flags())
		root.RunE = list.RunE
		root.Args = cobra.NoArgs
	}
}

func newListCmd(env *Env) *cobra.Command {
	f := &sockFlags{}
	c := &cobra.Command{
		Use:   "list",
		Short: "List listening sockets and the processes that hold them",
		Long: `List every listening TCP and UDP socket, IPv4 and IPv6, with every process
that holds it. With --all, list sockets in every state.

Columns: PROTO, LOCAL (address:port; *:PORT is an IPv6 wildcard that also
accepts IPv4), EXPOSURE (loopback, specific address, or all interfaces),
STATE, PID (every holder, comma-separated), USER, PROCESS and COMMAND.
"-o wide" adds one row per process with ppid, fds, start time, systemd unit,
container and executable. UDP sockets that are bound and not connected count
as listening and show the state UNCONN, as in ss.

Every network namespace is listed in one scan: the host's, those of
containers (docker, podman, containerd and Kubernetes, CRI-O, LXC,
systemd-nspawn), those of "ip netns", those only a process is in, and those
that only a socket leads to (a process opened it there and left). A NETNS
column appears when a socket shown is outside the host; it names the
namespace: host, the container's name, the ip netns name, "pid N (comm)" for
its first process, or orphan. EXPOSURE is about the socket's own namespace:
"all (in container web-1)" is every interface of that container, not of the
host. --netns host|NAME|INODE|all restricts the scan (names may be globs).
Without root, namespaces that cannot be entered are read through
/proc/PID/net of a member when possible, and a note says which.

A socket whose process can't be seen is still listed, with the reason:
not permitted (run as root), no process in this PID namespace, or the process
exited during the scan.

As root (or with CAP_BPF and CAP_PERFMON) owners are found by a small BPF
program over every process's open files, about twice as fast as
reading /proc/PID/fd; otherwise /proc is walked. "-o json" names the method
in "resolver". PORTEIRO_OWNERS=procfs forces the walk. A second program
(Linux 5.18 or later) reads every process's name, user and command line in
one pass, so that the owners' details are not read from /proc one process at
a time.

Exit status: 0 when at least one socket is listed, 1 when nothing matched,
2 on bad usage or when sockets could not be read.`,
		Example: `  porteiro list
  porteiro list --tcp -4 --port 80,443
  porteiro list --netns host
  porteiro list --netns 'web-*' -o wide
  porteiro list --all --state established --user www-data
  porteiro list -o json | jq '.sockets[] | select(.exposure=="all")'`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			return runList(env, f)
		},
	}
	f.addProto(c)
	f.addSelect(c)
	return c
}

func runList(env *Env, f *sockFlags) error {
	q, err := f.query()
	if err != nil {
		return err
	}
	sf, err := f.filter()
	if err != nil {
		return err
	}
	q.Keep = sf.keep
	for _, r := range sf.ports {
		q.LocalPorts = append(q.LocalPorts, [2]uint16{r.Lo, r.Hi})
	}
	// The plain table shows no executable, unit or container: not reading
	// them saves two system calls per process.
	snap, err := scan(f, q, f.output == "table")
	if err != nil {
		return err
	}
	socks := sf.apply(snap.Sockets)
	if err := render.Sockets(env.Stdout, f.output, snap, socks, tableOptions(env)); err != nil {
		return err
	}
	printNotes(env, snap, socks)
	if len(socks) == 0 {
		return silentExit(ExitNotFound)
	}
	return nil
}

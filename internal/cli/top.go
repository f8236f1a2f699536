package cli

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"golang.org/x/sys/unix"

	"github.com/porteiro/porteiro/internal/cmdkit"
	"github.com/porteiro/porteiro/internal/localapi"
	"github.com/porteiro/porteiro/inventory"
	"github.com/porteiro/porteiro/policy"
)

func init() { register(15, func(env *Env) *cobra.Command { return newTopCmd(env, nil) }) }

// TopOptions are the options of "porteiro top", parsed and checked.
type TopOptions struct {
	Delay      float64 // seconds between refreshes
	Iterations int     // refreshes before stopping; 0: never
	Batch      bool
	Output     string // text or ndjson
	ProcRoot   string
	NoOwners   bool
	Socket     string // porteirod's local API socket; "" for the default
	PolicyPath string
	// Policy is the policy loaded from PolicyPath; nil for none.
	Policy *policy.Policy
}

// TopProgram is the program that runs "porteiro top". The interactive
// view's libraries (bubbletea, lipgloss and what they bring) take 2 MB of
// a program and 2 ms of each start to initialise: porteiro, whose other
// commands are one-shot and timed against ss and fuser, does not link
// them. It runs TopProgram, found beside its own executable, else in
// PATH.
const TopProgram = "porteiro-top"

// newTopCmd is the top command. run runs it; nil (porteiro) runs
// TopProgram with the same options.
func newTopCmd(env *Env, run func(env *Env, o *TopOptions) error) *cobra.Command {
	o := &TopOptions{}
	c := &cobra.Command{
		Use:   "top",
		Short: "Live view of every listener: its owner, connections and traffic",
		Long: `Show every listening TCP and UDP socket, refreshed every few seconds, with who
holds it and how much traffic flows through it right now. No packet capture:
connections and their byte counters come from the kernel's sock_diag
interface (tcp_info), sampled at each refresh.

Columns: PROTO, LOCAL, EXPOSURE, NETNS (only when a listener is outside the
host's network namespace), PID, USER, COMMAND, then
  CONNS     established connections accepted through the listener
  NEW/s     connections opened per second since the last refresh
  IN/s      bytes per second received through those connections
  OUT/s     bytes per second sent (and acknowledged by the peer)
  TOP PEER  the remote address with the most traffic, then the most
            connections; its connection count in parentheses
The header shows the host, the totals, how long a refresh took and whether
every owner could be seen (run as root for that). New listeners are
highlighted for a few seconds; closed ones stay, greyed, for a few seconds.

When a policy file exists (` + policy.DefaultPath + `, or -p FILE), a "!"
column marks the listeners that break it, as "porteiro check" would report
them (Enter shows the finding and the rule's reason), and the header counts
them and the required services that do not listen. -p '' turns it off.

Connections that open and close between two refreshes are counted from
porteirod's eBPF close counters, asked on its local socket (--socket) when it
runs with kernel events; without it they are not seen, and short connections
may be undercounted (the footer says which).

Keys:
  s or >, <     sort by the next or previous column (traffic by default)
  r             reverse the sort
  /             filter, fzf-style: words must all match (fuzzy); port:443,
                proc:nginx, user:www-data and netns:INODE test one field;
                !word excludes. Enter keeps it, Esc clears it
  p             one row per process instead of per listener
  Enter         details: every owner, every connection with its peer and rates
  k             send SIGTERM to the owners of the selected row, after a
                confirmation, with the identity checks of "porteiro kill"
  up/down, PgUp/PgDn, Home/End   move;   Esc back;   q or Ctrl-C quit

Batch mode (-b) prints -n snapshots, one every -d seconds, as text or, with
"-o ndjson", one JSON object per line: {"time":..., "listeners":[...]},
each listener the SOCKET object of "porteiro list -o json" with
"connections", "new_per_sec", "bytes_in_per_sec", "bytes_out_per_sec" and
"top_peer", busiest first, and "policy" (the finding) on those that break
the policy.

The view is the program ` + TopProgram + `, installed beside porteiro, which
porteiro runs with the same options.

Exit status: 0 on a normal exit, 2 on bad usage, on a policy file given with
-p that cannot be read or is invalid (or an invalid one at the default
path), when sockets could not be read, or when ` + TopProgram + ` is missing.`,
		Example: `  sudo porteiro top
  porteiro top -d 2
  porteiro top -b -n 5 -d 1
  porteiro top -b -n 1 -o ndjson | jq '.listeners[0]'`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			if !(o.Delay >= 0.1 && o.Delay <= 3600) {
				return usageErrorf("-d: %v seconds is out of range 0.1-3600", o.Delay)
			}
			if o.Iterations < 0 {
				return usageErrorf("-n: %d is negative", o.Iterations)
			}
			switch o.Output {
			case "text", "ndjson":
			default:
				return usageErrorf("unknown output format %q: want text or ndjson", o.Output)
			}
			if o.Output == "ndjson" {
				o.Batch = true
			}
			if !o.Batch && !isTerminal(env.Stdin) {
				return usageErrorf("stdin is not a terminal: use -b for batch mode")
			}
			pol, err := loadTopPolicy(o.PolicyPath, c.Flags().Changed("policy"))
			if err != nil {
				return err
			}
			o.Policy = pol
			if o.Socket == "" {
				// porteirod's socket from its configuration; none usable,
				// no daemon to ask.
				o.Socket, _ = socketOf(defaultConfigFile, false)
			}
			if run != nil {
				return run(env, o)
			}
			return runTopProgram(env, c.Flags())
		},
	}
	c.Flags().Float64VarP(&o.Delay, "delay", "d", 1, "seconds between refreshes")
	c.Flags().IntVarP(&o.Iterations, "iterations", "n", 0, "stop after this many refreshes (0: never)")
	c.Flags().BoolVarP(&o.Batch, "batch", "b", false, "print snapshots instead of the interactive view")
	c.Flags().StringVarP(&o.Output, "output", "o", "text", "batch output format: text or ndjson")
	c.Flags().BoolVar(&o.NoOwners, "no-owners", false, "do not look up owning processes (faster)")
	c.Flags().StringVar(&o.Socket, "socket", "", "porteirod's local API socket, for the connections that closed between refreshes (default: socket: of the configuration, else "+localapi.DefaultSocket+")")
	c.Flags().StringVarP(&o.PolicyPath, "policy", "p", policy.DefaultPath, "policy file whose violations to mark ('' for none)")
	c.Flags().StringVar(&o.ProcRoot, "proc", "/proc", "procfs mount point to read processes from")
	c.Flags().MarkHidden("proc")
	return c
}

// loadTopPolicy reads the policy whose violations top marks. A file given
// with -p must load; the default one may be absent (then nothing is
// marked), but not broken: an admin who wrote one wants to hear so.
func loadTopPolicy(path string, explicit bool) (*policy.Policy, error) {
	if path == "" {
		return nil, nil
	}
	if !explicit {
		if _, err := os.Lstat(path); errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
	}
	return loadPolicyOrExit(path)
}

// topProgramPath finds TopProgram: beside porteiro's own executable, else
// in PATH.
func topProgramPath() (string, error) {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), TopProgram)
		if st, err := os.Stat(p); err == nil && st.Mode().IsRegular() && st.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	if p, err := exec.LookPath(TopProgram); err == nil {
		return p, nil
	}
	return "", exitWith(ExitUsage, fmt.Errorf("porteiro top runs %s, which is neither beside porteiro nor in PATH: install it with porteiro", TopProgram))
}

// runTopProgram runs TopProgram with the options that were set. A
// process that runs this one command (MainProcess) becomes it (execve): the
// terminal, signals and exit status are then the view's own. Main, which
// tests call in their own process, runs it as a child instead.
func runTopProgram(env *Env, flags *pflag.FlagSet) error {
	path, err := topProgramPath()
	if err != nil {
		return err
	}
	argv := []string{TopProgram}
	flags.Visit(func(f *pflag.Flag) { argv = append(argv, "--"+f.Name+"="+f.Value.String()) })
	if oneShotProcess {
		err := unix.Exec(path, argv, os.Environ())
		return fmt.Errorf("running %s: %w", path, err)
	}
	cmd := exec.Command(path, argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = env.Stdin, env.Stdout, env.Stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) && ee.ExitCode() > 0 {
			return silentExit(ee.ExitCode())
		}
		return fmt.Errorf("running %s: %w", path, err)
	}
	return nil
}

// RefuseSignal says why top must not signal p, as "porteiro kill" would
// refuse it, or is nil.
func RefuseSignal(p inventory.Process) error { return refuseSignal(p) }

// SignalProcess sends sig to p if it is still the process that was listed
// (pid and start time), as "porteiro kill" does.
func SignalProcess(procRoot string, p inventory.Process, sig syscall.Signal) error {
	return signalProcess(procRoot, p, sig)
}

// MainTop is the main of TopProgram: "porteiro top" with run, which
// implements it, and the same options.
func MainTop(args []string, stdin io.Reader, stdout, stderr io.Writer, run func(env *Env, o *TopOptions) error) int {
	env := &Env{Args: args, Stdin: stdin, Stdout: stdout, Stderr: stderr}
	c := newTopCmd(env, run)
	c.Use = TopProgram
	cmdkit.Setup(c, env)
	return cmdkit.Run(c, env)
}

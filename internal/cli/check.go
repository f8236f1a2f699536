package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/porteiro/porteiro/internal/render"
	"github.com/porteiro/porteiro/inventory"
	"github.com/porteiro/porteiro/policy"
)

// CheckSchemaVersion is the version of the JSON that "check -o json" writes
// (docs/check-json.md).
const CheckSchemaVersion = 1

func init() { register(50, newCheckCmd) }

type checkFlags struct {
	policyPath string
	output     string
	notify     bool
	procRoot   string
}

func newCheckCmd(env *Env) *cobra.Command {
	f := &checkFlags{}
	c := &cobra.Command{
		Use:   "check",
		Short: "Compare what listens with the policy; exit 1 on findings",
		Long: `Scan the listening TCP and UDP sockets once and compare them with the policy
(` + policy.DefaultPath + `, or -p FILE). Every difference is a finding:

  unexpected   listening, and no rule allows it
  missing      a require rule matches nothing that listens (a dead service)
  wrong_owner  a rule allows the port, but another process, user or unit holds it
  too_exposed  a rule allows the port on some addresses (say loopback), and it
               is bound wider (say all interfaces)

Each finding shows the socket as "porteiro list" does (protocol, address,
exposure, pids, user, process, command line) and the rule it concerns.

The policy format is described in docs/policy.md; "porteiro baseline" writes
one from what listens now. To send findings to alert channels from a
timer, use "porteirod once"; the daemon, porteirod, does it as they happen.

Run as root: a policy that names processes, users, units or containers
cannot be checked without seeing every process, and check then refuses
(exit 2) rather than report a host it could not see as clean.

Exit status:
  0  clean: everything that listens is allowed, everything required listens
  1  findings (printed on stdout)
  2  the check could not run: broken or missing policy (errors as
     FILE:LINE:COLUMN), sockets unreadable, or owners needed and not visible`,
		Example: `  porteiro baseline > /etc/porteiro/policy.yaml
  porteiro check
  porteiro check -p ./staging.yaml -o json | jq '.findings[] | .message'`,
		Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, args []string) error {
			return runCheck(env, f)
		},
	}
	c.Flags().StringVarP(&f.policyPath, "policy", "p", policy.DefaultPath, "policy file to check against")
	c.Flags().StringVarP(&f.output, "output", "o", "table", "output format: table or json")
	// --notify moved to the daemon's program; the flag stays to say where.
	c.Flags().BoolVar(&f.notify, "notify", false, "moved: use \"porteirod once\"")
	c.Flags().MarkHidden("notify")
	c.Flags().StringVar(&f.procRoot, "proc", "/proc", "procfs mount point to read processes from")
	c.Flags().MarkHidden("proc")
	return c
}

// loadPolicyOrExit reads the policy and turns every failure into an exit-2 error
// that says what to do.
func loadPolicyOrExit(path string) (*policy.Policy, error) {
	pol, err := policy.Load(path)
	if err == nil {
		return pol, nil
	}
	var list policy.ErrorList
	switch {
	case errors.As(err, &list):
		return nil, exitWith(ExitUsage, fmt.Errorf("invalid policy:\n%w", err))
	case errors.Is(err, fs.ErrNotExist):
		return nil, usageErrorf("no policy at %s: write one with \"porteiro baseline > %s\", or pass -p FILE", path, path)
	}
	return nil, usageErrorf("%v", err)
}

func runCheck(env *Env, f *checkFlags) error {
	if f.output != "table" && f.output != "json" {
		return usageErrorf("unknown output format %q: want table or json", f.output)
	}
	// Refuse before scanning: a cron job asked for alerts, and should hear
	// where they went rather than get a report nobody reads.
	if f.notify {
		return usageErrorf("check --notify moved: run \"porteirod once\" (it reads the alert channels and the policy of %s)", defaultConfigFile)
	}
	pol, err := loadPolicyOrExit(f.policyPath)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	snap, err := inventory.NewScanner(inventory.Options{ProcRoot: f.procRoot}).Scan(ctx, inventory.Query{})
	if err != nil {
		return usageErrorf("%v; porteiro needs the sock_diag netlink interface or a readable /proc/net", err)
	}
	if pol.NeedsOwners() && !snap.Privileged {
		return usageErrorf("the policy %s matches on processes, users, units or containers, but this scan could not see every process's sockets; run as root (or with CAP_SYS_PTRACE and CAP_DAC_READ_SEARCH). Not reporting the host as clean", f.policyPath)
	}
	rep := pol.Check(snap)
	if f.output == "json" {
		err = writeCheckJSON(env.Stdout, f.policyPath, snap, pol, rep)
	} else {
		err = writeCheckTable(env, f.policyPath, snap, pol, rep)
	}
	if err != nil {
		return fmt.Errorf("writing the report: %w", err)
	}
	for _, n := range snap.Notes {
		fmt.Fprintf(env.Stderr, "porteiro: note: %s\n", n)
	}
	if !rep.Clean() {
		return silentExit(ExitNotFound)
	}
	return nil
}

// checkDocument is the JSON that "check -o json" writes.
type checkDocument struct {
	SchemaVersion int              `json:"schema_version"`
	Time          time.Time        `json:"time"`
	Host          string           `json:"host"`
	Policy        string           `json:"policy"`
	Clean         bool             `json:"clean"`
	Listeners     int              `json:"listeners"`
	Rules         int              `json:"rules"`
	Privileged    bool             `json:"privileged"`
	Counts        map[string]int   `json:"counts"`
	Findings      []policy.Finding `json:"findings"`
	Notes         []string         `json:"notes"`
}

func writeCheckJSON(w io.Writer, path string, snap *inventory.Snapshot, pol *policy.Policy, rep *policy.Report) error {
	host, _ := os.Hostname()
	doc := checkDocument{
		SchemaVersion: CheckSchemaVersion,
		Time:          snap.Time,
		Host:          host,
		Policy:        path,
		Clean:         rep.Clean(),
		Listeners:     rep.Checked,
		Rules:         len(pol.Rules),
		Privileged:    snap.Privileged,
		Counts:        rep.Counts(),
		Findings:      rep.Findings,
		Notes:         snap.Notes,
	}
	if doc.Findings == nil {
		doc.Findings = []policy.Finding{}
	}
	for i := range doc.Findings {
		if s := doc.Findings[i].Socket; s != nil && s.Processes == nil {
			cp := *s
			cp.Processes = []inventory.Process{}
			doc.Findings[i].Socket = &cp
		}
	}
	if doc.Notes == nil {
		doc.Notes = []string{}
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(doc)
}

// checkColors marks each finding kind on a terminal.
var checkColors = map[string]string{
	policy.Unexpected: "\x1b[31m", // red
	policy.WrongOwner: "\x1b[31m",
	policy.Missing:    "\x1b[35m", // magenta
	policy.TooExposed: "\x1b[33m", // yellow
}

func writeCheckTable(env *Env, path string, snap *inventory.Snapshot, pol *policy.Policy, rep *policy.Report) error {
	opts := tableOptions(env)
	if rep.Clean() {
		_, err := fmt.Fprintf(env.Stdout, "clean: %d listening socket(s) match the %d rule(s) of %s\n", rep.Checked, len(pol.Rules), path)
		return err
	}
	t := render.NewTable("KIND", "PROTO", "LOCAL", "EXPOSURE", "PID", "USER", "PROCESS", "RULE", "EXPECTED", "COMMAND")
	for _, f := range rep.Findings {
		rule := f.Rule
		if rule == "" {
			rule = "-"
		}
		expected := f.Expected
		if expected == "" {
			expected = "-"
		}
		if f.Socket == nil {
			t.Row(f.Kind, "-", "-", "-", "-", "-", "-", rule, expected, "-")
			continue
		}
		s := f.Socket
		pids, users, names := "-", "-", render.Unattributed(s.UnattributedReason)
		cmd := "-"
		if len(s.Processes) > 0 {
			var ps, us, ns []string
			for i := range s.Processes {
				p := &s.Processes[i]
				ps = append(ps, strconv.Itoa(p.PID))
				us = checkAppendUniq(us, p.User)
				ns = checkAppendUniq(ns, p.Name)
			}
			pids, users, names = strings.Join(ps, ","), strings.Join(us, ","), strings.Join(ns, ",")
			cmd = s.Processes[0].CommandLine()
		}
		t.Row(f.Kind, string(s.Proto), render.Local(s), render.Exposure(s), pids, users, names, rule, expected, cmd)
	}
	var buf bytes.Buffer
	if err := t.Write(&buf, opts); err != nil {
		return err
	}
	color := opts.Width > 0 && os.Getenv("NO_COLOR") == ""
	lines := strings.SplitAfter(buf.String(), "\n")
	for i, line := range lines {
		// Colour only the KIND cell, after the table is lined up, so the
		// escape codes do not count as width.
		if color && i > 0 && i <= len(rep.Findings) {
			k := rep.Findings[i-1].Kind
			if c, ok := checkColors[k]; ok && strings.HasPrefix(line, k) {
				line = c + k + "\x1b[0m" + line[len(k):]
			}
		}
		if _, err := io.WriteString(env.Stdout, line); err != nil {
			return err
		}
	}
	counts := rep.Counts()
	var parts []string
	for _, k := range policy.Kinds {
		if counts[k] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[k], k))
		}
	}
	fmt.Fprintf(env.Stdout, "\n%d finding(s): %s (%d listening socket(s), %d rule(s) in %s)\n", len(rep.Findings), strings.Join(parts, ", "), rep.Checked, len(pol.Rules), path)
	for _, f := range rep.Findings {
		fmt.Fprintf(env.Stdout, "  %s: %s\n", f.Kind, f.Message)
	}
	if rep.Unverified > 0 {
		fmt.Fprintf(env.Stdout, "%d listening socket(s) could not be checked against owner conditions: their processes are not visible\n", rep.Unverified)
	}
	return nil
}

func checkAppendUniq(xs []string, s string) []string {
	if s == "" {
		return xs
	}
	for _, x := range xs {
		if x == s {
			return xs
		}
	}
	return append(xs, s)
}

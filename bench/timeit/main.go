//go:build unix

// Command timeit times commands in interleaved rounds: round 1 runs every
// command once, then round 2, and so on. On a shared, noisy machine this
// exposes every command to the same noise, which running all the runs of one
// command and then all of the next (as hyperfine does) does not.
//
//	timeit -runs 20 -warmup 2 -json out.json \
//	    -c 'porteiro list::bin/porteiro list' -c 'ss -tlnp::ss -tlnp' \
//	    -c 'lsof -i::lsof -i -P -n::5'
//
// Each -c is NAME::COMMAND[::RUNS]; COMMAND is split on spaces and run
// without a shell, with stdin, stdout and stderr on /dev/null. RUNS caps the
// runs of a slow command. For every run it records the wall time, the CPU
// time (user + system) and the peak RSS from the kernel's rusage; the JSON
// has the medians and every run, in seconds and KiB.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"os/exec"
	"os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// running is the command being timed, killed if timeit is stopped.
var running struct {
	sync.Mutex
	cmd *exec.Cmd
}

type command struct {
	name string
	argv []string
	runs int
}

// Result is one command's figures. Times are in seconds.
type Result struct {
	Command   string    `json:"command"`
	Median    float64   `json:"median"`
	Mean      float64   `json:"mean"`
	Stddev    float64   `json:"stddev"`
	Min       float64   `json:"min"`
	Max       float64   `json:"max"`
	User      float64   `json:"user"`   // mean
	System    float64   `json:"system"` // mean
	CPUMedian float64   `json:"cpu_median"`
	RSSMedian int64     `json:"max_rss_kib_median"`
	Times     []float64 `json:"times"`
	CPUTimes  []float64 `json:"cpu_times"`
	MaxRSS    []int64   `json:"max_rss_kib"`
	ExitCodes []int     `json:"exit_codes"`
}

type cmdFlag []command

func (c *cmdFlag) String() string { return fmt.Sprint(len(*c)) }

func (c *cmdFlag) Set(v string) error {
	parts := strings.Split(v, "::")
	if len(parts) < 2 || len(parts) > 3 || parts[0] == "" || strings.TrimSpace(parts[1]) == "" {
		return fmt.Errorf("want NAME::COMMAND[::RUNS], got %q", v)
	}
	cmd := command{name: parts[0], argv: strings.Fields(parts[1])}
	if len(parts) == 3 {
		n, err := strconv.Atoi(parts[2])
		if err != nil || n < 1 {
			return fmt.Errorf("bad run count in %q", v)
		}
		cmd.runs = n
	}
	*c = append(*c, cmd)
	return nil
}

func main() {
	var cmds cmdFlag
	runs := flag.Int("runs", 10, "timed runs per command")
	warmup := flag.Int("warmup", 2, "untimed runs per command first")
	out := flag.String("json", "", "write the results as JSON to this file")
	timeout := flag.Duration("timeout", 5*time.Minute, "kill a run that takes longer")
	flag.Var(&cmds, "c", "NAME::COMMAND[::RUNS], repeated")
	flag.Parse()
	if len(cmds) == 0 || *runs < 1 {
		fmt.Fprintln(os.Stderr, "usage: timeit [-runs N] [-warmup N] [-json FILE] -c NAME::COMMAND[::RUNS] ...")
		os.Exit(2)
	}
	null, err := os.OpenFile(os.DevNull, os.O_RDWR, 0)
	if err != nil {
		fatal(err)
	}
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sig
		running.Lock()
		if running.cmd != nil && running.cmd.Process != nil {
			_ = running.cmd.Process.Kill()
		}
		running.Unlock()
		fmt.Fprintf(os.Stderr, "\ntimeit: stopped by %v\n", s)
		os.Exit(130)
	}()
	res := make([]Result, len(cmds))
	for i, c := range cmds {
		res[i].Command = c.name
	}
	for round := -*warmup; round < *runs; round++ {
		for i, c := range cmds {
			if c.runs > 0 && round >= c.runs {
				continue
			}
			if round < 0 && c.runs > 0 && round < -1 {
				continue // slow commands get one warm-up
			}
			wall, cpu, rss, user, sys, code, err := runOnce(c.argv, null, *timeout)
			if err != nil {
				fatal(fmt.Errorf("%s: %w", c.name, err))
			}
			if round < 0 {
				continue
			}
			r := &res[i]
			r.Times = append(r.Times, wall)
			r.CPUTimes = append(r.CPUTimes, cpu)
			r.MaxRSS = append(r.MaxRSS, rss)
			r.ExitCodes = append(r.ExitCodes, code)
			r.User += user
			r.System += sys
		}
		if round >= 0 {
			fmt.Fprintf(os.Stderr, "\rtimeit: round %d/%d", round+1, *runs)
		}
	}
	fmt.Fprintln(os.Stderr)
	for i := range res {
		summarize(&res[i])
		r := &res[i]
		fmt.Fprintf(os.Stderr, "%-28s median %8.1f ms  cpu %8.1f ms  rss %6.1f MB  (%d runs)\n",
			r.Command, r.Median*1000, r.CPUMedian*1000, float64(r.RSSMedian)/1024, len(r.Times))
	}
	if *out != "" {
		b, err := json.MarshalIndent(map[string]any{"results": res}, "", "  ")
		if err != nil {
			fatal(err)
		}
		if err := os.WriteFile(*out, append(b, '\n'), 0o644); err != nil {
			fatal(err)
		}
	}
}

// runOnce runs argv and returns its wall time, CPU time, peak RSS (KiB),
// user and system time, and exit code. A non-zero exit is not an error:
// fuser and who exit 1 when nothing holds the port.
func runOnce(argv []string, null *os.File, timeout time.Duration) (wall, cpu float64, rss int64, user, sys float64, code int, err error) {
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = null, null, null
	cmd.WaitDelay = time.Second
	running.Lock()
	t0 := time.Now()
	err = cmd.Start()
	running.cmd = cmd
	running.Unlock()
	if err != nil {
		return
	}
	timer := time.AfterFunc(timeout, func() { _ = cmd.Process.Kill() })
	werr := cmd.Wait()
	wall = time.Since(t0).Seconds()
	timer.Stop()
	if werr != nil {
		if _, ok := werr.(*exec.ExitError); !ok {
			err = werr
			return
		}
	}
	ru, _ := cmd.ProcessState.SysUsage().(*syscall.Rusage)
	if ru != nil {
		user = time.Duration(ru.Utime.Nano()).Seconds()
		sys = time.Duration(ru.Stime.Nano()).Seconds()
		rss = int64(ru.Maxrss) // KiB on Linux
	}
	return wall, user + sys, rss, user, sys, cmd.ProcessState.ExitCode(), nil
}

func summarize(r *Result) {
	n := float64(len(r.Times))
	if n == 0 {
		return
	}
	r.Median = median(r.Times)
	r.CPUMedian = median(r.CPUTimes)
	rs := append([]int64(nil), r.MaxRSS...)
	sort.Slice(rs, func(a, b int) bool { return rs[a] < rs[b] })
	r.RSSMedian = rs[len(rs)/2]
	r.Min, r.Max = math.Inf(1), math.Inf(-1)
	for _, t := range r.Times {
		r.Mean += t / n
		r.Min = math.Min(r.Min, t)
		r.Max = math.Max(r.Max, t)
	}
	for _, t := range r.Times {
		r.Stddev += (t - r.Mean) * (t - r.Mean) / n
	}
	r.Stddev = math.Sqrt(r.Stddev)
	r.User /= n
	r.System /= n
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	m := len(s) / 2
	if len(s)%2 == 0 {
		return (s[m-1] + s[m]) / 2
	}
	return s[m]
}

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "timeit:", err)
	os.Exit(1)
}

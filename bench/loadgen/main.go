// Command loadgen puts a synthetic socket load on this host, so that porteiro
// and ss, netstat, lsof and fuser can be timed on the same state.
//
//	loadgen -preset medium                 # 500 processes, 20,000 sockets, 4,000 other fds
//	loadgen -procs 100 -sockets 5000 -fds 1000 -listen-frac 0.5 -duration 10m
//	loadgen -netns 100 -per-netns 5        # 100 `ip netns` namespaces of 5 listeners
//
// It creates loopback TCP listeners (on many 127.x.y.z addresses and ::1),
// established loopback TCP pairs, UDP sockets (bound and connected),
// SO_REUSEPORT groups, and sockets shared by two processes, plus /dev/null,
// files, pipes and unix socketpairs. Every socket is created by loadgen and
// handed to a small holder process (`sleep infinity`, or loadgen itself with
// -holder self) as an inherited fd.
//
// When the load is up it prints one line starting with "ready", with the
// socket counts and a TCP port (who_port) held by loadgen and two holders.
// With -netns N it also makes N network namespaces as `ip netns add` does
// (porteiro-bench-000, ...), each with -per-netns TCP listeners held by one
// holder that is a member of it, as on a host of containers; -netns alone
// makes only those. They are deleted when loadgen stops.
//
// It stays until SIGINT, SIGTERM or -duration, then kills every holder by pid.
// Exit status: 0 after a clean stop, 1 if the load could not be built, 2 on
// bad usage.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/porteiro/porteiro/bench/internal/load"
)

// holdEnv marks a loadgen started as a holder (-holder self); its value is
// how long to hold, in seconds.
const holdEnv = "PORTEIRO_LOADGEN_HOLD"

func main() {
	if v, ok := os.LookupEnv(holdEnv); ok {
		hold(v)
		return
	}
	os.Exit(run())
}

// hold is the holder mode: keep the inherited fds open until a signal or
// the deadline.
func hold(secs string) {
	n, _ := strconv.Atoi(secs)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	var deadline <-chan time.Time
	if n > 0 {
		deadline = time.After(time.Duration(n) * time.Second)
	}
	select {
	case <-sig:
	case <-deadline:
	}
}

func run() int {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	preset := fs.String("preset", "", "a named size: small, medium (500 procs, 20,000 sockets) or large (2,000 procs, 100,000 sockets)")
	procs := fs.Int("procs", 0, "holder processes")
	sockets := fs.Int("sockets", 0, "TCP and UDP sockets in total")
	fds := fs.Int("fds", -1, "other fds (/dev/null, files, pipes, unix socketpairs)")
	listenFrac := fs.Float64("listen-frac", 0, "share of the sockets that are TCP listeners (default 0.25)")
	udpFrac := fs.Float64("udp-frac", 0, "share of the sockets that are UDP (default 0.15)")
	duration := fs.Duration("duration", time.Hour, "stop after this long; 0 means only on a signal")
	holder := fs.String("holder", "sleep", `what holds the fds: "sleep" (sleep infinity, smallest) or "self" (loadgen, GOMAXPROCS=1)`)
	pidfile := fs.String("pidfile", "", "write loadgen's pid and every holder's pid to this file, one per line")
	quiet := fs.Bool("q", false, "no progress lines")
	nsCount := fs.Int("netns", 0, "also make this many `ip netns` namespaces (porteiro-bench-NNN), deleted on exit")
	perNS := fs.Int("per-netns", 5, "TCP listeners in each -netns namespace, held by one process inside it")
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "usage: loadgen -preset small|medium|large | -procs N -sockets M -fds K | -netns N [flags]\n\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(os.Args[1:]); err != nil {
		return 2
	}
	if *nsCount < 0 || *nsCount > 1000 || *perNS < 1 || *perNS > 1000 {
		fmt.Fprintln(os.Stderr, "loadgen: -netns must be 0..1000 and -per-netns 1..1000")
		return 2
	}
	// -netns alone: only the namespaces.
	hostLoad := *nsCount == 0 || *preset != "" || *procs > 0 || *sockets > 0 || *fds >= 0
	var cfg load.Config
	if *preset != "" {
		var err error
		if cfg, err = load.Preset(*preset); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			return 2
		}
	}
	if *procs > 0 {
		cfg.Procs = *procs
	}
	if *sockets > 0 {
		cfg.Sockets = *sockets
	}
	if *fds >= 0 {
		cfg.FDs = *fds
	}
	cfg.ListenFrac, cfg.UDPFrac = *listenFrac, *udpFrac
	var plan *load.Plan
	if hostLoad {
		var err error
		if plan, err = load.NewPlan(cfg); err != nil {
			fmt.Fprintf(os.Stderr, "loadgen: %v (see loadgen -h)\n", err)
			return 2
		}
	}

	opts := load.Options{Log: os.Stderr}
	if *quiet {
		opts.Log = nil
	}
	secs := "infinity"
	if *duration > 0 {
		// Holders end on their own shortly after loadgen would have.
		secs = strconv.Itoa(int((*duration + time.Minute).Seconds()))
	}
	switch *holder {
	case "sleep":
		opts.Holder = []string{"sleep", secs}
	case "self":
		exe, err := os.Executable()
		if err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			return 1
		}
		if secs == "infinity" {
			secs = "0"
		}
		opts.Holder = []string{exe}
		opts.HolderEnv = []string{holdEnv + "=" + secs, "GOMAXPROCS=1", "GOGC=10", "GODEBUG=madvdontneed=1"}
	default:
		fmt.Fprintf(os.Stderr, "loadgen: -holder must be sleep or self, not %q\n", *holder)
		return 2
	}

	// Signals during the build cancel it; Start cleans up what it made.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer stop()
	var (
		l     *load.Load
		ready []string
	)
	if hostLoad {
		if opts.Log != nil {
			fmt.Fprintf(os.Stderr, "loadgen: %d holders, %d sockets, %d other fds (largest holder %d fds)\n",
				len(plan.Holds), plan.Sockets, plan.OtherFDs, plan.MaxHolderFDs)
		}
		var err error
		if l, err = load.Start(ctx, plan, opts); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			return 1
		}
		defer l.Stop()
		ready = append(ready, l.Summary.String())
	}
	var ns *nsLoad
	if *nsCount > 0 {
		if opts.Log != nil {
			fmt.Fprintf(os.Stderr, "loadgen: %d network namespaces of %d listeners\n", *nsCount, *perNS)
		}
		var err error
		// Deferred before it can fail: what was made is removed on every
		// return, a signal included.
		defer func() { ns.Stop() }()
		if ns, err = startNetns(ctx, *nsCount, *perNS, opts.Holder, opts.HolderEnv, opts.Log); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			return 1
		}
		ready = append(ready, ns.String())
	}
	if *pidfile != "" {
		var b strings.Builder
		fmt.Fprintln(&b, os.Getpid())
		if l != nil {
			for _, p := range l.Summary.PIDs {
				fmt.Fprintln(&b, p)
			}
		}
		if ns != nil {
			for _, p := range ns.pids {
				fmt.Fprintln(&b, p)
			}
		}
		if err := os.WriteFile(*pidfile, []byte(b.String()), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "loadgen:", err)
			return 1
		}
		defer os.Remove(*pidfile)
	}
	fmt.Printf("ready %s\n", strings.Join(ready, " "))

	var deadline <-chan time.Time
	if *duration > 0 {
		deadline = time.After(*duration)
	}
	select {
	case <-ctx.Done():
	case <-deadline:
	}
	if opts.Log != nil {
		fmt.Fprintln(os.Stderr, "loadgen: stopping")
	}
	return 0
}

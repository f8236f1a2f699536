// Command eventbench measures porteirod's listener detection, the numbers
// of docs/performance.md's "Listener events" section:
//
//   - latency from listen() to the stored event (the event's time as
//     porteirod recorded it), p50, p99 and max;
//   - the share of short-lived listeners (each open for -life) that are
//     recorded, with kernel events and with polling every -poll;
//   - porteirod's CPU use when idle, in both modes;
//   - with -webhook, the latency from listen() to the alert's webhook POST
//     received by a loopback HTTP server (burst: 0s), p50, p99 and max.
//
// It starts the porteirod binary (-porteirod) twice with a temporary state
// directory and socket, opens listeners on loopback only, and reads the
// events back with "porteirod events". Run it as root (the events need
// CAP_BPF); start bench/loadgen beside it for a loaded host.
//
//	go build -o /tmp/porteirod ./cmd/porteirod
//	go run ./bench/eventbench -porteirod /tmp/porteirod -n 1000 -life 10ms
//	go run ./bench/eventbench -porteirod /tmp/porteirod -n 500 -modes ebpf -webhook
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

func main() {
	bin := flag.String("porteirod", "porteirod", "porteirod binary")
	n := flag.Int("n", 1000, "short-lived listeners per mode")
	life := flag.Duration("life", 10*time.Millisecond, "how long each listener lives")
	poll := flag.Duration("poll", 2*time.Second, "polling interval to compare with")
	idle := flag.Duration("idle", 30*time.Second, "how long to measure idle CPU")
	modes := flag.String("modes", "ebpf,poll", "modes to run, comma-separated: ebpf, poll")
	webhook := flag.Bool("webhook", false, "also measure listen() to the webhook POST (burst: 0s) on a loopback HTTP server")
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "eventbench: run as root (kernel events need CAP_BPF)")
		os.Exit(2)
	}
	for _, mode := range strings.Split(*modes, ",") {
		if mode != "ebpf" && mode != "poll" {
			fmt.Fprintf(os.Stderr, "eventbench: unknown mode %q (ebpf or poll)\n", mode)
			os.Exit(2)
		}
		if err := run(*bin, mode, *n, *life, *poll, *idle, *webhook); err != nil {
			fmt.Fprintf(os.Stderr, "eventbench: %s: %v\n", mode, err)
			os.Exit(1)
		}
	}
}

// hooks is a loopback webhook receiver: when each listener's opened
// alert arrived, by port. Only this process's listeners count: other jobs
// on the host open ports too.
type hooks struct {
	mu   sync.Mutex
	got  map[int]time.Time
	addr string
}

func startHooks() (*hooks, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	h := &hooks{got: map[int]time.Time{}, addr: ln.Addr().String()}
	go func() {
		_ = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			at := time.Now()
			var body struct {
				Alerts []struct {
					Kind   string `json:"kind"`
					Socket struct {
						Local struct {
							Port int `json:"port"`
						} `json:"local"`
						Processes []struct {
							PID int `json:"pid"`
						} `json:"processes"`
					} `json:"socket"`
				} `json:"alerts"`
			}
			err := json.NewDecoder(io.LimitReader(r.Body, 64<<20)).Decode(&body)
			if err != nil {
				http.Error(w, err.Error(), http.StatusBadRequest)
				return
			}
			h.mu.Lock()
			for _, a := range body.Alerts {
				mine := false
				for _, p := range a.Socket.Processes {
					mine = mine || p.PID == os.Getpid()
				}
				if _, dup := h.got[a.Socket.Local.Port]; a.Kind == "opened" && mine && !dup {
					h.got[a.Socket.Local.Port] = at
				}
			}
			h.mu.Unlock()
			w.WriteHeader(http.StatusNoContent)
		}))
	}()
	return h, nil
}

func run(bin, mode string, n int, life, poll, idle time.Duration, webhook bool) error {
	dir, err := os.MkdirTemp("", "eventbench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	conf := filepath.Join(dir, "porteiro.yaml")
	interval, events := "30s", "auto"
	if mode == "poll" {
		interval, events = poll.String(), "off"
	}
	body := fmt.Sprintf("interval: %s\nevents: %s\ngrace: 0s\npolicy: \"\"\nstate_dir: %s\nsocket: %s\nhttp:\n  listen: \"\"\n",
		interval, events, filepath.Join(dir, "state"), filepath.Join(dir, "s.sock"))
	var hk *hooks
	if webhook {
		if hk, err = startHooks(); err != nil {
			return err
		}
		body += fmt.Sprintf("burst: 0s\nchannels:\n  webhook:\n    - name: bench\n      url: http://%s/hook\n      filter:\n        kinds: [opened]\n", hk.addr)
	}
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		return err
	}
	logf, _ := os.Create(filepath.Join(dir, "log"))
	cmd := exec.Command(bin, "-c", conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	// The daemon must not outlive the benchmark, however it ends.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
	if err := cmd.Start(); err != nil {
		return err
	}
	defer func() { _ = cmd.Process.Signal(syscall.SIGTERM); _ = cmd.Wait() }()
	// Wait for the first scan (the baseline) to be done.
	time.Sleep(3 * time.Second)

	// Idle CPU.
	t0 := cpuTicks(cmd.Process.Pid)
	time.Sleep(idle)
	idleTicks := cpuTicks(cmd.Process.Pid) - t0
	hz := 100.0
	idlePct := float64(idleTicks) / hz / idle.Seconds() * 100

	// Short-lived listeners, one after the other, on ports the kernel
	// picks, each port once: a port used twice would be one listener that
	// came back (restarted), not two.
	opened := map[int]time.Time{}
	for len(opened) < n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return err
		}
		port := l.Addr().(*net.TCPAddr).Port
		if _, dup := opened[port]; dup {
			l.Close()
			continue
		}
		opened[port] = time.Now()
		time.Sleep(life)
		l.Close()
	}
	// Let the last events and (when polling) a last scan land.
	time.Sleep(max(3*time.Second, poll+time.Second))
	out, err := exec.Command(bin, "events", "-c", conf, "--since", "1h", "--kind", "opened", "--limit", "1000000", "-o", "json").Output()
	if err != nil && len(out) == 0 {
		return fmt.Errorf("porteirod events: %v", err)
	}
	var doc struct {
		Events []struct {
			Time time.Time `json:"time"`
			Port int       `json:"port"`
			PID  int       `json:"pid"`
		} `json:"events"`
	}
	if err := json.Unmarshal(out, &doc); err != nil {
		return err
	}
	var lat []time.Duration
	seen := map[int]bool{}
	others := 0
	for _, e := range doc.Events {
		// Only this process's listeners: other jobs on the host open
		// ports too, the same numbers among them. A scan may see a
		// listener and miss its owner (it closed meanwhile): then the
		// event has no pid, and must follow our listen().
		mine := e.PID == os.Getpid()
		if !mine {
			others++
		}
		if t, ok := opened[e.Port]; ok && (mine || e.PID == 0 && !e.Time.Before(t)) && !seen[e.Port] {
			seen[e.Port] = true
			lat = append(lat, e.Time.Sub(t))
		}
	}
	p50, p99, pmax := quantiles(lat)
	// Other jobs' listeners load the daemon too: a run with thousands of
	// them measured a flood, not this benchmark.
	fmt.Printf("%-5s recorded %d/%d listeners living %v (%.1f%%); listen->stored event p50 %v p99 %v max %v; idle CPU %.2f%% of one core over %v; other listeners opened meanwhile: %d\n",
		mode, len(seen), n, life, 100*float64(len(seen))/float64(n), p50, p99, pmax, idlePct, idle, others)
	if hk != nil {
		hk.mu.Lock()
		var hl []time.Duration
		for port, t := range opened {
			if at, ok := hk.got[port]; ok {
				hl = append(hl, at.Sub(t))
			}
		}
		hk.mu.Unlock()
		p50, p99, pmax := quantiles(hl)
		fmt.Printf("%-5s webhook (burst 0s) received %d/%d opened alerts; listen->POST received p50 %v p99 %v max %v\n",
			mode, len(hl), n, p50, p99, pmax)
	}
	return nil
}

// quantiles returns the p50, p99 and max of lat, rounded to 10 µs.
func quantiles(lat []time.Duration) (p50, p99, pmax time.Duration) {
	if len(lat) == 0 {
		return 0, 0, 0
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	q := func(p float64) time.Duration {
		return lat[min(len(lat)-1, int(p*float64(len(lat))))].Round(10 * time.Microsecond)
	}
	return q(0.5), q(0.99), q(1)
}

// cpuTicks is utime+stime of pid, in clock ticks.
func cpuTicks(pid int) int64 {
	f, err := os.Open(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	defer f.Close()
	line, _ := bufio.NewReader(f).ReadString('\n')
	i := strings.LastIndexByte(line, ')')
	if i < 0 {
		return 0
	}
	fields := strings.Fields(line[i+1:])
	if len(fields) < 13 {
		return 0
	}
	u, _ := strconv.ParseInt(fields[11], 10, 64)
	s, _ := strconv.ParseInt(fields[12], 10, 64)
	return u + s
}

package inventory

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/porteiro/porteiro/internal/testenv"
	"golang.org/x/sys/unix"
)

// helperChurn holds a listener on 127.0.0.1 port lo, and opens and closes
// listeners on ports lo+1..hi-1, one at a time, about 300 a second, until
// its parent dies. With "exit" as a
// third field, it instead opens one listener, holds it briefly and exits
// with it open, so the kernel closes it at exit.
func helperChurn(spec string) {
	unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0)
	f := strings.Split(spec, ",")
	lo, _ := strconv.Atoi(f[0])
	hi, _ := strconv.Atoi(f[1])
	if len(f) > 2 && f[2] == "exit" {
		for p := lo + 1 + os.Getpid()%(hi-lo-1); ; p = lo + 1 + (p-lo)%(hi-lo-1) {
			if l, err := net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(p)); err == nil {
				time.Sleep(time.Duration(1+os.Getpid()%5) * time.Millisecond)
				_ = l
				os.Exit(0) // the listener is still open
			}
		}
	}
	// The steady listener; its port starts the range, moved past ports in
	// use.
	var steady net.Listener
	var err error
	for try := 0; try < 20; try, lo, hi = try+1, lo+hi-lo, hi+hi-lo {
		if steady, err = net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(lo)); err == nil {
			break
		}
	}
	if err != nil {
		fmt.Println("listen error:", err)
		os.Exit(1)
	}
	defer steady.Close()
	fmt.Println("ready", lo)
	for i := 0; ; i++ {
		l, err := net.Listen("tcp4", "127.0.0.1:"+strconv.Itoa(lo+1+i%(hi-lo-1)))
		time.Sleep(3 * time.Millisecond)
		if err == nil {
			l.Close()
		}
	}
}

// TestChurnNeverBlamesNoProcess scans while a child opens and closes
// listeners about 300 times a second and other children exit holding
// theirs. A listener in their port range is either found with its holder,
// or said to have lost it during the scan (process_exited); never said to
// be held by no process in this PID namespace, which would make a policy
// report a wrong owner.
func TestChurnNeverBlamesNoProcess(t *testing.T) {
	eachResolver(t, func(t *testing.T) {
		lo := 30000 + os.Getpid()%20000
		hi := lo + 40
		churn := exec.Command(os.Args[0])
		churn.Env = append(os.Environ(), fmt.Sprintf("PORTEIRO_HELPER_CHURN=%d,%d", lo, hi))
		out, err := churn.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := churn.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { churn.Process.Kill(); churn.Wait() })
		line, _ := bufio.NewReader(out).ReadString('\n')
		if _, err := fmt.Sscanf(line, "ready %d", &lo); err != nil {
			t.Fatalf("churner did not start: %q", line)
		}
		hi = lo + 40
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			for {
				select {
				case <-stop:
					return
				default:
				}
				c := exec.Command(os.Args[0])
				c.Env = append(os.Environ(), fmt.Sprintf("PORTEIRO_HELPER_CHURN=%d,%d,exit", lo, hi))
				c.Run()
			}
		}()
		defer func() { close(stop); <-done }()

		sc := NewScanner(Options{Resolver: testResolver.make()})
		defer sc.Close()
		seen := map[Reason]int{}
		owned := 0
		deadline := time.Now().Add(4 * time.Second)
		scans := 0
		for ; scans < 200 && (scans < 5 || time.Now().Before(deadline)); scans++ {
			snap, err := sc.Scan(context.Background(), Query{})
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range snap.Sockets {
				if int(s.Local.Port) < lo || int(s.Local.Port) >= hi {
					continue
				}
				if int(s.Local.Port) == lo {
					// The churner's steady listener: always found.
					if pids := s.PIDs(); len(pids) != 1 || pids[0] != churn.Process.Pid {
						t.Errorf("scan %d: the steady listener %s has pids %v (%s), want %d", scans, s.Local, pids, s.UnattributedReason, churn.Process.Pid)
					}
					continue
				}
				if len(s.Processes) > 0 {
					owned++
				}
				seen[s.UnattributedReason]++
				if s.UnattributedReason == ReasonNoProcess {
					t.Logf("scan %d: %s %s (inode %d) reported as %s", scans, s.Proto, s.Local, s.Inode, s.UnattributedReason)
				}
			}
		}
		t.Logf("%d scans; churned listeners seen: %d with owners, reasons %v", scans, owned, seen)
		// A listener in the churn range must be found with its holder or
		// said to have lost it (process_exited). Under this churn (300
		// listeners a second, holders exiting) a rare miss remains: the
		// one-shot iterator runs beside the dump, so a listener opened by
		// a process it had already passed, and still open at the recheck,
		// is not found (written in owners_linux.go), and on a loaded
		// machine the walk shows the same about once in a thousand
		// sightings. The daemon confirms such a finding at its next scan
		// before it alerts. The misses must stay rare: at most 1% of what
		// was seen.
		total := 0
		for _, n := range seen {
			total += n
		}
		allowed := max(1, total/100)
		if n := seen[ReasonNoProcess]; n > allowed {
			t.Errorf("%d churned listeners reported as %s (%s resolver), at most %d allowed", n, ReasonNoProcess, testResolver.name, allowed)
		}
	})
}

// helperScan scans procRoot and prints what the checks below need.
func helperScan(procRoot string) {
	snap, err := NewScanner(Options{ProcRoot: procRoot}).Scan(context.Background(), Query{})
	if err != nil {
		fmt.Println("error:", err)
		os.Exit(1)
	}
	reasons := map[uint64]Reason{}
	for _, s := range snap.Sockets {
		reasons[s.Inode] = s.UnattributedReason
	}
	json.NewEncoder(os.Stdout).Encode(struct {
		UID        int
		Privileged bool
		Reasons    map[uint64]Reason
	}{os.Geteuid(), snap.Privileged, reasons})
}

// TestHidePID mounts a procfs with hidepid=2 and scans it as nobody, who
// sees only its own processes there and is denied nothing: the scan must
// still say that it could not see every process, and that this socket's
// owner is not permitted to be seen, not that no process holds it. As
// root, which may see every process, the same mount hides nothing.
func TestHidePID(t *testing.T) {
	testenv.RequireRoot(t)
	dir, err := os.MkdirTemp("", "porteiro-hidepid-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	proc := filepath.Join(dir, "proc")
	os.Mkdir(proc, 0o755)
	if err := unix.Mount("proc", proc, "proc", 0, "hidepid=2"); err != nil {
		t.Skipf("cannot mount a procfs with hidepid=2 here: %v", err)
	}
	t.Cleanup(func() {
		if err := unix.Unmount(proc, unix.MNT_DETACH); err != nil {
			t.Errorf("unmounting %s: %v", proc, err)
		}
	})
	// The test binary, where nobody may run it.
	bin := filepath.Join(dir, "inventory.test")
	data, err := os.ReadFile(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)

	l := listenTCP(t, "tcp4", "127.0.0.1:0")
	ino := inodeOf(t, l)

	type result struct {
		UID        int
		Privileged bool
		Reasons    map[uint64]Reason
	}
	scanAs := func(t *testing.T, root string, uid uint32) result {
		t.Helper()
		c := exec.Command(bin, "-test.run=^$")
		c.Env = append(os.Environ(), "PORTEIRO_HELPER_SCAN="+root)
		c.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid}}
		out, err := c.Output()
		if err != nil {
			t.Fatalf("scan of %s as uid %d: %v: %s", root, uid, err, out)
		}
		var r result
		if err := json.Unmarshal(out, &r); err != nil {
			t.Fatalf("scan of %s as uid %d: %v: %s", root, uid, err, out)
		}
		return r
	}

	t.Run("nobody", func(t *testing.T) {
		r := scanAs(t, proc, 65534)
		if r.UID != 65534 {
			t.Fatalf("helper ran as uid %d", r.UID)
		}
		if r.Privileged {
			t.Errorf("privileged = true on a hidepid=2 procfs, as nobody")
		}
		if got := r.Reasons[ino]; got != ReasonNotPermitted {
			t.Errorf("root's listener (inode %d): reason %q, want %q", ino, got, ReasonNotPermitted)
		}
	})
	t.Run("root", func(t *testing.T) {
		snap, err := NewScanner(Options{ProcRoot: proc}).Scan(context.Background(), Query{})
		if err != nil {
			t.Fatal(err)
		}
		if !snap.Privileged {
			t.Errorf("privileged = false for root, who sees through hidepid")
		}
		if s, ok := byInode(snap)[ino]; !ok || len(s.Processes) == 0 || s.Processes[0].PID != os.Getpid() {
			t.Errorf("root's scan of the hidepid mount: socket %+v, want held by this process", s)
		}
	})
}

// TestScannerClose checks that Close releases the netlink socket and the
// iterator's descriptors, that a second Close is harmless, and that Scan
// after Close says so.
func TestScannerClose(t *testing.T) {
	listenTCP(t, "tcp4", "127.0.0.1:0")
	count := func() int {
		es, err := os.ReadDir("/proc/self/fd")
		if err != nil {
			t.Fatal(err)
		}
		return len(es)
	}
	before := count()
	sc := NewScanner(Options{})
	if _, err := sc.Scan(context.Background(), Query{}); err != nil {
		t.Fatal(err)
	}
	opened := count() - before
	if opened < 1 {
		t.Errorf("a scan left %d descriptors open, want at least the netlink socket", opened)
	}
	if err := sc.Close(); err != nil {
		t.Fatal(err)
	}
	if err := sc.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if n := count(); n != before {
		t.Errorf("%d descriptors open after Close, %d before the scanner (%d while it was open)", n, before, before+opened)
	}
	if _, err := sc.Scan(context.Background(), Query{}); err != ErrClosed {
		t.Errorf("Scan after Close: %v, want ErrClosed", err)
	}
}

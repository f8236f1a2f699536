package testenv

import (
	"bufio"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// HostileComms are process names (the kernel's comm, at most 15 bytes)
// that attack whoever prints or parses them: newlines, CR, escape
// sequences, bidi controls, invalid UTF-8, spreadsheet formulas, and text
// that forges an ss record or an ss users:(("name",pid=N,fd=N)) entry.
var HostileComms = []string{
	"a\nb\x1b[2J\r\u202ec",
	"x\ntcp LISTEN 0",
	`x",pid=1,fd=9`,
	"v)\n(\"w\"),pid=2",
	"=1+\xff\u2066\t\x7f",
}

// HostileArgs is the command line the hostile processes run with, argv[0]
// included.
var HostileArgs = []string{
	"/usr/sbin/sshd\r\x1b[2K",
	"--title=\x1b]0;pwned\x07",
	"\r\x1b[2Kwill send SIGTERM to pid 1 (init)",
	"\u202egpj.exe",
	"line\nbreak",
	"=cmd|' /C calc'!A0",
	"bad\xc0\xafutf8",
	"日本語",
}

// Hostile is a running process with a hostile name and command line that
// holds a TCP and a UDP socket on 127.0.0.1.
type Hostile struct {
	PID     int
	Comm    string
	TCPPort int
	UDPPort int
}

// hostileEnv carries the hex of the comm a re-executed test binary takes.
const hostileEnv = "PORTEIRO_TESTENV_HOSTILE_COMM"

// init turns a test binary started by StartHostile into the hostile
// process, before the testing package parses the hostile arguments as
// flags. Any test binary that imports testenv can play the part.
func init() {
	if h := os.Getenv(hostileEnv); h != "" {
		comm, err := hex.DecodeString(h)
		if err != nil {
			fmt.Println("bad comm:", err)
			os.Exit(2)
		}
		os.Exit(runHostile(comm))
	}
}

func runHostile(comm []byte) int {
	// Writing /proc/self/comm names the thread-group leader, which is what
	// /proc/PID/stat, ss and porteiro show.
	if err := os.WriteFile("/proc/self/comm", comm, 0); err != nil {
		fmt.Println("setting comm:", err)
		return 2
	}
	tl, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		fmt.Println("listen:", err)
		return 2
	}
	ul, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		fmt.Println("listen:", err)
		return 2
	}
	fmt.Printf("ready %d %d\n", tl.Addr().(*net.TCPAddr).Port, ul.LocalAddr().(*net.UDPAddr).Port)
	// Live until the test closes stdin (or dies), and no longer than the
	// longest test.
	done := make(chan struct{})
	go func() { io.Copy(io.Discard, os.Stdin); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Minute):
	}
	return 0
}

// StartHostile starts one process per HostileComms, each named so and run
// with HostileArgs, each listening on a TCP and a UDP port of 127.0.0.1.
// They run until the test ends. Start them before a whole-host comparison,
// so that the comparison proves it survives hostile names.
func StartHostile(t testing.TB) []Hostile {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatalf("finding the test binary: %v", err)
	}
	var out []Hostile
	for _, comm := range HostileComms {
		cmd := exec.Command(self)
		cmd.Args = append([]string(nil), HostileArgs...)
		cmd.Env = append(os.Environ(), hostileEnv+"="+hex.EncodeToString([]byte(comm)))
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatalf("starting a hostile process: %v", err)
		}
		t.Cleanup(func() { stdin.Close(); cmd.Process.Kill(); cmd.Wait() })
		line, err := bufio.NewReader(stdout).ReadString('\n')
		f := strings.Fields(line)
		if err != nil || len(f) != 3 || f[0] != "ready" {
			t.Fatalf("hostile process %q did not start: %q %v", comm, line, err)
		}
		tp, _ := strconv.Atoi(f[1])
		up, _ := strconv.Atoi(f[2])
		out = append(out, Hostile{PID: cmd.Process.Pid, Comm: comm, TCPPort: tp, UDPPort: up})
	}
	return out
}

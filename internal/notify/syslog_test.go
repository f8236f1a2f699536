package notify

import (
	"bufio"
	"context"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

func newSyslog(t *testing.T, c SyslogConfig) *syslogSink {
	t.Helper()
	sinks, err := Build(ChannelsConfig{Syslog: []SyslogConfig{c}}, "web1")
	if err != nil {
		t.Fatal(err)
	}
	return sinks[0].(*syslogSink)
}

// listenUnixgram plays the syslog daemon on a socket of our own.
func listenUnixgram(t *testing.T, path string) *net.UnixConn {
	t.Helper()
	c, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: path, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func readDatagram(t *testing.T, c *net.UnixConn) string {
	t.Helper()
	buf := make([]byte, 8192)
	c.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("reading a syslog datagram: %v", err)
	}
	return string(buf[:n])
}

func TestSyslogRFC3164OverUnixgram(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	srv := listenUnixgram(t, path)
	defer srv.Close()
	s := newSyslog(t, SyslogConfig{Address: path, Facility: "auth", Tag: "porteiro-test"})
	a := sampleAlert(t, "ev-1", 4444)
	a.Socket.Processes[0].Cmdline = []string{"nc", "-l", "evil\nFAKE RECORD"}
	b := sampleAlert(t, "ev-2", 5555)
	b.Resolved, b.Kind, b.Severity = true, "resolved", SeverityInfo
	if err := s.Send(context.Background(), []Alert{a, b}); err != nil {
		t.Fatal(err)
	}
	first, second := readDatagram(t, srv), readDatagram(t, srv)
	// auth (4) * 8 + crit (2) = 34; auth * 8 + notice (5) = 37.
	re := regexp.MustCompile(`^<34>[A-Z][a-z]{2} [ 0-9]\d \d\d:\d\d:\d\d porteiro-test\[` + strconv.Itoa(os.Getpid()) + `\]: `)
	if !re.MatchString(first) {
		t.Errorf("header of %q does not match %s", first, re)
	}
	for _, want := range []string{`msg="unexpected listener tcp 0.0.0.0:4444 held by nc"`, "kind=violation", "severity=critical",
		`listener="tcp 0.0.0.0:4444"`, "pid=31337", "process=nc", "user=mallory", `cmdline="nc -l evil\nFAKE RECORD"`,
		"finding=unexpected", "rule=default-deny", `who="porteiro who 4444/tcp"`, "id=ev-1"} {
		if !strings.Contains(first, want) {
			t.Errorf("record lacks %s:\n%s", want, first)
		}
	}
	if strings.ContainsAny(first, "\n\r") {
		t.Errorf("record spans lines: %q", first)
	}
	if !strings.HasPrefix(second, "<37>") || !strings.Contains(second, "resolved=true") || !strings.Contains(second, "id=ev-2") {
		t.Errorf("resolved record = %q", second)
	}
}

func TestSyslogRFC5424AndRedialAfterRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	srv := listenUnixgram(t, path)
	s := newSyslog(t, SyslogConfig{Address: path, Format: "rfc5424"})
	if err := s.Send(context.Background(), []Alert{sampleAlert(t, "ev-1", 4444)}); err != nil {
		t.Fatal(err)
	}
	rec := readDatagram(t, srv)
	// daemon (3) * 8 + crit (2) = 26.
	re := regexp.MustCompile(`^<26>1 \d{4}-\d\d-\d\dT\S+ web1 porteiro \d+ violation - msg=`)
	if !re.MatchString(rec) {
		t.Errorf("rfc5424 record %q does not match %s", rec, re)
	}

	// The syslog daemon restarts: its socket goes away, then comes back.
	srv.Close()
	os.Remove(path)
	err := s.Send(context.Background(), []Alert{sampleAlert(t, "ev-2", 4444)})
	if err == nil || IsPermanent(err) {
		t.Fatalf("send with no syslog daemon: err = %v, permanent = %v; want transient", err, IsPermanent(err))
	}
	srv = listenUnixgram(t, path)
	defer srv.Close()
	if err := s.Send(context.Background(), []Alert{sampleAlert(t, "ev-3", 4444)}); err != nil {
		t.Fatalf("send after the daemon came back: %v", err)
	}
	if rec := readDatagram(t, srv); !strings.Contains(rec, "id=ev-3") {
		t.Errorf("after restart got %q", rec)
	}
}

func TestSyslogStreamFramesByNewline(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	lines := make(chan string, 4)
	go func() {
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		sc := bufio.NewScanner(c)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	s := newSyslog(t, SyslogConfig{Network: "tcp", Address: l.Addr().String()})
	if err := s.Send(context.Background(), []Alert{sampleAlert(t, "a", 1), sampleAlert(t, "b", 2)}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []string{"a", "b"} {
		select {
		case got := <-lines:
			// Network records carry the host name.
			if !strings.Contains(got, " web1 porteiro[") || !strings.HasSuffix(got, "id="+id) {
				t.Errorf("record %q", got)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no record over tcp")
		}
	}
}

func TestSyslogLongRecordIsCut(t *testing.T) {
	path := filepath.Join(t.TempDir(), "log")
	srv := listenUnixgram(t, path)
	defer srv.Close()
	s := newSyslog(t, SyslogConfig{Address: path})
	a := sampleAlert(t, "x", 1)
	a.Summary = strings.Repeat("x", 10000)
	if err := s.Send(context.Background(), []Alert{a}); err != nil {
		t.Fatal(err)
	}
	if rec := readDatagram(t, srv); len(rec) > syslogMaxLine || !strings.HasSuffix(rec, "...") {
		t.Errorf("record of %d bytes, want at most %d and cut", len(rec), syslogMaxLine)
	}
}

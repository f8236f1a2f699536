package notify

import (
	"context"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// facilities maps syslog facility names to their codes (RFC 5424, 6.2.1).
var facilities = map[string]int{
	"kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
	"uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11,
	"local0": 16, "local1": 17, "local2": 18, "local3": 19,
	"local4": 20, "local5": 21, "local6": 22, "local7": 23,
}

// syslogMaxLine bounds one record. Datagrams to /dev/log above a few KB
// fail with EMSGSIZE on some systems; a cut line is better than none.
const syslogMaxLine = 2048

type syslogSink struct {
	base
	host     string
	network  string
	address  string
	facility int
	tag      string
	format   string
	timeout  time.Duration
	pid      int
	now      func() time.Time

	mu   sync.Mutex
	conn net.Conn
}

func newSyslogSink(c SyslogConfig, host string) *syslogSink {
	s := &syslogSink{
		base:     base{name: effectiveName("syslog", c.Name), filter: c.Filter},
		host:     host,
		network:  c.Network,
		address:  c.Address,
		facility: facilities[DefaultSyslogFacility],
		tag:      c.Tag,
		format:   c.Format,
		timeout:  orDefault(c.Timeout, DefaultTimeout),
		pid:      os.Getpid(),
		now:      time.Now,
	}
	if s.network == "" {
		s.network = DefaultSyslogNetwork
	}
	if s.address == "" {
		s.address = DefaultSyslogAddress
	}
	if f, ok := facilities[c.Facility]; ok {
		s.facility = f
	}
	if s.tag == "" {
		s.tag = DefaultSyslogTag
	}
	if s.format == "" {
		s.format = "rfc3164"
	}
	return s
}

// Send writes one record per alert: syslog has no multi-line messages.
// It dials per batch, since alerts are rare and a held connection would
// outlive a reload of the config; a failed write is re-dialled once, as
// the syslog daemon may have just restarted.
func (s *syslogSink) Send(ctx context.Context, batch []Alert) error {
	if len(batch) == 0 {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	deadline := time.Now().Add(s.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	defer s.hangUp()
	for _, a := range withHost(batch, s.host) {
		if err := ctx.Err(); err != nil {
			return fmt.Errorf("syslog channel %q: %w", s.name, err)
		}
		line := s.frame(a)
		var err error
		for attempt := 0; attempt < 2; attempt++ {
			if err = s.dial(ctx, deadline); err != nil {
				continue
			}
			if err = s.write(line, deadline); err == nil {
				break
			}
			s.hangUp()
		}
		if err != nil {
			return fmt.Errorf("syslog channel %q: writing to %s %s: %w", s.name, s.network, s.address, err)
		}
	}
	return nil
}

func (s *syslogSink) dial(ctx context.Context, deadline time.Time) error {
	if s.conn != nil {
		return nil
	}
	d := net.Dialer{Deadline: deadline}
	c, err := d.DialContext(ctx, s.network, s.address)
	if err != nil {
		return err
	}
	s.conn = c
	return nil
}

func (s *syslogSink) write(line []byte, deadline time.Time) error {
	if err := s.conn.SetWriteDeadline(deadline); err != nil {
		return err
	}
	if s.network == "tcp" || s.network == "unix" {
		// Stream transports frame records by newline (RFC 6587, 3.4.2).
		line = append(line, '\n')
	}
	_, err := s.conn.Write(line)
	return err
}

// hangUp closes the connection, if any; s.mu is held.
func (s *syslogSink) hangUp() {
	if s.conn != nil {
		s.conn.Close()
		s.conn = nil
	}
}

// syslogSeverity maps an alert's severity to a syslog severity code.
func syslogSeverity(a Alert) int {
	if a.Resolved {
		return 5 // notice
	}
	switch a.Severity {
	case SeverityCritical:
		return 2 // crit
	case SeverityWarning:
		return 4 // warning
	}
	return 6 // info
}

// frame builds one syslog record. The local form of RFC 3164 (no host
// name, as glibc's syslog(3) writes it) is used for unix sockets, since the
// local daemon adds the host; the network forms carry the host.
func (s *syslogSink) frame(a Alert) []byte {
	pri := s.facility*8 + syslogSeverity(a)
	now := s.now()
	msg := syslogMessage(a)
	var b strings.Builder
	switch s.format {
	case "rfc5424":
		fmt.Fprintf(&b, "<%d>1 %s %s %s %d %s - ", pri, now.Format(time.RFC3339Nano),
			syslogField(s.host, 255), s.tag, s.pid, syslogField(a.Kind, 32))
	default:
		fmt.Fprintf(&b, "<%d>%s ", pri, now.Format(time.Stamp))
		if s.network == "udp" || s.network == "tcp" {
			b.WriteString(syslogField(s.host, 255) + " ")
		}
		fmt.Fprintf(&b, "%s[%d]: ", s.tag, s.pid)
	}
	b.WriteString(msg)
	return []byte(truncate(b.String(), syslogMaxLine))
}

// syslogField makes a header field of printable ASCII without spaces, or
// "-" (the RFC 5424 nil value) when empty.
func syslogField(s string, max int) string {
	var b strings.Builder
	for i := 0; i < len(s) && b.Len() < max; i++ {
		if c := s[i]; c > ' ' && c < 0x7f {
			b.WriteByte(c)
		}
	}
	if b.Len() == 0 {
		return "-"
	}
	return b.String()
}

// syslogMessage is the record text in logfmt, one line, so that log tools
// can pick out the fields.
func syslogMessage(a Alert) string {
	var b strings.Builder
	kv := func(k, v string) {
		if v == "" {
			return
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(logfmtValue(v))
	}
	kv("msg", headline(a))
	kv("kind", a.Kind)
	kv("severity", string(a.Severity))
	if a.Resolved {
		kv("resolved", "true")
	}
	kv("listener", a.Listener)
	if a.Socket != nil {
		for _, p := range a.Socket.Processes {
			kv("pid", strconv.Itoa(p.PID))
			kv("process", p.Name)
			kv("user", p.User)
			kv("cmdline", truncate(p.CommandLine(), 512))
		}
	}
	kv("finding", a.Finding)
	kv("rule", a.Rule)
	l := listenerOf(a)
	if who := whoCommand(l); who != "" && !a.Resolved {
		kv("who", who)
	}
	kv("id", a.ID)
	return b.String()
}

// logfmtValue quotes v when it holds a space, a quote, an '=' or anything
// unprintable; quoting escapes control characters, so the record stays on
// one line.
func logfmtValue(v string) string {
	for _, r := range v {
		if r <= ' ' || r == '"' || r == '=' || r == '\\' || r >= 0x7f {
			return strconv.Quote(v)
		}
	}
	return v
}

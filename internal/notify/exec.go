package notify

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// execStderrMax bounds how much of a failed command's stderr goes into the
// error (and so into logs and the outbox).
const execStderrMax = 1024

type execSink struct {
	base
	host      string
	argv      []string
	env       []string
	dir       string
	permanent map[int]bool
	timeout   time.Duration
	now       func() time.Time
}

func newExecSink(c ExecConfig, host string) *execSink {
	s := &execSink{
		base:      base{name: effectiveName("exec", c.Name), filter: c.Filter},
		host:      host,
		argv:      append([]string(nil), c.Command...),
		dir:       c.Dir,
		permanent: map[int]bool{},
		timeout:   orDefault(c.Timeout, DefaultTimeout),
		now:       time.Now,
	}
	if s.dir == "" {
		s.dir = "/"
	}
	for _, code := range c.PermanentExitCodes {
		s.permanent[code] = true
	}
	// A minimal environment: the daemon's own may hold secrets
	// (password_env) that a hook has no business seeing.
	env := map[string]string{"PATH": execPATH}
	for _, k := range []string{"LANG", "LC_ALL", "TZ"} {
		if v, ok := os.LookupEnv(k); ok {
			env[k] = v
		}
	}
	for k, v := range c.Env {
		env[k] = v
	}
	env["PORTEIRO_CHANNEL"] = s.name
	env["PORTEIRO_HOST"] = host
	for k, v := range env {
		s.env = append(s.env, k+"="+v)
	}
	sort.Strings(s.env)
	return s
}

// ExitError is a command that exited non-zero.
type ExitError struct {
	Command string
	Code    int
	Stderr  string // the start of stderr, one line
}

func (e *ExitError) Error() string {
	msg := fmt.Sprintf("%s exited with status %d", e.Command, e.Code)
	if e.Stderr != "" {
		msg += ": " + e.Stderr
	}
	return msg
}

// Send runs the command once for the batch, with the Payload JSON on
// stdin. On timeout the whole process group is killed.
func (s *execSink) Send(ctx context.Context, batch []Alert) error {
	if len(batch) == 0 {
		return nil
	}
	body, err := marshalPayload(s.host, s.name, s.now(), batch)
	if err != nil {
		return Permanent(fmt.Errorf("encoding exec payload: %w", err))
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, s.argv[0], s.argv[1:]...)
	cmd.Dir = s.dir
	cmd.Env = slices.Concat(s.env, []string{"PORTEIRO_ALERT_COUNT=" + strconv.Itoa(len(batch)), "PORTEIRO_BATCH_ID=" + batchID(batch)})
	cmd.Stdin = bytes.NewReader(body)
	var stderr bytes.Buffer
	cmd.Stderr = &limitedWriter{w: &stderr, n: execStderrMax}
	setProcessGroup(cmd)
	// WaitDelay stops Wait from hanging on a grandchild that kept stderr
	// open after the group was killed.
	cmd.WaitDelay = time.Second
	err = cmd.Run()
	if err == nil {
		return nil
	}
	name := s.argv[0]
	if ctx.Err() != nil {
		return fmt.Errorf("exec channel %q: %s killed after %s: %w", s.name, name, s.timeout, context.DeadlineExceeded)
	}
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		xe := &ExitError{Command: name, Code: ee.ExitCode(), Stderr: truncate(oneLine(strings.TrimSpace(stderr.String())), 512)}
		if s.permanent[xe.Code] {
			return Permanent(fmt.Errorf("exec channel %q: %w", s.name, xe))
		}
		return fmt.Errorf("exec channel %q: %w", s.name, xe)
	}
	var pe *os.PathError
	if errors.As(err, &pe) || errors.Is(err, exec.ErrNotFound) {
		// A missing or non-executable program is a config error.
		return Permanent(fmt.Errorf("exec channel %q: starting %s: %w", s.name, name, err))
	}
	return fmt.Errorf("exec channel %q: running %s: %w", s.name, name, err)
}

// limitedWriter keeps the first n bytes and drops the rest, so a chatty
// command cannot fill memory.
type limitedWriter struct {
	w *bytes.Buffer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if room := l.n - l.w.Len(); room > 0 {
		l.w.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

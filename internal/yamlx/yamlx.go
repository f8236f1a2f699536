// Package yamlx reads the YAML files that porteiro takes from people: the
// policy and the daemon's config. It is the one way both are read, so that
// both get the same limits and the same errors.
//
// go-yaml builds its whole tree before anyone can look at it, and some
// shapes cost it far more than their size: 200 KB of nested brackets took
// 14 GiB, and 682 bytes of nested aliases 47 s. So a file is bounded before
// go-yaml sees it: only a regular file, at most MaxSize bytes, valid UTF-8,
// nested at most MaxDepth levels, with at most MaxValues values and
// MaxKeys keys in a block mapping, and with aliases that expand to at most
// MaxAliasExpansion values. Check does that
// in one linear pass over the bytes.
//
// Every problem is an *Error (or an ErrorList) of the form
// FILE:LINE:COLUMN: message, and a value from the file is quoted only as a
// short escaped excerpt (Quote), so that a wrong file such as /etc/shadow
// is not echoed line by line.
package yamlx

import (
	"fmt"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"unicode/utf8"
)

// Limits on a file. porteiro's own files are a few kilobytes, nested five
// or six levels, with a handful of aliases.
const (
	// MaxSize is the largest file read, in bytes: 512 KiB, room for a
	// baseline of a thousand commented rules. go-yaml allocates 50 to 90
	// times the size of a long scalar or literal block (88 MB for 1 MiB),
	// so every shape of file stays well under 100 MB.
	MaxSize = 512 << 10
	// MaxDepth is the deepest nesting of mappings and lists.
	MaxDepth = 64
	// MaxAliasExpansion bounds how many values the aliases of a file may
	// stand for, once every alias is replaced by what it names.
	MaxAliasExpansion = 10000
	// MaxValues bounds the keys, items and scalars of a file. go-yaml
	// needs about 1 s and 55 MB for 20000 list items, and more than
	// linearly more after that.
	MaxValues = 20000
	// MaxKeys bounds the keys of one block mapping: go-yaml's cost grows
	// with their square (4000 keys: 74 MB; 10000: 1.5 s and 430 MB).
	MaxKeys = 1000
)

// Error is one problem in a file, at a position. Line and Column count from
// 1; a Line of 0 means the problem is with the file as a whole.
type Error struct {
	File         string
	Line, Column int
	Msg          string
}

func (e *Error) Error() string {
	f := e.File
	if f == "" {
		f = "input"
	}
	if e.Line > 0 {
		return fmt.Sprintf("%s:%d:%d: %s", f, e.Line, e.Column, e.Msg)
	}
	return f + ": " + e.Msg
}

// Errorf returns an *Error at line:col of file.
func Errorf(file string, line, col int, format string, a ...any) *Error {
	return &Error{File: file, Line: line, Column: col, Msg: fmt.Sprintf(format, a...)}
}

// ErrorList is every problem found in a file, in file order. Its message
// has one line per problem.
type ErrorList []*Error

func (l ErrorList) Error() string {
	var b strings.Builder
	for i, e := range l {
		if i > 0 {
			b.WriteByte('\n')
		}
		b.WriteString(e.Error())
	}
	return b.String()
}

// Unwrap lets errors.As find each *Error.
func (l ErrorList) Unwrap() []error {
	out := make([]error, len(l))
	for i, e := range l {
		out[i] = e
	}
	return out
}

// Sort puts the list in file order; problems with the whole file first.
func (l ErrorList) Sort() {
	sort.SliceStable(l, func(i, j int) bool {
		a, b := l[i], l[j]
		if a.Line != b.Line {
			return a.Line < b.Line
		}
		return a.Column < b.Column
	})
}

// ReadFile reads a file that porteiro is told to trust: it must be a
// regular file (not /dev/zero, a FIFO or a directory) of at most MaxSize
// bytes. what names the file in errors ("policy", "config"). An error
// from opening the file wraps the *os.PathError, so errors.Is(err,
// fs.ErrNotExist) works.
func ReadFile(path, what string) ([]byte, error) {
	// O_NONBLOCK: opening a FIFO for reading would otherwise wait for a
	// writer forever. It changes nothing for a regular file.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", what, err)
	}
	if !st.Mode().IsRegular() {
		return nil, &Error{File: path, Msg: fmt.Sprintf("not a regular file (%s): give the path of a YAML %s file", describeMode(st.Mode()), what)}
	}
	if st.Size() > MaxSize {
		return nil, &Error{File: path, Msg: fmt.Sprintf("the file is %d bytes, more than the %d a %s may have (is this the right file?)", st.Size(), MaxSize, what)}
	}
	// The size is checked again while reading: the file may grow.
	data, err := io.ReadAll(io.LimitReader(f, MaxSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading %s %s: %w", what, path, err)
	}
	if len(data) > MaxSize {
		l, c := Position(data, MaxSize)
		return nil, Errorf(path, l, c, "the file is longer than the %d bytes a %s may have (is this the right file?)", MaxSize, what)
	}
	return data, nil
}

func describeMode(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m&os.ModeSocket != 0:
		return "a socket"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a block device"
	}
	return "mode " + m.String()
}

// Position returns the line and column (from 1, in characters) of byte
// offset off in data.
func Position(data []byte, off int) (line, col int) {
	if off > len(data) {
		off = len(data)
	}
	line, start := 1, 0
	for i := 0; i < off; i++ {
		if data[i] == '\n' {
			line++
			start = i + 1
		}
	}
	return line, utf8.RuneCount(data[start:off]) + 1
}

// maxQuote is the most characters of a value that an error repeats.
const maxQuote = 40

// Quote returns s as a short, escaped, double-quoted excerpt for an error
// message: control characters, bidi overrides and invalid bytes are
// escaped, and anything past 40 characters is cut, with "..." after it.
func Quote(s string) string {
	cut := false
	if utf8.RuneCountInString(s) > maxQuote {
		n := 0
		for i := range s {
			if n == maxQuote {
				s, cut = s[:i], true
				break
			}
			n++
		}
	}
	q := strconv.Quote(s)
	if cut {
		q += "..."
	}
	return q
}

// maxKey is the longest key that an error repeats.
const maxKey = 32

// QuoteKey returns a key for an "unknown key" message: quoted when it is a
// plain word (letters, digits, '_', '.', '-') of at most 32 characters,
// and a description otherwise. A file given by mistake (-p /etc/shadow)
// is made of such "keys", and its lines must not come back out.
func QuoteKey(k string) string {
	if k == "" || len(k) > maxKey {
		return fmt.Sprintf("(%d characters, not shown)", utf8.RuneCountInString(k))
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '.' || c == '-') {
			return fmt.Sprintf("(%d characters, not a word: not shown)", utf8.RuneCountInString(k))
		}
	}
	return strconv.Quote(k)
}

// The expressions below are compiled on first use, not at every start of
// the client: only a message about a bad file needs them.
var unknownFieldRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`^unknown field "((?:[^"\\]|\\.)*)"`) })

var quotedRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`"((?:[^"\\]|\\.)*)"`) })

// cleanMessage makes a go-yaml message fit for one line of porteiro's
// output: quoted values become short excerpts, URLs lose their passwords.
func cleanMessage(msg string) string {
	if m := unknownFieldRE().FindStringSubmatch(msg); m != nil {
		k := m[1]
		if u, err := strconv.Unquote(`"` + k + `"`); err == nil {
			k = u
		}
		msg = "unknown field " + QuoteKey(k) + msg[len(m[0]):]
	}
	msg = quotedRE().ReplaceAllStringFunc(msg, func(m string) string {
		inner := m[1 : len(m)-1]
		if u, err := strconv.Unquote(m); err == nil {
			inner = u
		}
		return Quote(inner)
	})
	msg = strings.Join(strings.Fields(msg), " ")
	if len(msg) > 300 {
		msg = msg[:300] + "..."
	}
	return Redact(msg)
}

// userinfoRE finds the user:password@ part of URLs in free text.
var userinfoRE = sync.OnceValue(func() *regexp.Regexp { return regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)[^/?#@\s"']*@`) })

// Redact hides the userinfo (user:password@) of every URL in s, as
// "scheme://xxxxx@". Errors from url.Parse and net/http repeat the URL they
// were given; anything that prints such an error for people (config
// errors, reload logs) passes it through Redact first.
func Redact(s string) string {
	return userinfoRE().ReplaceAllString(s, "${1}xxxxx@")
}

// RedactError returns err with its message passed through Redact. The
// result still unwraps to err, so errors.Is and errors.As keep working.
func RedactError(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if r := Redact(msg); r != msg {
		return &redacted{msg: r, err: err}
	}
	return err
}

type redacted struct {
	msg string
	err error
}

func (r *redacted) Error() string { return r.msg }
func (r *redacted) Unwrap() error { return r.err }

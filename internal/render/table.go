package render

import (
	"bufio"
	"io"
	"strings"
	"unicode/utf8"
)

// Table lines up columns with two spaces between them. The last column is
// left ragged (and truncated to the terminal width, if known), so long
// command lines don't push every row wide.
type Table struct {
	header []string
	rows   [][]string
}

// NewTable starts a table with the given header.
func NewTable(header ...string) *Table { return &Table{header: header} }

// Row adds a row; it must have as many cells as the header.
func (t *Table) Row(cells ...string) { t.rows = append(t.rows, cells) }

// Len returns the number of rows.
func (t *Table) Len() int { return len(t.rows) }

// Write prints the table, buffered.
func (t *Table) Write(out io.Writer, o Options) error {
	w := bufio.NewWriterSize(out, 64*1024)
	if err := t.write(w, o); err != nil {
		return err
	}
	return w.Flush()
}

func (t *Table) write(w io.Writer, o Options) error {
	n := len(t.header)
	width := make([]int, n)
	all := append([][]string{t.header}, t.rows...)
	for _, r := range all {
		for i := 0; i < n-1 && i < len(r); i++ {
			if l := runeLen(r[i]); l > width[i] {
				width[i] = l
			}
		}
	}
	// One reused line buffer; padding comes from a slice of spaces. A
	// listing of 100,000 sockets allocates nothing per cell here.
	var line []byte
	spaces := []byte(strings.Repeat(" ", 256))
	for k, r := range all {
		line = line[:0]
		bold := k == 0 && o.Bold
		if bold {
			line = append(line, "\x1b[1m"...)
		}
		start := len(line)
		for i := 0; i < n && i < len(r); i++ {
			cell := sanitize(r[i])
			if i < n-1 {
				line = append(line, cell...)
				for pad := width[i] - runeLen(cell) + 2; pad > 0; {
					m := min(pad, len(spaces))
					line = append(line, spaces[:m]...)
					pad -= m
				}
				continue
			}
			if o.Width > 0 {
				room := o.Width - (utf8.RuneCount(line[start:]))
				if room < 10 {
					room = 10
				}
				if runeLen(cell) > room {
					cell = string([]rune(cell)[:room-1]) + "…"
				}
			}
			line = append(line, cell...)
		}
		for len(line) > 0 && line[len(line)-1] == ' ' {
			line = line[:len(line)-1]
		}
		if bold {
			line = append(line, "\x1b[0m"...)
		}
		line = append(line, '\n')
		if _, err := w.Write(line); err != nil {
			return err
		}
	}
	return nil
}

// runeLen is utf8.RuneCountInString with a fast path for ASCII.
func runeLen(s string) int {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return utf8.RuneCountInString(s)
		}
	}
	return len(s)
}

// sanitize keeps control characters in command lines from messing up the
// terminal.
func sanitize(s string) string {
	clean := true
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c == 0x7f {
			clean = false
			break
		}
	}
	if clean {
		return s
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

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
			if l := utf8.RuneCountInString(r[i]); l > width[i] {
				width[i] = l
			}
		}
	}
	var b strings.Builder
	for k, r := range all {
		b.Reset()
		if k == 0 && o.Bold {
			b.WriteString("\x1b[1m")
		}
		for i := 0; i < n && i < len(r); i++ {
			cell := sanitize(r[i])
			if i < n-1 {
				b.WriteString(cell)
				b.WriteString(strings.Repeat(" ", width[i]-utf8.RuneCountInString(cell)+2))
				continue
			}
			if o.Width > 0 {
				room := o.Width - utf8.RuneCountInString(b.String())
				if k == 0 && o.Bold {
					room += 4
				}
				if room < 10 {
					room = 10
				}
				if utf8.RuneCountInString(cell) > room {
					cell = string([]rune(cell)[:room-1]) + "…"
				}
			}
			b.WriteString(cell)
		}
		line := strings.TrimRight(b.String(), " ")
		if k == 0 && o.Bold {
			line += "\x1b[0m"
		}
		if _, err := io.WriteString(w, line+"\n"); err != nil {
			return err
		}
	}
	return nil
}

// sanitize keeps control characters in command lines from messing up the
// terminal.
func sanitize(s string) string {
	if strings.IndexFunc(s, func(r rune) bool { return r < 0x20 || r == 0x7f }) < 0 {
		return s
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
}

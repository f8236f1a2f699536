package render

import (
	"bufio"
	"io"
	"slices"
	"strings"
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

// Row adds a row; it must have as many cells as the header. Every cell is
// escaped (see Escape): tables show process names and command lines, which
// anyone who can start a process chooses.
func (t *Table) Row(cells ...string) {
	copied := false
	for i, c := range cells {
		if e := Escape(c); e != c {
			if !copied {
				// Do not write into a slice the caller passed with "...".
				cells, copied = slices.Clone(cells), true
			}
			cells[i] = e
		}
	}
	t.rows = append(t.rows, cells)
}

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
	header := make([]string, n)
	for i, h := range t.header {
		header[i] = Escape(h)
	}
	all := append([][]string{header}, t.rows...)
	for _, r := range all {
		for i := 0; i < n-1 && i < len(r); i++ {
			if l := displayWidth(r[i]); l > width[i] {
				width[i] = l
			}
		}
	}
	// One reused line buffer; padding comes from a slice of spaces. A
	// listing of 100,000 sockets allocates nothing per cell here.
	var line []byte
	spaces := []byte(strings.Repeat(" ", 256))
	// Every cell but the last is padded to its column's width and two
	// spaces, so the last one starts at the same column on every line.
	lead := 0
	for i := 0; i < n-1; i++ {
		lead += width[i] + 2
	}
	for k, r := range all {
		line = line[:0]
		bold := k == 0 && o.Bold
		if bold {
			line = append(line, "\x1b[1m"...)
		}
		for i := 0; i < n && i < len(r); i++ {
			cell := r[i]
			if i < n-1 {
				line = append(line, cell...)
				for pad := width[i] - displayWidth(cell) + 2; pad > 0; {
					m := min(pad, len(spaces))
					line = append(line, spaces[:m]...)
					pad -= m
				}
				continue
			}
			if o.Width > 0 {
				room := o.Width - lead
				if room < 10 {
					room = 10
				}
				cell = truncate(cell, room)
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

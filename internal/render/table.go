package render

import (
	"bufio"
	"io"
	"slices"
	"strings"
	"unsafe"
)

// Table lines up columns with two spaces between them. The last column is
// left ragged (and truncated to the terminal width, if known), so long
// command lines don't push every row wide.
type Table struct {
	header []string
	// The escaped cells of every row, end to end, and where each ends:
	// one buffer instead of a string and a slice header per cell keeps a
	// table of 100,000 sockets to about the size of its text.
	text []byte
	ends []int32
	n    int // rows
}

// NewTable starts a table with the given header.
func NewTable(header ...string) *Table { return &Table{header: header} }

// Row adds a row; it must have as many cells as the header. Every cell is
// escaped (see Escape): tables show process names and command lines, which
// anyone who can start a process chooses.
func (t *Table) Row(cells ...string) {
	for i := range len(t.header) {
		if i < len(cells) {
			t.text = AppendEscape(t.text, cells[i])
		}
		t.ends = append(t.ends, int32(len(t.text)))
	}
	t.n++
}

// Grow makes room for n more rows, so a table whose size is known does not
// grow by copying.
func (t *Table) Grow(n int) {
	t.ends = slices.Grow(t.ends, n*len(t.header))
	t.text = slices.Grow(t.text, n*64) // a guess: a listing's row is 60 to 120 bytes
}

// Len returns the number of rows.
func (t *Table) Len() int { return t.n }

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
		width[i] = displayWidth(header[i])
	}
	// cell returns row r's cell i as a view of the text, without copying
	// it: the text is not written while the table is printed, and the
	// views do not outlive this call.
	cell := func(r, i int) string {
		k := r*n + i
		start := int32(0)
		if k > 0 {
			start = t.ends[k-1]
		}
		return unsafe.String(unsafe.SliceData(t.text[start:]), t.ends[k]-start)
	}
	for r := range t.n {
		for i := 0; i < n-1; i++ {
			if l := displayWidth(cell(r, i)); l > width[i] {
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
	for r := -1; r < t.n; r++ {
		line = line[:0]
		bold := r < 0 && o.Bold
		if bold {
			line = append(line, "\x1b[1m"...)
		}
		for i := 0; i < n; i++ {
			var c string
			if r < 0 {
				c = header[i]
			} else {
				c = cell(r, i)
			}
			if i < n-1 {
				line = append(line, c...)
				for pad := width[i] - displayWidth(c) + 2; pad > 0; {
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
				c = truncate(c, room)
			}
			line = append(line, c...)
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

package render

import (
	"bufio"
	"io"
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
	// measuring is set while Stream measures the rows.
	measuring bool
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

// Write prints the table, buffered.
func (t *Table) Write(out io.Writer, o Options) error {
	w := bufio.NewWriterSize(out, 64*1024)
	if err := t.write(w, o); err != nil {
		return err
	}
	return w.Flush()
}

func (t *Table) write(w io.Writer, o Options) error {
	p := newPrinter(t.header, o)
	for r := range t.n {
		t.measure(r, p.width)
	}
	p.finish()
	if err := p.line(w, func(i int) string { return p.header[i] }, o.Bold); err != nil {
		return err
	}
	for r := range t.n {
		if err := p.line(w, func(i int) string { return t.cell(r, i) }, false); err != nil {
			return err
		}
	}
	return nil
}

// Stream prints a table of n rows without keeping them: row(i, t) adds
// row i to t (one call to t.Row), and is called twice per row, once to
// measure the columns and once to print. A listing of 100,000 sockets then
// holds one row's text, not the whole table's, at the price of making
// each row twice. While measuring (t.Measuring()), row may leave out the
// last cell, which is never measured: the last column is left ragged.
func Stream(out io.Writer, o Options, header []string, n int, row func(i int, t *Table)) error {
	t := NewTable(header...)
	p := newPrinter(header, o)
	t.measuring = true
	for i := range n {
		t.reset()
		row(i, t)
		for r := range t.n {
			t.measure(r, p.width)
		}
	}
	t.measuring = false
	p.finish()
	w := bufio.NewWriterSize(out, 64*1024)
	if err := p.line(w, func(i int) string { return p.header[i] }, o.Bold); err != nil {
		return err
	}
	for i := range n {
		t.reset()
		row(i, t)
		for r := range t.n {
			if err := p.line(w, func(c int) string { return t.cell(r, c) }, false); err != nil {
				return err
			}
		}
	}
	return w.Flush()
}

// Measuring reports whether the table is being measured (see Stream).
func (t *Table) Measuring() bool { return t.measuring }

func (t *Table) reset() {
	t.text, t.ends, t.n = t.text[:0], t.ends[:0], 0
}

// cell returns row r's cell i as a view of the text, without copying it:
// the text is not written while the table is printed, and the views do not
// outlive the line they are printed on.
func (t *Table) cell(r, i int) string {
	k := r*len(t.header) + i
	start := int32(0)
	if k > 0 {
		start = t.ends[k-1]
	}
	return unsafe.String(unsafe.SliceData(t.text[start:]), t.ends[k]-start)
}

// measure widens width to row r's cells, but for the last.
func (t *Table) measure(r int, width []int) {
	for i := 0; i < len(t.header)-1; i++ {
		if l := displayWidth(t.cell(r, i)); l > width[i] {
			width[i] = l
		}
	}
}

// printer writes the lines of a table whose column widths it has.
type printer struct {
	o      Options
	header []string
	width  []int
	lead   int
	// One reused line buffer; padding comes from a slice of spaces. A
	// listing of 100,000 sockets allocates nothing per cell here.
	buf    []byte
	spaces []byte
}

func newPrinter(header []string, o Options) *printer {
	p := &printer{o: o, header: make([]string, len(header)), width: make([]int, len(header)),
		spaces: []byte(strings.Repeat(" ", 256))}
	for i, h := range header {
		p.header[i] = Escape(h)
		p.width[i] = displayWidth(p.header[i])
	}
	return p
}

// finish is called once every row is measured. Every cell but the last is
// padded to its column's width and two spaces, so the last one starts at
// the same column on every line.
func (p *printer) finish() {
	p.lead = 0
	for i := 0; i < len(p.width)-1; i++ {
		p.lead += p.width[i] + 2
	}
}

func (p *printer) line(w io.Writer, cell func(i int) string, bold bool) error {
	n := len(p.width)
	line := p.buf[:0]
	if bold {
		line = append(line, "\x1b[1m"...)
	}
	for i := 0; i < n; i++ {
		c := cell(i)
		if i < n-1 {
			line = append(line, c...)
			for pad := p.width[i] - displayWidth(c) + 2; pad > 0; {
				m := min(pad, len(p.spaces))
				line = append(line, p.spaces[:m]...)
				pad -= m
			}
			continue
		}
		if p.o.Width > 0 {
			room := p.o.Width - p.lead
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
	p.buf = line
	_, err := w.Write(line)
	return err
}

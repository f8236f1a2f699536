package yamlx

import (
	"fmt"
	"unicode/utf8"
)

// Check bounds data before a YAML parser builds anything from it: valid
// UTF-8, nesting at most MaxDepth levels deep (flow brackets and block
// indentation together), and aliases that expand to at most
// MaxAliasExpansion values. It is one pass over the bytes with memory
// bounded by MaxDepth, so a hostile file costs what its size costs.
//
// Check reads YAML's structure only as far as the limits need: it may
// count a bracket inside an odd plain scalar as nesting, which can only make
// it stricter. Whether the file is valid YAML is the parser's business.
func Check(file string, data []byte) error {
	if len(data) > MaxSize {
		l, c := Position(data, MaxSize)
		return Errorf(file, l, c, "the file is longer than %d bytes (is this the right file?)", MaxSize)
	}
	data = lineBreaks(data)
	if !utf8.Valid(data) {
		off := 0
		for off < len(data) {
			r, n := utf8.DecodeRune(data[off:])
			if r == utf8.RuneError && n <= 1 {
				break
			}
			off += n
		}
		l, c := Position(data, off)
		return Errorf(file, l, c, "invalid UTF-8 (byte 0x%02x): YAML files are UTF-8 text", data[off])
	}
	s := &scanner{data: data, anchors: map[string]int{}}
	if off, msg := s.run(); msg != "" {
		l, c := Position(s.data, off)
		return Errorf(file, l, c, "%s", msg)
	}
	return nil
}

// maxDocs is the most "---" markers Check lets through: enough for the
// Body to name a second document as the mistake.
const maxDocs = 2

// lineBreaks returns data with every CR that is not part of a CRLF made a
// LF: YAML breaks lines there too, and the scan must see the lines that
// the parser sees. Offsets do not change.
func lineBreaks(data []byte) []byte {
	var out []byte
	for i, c := range data {
		if c == '\r' && (i+1 == len(data) || data[i+1] != '\n') {
			if out == nil {
				out = append([]byte(nil), data...)
			}
			out[i] = '\n'
		}
	}
	if out == nil {
		return data
	}
	return out
}

// Anchor kinds: how the scanner knows where an anchored node ends.
const (
	anchorScalar = iota // ends at the end of the value (",", "]", "}", ": " or the line)
	anchorFlow          // ends at the matching bracket
	anchorBlock         // ends at the first line indented no deeper than its owner
)

type openAnchor struct {
	name   string
	weight int // values the node holds, aliases expanded
	kind   int
	flow   int // anchorFlow: the flow depth outside the bracket
	indent int // anchorBlock: the column of the owning key or "-"
	// seqAtIndent: the owner is a key, whose block list may start at the
	// key's own column ("key:\n- a").
	seqAtIndent bool
}

// level is one open block mapping or list.
type level struct {
	col  int // the column of its keys or dashes
	keys int // keys seen, for a mapping
}

type scanner struct {
	data    []byte
	flow    int     // depth of [ and {
	stack   []level // the open block mappings and lists
	anchors map[string]int
	open    []openAnchor
	total   int // values that aliases stand for
	values  int // values written in the file
	docs    int // "---" markers

	// The last block indicator ("-", "?" or a key's ":") on the line: an
	// anchor right after it belongs to a node owned by it.
	indCol int
	indKey bool
}

func isWS(c byte) bool { return c == ' ' || c == '\t' || c == '\r' }

func (s *scanner) wsOrEnd(p int) bool {
	return p >= len(s.data) || isWS(s.data[p]) || s.data[p] == '\n'
}

func isFlowInd(c byte) bool { return c == ',' || c == '[' || c == ']' || c == '{' || c == '}' }

func (s *scanner) eol(p int) int {
	for p < len(s.data) && s.data[p] != '\n' {
		p++
	}
	return p
}

// run scans the whole file. It returns the offset and the message of the
// first limit exceeded, or "".
func (s *scanner) run() (int, string) {
	d := s.data
	p, lineStart := 0, 0
	bol := true
	valueStart := true
	// blockScalar >= 0: skipping the lines of a literal block indented
	// deeper than this; blockAuto: its indentation is set by its first line.
	blockScalar, blockAuto := -1, false
	for p < len(d) {
		if s.values > MaxValues {
			return p, fmt.Sprintf("more than %d values (keys, items and scalars): porteiro's files hold a few hundred (is this the right file?)", MaxValues)
		}
		if bol {
			bol = false
			lineStart = p
			ind := 0
			for p+ind < len(d) && d[p+ind] == ' ' {
				ind++
			}
			q := p + ind
			for q < len(d) && isWS(d[q]) {
				q++
			}
			blank := q >= len(d) || d[q] == '\n'
			if blockScalar >= 0 {
				if blank || ind > blockScalar {
					if !blank && blockAuto {
						// The first line sets the indentation: a line
						// less indented after it ends the block.
						blockScalar, blockAuto = ind-1, false
					}
					p = s.eol(p)
					continue
				}
				blockScalar = -1
			}
			if s.flow == 0 {
				if blank || d[q] == '#' {
					p = s.eol(p)
					continue
				}
				if ind == 0 && hasMarker(d[p:], "---") {
					// go-yaml spends 4 s and 450 MB on a million empty
					// documents; porteiro's files are one.
					if s.docs++; s.docs > maxDocs {
						return p, fmt.Sprintf("more than %d YAML documents: porteiro's files are one document", maxDocs)
					}
				}
				if ind == 0 && (hasMarker(d[p:], "---") || hasMarker(d[p:], "...")) {
					// A new document: its anchors and nesting start afresh.
					s.stack = s.stack[:0]
					s.open = s.open[:0]
					clear(s.anchors)
					p += 3
					valueStart = true
					continue
				}
				if ind == 0 && d[p] == '%' { // a directive
					p = s.eol(p)
					continue
				}
				s.closeBlock(ind, d[q] == '-' && s.wsOrEnd(q+1))
				for len(s.stack) > 0 && s.stack[len(s.stack)-1].col > ind {
					s.stack = s.stack[:len(s.stack)-1]
				}
				valueStart = true
				s.indCol, s.indKey = ind, false
			}
			p = q
			continue
		}
		c := d[p]
		col := p - lineStart
		switch {
		case c == '\n':
			bol = true
			s.closeScalars()
			p++
			continue
		case isWS(c):
			p++
			continue
		case c == '#' && (p == lineStart || isWS(d[p-1])):
			p = s.eol(p)
			continue
		}
		if valueStart {
			switch {
			case c == '[' || c == '{':
				s.node()
				s.flow++
				if msg := s.depth(); msg != "" {
					return p, msg
				}
				p++
			case (c == ']' || c == '}') && s.flow > 0:
				s.flow--
				s.closeFlow()
				valueStart = false
				p++
			case c == ',' && s.flow > 0:
				s.closeScalars()
				p++
			case c == '"' || c == '\'':
				s.node()
				s.indCol = col // a key's column, if a ':' follows
				p, lineStart = s.skipQuoted(p, lineStart)
				valueStart = false
			case c == '&':
				name, q := s.name(p + 1)
				if len(s.open) >= 2*MaxDepth {
					return p, fmt.Sprintf("more than %d anchors open at once: use fewer anchors", 2*MaxDepth)
				}
				s.open = append(s.open, s.anchorAt(name, q))
				p = q
			case c == '*':
				name, q := s.name(p + 1)
				w, ok := s.anchors[name]
				if !ok {
					w = 1 // undefined, or defined later: the parser reports it
				}
				for i := range s.open {
					s.open[i].weight = addCapped(s.open[i].weight, w)
				}
				s.total = addCapped(s.total, w)
				s.indCol = col
				if s.total > MaxAliasExpansion {
					return p, fmt.Sprintf("the aliases of this file stand for more than %d values (an alias bomb?): repeat the values, or use fewer aliases", MaxAliasExpansion)
				}
				p = q
				valueStart = false
			case c == '!':
				for p < len(d) && !isWS(d[p]) && d[p] != '\n' && !(s.flow > 0 && isFlowInd(d[p])) {
					p++
				}
			case (c == '|' || c == '>') && s.flow == 0 && s.blockHeader(p+1) >= 0:
				// A literal or folded block: its lines are text, skipped
				// as long as they are indented deeper than its owner
				// (the key or "-" before it), or than an explicit
				// indentation.
				s.node()
				blockScalar, blockAuto = s.indCol, true
				if n := s.blockHeader(p + 1); n > 0 {
					blockScalar, blockAuto = s.indCol+n-1, false
				}
				p = s.eol(p)
			case (c == '-' || c == '?') && s.flow == 0 && s.wsOrEnd(p+1):
				if msg := s.push(col, false); msg != "" {
					return p, msg
				}
				s.indCol, s.indKey = col, false
				p++
			case c == ':' && s.wsOrEnd(p+1):
				p++ // an empty key
			default:
				// A plain scalar starts here.
				s.node()
				s.indCol = col
				valueStart = false
				p++
			}
			continue
		}
		// Inside a plain scalar, or after a value.
		switch {
		case s.flow > 0 && c == ',':
			s.closeScalars()
			valueStart = true
		case s.flow > 0 && (c == ']' || c == '}'):
			s.flow--
			s.closeFlow()
		case s.flow > 0 && (c == '[' || c == '{'):
			s.node()
			s.flow++
			if msg := s.depth(); msg != "" {
				return p, msg
			}
			valueStart = true
		case c == ':' && (s.wsOrEnd(p+1) || s.flow > 0 && p+1 < len(d) && isFlowInd(d[p+1])):
			s.closeScalars()
			if s.flow == 0 {
				if msg := s.push(s.indCol, true); msg != "" {
					return p, msg
				}
				s.indKey = true
			}
			valueStart = true
		}
		p++
	}
	return 0, ""
}

// blockHeader reads the rest of a block scalar header after "|" or ">":
// an indentation digit and a chomping sign, in either order, then
// nothing but a comment. It returns the digit (0 for none), or -1 when
// this is not a header.
func (s *scanner) blockHeader(p int) int {
	d := s.data
	n := 0
	for i := 0; i < 2 && p < len(d); i++ {
		if c := d[p]; c >= '1' && c <= '9' && n == 0 {
			n = int(c - '0')
		} else if c != '+' && c != '-' {
			break
		}
		p++
	}
	if !s.wsOrEnd(p) {
		return -1
	}
	for p < len(d) && isWS(d[p]) {
		p++
	}
	if p < len(d) && d[p] != '\n' && d[p] != '#' {
		return -1
	}
	return n
}

func hasMarker(b []byte, m string) bool {
	if len(b) < 3 || string(b[:3]) != m {
		return false
	}
	return len(b) == 3 || isWS(b[3]) || b[3] == '\n'
}

// name reads an anchor or alias name starting at p.
func (s *scanner) name(p int) (string, int) {
	q := p
	for q < len(s.data) && !isWS(s.data[q]) && s.data[q] != '\n' && !isFlowInd(s.data[q]) {
		q++
	}
	return string(s.data[p:q]), q
}

// anchorAt decides how far the node anchored at p extends, from what
// follows the name.
func (s *scanner) anchorAt(name string, p int) openAnchor {
	a := openAnchor{name: name, kind: anchorScalar, flow: s.flow, indent: s.indCol, seqAtIndent: s.indKey}
	d := s.data
	for {
		for p < len(d) && isWS(d[p]) {
			p++
		}
		if p < len(d) && d[p] == '!' { // a tag between the anchor and the node
			for p < len(d) && !isWS(d[p]) && d[p] != '\n' {
				p++
			}
			continue
		}
		break
	}
	switch {
	case p >= len(d) || d[p] == '\n' || d[p] == '#':
		if s.flow == 0 {
			a.kind = anchorBlock
		}
	case d[p] == '[' || d[p] == '{':
		a.kind = anchorFlow
	}
	return a
}

// node counts one value, in the file and in every open anchor.
func (s *scanner) node() {
	s.values++
	for i := range s.open {
		s.open[i].weight = addCapped(s.open[i].weight, 1)
	}
}

func (s *scanner) depth() string {
	if s.flow+len(s.stack) > MaxDepth {
		return fmt.Sprintf("nested more than %d levels deep: porteiro's files need a handful (is this the right file?)", MaxDepth)
	}
	return ""
}

// push records a block mapping or list at column col, and one more key
// when key is set.
func (s *scanner) push(col int, key bool) string {
	if n := len(s.stack); n == 0 || s.stack[n-1].col < col {
		s.stack = append(s.stack, level{col: col})
	}
	if key {
		top := &s.stack[len(s.stack)-1]
		top.keys++
		if top.keys > MaxKeys {
			return fmt.Sprintf("a mapping with more than %d keys: porteiro's mappings have a few (is this the right file?)", MaxKeys)
		}
	}
	return s.depth()
}

func (s *scanner) closeWhere(done func(a *openAnchor) bool) {
	out := s.open[:0]
	for i := range s.open {
		a := &s.open[i]
		if done(a) {
			s.anchors[a.name] = a.weight
			continue
		}
		out = append(out, *a)
	}
	s.open = out
}

func (s *scanner) closeScalars() {
	if len(s.open) > 0 {
		s.closeWhere(func(a *openAnchor) bool { return a.kind == anchorScalar })
	}
}

func (s *scanner) closeFlow() {
	s.closeWhere(func(a *openAnchor) bool {
		return a.kind == anchorScalar || a.kind == anchorFlow && a.flow >= s.flow
	})
}

// closeBlock ends the block nodes that a line indented by ind is outside
// of; dash says the line starts a list item.
func (s *scanner) closeBlock(ind int, dash bool) {
	if len(s.open) > 0 {
		s.closeWhere(func(a *openAnchor) bool {
			if a.kind != anchorBlock {
				return a.kind == anchorScalar
			}
			return ind < a.indent || ind == a.indent && !(dash && a.seqAtIndent)
		})
	}
}

// skipQuoted skips a quoted scalar that starts at p, which may span lines.
// It returns the offset after it and the start of the line it ends on.
func (s *scanner) skipQuoted(p, lineStart int) (int, int) {
	d := s.data
	q := d[p]
	p++
	for p < len(d) {
		switch c := d[p]; {
		case c == '\n':
			lineStart = p + 1
			if hasMarker(d[p+1:], "---") || hasMarker(d[p+1:], "...") {
				// A document marker ends the document, and the quoted
				// text with it (an error the parser reports); what
				// follows is scanned.
				return p, lineStart
			}
		case c == '\\' && q == '"':
			p++
			if p < len(d) && d[p] == '\n' {
				lineStart = p + 1
			}
		case c == q:
			if q == '\'' && p+1 < len(d) && d[p+1] == '\'' {
				p++
				break
			}
			return p + 1, lineStart
		}
		p++
	}
	return p, lineStart
}

func addCapped(a, b int) int {
	if a > MaxAliasExpansion || b > MaxAliasExpansion {
		return MaxAliasExpansion + 1
	}
	return a + b
}

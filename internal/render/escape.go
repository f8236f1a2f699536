package render

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/width"
)

// Escape returns s in a form that is safe to print for a person: every
// byte or rune that a terminal would act on instead of showing is written
// as a visible escape, so a process name cannot move the cursor, erase a
// prompt, start a new line or reverse the text that follows it.
//
//   - the backslash itself becomes \\, so an escape is never ambiguous;
//   - TAB, LF and CR become \t, \n and \r;
//   - other C0 controls and DEL become \xHH (ESC is \x1b);
//   - C1 controls (U+0080 to U+009F), invisible format characters (Unicode
//     class Cf, which holds every bidi control: U+061C, U+200E, U+200F,
//     U+202A to U+202E, U+2066 to U+2069) and the line and paragraph
//     separators U+2028 and U+2029 become \uHHHH;
//   - each byte that is not valid UTF-8 becomes \xHH.
//
// Everything else, accents and CJK included, is kept as it is. A string that
// needs no escape is returned without allocating.
func Escape(s string) string {
	if plain(s) {
		return s
	}
	return string(AppendEscape(make([]byte, 0, len(s)+16), s))
}

// AppendEscape appends Escape(s) to dst.
func AppendEscape(dst []byte, s string) []byte {
	const hex = "0123456789abcdef"
	for i := 0; i < len(s); {
		// A run of printable ASCII other than the backslash goes as is,
		// at once: most of what is printed is that.
		j := i
		for j < len(s) && s[j] >= 0x20 && s[j] < 0x7f && s[j] != '\\' {
			j++
		}
		if j > i {
			dst = append(dst, s[i:j]...)
			if i = j; i == len(s) {
				break
			}
		}
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '\\':
				dst = append(dst, '\\', '\\')
			case c == '\t':
				dst = append(dst, '\\', 't')
			case c == '\n':
				dst = append(dst, '\\', 'n')
			case c == '\r':
				dst = append(dst, '\\', 'r')
			case c < 0x20 || c == 0x7f:
				dst = append(dst, '\\', 'x', hex[c>>4], hex[c&0xf])
			default:
				dst = append(dst, c)
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			dst = append(dst, '\\', 'x', hex[c>>4], hex[c&0xf])
		case hidden(r):
			if r > 0xffff {
				dst = append(dst, '\\', 'U')
				for sh := 28; sh >= 0; sh -= 4 {
					dst = append(dst, hex[(r>>sh)&0xf])
				}
			} else {
				dst = append(dst, '\\', 'u', hex[(r>>12)&0xf], hex[(r>>8)&0xf], hex[(r>>4)&0xf], hex[r&0xf])
			}
		default:
			dst = append(dst, s[i:i+n]...)
		}
		i += n
	}
	return dst
}

// hidden reports whether a valid non-ASCII rune must be escaped: C1
// controls, format characters (bidi controls, zero-width characters, the
// byte-order mark, tag characters) and the Unicode line separators.
func hidden(r rune) bool {
	return (r >= 0x80 && r <= 0x9f) || r == 0x2028 || r == 0x2029 || unicode.Is(unicode.Cf, r)
}

// plain reports whether s is printable ASCII without a backslash: the
// common case, which Escape returns as it is.
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c >= 0x7f || c == '\\' {
			return false
		}
	}
	return true
}

// Width returns the number of terminal columns that s takes once escaped:
// East Asian wide and fullwidth runes take two, combining marks none.
func Width(s string) int {
	if plain(s) {
		return len(s)
	}
	return displayWidth(Escape(s))
}

// displayWidth measures an already escaped string.
func displayWidth(s string) int {
	n := 0
	for i := 0; i < len(s); {
		j := i
		for j < len(s) && s[j] < utf8.RuneSelf {
			j++
		}
		if n += j - i; j == len(s) {
			break
		}
		i = j
		r, size := utf8.DecodeRuneInString(s[i:])
		n += runeWidth(r)
		i += size
	}
	return n
}

func runeWidth(r rune) int {
	if unicode.In(r, unicode.Mn, unicode.Me) {
		return 0
	}
	switch width.LookupRune(r).Kind() {
	case width.EastAsianWide, width.EastAsianFullwidth:
		return 2
	}
	return 1
}

// truncate cuts an already escaped string to at most max columns, ending
// it with "…" when something was cut.
func truncate(s string, max int) string {
	if displayWidth(s) <= max {
		return s
	}
	n := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		w := runeWidth(r)
		if n+w > max-1 {
			return s[:i] + "…"
		}
		n += w
		i += size
	}
	return s
}

// csvCell escapes a CSV cell for a spreadsheet: control characters as
// Escape writes them, and a leading ' on a cell that a spreadsheet would
// take for a formula (one starting with =, +, -, @, TAB or CR), as OWASP
// advises against CSV injection.
func csvCell(s string) string {
	s = Escape(s)
	if s != "" {
		switch s[0] {
		case '=', '+', '-', '@', '\t', '\r':
			return "'" + s
		}
	}
	return s
}

// EscapeLines is Escape for a text of several lines, such as an error that
// lists positions: each line is escaped, and the newlines between them are
// kept.
func EscapeLines(s string) string {
	if plain(strings.ReplaceAll(s, "\n", "")) {
		return s
	}
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = Escape(l)
	}
	return strings.Join(lines, "\n")
}

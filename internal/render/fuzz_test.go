package render

import (
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzEscape checks, for any bytes, that what Escape prints holds no
// control, bidi or invalid byte, that it decodes back to the input (so two
// names never print the same), and that Width measures it. The seed corpus
// is in testdata/fuzz/FuzzEscape.
func FuzzEscape(f *testing.F) {
	for _, c := range hostile {
		f.Add(c.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := Escape(s)
		if ok, r := safe(out); !ok {
			t.Fatalf("Escape(%q) = %q keeps %U", s, out, r)
		}
		back, err := unescape(out)
		if err != nil {
			t.Fatalf("Escape(%q) = %q: %v", s, out, err)
		}
		if back != s {
			t.Fatalf("Escape(%q) = %q decodes to %q", s, out, back)
		}
		if w := Width(s); w != displayWidth(out) || w > utf8.RuneCountInString(out)*2 {
			t.Fatalf("Width(%q) = %d for %q", s, w, out)
		}
		if cell := csvCell(s); cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
			t.Fatalf("csvCell(%q) = %q starts a formula", s, cell)
		}
	})
}

// unescape reverses Escape.
func unescape(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '\\' {
			b.WriteByte(s[i])
			continue
		}
		if i+1 >= len(s) {
			return "", errorf("a lone backslash at the end")
		}
		i++
		switch s[i] {
		case '\\':
			b.WriteByte('\\')
		case 't':
			b.WriteByte('\t')
		case 'n':
			b.WriteByte('\n')
		case 'r':
			b.WriteByte('\r')
		case 'x', 'u', 'U':
			n := map[byte]int{'x': 2, 'u': 4, 'U': 8}[s[i]]
			if i+n >= len(s) {
				return "", errorf("a short escape")
			}
			v, err := strconv.ParseUint(s[i+1:i+1+n], 16, 32)
			if err != nil {
				return "", err
			}
			if s[i] == 'x' {
				b.WriteByte(byte(v))
			} else {
				b.WriteRune(rune(v))
			}
			i += n
		default:
			return "", errorf("unknown escape \\" + string(s[i]))
		}
	}
	return b.String(), nil
}

type errorf string

func (e errorf) Error() string { return string(e) }

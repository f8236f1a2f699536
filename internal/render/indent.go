package render

import (
	"bytes"
	"strings"
)

// appendIndent appends src, a compact JSON value as encoding/json writes it,
// indented exactly as json.Indent(dst, src, prefix, indent) would: a new line
// and the prefix, then one indent per level, after each opening bracket and
// comma and before each closing one; a space after each colon; empty objects
// and arrays stay "{}" and "[]". It trusts its input to be well-formed: it
// is only given encoding/json's output, and it copies the bytes of strings
// without looking into them beyond their escapes. json.Indent checks every
// byte with its scanner, which made indenting cost as much as encoding.
func appendIndent(dst, src []byte, prefix, indent string) []byte {
	return newIndenter(prefix, indent).append(dst, src)
}

// indenter indents many values with the same prefix and indent: its line
// breaks are built once.
type indenter struct {
	prefix, indent string
	nls            []string // nls[d] is a new line, the prefix and d indents
}

func newIndenter(prefix, indent string) *indenter {
	return &indenter{prefix: prefix, indent: indent}
}

func (in *indenter) at(depth int) string {
	for len(in.nls) <= depth {
		in.nls = append(in.nls, "\n"+in.prefix+strings.Repeat(in.indent, len(in.nls)))
	}
	return in.nls[depth]
}

func (in *indenter) append(dst, src []byte) []byte {
	depth := 0
	open := false // after '{' or '[': a new line comes unless it is empty
	for i := 0; i < len(src); i++ {
		c := src[i]
		if open && c != '}' && c != ']' {
			open = false
			depth++
			dst = append(dst, in.at(depth)...)
		}
		switch c {
		case '"':
			// Copy the whole string: up to the first quote that no
			// backslash escapes. Quotes are found with IndexByte; one is
			// escaped when an odd run of backslashes comes before it.
			j := i + 1
			for {
				k := bytes.IndexByte(src[j:], '"')
				if k < 0 {
					j = len(src) - 1
					break
				}
				j += k
				n := 0
				for n < j-i-1 && src[j-1-n] == '\\' {
					n++
				}
				if n%2 == 0 {
					break
				}
				j++
			}
			dst = append(dst, src[i:j+1]...)
			i = j
		case '{', '[':
			dst = append(dst, c)
			open = true
		case '}', ']':
			if open {
				open = false
			} else {
				depth--
				dst = append(dst, in.at(depth)...)
			}
			dst = append(dst, c)
		case ',':
			dst = append(dst, c)
			dst = append(dst, in.at(depth)...)
		case ':':
			dst = append(dst, c, ' ')
		case ' ', '\t', '\n', '\r':
			// encoding/json writes none outside strings; json.Indent
			// drops them too.
		default:
			// A number or a literal: copy up to what ends it.
			j := i + 1
			for j < len(src) && !ends[src[j]] {
				j++
			}
			dst = append(dst, src[i:j]...)
			i = j - 1
		}
	}
	return dst
}

// ends marks the bytes that end a number or a literal.
var ends = [256]bool{',': true, ':': true, '{': true, '}': true, '[': true, ']': true, '"': true,
	' ': true, '\t': true, '\n': true, '\r': true}

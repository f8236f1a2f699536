package render

// appendIndent appends src, a compact JSON value as encoding/json writes it,
// indented exactly as json.Indent(dst, src, prefix, indent) would: a new line
// and the prefix, then one indent per level, after each opening bracket and
// comma and before each closing one; a space after each colon; empty objects
// and arrays stay "{}" and "[]". It trusts its input to be well-formed: it
// is only given encoding/json's output, and it copies the bytes of strings
// without looking into them beyond their escapes. json.Indent checks every
// byte with its scanner, which made indenting cost as much as encoding.
func appendIndent(dst, src []byte, prefix, indent string) []byte {
	depth := 0
	open := false // after '{' or '[': a new line comes unless it is empty
	for i := 0; i < len(src); i++ {
		c := src[i]
		if open && c != '}' && c != ']' {
			open = false
			depth++
			dst = newLine(dst, prefix, indent, depth)
		}
		switch c {
		case '"':
			// Copy the whole string: up to the quote that no backslash
			// escapes.
			j := i + 1
			for j < len(src) && src[j] != '"' {
				if src[j] == '\\' {
					j++
				}
				j++
			}
			j = min(j, len(src)-1)
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
				dst = newLine(dst, prefix, indent, depth)
			}
			dst = append(dst, c)
		case ',':
			dst = append(dst, c)
			dst = newLine(dst, prefix, indent, depth)
		case ':':
			dst = append(dst, c, ' ')
		case ' ', '\t', '\n', '\r':
			// encoding/json writes none outside strings; json.Indent
			// drops them too.
		default:
			dst = append(dst, c)
		}
	}
	return dst
}

func newLine(dst []byte, prefix, indent string, depth int) []byte {
	dst = append(dst, '\n')
	dst = append(dst, prefix...)
	for range depth {
		dst = append(dst, indent...)
	}
	return dst
}

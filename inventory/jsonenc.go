package inventory

import (
	"math"
	"net/netip"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// This file writes Socket and Process as JSON by hand. A list of 20,000
// sockets spends most of its encoding time in encoding/json's reflection;
// these appenders write the same bytes with no reflection and no allocation
// beyond growing b.
//
// The bytes are exactly json.Marshal's, with its default settings (HTML
// escaping on), for every value json.Marshal accepts; jsonenc_test.go checks
// that field by field against mirrors of today's types, and a fuzz target
// checks it byte for byte. Adding or changing a field of Socket, Endpoint,
// Process, Container or Forward means changing this file and the mirrors.
//
// json.Marshal fails on two values that these types can hold; the appenders
// cannot fail, so that one odd value does not lose a whole list:
//   - a time.Time that RFC 3339 cannot write in its own zone (a year
//     outside [0,9999], or a zone offset of 24 hours or more) is written in
//     UTC, which is the same instant, when that fits, and as null otherwise,
//     which json.Unmarshal reads as the zero time.
//   - a NaN or infinite CPUPercent is written as null, which json.Unmarshal
//     reads as 0.

// AppendSocketJSON appends the JSON encoding of s to b, as json.Marshal
// writes it (compact, no trailing newline), and returns the extended buffer.
func AppendSocketJSON(b []byte, s *Socket) []byte {
	w := jsonOut{b: b}
	w.socket(s)
	return w.b
}

// AppendProcessJSON appends the JSON encoding of p to b, as json.Marshal
// writes it, and returns the extended buffer.
func AppendProcessJSON(b []byte, p *Process) []byte {
	w := jsonOut{b: b}
	w.process(p)
	return w.b
}

// SocketIndenter writes sockets as AppendSocketJSON does, indented as
// json.Indent(dst, src, prefix, indent) would indent that: a new line, the
// prefix and one indent per level after each opening bracket and comma and
// before each closing one, a space after each colon, "[]" and "{}" for
// empty arrays and objects. Writing the indented form directly costs a
// fraction of indenting the compact one.
type SocketIndenter struct {
	prefix, indent string
	nls            []string // nls[d]: a new line, the prefix and d indents
}

// NewSocketIndenter returns a SocketIndenter for prefix and indent.
func NewSocketIndenter(prefix, indent string) *SocketIndenter {
	return &SocketIndenter{prefix: prefix, indent: indent}
}

// Append appends s's indented JSON to b and returns the extended buffer.
func (in *SocketIndenter) Append(b []byte, s *Socket) []byte {
	w := jsonOut{b: b, in: in}
	w.socket(s)
	return w.b
}

func (in *SocketIndenter) line(depth int) string {
	for len(in.nls) <= depth {
		in.nls = append(in.nls, "\n"+in.prefix+strings.Repeat(in.indent, len(in.nls)))
	}
	return in.nls[depth]
}

// jsonOut writes JSON compact, or indented when in is set. Keys are given
// as written compact: `"pid":`, or `,"ppid":` after the first member.
type jsonOut struct {
	b     []byte
	in    *SocketIndenter
	depth int
}

// open starts an object or array; its first member writes the new line.
func (w *jsonOut) open(c byte) {
	w.b = append(w.b, c)
	w.depth++
}

// close ends an object or array; empty says it had no member.
func (w *jsonOut) close(c byte, empty bool) {
	w.depth--
	if w.in != nil && !empty {
		w.b = append(w.b, w.in.line(w.depth)...)
	}
	w.b = append(w.b, c)
}

// key starts an object's member: k is what compact JSON has there, the
// comma (for all but the first member), the quoted key and the colon. The
// compact case is one append, and inlined.
func (w *jsonOut) key(k string) {
	if w.in != nil {
		w.indentKey(k)
		return
	}
	w.b = append(w.b, k...)
}

func (w *jsonOut) indentKey(k string) {
	if k[0] == ',' {
		w.b = append(w.b, ',')
		k = k[1:]
	}
	w.b = append(w.b, w.in.line(w.depth)...)
	w.b = append(w.b, k...)
	w.b = append(w.b, ' ')
}

// elem starts an array's element.
func (w *jsonOut) elem(first bool) {
	if !first {
		w.b = append(w.b, ',')
	}
	if w.in != nil {
		w.b = append(w.b, w.in.line(w.depth)...)
	}
}

func (w *jsonOut) str(k, v string) { w.key(k); w.b = appendJSONString(w.b, v) }
func (w *jsonOut) uint(k string, v uint64) {
	w.key(k)
	w.b = strconv.AppendUint(w.b, v, 10)
}
func (w *jsonOut) int(k string, v int64) { w.key(k); w.b = strconv.AppendInt(w.b, v, 10) }
func (w *jsonOut) bool(k string, v bool) { w.key(k); w.b = strconv.AppendBool(w.b, v) }

func (w *jsonOut) socket(s *Socket) {
	w.open('{')
	w.key(`"proto":`)
	w.b = appendJSONString(w.b, string(s.Proto))
	w.str(`,"family":`, string(s.Family))
	w.str(`,"state":`, string(s.State))
	w.key(`,"local":`)
	w.endpoint(s.Local.Address, s.Local.Port)
	w.key(`,"remote":`)
	w.endpoint(s.Remote.Address, s.Remote.Port)
	w.uint(`,"inode":`, s.Inode)
	w.uint(`,"uid":`, uint64(s.UID))
	w.uint(`,"netns":`, s.NetNS)
	if s.NetNSName != "" {
		w.str(`,"netns_name":`, s.NetNSName)
	}
	if s.Container != nil {
		w.key(`,"container":`)
		w.container(s.Container)
	}
	if s.Forward != nil {
		w.key(`,"forwards_to":`)
		w.forward(s.Forward)
	}
	if s.Interface != "" {
		w.str(`,"interface":`, s.Interface)
	}
	w.bool(`,"dual_stack":`, s.DualStack)
	w.str(`,"exposure":`, string(s.Exposure))
	w.bool(`,"listening":`, s.Listening)
	w.key(`,"processes":`)
	if s.Processes == nil {
		w.b = append(w.b, "null"...)
	} else {
		w.open('[')
		for i := range s.Processes {
			w.elem(i == 0)
			w.process(&s.Processes[i])
		}
		w.close(']', len(s.Processes) == 0)
	}
	if s.UnattributedReason != "" {
		w.str(`,"unattributed_reason":`, string(s.UnattributedReason))
	}
	w.close('}', false)
}

func (w *jsonOut) process(p *Process) {
	if p.ProcessInfo == nil {
		// A Process without details (only a zero value has none) is
		// written with zero details.
		p = &Process{ProcessInfo: &ProcessInfo{}, FDs: p.FDs}
	}
	w.open('{')
	w.key(`"pid":`)
	w.b = strconv.AppendInt(w.b, int64(p.PID), 10)
	w.int(`,"ppid":`, int64(p.PPID))
	w.str(`,"name":`, p.Name)
	w.str(`,"exe":`, p.Exe)
	if p.ExeDeleted {
		w.bool(`,"exe_deleted":`, true)
	}
	w.key(`,"cmdline":`)
	if p.Cmdline == nil {
		w.b = append(w.b, "null"...)
	} else {
		w.open('[')
		for i, a := range p.Cmdline {
			w.elem(i == 0)
			w.b = appendJSONString(w.b, a)
		}
		w.close(']', len(p.Cmdline) == 0)
	}
	w.str(`,"user":`, p.User)
	w.uint(`,"uid":`, uint64(p.UID))
	w.key(`,"fds":`)
	if p.FDs == nil {
		w.b = append(w.b, "null"...)
	} else {
		w.open('[')
		for i, fd := range p.FDs {
			w.elem(i == 0)
			w.b = strconv.AppendInt(w.b, int64(fd), 10)
		}
		w.close(']', len(p.FDs) == 0)
	}
	w.key(`,"start_time":`)
	w.b = appendJSONTime(w.b, p.StartTime)
	w.uint(`,"start_ticks":`, p.StartTicks)
	if p.Unit != "" {
		w.str(`,"unit":`, p.Unit)
	}
	if p.Container != "" {
		w.str(`,"container":`, p.Container)
	}
	w.key(`,"cpu_percent":`)
	w.b = appendJSONFloat(w.b, p.CPUPercent)
	w.uint(`,"rss_bytes":`, p.RSSBytes)
	w.str(`,"state":`, p.State)
	if p.Hidden {
		w.bool(`,"hidden":`, true)
	}
	w.close('}', false)
}

// endpoint writes an Endpoint. It takes the fields rather than the struct
// so that Socket's two endpoints are not copied.
func (w *jsonOut) endpoint(a netip.Addr, port uint16) {
	w.open('{')
	w.key(`"address":`)
	w.b = appendJSONAddr(w.b, a)
	w.uint(`,"port":`, uint64(port))
	w.close('}', false)
}

func (w *jsonOut) container(c *Container) {
	w.open('{')
	w.key(`"runtime":`)
	w.b = appendJSONString(w.b, c.Runtime)
	if c.ID != "" {
		w.str(`,"id":`, c.ID)
	}
	if c.Name != "" {
		w.str(`,"name":`, c.Name)
	}
	if c.Pod != "" {
		w.str(`,"pod":`, c.Pod)
	}
	if c.Namespace != "" {
		w.str(`,"namespace":`, c.Namespace)
	}
	if c.Container != "" {
		w.str(`,"container":`, c.Container)
	}
	w.close('}', false)
}

func (w *jsonOut) forward(f *Forward) {
	w.open('{')
	w.key(`"proto":`)
	w.b = appendJSONString(w.b, string(f.Proto))
	w.key(`,"address":`)
	w.b = appendJSONAddr(w.b, f.Address)
	w.uint(`,"port":`, uint64(f.Port))
	if f.NetNS != 0 {
		w.uint(`,"netns":`, f.NetNS)
	}
	if f.NetNSName != "" {
		w.str(`,"netns_name":`, f.NetNSName)
	}
	if f.Container != nil {
		w.key(`,"container":`)
		w.container(f.Container)
	}
	w.close('}', false)
}

// appendJSONAddr writes a's MarshalText as a JSON string: "" for the zero
// Addr. Digits, dots and colons need no escaping, but an IPv6 zone is any
// string (netip.Addr.WithZone takes anything), so it is escaped as one.
func appendJSONAddr(b []byte, a netip.Addr) []byte {
	b = append(b, '"')
	zone := a.Zone()
	if zone == "" {
		b = a.AppendTo(b)
		return append(b, '"')
	}
	b = a.WithZone("").AppendTo(b)
	b = append(b, '%')
	b = appendJSONStringBody(b, zone)
	return append(b, '"')
}

// appendJSONTime writes t as time.Time.MarshalJSON does: RFC 3339 with
// nanoseconds, quoted. Where MarshalJSON fails, see the comment at the top.
func appendJSONTime(b []byte, t time.Time) []byte {
	n0 := len(b)
	b = append(b, '"')
	b = t.AppendFormat(b, time.RFC3339Nano)
	if rfc3339OK(b[n0+1:]) {
		return append(b, '"')
	}
	b = t.UTC().AppendFormat(b[:n0+1], time.RFC3339Nano)
	if rfc3339OK(b[n0+1:]) {
		return append(b, '"')
	}
	return append(b[:n0], "null"...)
}

// rfc3339OK reports whether s, written by time's RFC3339Nano layout, is
// valid RFC 3339: the checks of time.Time.MarshalJSON. The year must be
// exactly 4 digits, and the zone's hour in [0,23] (an offset of 100 hours
// or more has a 3-digit hour).
func rfc3339OK(s []byte) bool {
	if len(s) < len("2006-01-02T15:04:05Z") || s[4] != '-' {
		return false
	}
	if s[len(s)-1] == 'Z' {
		return true
	}
	c := s[len(s)-len("Z07:00")]
	if '0' <= c && c <= '9' {
		return false
	}
	h := s[len(s)-len("07:00"):]
	return 10*(h[0]-'0')+(h[1]-'0') < 24
}

// appendJSONFloat writes f as encoding/json writes a float64: like
// JavaScript's Number.prototype.toString, 'f' form between 1e-6 and 1e21
// and 'e' form outside, with the exponent not padded. NaN and infinities,
// which JSON has no numbers for, are written as null.
func appendJSONFloat(b []byte, f float64) []byte {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return append(b, "null"...)
	}
	format := byte('f')
	if abs := math.Abs(f); abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// e-07 becomes e-7, as encoding/json writes it.
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

// appendJSONString writes s as a JSON string, escaped as encoding/json
// escapes it with HTML escaping on.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	b = appendJSONStringBody(b, s)
	return append(b, '"')
}

// jsonSafe holds true for the bytes encoding/json writes as they are with
// HTML escaping on: ASCII but not a control character, '"', '\\', '<', '>'
// or '&'. It has 256 entries, so that one lookup, without a bounds check,
// sorts out the common byte.
var jsonSafe = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = true
	}
	for _, c := range `"\<>&` {
		t[c] = false
	}
	return t
}()

const jsonHex = "0123456789abcdef"

// appendJSONStringBody writes the escaped body of s, without quotes.
// It follows encoding/json's appendString: \b \f \n \r \t and the two-byte
// escapes for '"' and '\\'; \u00XX for other control characters and for
// '<', '>', '&'; \ufffd for each byte of invalid UTF-8; \u2028 and \u2029,
// which break JavaScript; everything else as it is.
func appendJSONStringBody(b []byte, s string) []byte {
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if jsonSafe[c] {
			i++
			continue
		}
		if c < utf8.RuneSelf {
			b = append(b, s[start:i]...)
			switch c {
			case '\\', '"':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', jsonHex[c>>4], jsonHex[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i++
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', jsonHex[r&0xF])
			i += size
			start = i
			continue
		}
		i += size
	}
	return append(b, s[start:]...)
}

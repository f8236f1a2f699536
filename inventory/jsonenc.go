package inventory

import (
	"math"
	"net/netip"
	"strconv"
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
	b = append(b, `{"proto":`...)
	b = appendJSONString(b, string(s.Proto))
	b = append(b, `,"family":`...)
	b = appendJSONString(b, string(s.Family))
	b = append(b, `,"state":`...)
	b = appendJSONString(b, string(s.State))
	b = append(b, `,"local":`...)
	b = appendEndpointJSON(b, s.Local.Address, s.Local.Port)
	b = append(b, `,"remote":`...)
	b = appendEndpointJSON(b, s.Remote.Address, s.Remote.Port)
	b = append(b, `,"inode":`...)
	b = strconv.AppendUint(b, s.Inode, 10)
	b = append(b, `,"uid":`...)
	b = strconv.AppendUint(b, uint64(s.UID), 10)
	b = append(b, `,"netns":`...)
	b = strconv.AppendUint(b, s.NetNS, 10)
	if s.NetNSName != "" {
		b = append(b, `,"netns_name":`...)
		b = appendJSONString(b, s.NetNSName)
	}
	if s.Container != nil {
		b = append(b, `,"container":`...)
		b = appendContainerJSON(b, s.Container)
	}
	if s.Forward != nil {
		b = append(b, `,"forwards_to":`...)
		b = appendForwardJSON(b, s.Forward)
	}
	if s.Interface != "" {
		b = append(b, `,"interface":`...)
		b = appendJSONString(b, s.Interface)
	}
	b = append(b, `,"dual_stack":`...)
	b = strconv.AppendBool(b, s.DualStack)
	b = append(b, `,"exposure":`...)
	b = appendJSONString(b, string(s.Exposure))
	b = append(b, `,"listening":`...)
	b = strconv.AppendBool(b, s.Listening)
	b = append(b, `,"processes":`...)
	if s.Processes == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i := range s.Processes {
			if i > 0 {
				b = append(b, ',')
			}
			b = AppendProcessJSON(b, &s.Processes[i])
		}
		b = append(b, ']')
	}
	if s.UnattributedReason != "" {
		b = append(b, `,"unattributed_reason":`...)
		b = appendJSONString(b, string(s.UnattributedReason))
	}
	return append(b, '}')
}

// AppendProcessJSON appends the JSON encoding of p to b, as json.Marshal
// writes it, and returns the extended buffer.
func AppendProcessJSON(b []byte, p *Process) []byte {
	if p.ProcessInfo == nil {
		// A Process without details (only a zero value has none) is
		// written with zero details.
		p = &Process{ProcessInfo: &ProcessInfo{}, FDs: p.FDs}
	}
	b = append(b, `{"pid":`...)
	b = strconv.AppendInt(b, int64(p.PID), 10)
	b = append(b, `,"ppid":`...)
	b = strconv.AppendInt(b, int64(p.PPID), 10)
	b = append(b, `,"name":`...)
	b = appendJSONString(b, p.Name)
	b = append(b, `,"exe":`...)
	b = appendJSONString(b, p.Exe)
	if p.ExeDeleted {
		b = append(b, `,"exe_deleted":true`...)
	}
	b = append(b, `,"cmdline":`...)
	if p.Cmdline == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, a := range p.Cmdline {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, a)
		}
		b = append(b, ']')
	}
	b = append(b, `,"user":`...)
	b = appendJSONString(b, p.User)
	b = append(b, `,"uid":`...)
	b = strconv.AppendUint(b, uint64(p.UID), 10)
	b = append(b, `,"fds":`...)
	if p.FDs == nil {
		b = append(b, "null"...)
	} else {
		b = append(b, '[')
		for i, fd := range p.FDs {
			if i > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, int64(fd), 10)
		}
		b = append(b, ']')
	}
	b = append(b, `,"start_time":`...)
	b = appendJSONTime(b, p.StartTime)
	b = append(b, `,"start_ticks":`...)
	b = strconv.AppendUint(b, p.StartTicks, 10)
	if p.Unit != "" {
		b = append(b, `,"unit":`...)
		b = appendJSONString(b, p.Unit)
	}
	if p.Container != "" {
		b = append(b, `,"container":`...)
		b = appendJSONString(b, p.Container)
	}
	b = append(b, `,"cpu_percent":`...)
	b = appendJSONFloat(b, p.CPUPercent)
	b = append(b, `,"rss_bytes":`...)
	b = strconv.AppendUint(b, p.RSSBytes, 10)
	b = append(b, `,"state":`...)
	b = appendJSONString(b, p.State)
	if p.Hidden {
		b = append(b, `,"hidden":true`...)
	}
	return append(b, '}')
}

// appendEndpointJSON writes an Endpoint. It takes the fields rather than
// the struct so that Socket's two endpoints are not copied.
func appendEndpointJSON(b []byte, a netip.Addr, port uint16) []byte {
	b = append(b, `{"address":`...)
	b = appendJSONAddr(b, a)
	b = append(b, `,"port":`...)
	b = strconv.AppendUint(b, uint64(port), 10)
	return append(b, '}')
}

func appendContainerJSON(b []byte, c *Container) []byte {
	b = append(b, `{"runtime":`...)
	b = appendJSONString(b, c.Runtime)
	if c.ID != "" {
		b = append(b, `,"id":`...)
		b = appendJSONString(b, c.ID)
	}
	if c.Name != "" {
		b = append(b, `,"name":`...)
		b = appendJSONString(b, c.Name)
	}
	if c.Pod != "" {
		b = append(b, `,"pod":`...)
		b = appendJSONString(b, c.Pod)
	}
	if c.Namespace != "" {
		b = append(b, `,"namespace":`...)
		b = appendJSONString(b, c.Namespace)
	}
	if c.Container != "" {
		b = append(b, `,"container":`...)
		b = appendJSONString(b, c.Container)
	}
	return append(b, '}')
}

func appendForwardJSON(b []byte, f *Forward) []byte {
	b = append(b, `{"proto":`...)
	b = appendJSONString(b, string(f.Proto))
	b = append(b, `,"address":`...)
	b = appendJSONAddr(b, f.Address)
	b = append(b, `,"port":`...)
	b = strconv.AppendUint(b, uint64(f.Port), 10)
	if f.NetNS != 0 {
		b = append(b, `,"netns":`...)
		b = strconv.AppendUint(b, f.NetNS, 10)
	}
	if f.NetNSName != "" {
		b = append(b, `,"netns_name":`...)
		b = appendJSONString(b, f.NetNSName)
	}
	if f.Container != nil {
		b = append(b, `,"container":`...)
		b = appendContainerJSON(b, f.Container)
	}
	return append(b, '}')
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

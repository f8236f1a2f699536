package sockdiag

import (
	"encoding/binary"
	"slices"
)

// Bytecode filter ops (linux/inet_diag.h).
const (
	bcJMP = 1
	bcSGE = 2
	bcSLE = 3

	attrReqBytecode = 1 // INET_DIAG_REQ_BYTECODE

	// maxPortRanges bounds the filter: the attribute length is 16 bits.
	maxPortRanges = 2000
)

// PortRange is an inclusive range of local ports.
type PortRange struct{ Lo, Hi uint16 }

// LocalPortFilter returns inet_diag bytecode that keeps only the sockets
// whose local port is in one of the ranges, so that the kernel skips the
// rest before it fills in their tcp_info. It returns nil (no filter) when
// there are more ranges than a request can hold; the caller then dumps
// everything and sorts it out itself.
//
// The kernel's checker (inet_diag_bc_audit) walks the "yes" branches and
// requires them to reach the end exactly, so every op falls through on yes
// and every jump is a "no": past the end by 4 rejects, the end accepts.
// Per range, with the ranges sorted:
//
//	S_GE lo   no: reject (below this range, so below every later one)
//	S_LE hi   no: next range
//	JMP       no: accept
//
// and a final JMP whose no rejects.
func LocalPortFilter(ranges []PortRange) []byte {
	rs := mergeRanges(ranges)
	if len(rs) == 0 || len(rs) > maxPortRanges {
		return nil
	}
	size := 4 // the final JMP
	for _, r := range rs {
		size += 12
		if r.Lo > 0 {
			size += 8
		}
	}
	b := make([]byte, 0, size)
	op := func(code, yes uint8, no int) {
		b = append(b, code, yes, 0, 0)
		binary.NativeEndian.PutUint16(b[len(b)-2:], uint16(no))
	}
	portOp := func(code uint8, port uint16, no int) {
		op(code, 8, no)
		op(0, 0, int(port)) // the port rides in the next op's "no"
	}
	for _, r := range rs {
		next := len(b) + 12 // the start of the next range, from here
		if r.Lo > 0 {
			next += 8
			portOp(bcSGE, r.Lo, size-len(b)+4) // reject
		}
		portOp(bcSLE, r.Hi, next-len(b))
		op(bcJMP, 4, size-len(b)) // accept
	}
	op(bcJMP, 4, 8) // reject: the end plus 4
	return b
}

// mergeRanges sorts ranges and merges those that overlap or touch.
func mergeRanges(in []PortRange) []PortRange {
	rs := make([]PortRange, 0, len(in))
	for _, r := range in {
		if r.Lo <= r.Hi {
			rs = append(rs, r)
		}
	}
	slices.SortFunc(rs, func(a, b PortRange) int { return int(a.Lo) - int(b.Lo) })
	out := rs[:0]
	for _, r := range rs {
		if n := len(out); n > 0 && int(r.Lo) <= int(out[n-1].Hi)+1 {
			out[n-1].Hi = max(out[n-1].Hi, r.Hi)
			continue
		}
		out = append(out, r)
	}
	return out
}

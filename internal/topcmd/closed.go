package topcmd

import (
	"context"
	"os"
	"strconv"
	"time"

	"github.com/porteiro/porteiro/internal/localapi"
	"github.com/porteiro/porteiro/internal/top"
	"github.com/porteiro/porteiro/inventory"
)

// closedTimeout bounds the question to porteirod at each refresh: a slow
// or stuck daemon must not hold the screen; that sample then goes without
// the closed connections, as if no daemon ran.
const closedTimeout = 250 * time.Millisecond

// topSampler is top's sampler, with porteirod's counters of the
// connections that closed since its last sample when a daemon answers on
// its local socket. The counters are read just after the connection dump
// (top/closed.go relies on that order).
type topSampler struct {
	*top.Sampler
	cl    *localapi.Client // nil when there is no socket to ask
	ports []uint16
	buf   []byte
}

func newTopSampler(f *topFlags) *topSampler {
	s := &topSampler{Sampler: top.NewSampler(f.ProcRoot, f.NoOwners)}
	sock := f.Socket // resolved from the configuration by the command
	if sock != "" {
		s.cl = &localapi.Client{Socket: sock, Timeout: closedTimeout}
	}
	return s
}

// Sample takes a sample and adds porteirod's counters to it.
func (s *topSampler) Sample(ctx context.Context) (top.Sample, error) {
	smp, err := s.Sampler.Sample(ctx)
	if err != nil {
		return smp, err
	}
	smp.Closed = s.closed(ctx, smp.Snapshot)
	return smp, nil
}

// closed asks porteirod for the counters of the TCP listening ports of
// snap; nil when the socket is not there, the daemon does not answer in
// time, or it may not be asked (not root, not in group porteiro).
func (s *topSampler) closed(ctx context.Context, snap *inventory.Snapshot) *localapi.ClosedDocument {
	if s.cl == nil || snap == nil {
		return nil
	}
	if _, err := os.Stat(s.cl.Socket); err != nil {
		return nil // no daemon here; asked again next time, it may start
	}
	s.ports = s.ports[:0]
	for i := range snap.Sockets {
		if so := &snap.Sockets[i]; so.Proto == inventory.TCP && so.Listening {
			s.ports = append(s.ports, so.Local.Port)
		}
	}
	if len(s.ports) == 0 {
		return nil
	}
	doc, err := s.cl.Closed(ctx, s.portList())
	if err != nil || !doc.Available {
		return nil
	}
	return doc
}

// portList writes s.ports as "22,80,8000-8003": in order, without
// duplicates, runs as ranges, so that a host with thousands of listening
// ports still makes a short request. A bitmap sorts them: no sort code
// is linked into porteiro for it.
func (s *topSampler) portList() string {
	var set [1 << 16 / 64]uint64
	for _, p := range s.ports {
		set[p/64] |= 1 << (p % 64)
	}
	has := func(p int) bool { return p < 1<<16 && set[p/64]&(1<<(p%64)) != 0 }
	b := s.buf[:0]
	for p := 0; p < 1<<16; p++ {
		if set[p/64] == 0 {
			p |= 63 // skip an empty word
			continue
		}
		if !has(p) {
			continue
		}
		q := p
		for has(q + 1) {
			q++
		}
		if len(b) > 0 {
			b = append(b, ',')
		}
		b = strconv.AppendUint(b, uint64(p), 10)
		if q > p {
			b = append(b, '-')
			b = strconv.AppendUint(b, uint64(q), 10)
		}
		p = q
	}
	s.buf = b
	return string(b)
}

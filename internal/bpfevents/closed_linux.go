package bpfevents

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/cilium/ebpf"

	"github.com/porteiro/porteiro/internal/localapi"
)

// newLoadID names one load of the programs: the counters of closed
// connections start from zero at each load, and a reader that sees another
// LoadID knows not to subtract across it.
func newLoadID() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // never fails on Linux
	return hex.EncodeToString(b[:])
}

// LoadID names this load of the programs (see ClosedSince).
func (s *Source) LoadID() string { return s.loadID }

// ClosedSince is when the counters of Closed started from zero.
func (s *Source) ClosedSince() time.Time { return s.loadedAt }

// Closed returns the traffic of every TCP connection that closed since
// Open, summed per local end (network namespace, family, address, port):
// tcpi_bytes_received and tcpi_bytes_acked at close, and the number of
// connections. Outgoing connections are there too, under their ephemeral
// local ports. keep, when not nil, selects by local port. The table holds
// 16,384 local ends; the least recently used go first, and come back from
// zero.
//
// It may be called from any goroutine, while Read runs.
func (s *Source) Closed(keep func(port uint16) bool) ([]localapi.ClosedCounter, error) {
	m := s.objs.ClosedConns
	if m == nil {
		return nil, errors.New("reading closed connections: the programs are not loaded")
	}
	var out []localapi.ClosedCounter
	add := func(k *listenerClosedKey, v *listenerClosedVal) {
		if keep != nil && !keep(k.Port) {
			return
		}
		if c, ok := closedCounter(k.Netns, k.Family, k.Addr, k.Port, v.BytesIn, v.BytesOut, v.Closes); ok {
			out = append(out, c)
		}
	}
	// In batches: one syscall per key and value (the iterator) costs
	// 90 ms for a full table on a small VM, a batch of 1,024 about 1 ms.
	s.closedMu.Lock()
	defer s.closedMu.Unlock()
	if s.closedKeys == nil {
		s.closedKeys = make([]listenerClosedKey, 1024)
		s.closedVals = make([]listenerClosedVal, 1024)
	}
	var cursor ebpf.MapBatchCursor
	for {
		n, err := m.BatchLookup(&cursor, s.closedKeys, s.closedVals, nil)
		for i := range n {
			add(&s.closedKeys[i], &s.closedVals[i])
		}
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			return out, nil // the end
		}
		if errors.Is(err, ebpf.ErrNotSupported) && n == 0 && out == nil {
			break // a kernel before 5.6: one key at a time
		}
		if err != nil {
			return nil, fmt.Errorf("reading closed connections (map closed_conns): %w", err)
		}
	}
	var (
		k listenerClosedKey
		v listenerClosedVal
	)
	it := m.Iterate()
	for it.Next(&k, &v) {
		add(&k, &v)
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("reading closed connections (map closed_conns): %w", err)
	}
	return out, nil
}

//go:build !linux

package bpfevents

import (
	"context"
	"fmt"
)

// Options tunes Open.
type Options struct {
	RingBytes     int
	Cgroup        string
	ProcRoot      string
	NoProcDetails bool
}

// Source is not available outside Linux.
type Source struct{}

// CapabilityError is returned by Open when capabilities are missing.
type CapabilityError struct{ Missing []string }

func (e *CapabilityError) Error() string { return ErrNotSupported.Error() }
func (e *CapabilityError) Unwrap() error { return ErrNotSupported }

// Open fails: the programs need Linux.
func Open(Options) (*Source, error) {
	return nil, fmt.Errorf("%w: porteiro runs on Linux only", ErrNotSupported)
}

func (*Source) Read(context.Context) (Event, error) { return Event{}, ErrNotSupported }
func (*Source) Drops() uint64                       { return 0 }
func (*Source) Untracked() uint64                   { return 0 }
func (*Source) Close() error                        { return nil }

//go:build !linux

package kview

import (
	"context"
	"errors"
)

// ErrNotSupported is wrapped when the kernel view cannot be read.
var ErrNotSupported = errors.New("the kernel view needs Linux BPF iterators")

// Programs is not available on this OS.
type Programs struct{}

// Open always fails here.
func Open() (*Programs, error) { return nil, ErrNotSupported }

// Close does nothing.
func (p *Programs) Close() error { return nil }

// Sockets fails.
func (p *Programs) Sockets(ctx context.Context, fn func(Record)) error { return ErrNotSupported }

// Tasks fails.
func (p *Programs) Tasks(ctx context.Context, fn func(Record)) error { return ErrNotSupported }

// TaskFiles fails.
func (p *Programs) TaskFiles(ctx context.Context, fn func(Record)) error { return ErrNotSupported }

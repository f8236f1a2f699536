//go:build !linux

package taskfd

import (
	"context"
	"errors"
)

// ErrUnsupported is returned on systems without the task-file iterator.
var ErrUnsupported = errors.New("task-file iterator: not supported on this operating system")

// Iterator is not available here.
type Iterator struct{}

// Open always fails here.
func Open() (*Iterator, error) { return nil, ErrUnsupported }

// Close does nothing.
func (*Iterator) Close() error { return nil }

// Read always fails here.
func (*Iterator) Read(context.Context, []byte) ([]byte, error) { return nil, ErrUnsupported }

// ReadFunc always fails here.
func (*Iterator) ReadFunc(context.Context, []byte, func([]byte)) ([]byte, error) {
	return nil, ErrUnsupported
}

//go:build !linux

package load

import (
	"context"
	"errors"
)

// Load is a running load; only Linux has one.
type Load struct{ Summary Summary }

// Start fails: the load generator needs Linux.
func Start(context.Context, *Plan, Options) (*Load, error) {
	return nil, errors.New("the load generator runs on Linux only")
}

// Stop does nothing.
func (l *Load) Stop() {}

//go:build !linux

package audit

import "context"

// Run fails: the views are Linux's.
func Run(ctx context.Context, o Options) (*Report, error) { return nil, ErrUnsupported }

//go:build !linux

package top

import (
	"context"

	"github.com/porteiro/porteiro/inventory"
)

// Sampler is Linux only.
type Sampler struct{}

// NewSampler returns a sampler that fails: porteiro is for Linux.
func NewSampler(procRoot string, noOwners bool) *Sampler { return &Sampler{} }

// Close does nothing.
func (*Sampler) Close() error { return nil }

// Sample returns inventory.ErrUnsupported.
func (*Sampler) Sample(context.Context) (Sample, error) { return Sample{}, inventory.ErrUnsupported }

package watch

import (
	"github.com/porteiro/porteiro/inventory"
	"github.com/porteiro/porteiro/policy"
)

// Finding is one policy finding. It is policy.Finding itself, so that the
// stored JSON matches `porteiro check -o json`.
type Finding = policy.Finding

// Checker judges a snapshot against a policy.
type Checker interface {
	Check(snap *inventory.Snapshot) []Finding
}

// CheckerFunc adapts a function to Checker.
type CheckerFunc func(snap *inventory.Snapshot) []Finding

// Check calls f.
func (f CheckerFunc) Check(snap *inventory.Snapshot) []Finding { return f(snap) }

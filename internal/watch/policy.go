package watch

import "github.com/porteiro/porteiro/inventory"

// Finding is one policy finding as the daemon uses it: the same fields as
// policy.Finding, so that the stored JSON matches `porteiro check -o json`.
type Finding struct {
	// Kind is unexpected, missing, wrong_owner or too_exposed.
	Kind string `json:"kind"`
	// Key is stable while the condition lasts; it decides when a
	// violation starts and when it is resolved.
	Key        string            `json:"key"`
	Message    string            `json:"message"`
	Socket     *inventory.Socket `json:"socket,omitempty"`
	Rule       string            `json:"rule,omitempty"`
	RuleReason string            `json:"rule_reason,omitempty"`
	Expected   string            `json:"expected,omitempty"`
}

// Checker judges a snapshot against a policy.
type Checker interface {
	Check(snap *inventory.Snapshot) []Finding
}

// CheckerFunc adapts a function to Checker.
type CheckerFunc func(snap *inventory.Snapshot) []Finding

// Check calls f.
func (f CheckerFunc) Check(snap *inventory.Snapshot) []Finding { return f(snap) }

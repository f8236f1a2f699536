package top

import (
	"github.com/porteiro/porteiro/inventory"
	"github.com/porteiro/porteiro/policy"
)

// Violation is how a listener breaks the policy: the finding "porteiro
// check" makes about it (docs/check-json.md), without the socket. Missing
// services are violations of the policy too, with no listener.
type Violation struct {
	// Kind is unexpected, wrong_owner or too_exposed for a listener,
	// missing for a required service that does not listen.
	Kind       string `json:"kind"`
	Key        string `json:"key"`
	Message    string `json:"message"`
	Rule       string `json:"rule,omitempty"`
	RuleReason string `json:"rule_reason,omitempty"`
	Expected   string `json:"expected,omitempty"`
}

// PolicyView is what the policy says of one sample.
type PolicyView struct {
	// File is the policy file.
	File string `json:"file"`
	// Violations counts the listeners that break it.
	Violations int `json:"violations"`
	// Unverified counts the listeners whose owners a rule needed and
	// could not be seen (not root): they are not marked.
	Unverified int `json:"unverified"`
	// Missing lists the required services that do not listen.
	Missing []Violation `json:"missing"`
}

// policyMarks checks each sample against the policy, with the code of
// "porteiro check". The check builds a message for every finding; a host
// whose listeners break the policy by the thousand would pay that every
// refresh, so it runs again only when the listeners or their owners
// changed.
type policyMarks struct {
	pol     *policy.Policy
	file    string
	sum     uint64
	checked bool
	byKey   map[inventory.ListenerKey]*Violation
	view    PolicyView
}

// check returns the violation of each listener key, and the summary.
func (p *policyMarks) check(snap *inventory.Snapshot) (map[inventory.ListenerKey]*Violation, *PolicyView) {
	if sum := fingerprint(snap); !p.checked || sum != p.sum {
		p.sum, p.checked = sum, true
		rep := p.pol.Check(snap)
		p.byKey = make(map[inventory.ListenerKey]*Violation, len(rep.Findings))
		p.view = PolicyView{File: p.file, Unverified: rep.Unverified, Missing: []Violation{}}
		for i := range rep.Findings {
			f := &rep.Findings[i]
			v := Violation{Kind: f.Kind, Key: f.Key, Message: f.Message, Rule: f.Rule, RuleReason: f.RuleReason, Expected: f.Expected}
			if f.Socket == nil {
				p.view.Missing = append(p.view.Missing, v)
				continue
			}
			p.byKey[f.Socket.ListenerKey()] = &v
		}
	}
	return p.byKey, &p.view
}

// fingerprint hashes what a policy check looks at that may change between
// samples: each listener (namespace and inode: a new socket is a new
// inode) and its owners (pid and start time), in the snapshot's order.
// Names, addresses and exposure are the socket's own, fixed with its
// inode.
func fingerprint(snap *inventory.Snapshot) uint64 {
	const prime = 1099511628211
	h := uint64(14695981039346656037)
	mix := func(x uint64) { h = (h ^ x) * prime }
	if snap == nil {
		return h
	}
	if snap.Privileged {
		mix(1)
	}
	for i := range snap.Sockets {
		so := &snap.Sockets[i]
		if !so.Listening {
			continue
		}
		mix(so.NetNS)
		mix(so.Inode)
		for j := range so.Processes {
			mix(uint64(so.Processes[j].PID))
			mix(so.Processes[j].StartTicks)
		}
	}
	return h
}

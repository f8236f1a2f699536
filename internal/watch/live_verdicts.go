package watch

import (
	"github.com/porteiro/porteiro/internal/metrics"
	"github.com/porteiro/porteiro/inventory"
	"github.com/porteiro/porteiro/policy"
)

// verdicts is the policy's verdict on the listeners as last judged, kept
// by listener group, so that a batch of kernel events re-judges only the
// groups it touched. It holds the same findings as a check of the whole
// view: a group's findings depend on its own sockets only, and a require
// rule is missing when no group satisfies it.
//
// A scan's whole verdict resets it (resync). Only a policy file's checker
// can be kept this way; any other Checker is always given the whole view.
type verdicts struct {
	// valid says the verdicts match the last judged view, under the
	// policy of generation gen.
	valid bool
	gen   uint64
	pol   *policy.Policy // nil: no policy
	self  int
	// byKey holds every finding; byGroup the keys of each group's.
	byKey   map[string]*Finding
	byGroup map[groupKey][]string
	// required holds the finding of each require rule when missing, in
	// rule order (a check of no listener at all).
	required []Finding
	reqIndex map[string]int
	// counts and flagged are the policy metrics of the findings; dirty
	// says they changed since they were published.
	counts  map[string]int
	flagged map[inventory.Key]bool
	dirty   bool
}

// resync takes the verdict of a whole view (after allowSelf).
func (c *verdicts) resync(gen uint64, pol Checker, self int, findings []Finding) {
	pc, ok := pol.(policyChecker)
	if pol != nil && !ok {
		c.valid = false
		return
	}
	c.valid, c.gen, c.self, c.pol, c.dirty = true, gen, self, pc.p, false
	c.byKey = make(map[string]*Finding, len(findings))
	c.byGroup = make(map[groupKey][]string, len(findings))
	c.counts, c.flagged = map[string]int{}, map[inventory.Key]bool{}
	c.required, c.reqIndex = nil, map[string]int{}
	if c.pol != nil {
		for _, f := range c.pol.Check(&inventory.Snapshot{}).Findings {
			if f.Kind == policy.Missing {
				c.reqIndex[f.Key] = len(c.required)
				c.required = append(c.required, f)
			}
		}
	}
	for i := range findings {
		f := findings[i]
		var g groupKey
		if f.Socket != nil {
			g = groupOf(f.Socket)
		}
		c.add(g, &f)
	}
	c.dirty = false
}

func (c *verdicts) add(g groupKey, f *Finding) {
	if _, dup := c.byKey[f.Key]; dup {
		return
	}
	c.byKey[f.Key] = f
	if f.Socket != nil {
		c.byGroup[g] = append(c.byGroup[g], f.Key)
		c.flagged[f.Socket.Key()] = true
	}
	c.counts[f.Kind]++
	c.dirty = true
}

func (c *verdicts) remove(key string) {
	f, ok := c.byKey[key]
	if !ok {
		return
	}
	delete(c.byKey, key)
	if f.Socket != nil {
		delete(c.flagged, f.Socket.Key())
	}
	if c.counts[f.Kind]--; c.counts[f.Kind] <= 0 {
		delete(c.counts, f.Kind)
	}
	c.dirty = true
}

// lookup returns the finding at key, if any.
func (c *verdicts) lookup(key string) (Finding, bool) {
	f, ok := c.byKey[key]
	if !ok {
		return Finding{}, false
	}
	return *f, true
}

// less orders findings as a check of the whole view lists them: by the
// listener's place in the view (port, then inode), then missing listeners
// in rule order.
func (c *verdicts) less(a, b *Finding) bool {
	if (a.Socket == nil) != (b.Socket == nil) {
		return a.Socket != nil
	}
	if a.Socket != nil {
		if a.Socket.Local.Port != b.Socket.Local.Port {
			return a.Socket.Local.Port < b.Socket.Local.Port
		}
		return a.Socket.Inode < b.Socket.Inode
	}
	return c.reqIndex[a.Key] < c.reqIndex[b.Key]
}

// check judges one group's sockets: their findings, and which require
// rules they satisfy.
func (c *verdicts) check(socks []inventory.Socket) ([]Finding, []bool) {
	if len(socks) == 0 {
		return nil, nil
	}
	rep := c.pol.Check(&inventory.Snapshot{Sockets: socks})
	var sat []bool
	if len(c.required) > 0 {
		sat = make([]bool, len(c.required))
		for i := range sat {
			sat[i] = true
		}
	}
	out := rep.Findings[:0]
	for _, f := range rep.Findings {
		if f.Kind == policy.Missing {
			if i, ok := c.reqIndex[f.Key]; ok {
				sat[i] = false
			}
			continue
		}
		out = append(out, f)
	}
	return allowSelf(out, c.self), sat
}

// satisfies returns which require rules a group's sockets satisfy, from
// sats or else by judging them (and keeping the answer in sats).
func (c *verdicts) satisfies(sats map[groupKey][]bool, g groupKey, socks []inventory.Socket) []bool {
	if s, ok := sats[g]; ok {
		return s
	}
	_, s := c.check(socks)
	sats[g] = s
	return s
}

// judge updates the verdicts for a view that differs from the last judged
// one only in the given groups, which held before[g] and now hold
// after[g]. beforeSat may hold what before[g] satisfies, from the
// previous view; judge returns the same for after. whole builds the whole
// view, for the rare case of a require rule that a touched group
// satisfied and no longer does: another listener may still satisfy it.
// It returns the finding keys that may have changed.
func (c *verdicts) judge(groups []groupKey, before, after map[groupKey][]inventory.Socket, beforeSat map[groupKey][]bool, whole func() *inventory.Snapshot) (changed []string, afterSat map[groupKey][]bool) {
	afterSat = make(map[groupKey][]bool, len(groups))
	if c.pol == nil {
		return nil, afterSat
	}
	for _, g := range groups {
		fs, sat := c.check(after[g])
		afterSat[g] = sat
		for _, key := range c.byGroup[g] {
			c.remove(key)
			changed = append(changed, key)
		}
		delete(c.byGroup, g)
		for i := range fs {
			if _, had := c.byKey[fs[i].Key]; !had {
				changed = append(changed, fs[i].Key)
			}
			c.add(g, &fs[i])
		}
	}
	if len(c.required) == 0 {
		return changed, afterSat
	}
	if beforeSat == nil {
		beforeSat = map[groupKey][]bool{}
	}
	missing := make([]bool, len(c.required))
	var unsure []int
	for i, r := range c.required {
		_, wasMissing := c.byKey[r.Key]
		switch {
		case satisfiedBy(afterSat, groups, i):
			// A touched listener satisfies it now.
		case wasMissing:
			// Nothing did, and no touched listener does now.
			missing[i] = true
		default:
			// Satisfied before: by an untouched listener (still is), or
			// by a touched one that no longer does.
			for _, g := range groups {
				if s := c.satisfies(beforeSat, g, before[g]); s != nil && s[i] {
					unsure = append(unsure, i)
					break
				}
			}
		}
	}
	if len(unsure) > 0 {
		gone := map[string]bool{}
		for _, f := range c.pol.Check(whole()).Findings {
			if f.Kind == policy.Missing {
				gone[f.Key] = true
			}
		}
		for _, i := range unsure {
			missing[i] = gone[c.required[i].Key]
		}
	}
	for i := range c.required {
		r := &c.required[i]
		_, was := c.byKey[r.Key]
		switch {
		case missing[i] && !was:
			f := *r
			c.add(groupKey{}, &f)
			changed = append(changed, r.Key)
		case !missing[i] && was:
			c.remove(r.Key)
			changed = append(changed, r.Key)
		}
	}
	return changed, afterSat
}

func satisfiedBy(sats map[groupKey][]bool, groups []groupKey, i int) bool {
	for _, g := range groups {
		if s := sats[g]; s != nil && s[i] {
			return true
		}
	}
	return false
}

// publish sets the policy metrics when they changed.
func (c *verdicts) publish(m *metrics.Metrics) {
	if !c.valid || !c.dirty {
		return
	}
	c.dirty = false
	if c.pol == nil {
		m.ClearPolicy()
		return
	}
	m.SetPolicy(c.counts, c.flagged)
}

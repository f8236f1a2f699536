package inventory

import "sort"

// ChangeKind names a difference between two snapshots.
type ChangeKind string

// Change kinds.
const (
	Opened       ChangeKind = "opened"
	Closed       ChangeKind = "closed"
	OwnerChanged ChangeKind = "owner_changed"
)

// Change is one difference between two snapshots. Old is nil for Opened,
// New is nil for Closed.
type Change struct {
	Kind ChangeKind
	Old  *Socket
	New  *Socket
}

// Socket returns the newest view of the changed socket.
func (c Change) Socket() *Socket {
	if c.New != nil {
		return c.New
	}
	return c.Old
}

// Diff returns what changed from old to new, keyed by socket identity
// (network namespace and inode). Either snapshot may be nil. The result is
// ordered: closed first, then opened, then owner changes, each by inode.
func Diff(old, new *Snapshot) []Change {
	oldBy := index(old)
	newBy := index(new)
	var out []Change
	for k, o := range oldBy {
		if _, ok := newBy[k]; !ok {
			out = append(out, Change{Kind: Closed, Old: o})
		}
	}
	for k, n := range newBy {
		o, ok := oldBy[k]
		if !ok {
			out = append(out, Change{Kind: Opened, New: n})
			continue
		}
		if !sameOwners(o, n) {
			out = append(out, Change{Kind: OwnerChanged, Old: o, New: n})
		}
	}
	rank := map[ChangeKind]int{Closed: 0, Opened: 1, OwnerChanged: 2}
	sort.Slice(out, func(i, j int) bool {
		if rank[out[i].Kind] != rank[out[j].Kind] {
			return rank[out[i].Kind] < rank[out[j].Kind]
		}
		return out[i].Socket().Inode < out[j].Socket().Inode
	})
	return out
}

func index(s *Snapshot) map[Key]*Socket {
	m := map[Key]*Socket{}
	if s == nil {
		return m
	}
	for i := range s.Sockets {
		m[s.Sockets[i].Key()] = &s.Sockets[i]
	}
	return m
}

// sameOwners compares owner identities. A socket whose owners could not be
// seen in one scan is not reported as an owner change.
func sameOwners(a, b *Socket) bool {
	if len(a.Processes) == 0 || len(b.Processes) == 0 {
		return true
	}
	if len(a.Processes) != len(b.Processes) {
		return false
	}
	ids := make(map[Identity]bool, len(a.Processes))
	for i := range a.Processes {
		ids[a.Processes[i].Identity()] = true
	}
	for i := range b.Processes {
		if !ids[b.Processes[i].Identity()] {
			return false
		}
	}
	return true
}

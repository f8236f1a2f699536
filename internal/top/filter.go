package top

import (
	"strconv"
	"strings"

	"github.com/porteiro/porteiro/inventory"
)

// Filter selects rows, fzf-style: space-separated terms that must all
// match. "port:443", "proc:nginx", "user:www-data" and "netns:4026531840"
// test one field (proc and user by substring, case-insensitive; port and
// netns exactly); any other term matches, as a fuzzy subsequence, the
// local address, the process names, users and command lines. A term that
// starts with "!" must not match.
type Filter struct {
	terms []term
}

type term struct {
	field string // "", "port", "proc", "user", "netns"
	value string // lower case
	not   bool
}

// ParseFilter parses a filter line. It never fails: a term it cannot read
// as a field test is a fuzzy term.
func ParseFilter(s string) Filter {
	var f Filter
	for _, w := range strings.Fields(s) {
		t := term{}
		if strings.HasPrefix(w, "!") && len(w) > 1 {
			t.not = true
			w = w[1:]
		}
		if k, v, ok := strings.Cut(w, ":"); ok && v != "" {
			switch k = strings.ToLower(k); k {
			case "port", "proc", "user", "netns":
				t.field = k
				w = v
			}
		}
		t.value = strings.ToLower(w)
		f.terms = append(f.terms, t)
	}
	return f
}

// Empty reports whether the filter keeps everything.
func (f Filter) Empty() bool { return len(f.terms) == 0 }

// Match reports whether the listener passes every term.
func (f Filter) Match(l *Listener) bool {
	for _, t := range f.terms {
		if t.match(&l.Socket) == t.not {
			return false
		}
	}
	return true
}

func (t term) match(s *inventory.Socket) bool {
	switch t.field {
	case "port":
		n, err := strconv.Atoi(t.value)
		return err == nil && int(s.Local.Port) == n
	case "netns":
		return strconv.FormatUint(s.NetNS, 10) == t.value
	case "proc":
		for i := range s.Processes {
			p := &s.Processes[i]
			if containsFold(p.Name, t.value) || containsFold(p.CommandLine(), t.value) {
				return true
			}
		}
		return false
	case "user":
		for i := range s.Processes {
			p := &s.Processes[i]
			if containsFold(p.User, t.value) || strconv.FormatUint(uint64(p.UID), 10) == t.value {
				return true
			}
		}
		return false
	}
	if fuzzy(inventory.Endpoint{Address: s.Local.Address, Port: s.Local.Port}.String(), t.value) ||
		fuzzy(string(s.Proto), t.value) {
		return true
	}
	for i := range s.Processes {
		p := &s.Processes[i]
		if fuzzy(p.Name, t.value) || fuzzy(p.User, t.value) || fuzzy(p.CommandLine(), t.value) {
			return true
		}
	}
	return false
}

func containsFold(s, sub string) bool {
	return strings.Contains(strings.ToLower(s), sub)
}

// fuzzy reports whether the runes of pat appear in s in order, ignoring
// case: "ngx" matches "nginx", as in fzf.
func fuzzy(s, pat string) bool {
	if pat == "" {
		return true
	}
	pr := []rune(pat)
	i := 0
	for _, r := range strings.ToLower(s) {
		if r == pr[i] {
			i++
			if i == len(pr) {
				return true
			}
		}
	}
	return false
}

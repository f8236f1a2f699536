package inventory

import (
	"os/user"
	"strconv"
	"sync"
)

// userNames caches uid -> name for the life of the process: names are
// looked up for every owner, event and trace line, and NSS can be slow.
var userNames sync.Map

// UserName returns the name of uid, or the uid in decimal when it has
// none. It is the one lookup that the scan, the daemon's events and trace
// share.
func UserName(uid uint32) string {
	if v, ok := userNames.Load(uid); ok {
		return v.(string)
	}
	name := strconv.FormatUint(uint64(uid), 10)
	if u, err := user.LookupId(name); err == nil {
		name = u.Username
	}
	userNames.Store(uid, name)
	return name
}

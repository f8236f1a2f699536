package watch

import (
	"net/http"
	"sync"
	"time"

	"github.com/porteiro/porteiro/internal/localapi"
	"github.com/porteiro/porteiro/internal/services"
	"github.com/porteiro/porteiro/internal/target"
	"github.com/porteiro/porteiro/inventory"
)

// closedCounters is what /api/v1/closed needs of bpfevents.Source: the
// traffic of the TCP connections that closed since the programs loaded.
type closedCounters interface {
	Closed(keep func(port uint16) bool) ([]localapi.ClosedCounter, error)
	LoadID() string
	ClosedSince() time.Time
}

// closedSource holds the loaded programs' counters while Run has them.
type closedSource struct {
	mu  sync.Mutex
	src closedCounters
}

func (c *closedSource) set(src closedCounters) {
	c.mu.Lock()
	c.src = src
	c.mu.Unlock()
}

func (c *closedSource) get() closedCounters {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.src
}

// serveClosed answers the closed-connection counters (?port=80,443 keeps
// those local ports), for `porteiro top`: it samples live connections and
// would miss those that open and close between two samples. Without the
// kernel's events it answers available: false, with the reason.
func (d *Daemon) serveClosed(w http.ResponseWriter, r *http.Request) {
	var keep func(uint16) bool
	if p := r.URL.Query().Get("port"); p != "" {
		rs, err := target.ParsePorts(p, services.System())
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "port: " + err.Error()})
			return
		}
		// A bitmap: top asks for every listening port, and the table
		// holds thousands of local ends.
		var set [1 << 16 / 64]uint64
		for _, r := range rs {
			for p := uint32(r.Lo); p <= uint32(r.Hi); p++ {
				set[p/64] |= 1 << (p % 64)
			}
		}
		keep = func(port uint16) bool { return set[port/64]&(1<<(port%64)) != 0 }
	}
	doc := localapi.ClosedDocument{SchemaVersion: inventory.SchemaVersion, Source: d.EventSource(),
		Counters: []localapi.ClosedCounter{}}
	src := d.closed.get()
	if src == nil {
		doc.Reason = "porteirod runs without listener events from the kernel (" + d.eventsWhy() + ")"
		writeJSON(w, http.StatusOK, doc)
		return
	}
	cs, err := src.Closed(keep)
	if err != nil {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": err.Error()})
		return
	}
	if cs != nil {
		doc.Counters = cs
	}
	doc.Available, doc.LoadID, doc.Since = true, src.LoadID(), src.ClosedSince()
	writeJSON(w, http.StatusOK, doc)
}

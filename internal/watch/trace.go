package watch

import (
	"encoding/json"
	"net/http"
	"sync"

	"github.com/porteiro/porteiro/internal/localapi"
	"github.com/porteiro/porteiro/internal/services"
	"github.com/porteiro/porteiro/internal/target"
)

// traceSubs fans the kernel's listener events out to the clients of
// /api/v1/trace (`porteiro trace`). A client that does not keep up loses
// events rather than slowing the daemon; it is told how many.
type traceSubs struct {
	mu   sync.Mutex
	subs map[chan localapi.TraceEvent]*int
}

// subBuffer is how many events a slow client may lag behind.
const subBuffer = 4096

func (t *traceSubs) add() chan localapi.TraceEvent {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.subs == nil {
		t.subs = map[chan localapi.TraceEvent]*int{}
	}
	ch := make(chan localapi.TraceEvent, subBuffer)
	t.subs[ch] = new(int)
	return ch
}

func (t *traceSubs) remove(ch chan localapi.TraceEvent) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	lost := *t.subs[ch]
	delete(t.subs, ch)
	return lost
}

func (t *traceSubs) publish(ev localapi.TraceEvent) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for ch, lost := range t.subs {
		select {
		case ch <- ev:
		default:
			*lost++
		}
	}
}

func (t *traceSubs) active() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.subs) > 0
}

// serveTrace streams listener events as ndjson until the client goes.
func (d *Daemon) serveTrace(w http.ResponseWriter, r *http.Request) {
	var ports []target.Range
	if p := r.URL.Query().Get("port"); p != "" {
		rs, err := target.ParsePorts(p, services.System())
		if err != nil {
			writeJSON(w, http.StatusBadRequest, map[string]string{"error": "port: " + err.Error()})
			return
		}
		ports = rs
	}
	if !d.eventsActive.Load() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"error": "porteirod runs without listener events from the kernel (" + d.eventsWhy() + "); \"sudo porteirod trace\" tries to load them itself"})
		return
	}
	fl, ok := w.(http.Flusher)
	if !ok {
		writeJSON(w, http.StatusInternalServerError, map[string]string{"error": "streaming is not possible on this connection"})
		return
	}
	ch := d.trace.add()
	defer func() {
		if lost := d.trace.remove(ch); lost > 0 {
			d.log.Warn("a trace client did not keep up and lost events", "lost", lost)
		}
	}()
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.WriteHeader(http.StatusOK)
	fl.Flush()
	enc := json.NewEncoder(w)
	for {
		select {
		case <-r.Context().Done():
			return
		case ev := <-ch:
			if ports != nil && ev.Port != 0 && !target.InRanges(ev.Port, ports) {
				continue
			}
			if err := enc.Encode(ev); err != nil {
				return
			}
			fl.Flush()
		}
	}
}

// eventsWhy says why kernel events are off.
func (d *Daemon) eventsWhy() string {
	d.statusMu.Lock()
	defer d.statusMu.Unlock()
	if d.eventsErr == "" {
		return "events: off"
	}
	return d.eventsErr
}

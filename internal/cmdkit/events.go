package cmdkit

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/porteiro/porteiro/internal/localapi"
	"github.com/porteiro/porteiro/internal/render"
	"github.com/porteiro/porteiro/internal/services"
)

// PrintEvents writes an event listing as a table or JSON, the same for
// `porteiro events` and `porteirod events`. No event is exit status 1,
// said on stderr for the table.
func PrintEvents(env *Env, format string, doc *localapi.EventsDocument, prog string) error {
	var err error
	if format == "json" {
		err = render.EventsJSON(env.Stdout, doc)
	} else if len(doc.Events) > 0 {
		err = render.Events(env.Stdout, doc.Events, TableOptions(env))
	}
	if err != nil {
		return fmt.Errorf("writing the events: %w", err)
	}
	if len(doc.Events) == 0 {
		if format != "json" {
			fmt.Fprintf(env.Stderr, "%s: no events match\n", prog)
		}
		return SilentExit(ExitNotFound)
	}
	return nil
}

// EventsFlags are the selection and output flags that `porteiro events`
// and `porteirod events` share.
type EventsFlags struct {
	since, port, kind, Output string
	limit                     int
}

// Add defines the flags on c.
func (f *EventsFlags) Add(c *cobra.Command) {
	c.Flags().StringVar(&f.since, "since", "24h", `show events from this long ago (24h, 7d) or this time; "" for all`)
	c.Flags().StringVar(&f.port, "port", "", "only events of this port (a number or a service name: 22, ssh)")
	c.Flags().StringVar(&f.kind, "kind", "", "only events of this kind")
	c.Flags().IntVar(&f.limit, "limit", 1000, "show at most this many events (the newest)")
	c.Flags().StringVarP(&f.Output, "output", "o", "table", "output format: table or json")
}

// Query checks the flags and returns the query they ask for; a bad value
// is a usage error.
func (f *EventsFlags) Query() (localapi.EventsQuery, error) {
	if f.Output != "table" && f.Output != "json" {
		return localapi.EventsQuery{}, UsageErrorf("unknown output format %q: want table or json", f.Output)
	}
	port, err := services.PortArg(f.port)
	if err != nil {
		return localapi.EventsQuery{}, UsageErrorf("--port: %v", err)
	}
	if f.limit < 1 {
		return localapi.EventsQuery{}, UsageErrorf("--limit must be at least 1")
	}
	return localapi.NewEventsQuery(f.since, port, f.kind, f.limit), nil
}

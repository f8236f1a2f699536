package cmdkit

import (
	"fmt"

	"github.com/porteiro/porteiro/internal/localapi"
	"github.com/porteiro/porteiro/internal/render"
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

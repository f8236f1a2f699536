package notify

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/goccy/go-yaml"
	"github.com/porteiro/porteiro/internal/testenv"
)

var fence = regexp.MustCompile("(?s)```(yaml|json)\n(.*?)```")

// TestDocsExamples keeps docs/alerts.md honest: every YAML example decodes
// strictly and validates, and the JSON payload example decodes strictly
// into Payload.
func TestDocsExamples(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(testenv.ModuleRoot(), "docs", "alerts.md"))
	if err != nil {
		t.Fatal(err)
	}
	var yamls, jsons int
	for _, m := range fence.FindAllStringSubmatch(string(doc), -1) {
		switch m[1] {
		case "yaml":
			if !strings.HasPrefix(m[2], "channels:") {
				continue
			}
			yamls++
			var cfg struct {
				Channels ChannelsConfig `yaml:"channels"`
			}
			if err := yaml.UnmarshalWithOptions([]byte(m[2]), &cfg, yaml.DisallowUnknownField()); err != nil {
				t.Errorf("docs example does not decode: %v\n%s", err, m[2])
				continue
			}
			if err := cfg.Channels.Validate(); err != nil {
				t.Errorf("docs example does not validate: %v\n%s", err, m[2])
			}
		case "json":
			jsons++
			dec := json.NewDecoder(bytes.NewReader([]byte(m[2])))
			dec.DisallowUnknownFields()
			var p Payload
			if err := dec.Decode(&p); err != nil {
				t.Errorf("docs payload example does not decode: %v", err)
				continue
			}
			if p.Version != PayloadVersion || len(p.Alerts) != 1 || p.Alerts[0].Socket == nil || p.Alerts[0].Socket.Processes[0].PID != 31337 {
				t.Errorf("docs payload example decodes to %+v", p)
			}
		}
	}
	if yamls < 6 || jsons != 1 {
		t.Errorf("found %d YAML and %d JSON examples, want every channel's and one payload", yamls, jsons)
	}
}

package render

import (
	"bytes"
	"encoding/json"
	"testing"
)

// indentCases are compact JSON values as encoding/json writes them, with
// what makes indenting hard: empty objects and arrays, nesting, strings
// holding brackets, commas, colons, quotes and backslashes.
var indentCases = []string{
	`{}`, `[]`, `0`, `"x"`, `null`,
	`{"a":1,"b":[1,2,{"c":[]}],"d":{},"e":"x,y:{z}[]","f":"a\"b\\","g":[[]],"h":[{}]}`,
	`{"proto":"tcp","local":{"address":"::","port":22},"processes":[{"pid":1,"cmdline":["a\\\"","b]"]}]}`,
	`["\u001b[31m","\u2028",true,false,-1.5e+30]`,
}

// TestAppendIndentIsJSONIndent: the same bytes as json.Indent, with the
// prefix and indent the streamed document uses and others.
func TestAppendIndentIsJSONIndent(t *testing.T) {
	for _, c := range indentCases {
		for _, pi := range [][2]string{{"    ", "  "}, {"", "  "}, {"", "\t"}, {">", ""}} {
			var want bytes.Buffer
			if err := json.Indent(&want, []byte(c), pi[0], pi[1]); err != nil {
				t.Fatalf("%s: %v", c, err)
			}
			if got := appendIndent(nil, []byte(c), pi[0], pi[1]); !bytes.Equal(got, want.Bytes()) {
				t.Errorf("%s with %q %q:\n got %s\nwant %s", c, pi[0], pi[1], got, want.Bytes())
			}
		}
	}
}

// FuzzAppendIndent: for any value encoding/json writes, appendIndent gives
// what json.Indent gives. The fuzzer's bytes become a JSON string and
// part of a structure, so every escape encoding/json uses is tried.
func FuzzAppendIndent(f *testing.F) {
	for _, c := range indentCases {
		f.Add([]byte(c))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var v any
		vals := []any{string(b), map[string]any{string(b): []any{string(b), map[string]any{}, []any{}}}}
		if json.Unmarshal(b, &v) == nil {
			vals = append(vals, v)
		}
		for _, x := range vals {
			src, err := json.Marshal(x)
			if err != nil {
				continue
			}
			var want bytes.Buffer
			if err := json.Indent(&want, src, "    ", "  "); err != nil {
				t.Fatal(err)
			}
			if got := appendIndent(nil, src, "    ", "  "); !bytes.Equal(got, want.Bytes()) {
				t.Fatalf("%s:\n got %s\nwant %s", src, got, want.Bytes())
			}
		}
	})
}

// BenchmarkAppendIndent indents a listener's JSON with two processes, as
// the streamed document does for each socket.
func BenchmarkAppendIndent(b *testing.B) {
	src := []byte(`{"proto":"tcp","family":"ipv4","state":"LISTEN","local":{"address":"127.42.0.19","port":20874},"remote":{"address":"0.0.0.0","port":0},"inode":412345,"uid":0,"netns":4026531840,"netns_name":"host","dual_stack":false,"exposure":"loopback","listening":true,"processes":[{"pid":26651,"ppid":24880,"name":"sleep","exe":"/usr/bin/sleep","cmdline":["sleep","7260"],"user":"root","uid":0,"fds":[3],"start_time":"2026-12-01T17:54:21.31Z","start_ticks":2345678,"unit":"session-4.scope","cpu_percent":0,"rss_bytes":1835008,"state":"S"},{"pid":26652,"ppid":24880,"name":"sleep \u001b[31m\"x\"","exe":"/usr/bin/sleep","cmdline":["sleep","7260","--flag=\"a\\b\""],"user":"root","uid":0,"fds":[4,5],"start_time":"2026-12-01T17:54:21.31Z","start_ticks":2345679,"cpu_percent":0.25,"rss_bytes":1835008,"state":"S"}]}`)
	var dst []byte
	in := newIndenter("    ", "  ")
	b.SetBytes(int64(len(src)))
	for b.Loop() {
		dst = in.append(dst[:0], src)
	}
}

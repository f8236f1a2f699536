package yamlx

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/porteiro/porteiro/internal/yamlx/yamlxtest"
)

// Bombs are the hostile files of issue 10: each must be refused fast and
// cheaply, with a position.

func nestedBlocks(n int) string {
	return strings.Repeat("- ", n) + "x\n"
}

func nestedIndent(n int) string {
	var b strings.Builder
	for i := 0; i < n; i++ {
		b.WriteString(strings.Repeat(" ", i))
		b.WriteString("a:\n")
	}
	return b.String()
}

func TestBombsAreRefused(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		want      string // FILE:LINE:COL and the start of the message
	}{
		{"brackets 100000 deep", yamlxtest.NestedBrackets("allow", 100000), "b.yaml:1:71: nested more than 64 levels"},
		{"mappings 100000 deep", yamlxtest.NestedMappings("allow", 100000), "b.yaml:1:"},
		{"block lists 1000000 deep", nestedBlocks(1000000), "b.yaml:1:"},
		{"indentation 500 deep", nestedIndent(500), "b.yaml:65:66:"},
		{"alias bomb 8 levels", yamlxtest.AliasBomb("", "c0", 8), "b.yaml:5:10:"},
		{"block alias bomb 8 levels", yamlxtest.BlockAliasBomb(8), "b.yaml:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := []byte(tc.src)
			var err error
			yamlxtest.Bounded(t, "Check", func() { err = Check("b.yaml", data) })
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("Check = %v, want %q...", err, tc.want)
			}
			var e *Error
			if !errors.As(err, &e) || e.Line < 1 || e.Column < 1 {
				t.Errorf("error %v has no position", err)
			}
			var v any
			yamlxtest.Bounded(t, "Decode", func() { _, err = Decode("b.yaml", data, &v, "a config") })
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("Decode = %v, want %q...", err, tc.want)
			}
		})
	}
}

func TestShallowFilesPass(t *testing.T) {
	for _, src := range []string{
		yamlxtest.NestedBrackets("allow", MaxDepth-1),
		nestedIndent(MaxDepth - 1),
		yamlxtest.AliasBomb("", "c0", 3), // 9^3 values: fine
		yamlxtest.BlockAliasBomb(3),
		"a: &a [1, 2]\nb: *a\nc: *a\n",
		"a: \"[[[[[[\" \nb: '{{{{ it''s'\nc: x[[[[y\n# [[[[[[[[[\n",
		"a: |\n  [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\n  [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\nb: 1\n",
		"a: 1\n---\nb: 2\n...\n",
		"\xef\xbb\xbfa: 1\n",
	} {
		if err := Check("ok.yaml", []byte(src)); err != nil {
			t.Errorf("%.60q: %v", src, err)
		}
	}
	// The nesting limit counts: one more level is refused.
	if err := Check("x.yaml", []byte(yamlxtest.NestedBrackets("allow", MaxDepth))); err == nil {
		t.Errorf("%d levels accepted", MaxDepth+1)
	}
	if err := Check("x.yaml", []byte(yamlxtest.AliasBomb("", "c0", 5))); err == nil {
		t.Errorf("9^5 values accepted")
	}
}

func TestInvalidUTF8(t *testing.T) {
	err := Check("u.yaml", []byte("a: 1\nb: é\xff\n"))
	if err == nil || !strings.HasPrefix(err.Error(), "u.yaml:2:5: invalid UTF-8 (byte 0xff)") {
		t.Fatalf("got %v", err)
	}
}

func TestReadFileRefusesWhatIsNotARegularFile(t *testing.T) {
	dir := t.TempDir()
	fifo := yamlxtest.Fifo(t, dir)
	big := filepath.Join(dir, "big.yaml")
	if err := os.WriteFile(big, make([]byte, MaxSize+1), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct{ path, want string }{
		{"/dev/zero", "/dev/zero: not a regular file (a character device)"},
		{fifo, fifo + ": not a regular file (a FIFO)"},
		{dir, dir + ": not a regular file (a directory)"},
		{big, big + ": the file is 524289 bytes, more than the 524288"},
	} {
		var err error
		yamlxtest.Bounded(t, tc.path, func() { _, err = ReadFile(tc.path, "policy") })
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("ReadFile(%s) = %v, want %q", tc.path, err, tc.want)
		}
	}
	_, err := ReadFile(filepath.Join(dir, "none"), "policy")
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("missing file: %v does not wrap fs.ErrNotExist", err)
	}
	ok := filepath.Join(dir, "ok.yaml")
	os.WriteFile(ok, []byte("a: 1\n"), 0o600)
	if b, err := ReadFile(ok, "policy"); err != nil || string(b) != "a: 1\n" {
		t.Errorf("ReadFile = %q, %v", b, err)
	}
}

func TestQuote(t *testing.T) {
	for in, want := range map[string]string{
		"root":                   `"root"`,
		"a\x1b[2Jb\u202e\n":      `"a\x1b[2Jb\u202e\n"`,
		strings.Repeat("x", 100): `"` + strings.Repeat("x", 40) + `"...`,
		"root:*:19000:0:99999:7:::" + strings.Repeat("y", 30): `"root:*:19000:0:99999:7:::yyyyyyyyyyyyyyy"...`,
	} {
		if got := Quote(in); got != want {
			t.Errorf("Quote(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestQuoteKey(t *testing.T) {
	for in, want := range map[string]string{
		"intreval":                    `"intreval"`,
		"root:$6$x$y:19000:0:99999:7": "(27 characters, not a word: not shown)",
		strings.Repeat("k", 33):       "(33 characters, not shown)",
		"":                            "(0 characters, not shown)",
	} {
		if got := QuoteKey(in); got != want {
			t.Errorf("QuoteKey(%q) = %s, want %s", in, got, want)
		}
	}
}

func TestRedact(t *testing.T) {
	in := `parse "http://user:S3cret@host:99999/x": invalid port; also https://tok@h/ and ftp://h/`
	got := Redact(in)
	if strings.Contains(got, "S3cret") || strings.Contains(got, "tok@") || strings.Contains(got, "user") {
		t.Errorf("Redact left a secret: %s", got)
	}
	if !strings.Contains(got, "http://xxxxx@host:99999/x") || !strings.Contains(got, "ftp://h/") {
		t.Errorf("Redact changed too much: %s", got)
	}
	base := errors.New("dial http://a:b@h: refused")
	if e := RedactError(base); strings.Contains(e.Error(), "a:b") || !errors.Is(e, base) {
		t.Errorf("RedactError = %v", e)
	}
}

func TestDecodePositions(t *testing.T) {
	type C struct {
		A int               `yaml:"a"`
		B map[string]string `yaml:"b"`
	}
	for _, tc := range []struct{ src, want string }{
		{"a: 1\nzz: 2\n", `c.yaml:2:1: unknown field "zz"`},
		{"a: 1\n---\na: 2\n", "c.yaml:3:1: a config is one YAML document; this is a second one"},
		{"a: [\n", "c.yaml:1:4: not valid YAML"},
		{"a: x\n", "c.yaml:1:4:"},
		{"root:$6$salt$hash:19000:0:99999:7::: 1\n", `c.yaml:1:1: unknown field (`},
		{"root:*:19000:0:99999:7:::" + strings.Repeat("y", 200) + ": 1\n", "c.yaml:1:1: unknown field (225 characters, not shown)"},
	} {
		var c C
		_, err := Decode("c.yaml", []byte(tc.src), &c, "a config")
		if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("%q:\n got  %v\n want %s...", tc.src, err, tc.want)
		}
	}
	var c C
	if _, err := Decode("c.yaml", []byte("# only a comment\n"), &c, "a config"); err != nil {
		t.Errorf("comments only: %v", err)
	}
}

func TestTooManyValues(t *testing.T) {
	// go-yaml takes seconds on 80000 list items: the scan stops them.
	src := []byte("allow:\n" + strings.Repeat("  - port: 22\n", 30000))
	var err error
	yamlxtest.Bounded(t, "Parse", func() { _, err = Parse("m.yaml", src) })
	if err == nil || !strings.HasPrefix(err.Error(), "m.yaml:10001:") || !strings.Contains(err.Error(), "more than 20000 values") {
		t.Fatalf("got %v", err)
	}
	ok := []byte("allow:\n" + strings.Repeat("  - port: 22\n", 2000))
	if _, err := Parse("ok.yaml", ok); err != nil {
		t.Fatal(err)
	}
}

// Files at the limits are parsed within the bound; one key more is
// refused before the parser.
func TestAtTheLimits(t *testing.T) {
	var keys strings.Builder
	for i := 0; i < MaxKeys; i++ {
		fmt.Fprintf(&keys, "k%d: v\n", i)
	}
	for name, src := range map[string]string{
		"block list":    "allow:\n" + strings.Repeat("  - port: 22\n", MaxValues/2-1),
		"flow list":     "allow: [" + strings.Repeat("22, ", MaxValues-10) + "1]\n",
		"mapping":       keys.String(),
		"list of rules": "allow:\n" + strings.Repeat("  - port: 22\n    user: root\n", MaxValues/4-1),
		"quoted keys":   "allow:\n" + strings.Repeat("  - \"port\": 22\n    'user': root\n", MaxValues/4-1),
		"same indent":   "allow:\n" + strings.Repeat("- port: 22\n  user: root\n", MaxValues/4-1),
		"nesting":       yamlxtest.NestedBrackets("a", MaxDepth-1),
	} {
		var err error
		yamlxtest.Bounded(t, name, func() { _, err = Parse("x.yaml", []byte(src)) })
		if err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
	keys.WriteString("one-more: v\n")
	_, err := Parse("x.yaml", []byte(keys.String()))
	if err == nil || !strings.HasPrefix(err.Error(), "x.yaml:1001:9: a mapping with more than 1000 keys") {
		t.Errorf("%d keys: %v", MaxKeys+1, err)
	}
}

// Shapes of files that cost go-yaml far more than their size: each is
// refused, or parsed, within the bound.
func TestCostlyShapes(t *testing.T) {
	for name, src := range map[string]string{
		"a million documents":     strings.Repeat("---\n", 1000000),
		"documents with values":   strings.Repeat("--- 1\n", 19000),
		"a long scalar":           "a: " + strings.Repeat("x", MaxSize-10) + "\n",
		"a long literal":          "a: |\n" + strings.Repeat("  yyyyyyyyyy\n", MaxSize/13),
		"spaces":                  "a: 1" + strings.Repeat(" ", MaxSize-10) + "\n",
		"comments":                strings.Repeat("# comment comment comment comment\n", MaxSize/34),
		"comment lines in a list": "a:\n" + strings.Repeat("  # c\n  - 1\n", 9000),
	} {
		yamlxtest.Bounded(t, name, func() { _, _ = Parse("x.yaml", []byte(src)) })
	}
	_, err := Parse("x.yaml", []byte("---\na: 1\n---\n---\n"))
	if err == nil || !strings.HasPrefix(err.Error(), "x.yaml:4:1: more than 2 YAML documents") {
		t.Errorf("three documents: %v", err)
	}
}

// Nesting hidden where a careless scan would skip it: in text that the
// parser does not take as text (a quoted scalar cut by a document marker,
// a literal block less indented than its first line, a CR line break).
func TestHiddenNesting(t *testing.T) {
	bomb := strings.Repeat("[", 100000) + strings.Repeat("]", 100000)
	for name, src := range map[string]string{
		"double quotes cut by ---":   "a: \"x\n---\n" + bomb + "\n\"\n",
		"single quotes cut by ---":   "a: 'x\n---\n" + bomb + "\n'\n",
		"literal, first line deeper": "key: |\n      first\n  " + bomb + "\n",
		"literal with a digit":       "key: |4\n  " + bomb + "\n",
		"literal under a dash key":   "- key: |\n  " + bomb + "\n",
		"literal nested":             "a:\n  b: |\n        x\n    " + bomb + "\n",
		"not a literal header":       "key: >x\n  " + bomb + "\n",
		"after a literal, ---":       "key: |\n  x\n---\n" + bomb + "\n",
		"comment ended by CR":        "a: 1 # c\r" + bomb + "\n",
		"literal ended by CR":        "a: |\r  x\r" + bomb + "\r",
		"byte order mark":            "\ufeffa: " + bomb + "\n",
		"CRLF":                       "a: |\r\n  x\r\n" + bomb + "\r\n",
	} {
		var err error
		yamlxtest.Bounded(t, name, func() { err = Check("x.yaml", []byte(src)) })
		if err == nil || !strings.Contains(err.Error(), "nested more than 64 levels") {
			t.Errorf("%s: %v", name, err)
		}
	}
	// A CR alone breaks lines in positions too.
	err := Check("x.yaml", []byte("a: 1\rb: \xff\n"))
	if err == nil || !strings.HasPrefix(err.Error(), "x.yaml:2:4:") {
		t.Errorf("CR line break: %v", err)
	}
}

package render

import (
	"bytes"
	"encoding/csv"
	"encoding/json"
	"net/netip"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/porteiro/porteiro/inventory"
)

// hostile holds names a process can give itself, each with the only text
// porteiro may print for it.
var hostile = []struct{ in, want string }{
	{"sshd", "sshd"},
	{"", ""},
	{"café", "café"},
	{"日本語サーバ", "日本語サーバ"},
	{"nginx: worker process", "nginx: worker process"},
	{"a\\x1b", `a\\x1b`},
	{"evil\x1b[2J\x1b[H", `evil\x1b[2J\x1b[H`},
	{"line1\nline2", `line1\nline2`},
	{"over\rwrite", `over\rwrite`},
	{"tab\there", `tab\there`},
	{"bell\a", `bell\x07`},
	{"nul\x00byte", `nul\x00byte`},
	{"del\x7f", `del\x7f`},
	{"\x1b]0;title\x07", `\x1b]0;title\x07`},
	{"csi\u009b2J", `csi\u009b2J`},
	{"nel\u0085", `nel\u0085`},
	{"gpj.exe\u202eevil", `gpj.exe\u202eevil`},
	{"\u202a\u202b\u202c\u202d\u202e", `\u202a\u202b\u202c\u202d\u202e`},
	{"\u2066\u2067\u2068\u2069", `\u2066\u2067\u2068\u2069`},
	{"lrm\u200erlm\u200falm\u061c", `lrm\u200erlm\u200falm\u061c`},
	{"zero\u200bwidth\ufeff", `zero\u200bwidth\ufeff`},
	{"line\u2028sep\u2029", `line\u2028sep\u2029`},
	{"tag\U000e0041", `tag\U000e0041`},
	{"bad\xff\xfeutf8", `bad\xff\xfeutf8`},
	{"cut\xe6\x97", `cut\xe6\x97`},
	{"\ufffd", "\ufffd"},
	{"e\u0301", "e\u0301"},
}

func TestEscape(t *testing.T) {
	for _, c := range hostile {
		if got := Escape(c.in); got != c.want {
			t.Errorf("Escape(%q) = %q, want %q", c.in, got, c.want)
		}
		if got := string(AppendEscape([]byte("x"), c.in)); got != "x"+c.want {
			t.Errorf("AppendEscape(%q) = %q", c.in, got)
		}
		if ok, r := safe(Escape(c.in)); !ok {
			t.Errorf("Escape(%q) keeps %U", c.in, r)
		}
	}
}

// Distinct inputs stay distinct: a name cannot pass for another one.
func TestEscapeUnambiguous(t *testing.T) {
	seen := map[string]string{}
	for _, in := range []string{"\x1b", `\x1b`, "\\\x1b", "\n", `\n`, "\u202e", `\u202e`, "\xff", `\xff`, "ÿ"} {
		out := Escape(in)
		if prev, ok := seen[out]; ok {
			t.Errorf("%q and %q both print as %q", prev, in, out)
		}
		seen[out] = in
	}
}

func TestEscapeLines(t *testing.T) {
	in := "policy.yaml:1:1: bad \x1b[2J\npolicy.yaml:2:1: \u202eok"
	want := "policy.yaml:1:1: bad \\x1b[2J\npolicy.yaml:2:1: \\u202eok"
	if got := EscapeLines(in); got != want {
		t.Errorf("EscapeLines = %q, want %q", got, want)
	}
}

func TestEscapePlainDoesNotAllocate(t *testing.T) {
	s := "/usr/sbin/sshd -D -o ListenAddress=0.0.0.0"
	if n := testing.AllocsPerRun(100, func() { _ = Escape(s) }); n != 0 {
		t.Errorf("Escape of a plain string allocates %v times", n)
	}
}

// safe reports whether s holds only runes a terminal shows as they are.
func safe(s string) (bool, rune) {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, n := utf8.DecodeRuneInString(s[i:]); n == 1 {
				return false, r
			}
		}
		if r < 0x20 || (r >= 0x7f && r <= 0x9f) || r == 0x2028 || r == 0x2029 || unicode.Is(unicode.Cf, r) {
			return false, r
		}
	}
	return true, 0
}

func TestWidth(t *testing.T) {
	for _, c := range []struct {
		in string
		w  int
	}{
		{"abc", 3}, {"café", 4}, {"e\u0301", 1}, {"日本", 4}, {"ｈｉ", 4}, {"\x1b", 4}, {"\u202e", 6}, {"\xff", 4},
	} {
		if got := Width(c.in); got != c.w {
			t.Errorf("Width(%q) = %d, want %d", c.in, got, c.w)
		}
	}
}

func TestTruncate(t *testing.T) {
	for _, c := range []struct {
		in   string
		max  int
		want string
	}{
		{"short", 10, "short"},
		{"abcdefghijkl", 10, "abcdefghi…"},
		{"日本語日本語", 6, "日本…"},
		{"日本語日本語", 7, "日本語…"},
	} {
		if got := truncate(c.in, c.max); got != c.want || displayWidth(got) > c.max {
			t.Errorf("truncate(%q, %d) = %q, want %q", c.in, c.max, got, c.want)
		}
	}
}

// hostileSockets holds one socket per hostile name, held by a process of
// that name and command line.
func hostileSockets() []inventory.Socket {
	var socks []inventory.Socket
	for i, c := range hostile {
		socks = append(socks, inventory.Socket{Proto: inventory.TCP, Family: inventory.IPv4, State: "LISTEN",
			Exposure: inventory.ExposureLoopback, Listening: true, Inode: uint64(100 + i),
			Local:     inventory.Endpoint{Address: netip.MustParseAddr("127.0.0.1"), Port: uint16(8000 + i)},
			Processes: []inventory.Process{{ProcessInfo: &inventory.ProcessInfo{PID: 100 + i, Name: c.in, User: "u" + c.in, Cmdline: []string{"/bin/" + c.in, c.in}}}}})
	}
	return socks
}

// Every row lines up, whatever the width of the names in it: wide CJK,
// combining accents, escapes.
func TestTableAlignedWithHostileNames(t *testing.T) {
	socks := hostileSockets()
	for _, format := range []string{"table", "wide"} {
		var b bytes.Buffer
		if err := Sockets(&b, format, &inventory.Snapshot{}, socks, Options{}); err != nil {
			t.Fatal(err)
		}
		out := b.String()
		if ok, r := safe(strings.ReplaceAll(out, "\n", "")); !ok {
			t.Fatalf("%s: %U reached the terminal:\n%s", format, r, out)
		}
		lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
		if len(lines) != len(socks)+1 {
			t.Fatalf("%s: %d lines for %d sockets: a name broke a line:\n%s", format, len(lines), len(socks), out)
		}
		// The column of the last header cell starts at the same display
		// column on every line.
		hdr := lines[0]
		at := displayWidth(hdr[:strings.LastIndex(hdr, " ")+1])
		for i, ln := range lines[1:] {
			// The table drops trailing spaces.
			want := strings.TrimRight(Escape(socks[i].Processes[0].CommandLine()), " ")
			j := strings.LastIndex(ln, want)
			if j < 0 {
				t.Errorf("%s: line %d lacks the escaped command %q: %q", format, i+1, want, ln)
				continue
			}
			if got := displayWidth(ln[:j]); got != at {
				t.Errorf("%s: command of %q starts at column %d, want %d:\n%s\n%s", format, hostile[i].in, got, at, hdr, ln)
			}
		}
		for i, c := range hostile {
			if !strings.Contains(lines[i+1], c.want) {
				t.Errorf("%s: line %d lacks %q: %q", format, i+1, c.want, lines[i+1])
			}
		}
	}
}

func TestTableTruncatesWideText(t *testing.T) {
	s := hostileSockets()[3] // CJK
	s.Processes[0].Cmdline = []string{strings.Repeat("日本語", 40), "\x1b[2J"}
	var b bytes.Buffer
	Sockets(&b, "table", &inventory.Snapshot{}, []inventory.Socket{s}, Options{Width: 100})
	for _, ln := range strings.Split(strings.TrimRight(b.String(), "\n"), "\n") {
		if w := displayWidth(ln); w > 100 {
			t.Errorf("line of %d columns exceeds width 100: %q", w, ln)
		}
	}
}

func TestCSVEscapesAndNeutralisesFormulas(t *testing.T) {
	socks := hostileSockets()
	formulas := []string{"=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(A1:A2)", "\t=1", "\r=1"}
	for i, f := range formulas {
		s := socks[0]
		s.Inode = uint64(900 + i)
		s.Processes = []inventory.Process{{ProcessInfo: &inventory.ProcessInfo{PID: 900 + i, Name: f, User: f, Cmdline: []string{f, "x"}, Exe: f}}}
		socks = append(socks, s)
	}
	var b bytes.Buffer
	if err := Sockets(&b, "csv", &inventory.Snapshot{}, socks, Options{}); err != nil {
		t.Fatal(err)
	}
	if ok, r := safe(strings.ReplaceAll(b.String(), "\n", "")); !ok {
		t.Fatalf("csv holds %U:\n%s", r, b.String())
	}
	rows, err := csv.NewReader(&b).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != len(socks)+1 {
		t.Fatalf("%d rows for %d sockets", len(rows), len(socks))
	}
	for _, row := range rows {
		for _, cell := range row {
			if cell != "" && strings.ContainsRune("=+-@\t\r", rune(cell[0])) {
				t.Errorf("cell %q would run as a formula", cell)
			}
		}
	}
	for i, c := range hostile {
		if got := rows[i+1][14]; got != c.want {
			t.Errorf("name cell of %q = %q, want %q", c.in, got, c.want)
		}
	}
	for i, f := range formulas {
		row := rows[len(hostile)+1+i]
		want := "'" + Escape(f)
		if f[0] == '\t' || f[0] == '\r' {
			want = Escape(f) // escaped to \t, \r: no longer a formula
		}
		if row[14] != want || row[16] != want+" x" {
			t.Errorf("formula %q: name %q cmdline %q, want %q", f, row[14], row[16], want)
		}
	}
}

// JSON is for programs: it carries the names as they are, and
// encoding/json escapes the control characters.
func TestJSONKeepsRawNames(t *testing.T) {
	socks := hostileSockets()
	for _, format := range []string{"json", "ndjson"} {
		var b bytes.Buffer
		if err := Sockets(&b, format, &inventory.Snapshot{}, socks, Options{}); err != nil {
			t.Fatal(err)
		}
		if strings.ContainsAny(b.String(), "\x1b\r\x00\a\t") || strings.Count(b.String(), "\n") < 2 && format == "json" {
			t.Errorf("%s holds a raw control character", format)
		}
		var names []string
		if format == "json" {
			var doc Document
			if err := json.Unmarshal(b.Bytes(), &doc); err != nil {
				t.Fatal(err)
			}
			for _, s := range doc.Sockets {
				names = append(names, s.Processes[0].Name)
			}
		} else {
			for _, ln := range strings.Split(strings.TrimRight(b.String(), "\n"), "\n") {
				var s inventory.Socket
				if err := json.Unmarshal([]byte(ln), &s); err != nil {
					t.Fatalf("ndjson line %q: %v", ln, err)
				}
				names = append(names, s.Processes[0].Name)
			}
		}
		for i, c := range hostile {
			want := c.in
			if !utf8.ValidString(want) {
				want = string([]rune(want)) // U+FFFD per bad byte, as encoding/json does
			}
			if names[i] != want {
				t.Errorf("%s: name %q came back as %q", format, c.in, names[i])
			}
		}
	}
}

package inventory

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"
	"net/netip"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The oracle for AppendSocketJSON is json.Marshal of mirror types: copies of
// today's Socket, Endpoint, Process, Container and Forward, with the same
// field order, types and json tags, filled by reading the real fields. The
// mirrors pin the schema's byte layout, so a change to the real types'
// layout does not silently change what the appenders are held to;
// TestJSONMirrorsMatchTypes checks that the mirrors still have every field
// the real types have.

type jsonEndpoint struct {
	Address netip.Addr `json:"address"`
	Port    uint16     `json:"port"`
}

type jsonContainer struct {
	Runtime   string `json:"runtime"`
	ID        string `json:"id,omitempty"`
	Name      string `json:"name,omitempty"`
	Pod       string `json:"pod,omitempty"`
	Namespace string `json:"namespace,omitempty"`
	Container string `json:"container,omitempty"`
}

type jsonForward struct {
	Proto     Proto          `json:"proto"`
	Address   netip.Addr     `json:"address"`
	Port      uint16         `json:"port"`
	NetNS     uint64         `json:"netns,omitempty"`
	NetNSName string         `json:"netns_name,omitempty"`
	Container *jsonContainer `json:"container,omitempty"`
}

type jsonProcess struct {
	PID        int       `json:"pid"`
	PPID       int       `json:"ppid"`
	Name       string    `json:"name"`
	Exe        string    `json:"exe"`
	ExeDeleted bool      `json:"exe_deleted,omitempty"`
	Cmdline    []string  `json:"cmdline"`
	User       string    `json:"user"`
	UID        uint32    `json:"uid"`
	FDs        []int     `json:"fds"`
	StartTime  time.Time `json:"start_time"`
	StartTicks uint64    `json:"start_ticks"`
	Unit       string    `json:"unit,omitempty"`
	Container  string    `json:"container,omitempty"`
	CPUPercent float64   `json:"cpu_percent"`
	RSSBytes   uint64    `json:"rss_bytes"`
	State      string    `json:"state"`
	Hidden     bool      `json:"hidden,omitempty"`
}

type jsonSocket struct {
	Proto              Proto          `json:"proto"`
	Family             Family         `json:"family"`
	State              State          `json:"state"`
	Local              jsonEndpoint   `json:"local"`
	Remote             jsonEndpoint   `json:"remote"`
	Inode              uint64         `json:"inode"`
	UID                uint32         `json:"uid"`
	NetNS              uint64         `json:"netns"`
	NetNSName          string         `json:"netns_name,omitempty"`
	Container          *jsonContainer `json:"container,omitempty"`
	Forward            *jsonForward   `json:"forwards_to,omitempty"`
	Interface          string         `json:"interface,omitempty"`
	DualStack          bool           `json:"dual_stack"`
	Exposure           Exposure       `json:"exposure"`
	Listening          bool           `json:"listening"`
	Processes          []jsonProcess  `json:"processes"`
	UnattributedReason Reason         `json:"unattributed_reason,omitempty"`
}

// mkProc is the one place a Process is built from a literal; tests set the
// other fields on its result.
func mkProc(pid int, name string) Process {
	return Process{ProcessInfo: &ProcessInfo{PID: pid, Name: name}}
}

func mirrorContainer(c *Container) *jsonContainer {
	if c == nil {
		return nil
	}
	return &jsonContainer{Runtime: c.Runtime, ID: c.ID, Name: c.Name, Pod: c.Pod, Namespace: c.Namespace, Container: c.Container}
}

func mirrorProcess(p *Process) jsonProcess {
	return jsonProcess{
		PID: p.PID, PPID: p.PPID, Name: p.Name, Exe: p.Exe, ExeDeleted: p.ExeDeleted,
		Cmdline: p.Cmdline, User: p.User, UID: p.UID, FDs: p.FDs,
		StartTime: p.StartTime, StartTicks: p.StartTicks, Unit: p.Unit, Container: p.Container,
		CPUPercent: p.CPUPercent, RSSBytes: p.RSSBytes, State: p.State, Hidden: p.Hidden,
	}
}

func mirrorSocket(s *Socket) jsonSocket {
	m := jsonSocket{
		Proto: s.Proto, Family: s.Family, State: s.State,
		Local:  jsonEndpoint{Address: s.Local.Address, Port: s.Local.Port},
		Remote: jsonEndpoint{Address: s.Remote.Address, Port: s.Remote.Port},
		Inode:  s.Inode, UID: s.UID, NetNS: s.NetNS, NetNSName: s.NetNSName,
		Container: mirrorContainer(s.Container),
		Interface: s.Interface, DualStack: s.DualStack, Exposure: s.Exposure,
		Listening: s.Listening, UnattributedReason: s.UnattributedReason,
	}
	if f := s.Forward; f != nil {
		m.Forward = &jsonForward{Proto: f.Proto, Address: f.Address, Port: f.Port,
			NetNS: f.NetNS, NetNSName: f.NetNSName, Container: mirrorContainer(f.Container)}
	}
	if s.Processes != nil {
		m.Processes = make([]jsonProcess, len(s.Processes))
		for i := range s.Processes {
			m.Processes[i] = mirrorProcess(&s.Processes[i])
		}
	}
	return m
}

// wantSocketJSON is what AppendSocketJSON must write for s: json.Marshal of
// its mirror, except for the two values json.Marshal refuses (see
// jsonenc.go). Those are swapped for a placeholder before marshalling, and
// the placeholder's bytes for the documented replacement after: the time in
// UTC when time's own MarshalJSON accepts that, else null; null for a NaN or
// infinite CPUPercent. A placeholder's key and quotes make it unique: a
// '"' inside a string is always escaped.
func wantSocketJSON(t testing.TB, s *Socket) []byte {
	t.Helper()
	m := mirrorSocket(s)
	type swap struct{ old, new string }
	var swaps []swap
	for i := range m.Processes {
		p := &m.Processes[i]
		if _, err := p.StartTime.MarshalJSON(); err != nil {
			repl := "null"
			if u, err := p.StartTime.UTC().MarshalJSON(); err == nil {
				repl = string(u)
			}
			p.StartTime = time.Date(1999, 12, 31, 0, 0, 0, i+1, time.UTC)
			ph, _ := p.StartTime.MarshalJSON()
			swaps = append(swaps, swap{`"start_time":` + string(ph), `"start_time":` + repl})
		}
		if math.IsNaN(p.CPUPercent) || math.IsInf(p.CPUPercent, 0) {
			p.CPUPercent = 1e6 + float64(i)
			swaps = append(swaps, swap{`"cpu_percent":` + strconv.Itoa(1e6+i) + `,`, `"cpu_percent":null,`})
		}
	}
	want, err := json.Marshal(m)
	if err != nil {
		t.Fatalf("json.Marshal of the mirror: %v", err)
	}
	for _, sw := range swaps {
		if n := bytes.Count(want, []byte(sw.old)); n != 1 {
			t.Fatalf("placeholder %s found %d times in %s", sw.old, n, want)
		}
		want = bytes.Replace(want, []byte(sw.old), []byte(sw.new), 1)
	}
	return want
}

func checkSocketJSON(t testing.TB, s *Socket) []byte {
	t.Helper()
	want := wantSocketJSON(t, s)
	prefix := []byte("prefix")
	got := AppendSocketJSON(prefix, s)
	if !bytes.HasPrefix(got, prefix) {
		t.Fatalf("AppendSocketJSON lost the buffer's prefix: %q", got)
	}
	got = got[len(prefix):]
	if !bytes.Equal(got, want) {
		t.Fatalf("AppendSocketJSON differs from json.Marshal:\n got %s\nwant %s", got, want)
	}
	if !json.Valid(got) {
		t.Fatalf("AppendSocketJSON wrote invalid JSON: %s", got)
	}
	// The indented form is json.Indent's of the compact one, with the
	// streamed document's prefix and indent and with others.
	for _, pi := range [][2]string{{"    ", "  "}, {"", "\t"}, {">", ""}} {
		var want bytes.Buffer
		if err := json.Indent(&want, got, pi[0], pi[1]); err != nil {
			t.Fatal(err)
		}
		in := NewSocketIndenter(pi[0], pi[1])
		for range 2 { // the second time with its line breaks built
			if ind := in.Append(prefix, s); !bytes.Equal(ind[len(prefix):], want.Bytes()) {
				t.Fatalf("SocketIndenter %q %q differs from json.Indent:\n got %s\nwant %s", pi[0], pi[1], ind[len(prefix):], want.Bytes())
			}
		}
	}
	return got
}

// fullSocket has every field set, two processes, a container and a forward.
func fullSocket() Socket {
	p1 := mkProc(1234, "docker-proxy")
	p1.PPID = 1
	p1.Exe = "/usr/bin/docker-proxy"
	p1.Cmdline = []string{"/usr/bin/docker-proxy", "-proto", "tcp", "-host-ip", "0.0.0.0", "-host-port", "8080", "-container-ip", "172.17.0.2", "-container-port", "80"}
	p1.User = "root"
	p1.FDs = []int{4}
	p1.StartTime = time.Date(2026, 12, 1, 9, 30, 15, 123456789, time.UTC)
	p1.StartTicks = 123456
	p1.Unit = "docker.service"
	p1.CPUPercent = 0.25
	p1.RSSBytes = 12 << 20
	p1.State = "S"
	p2 := mkProc(1240, "docker-proxy")
	p2.PPID = 1234
	p2.Exe = "/usr/bin/docker-proxy"
	p2.Cmdline = []string{"/usr/bin/docker-proxy", "-proto", "tcp"}
	p2.User = "root"
	p2.FDs = []int{4, 7}
	p2.StartTime = time.Date(2026, 12, 1, 9, 30, 16, 0, time.UTC)
	p2.StartTicks = 123457
	p2.Container = "3f4e5d6c7b8a"
	p2.CPUPercent = 1.5
	p2.RSSBytes = 8 << 20
	p2.State = "S"
	c := &Container{Runtime: "docker", ID: "3f4e5d6c7b8a9f0e1d2c3b4a5f6e7d8c9b0a1f2e3d4c5b6a7f8e9d0c1b2a3f4e", Name: "web-1"}
	return Socket{
		Proto: TCP, Family: IPv4, State: "LISTEN",
		Local:  Endpoint{Address: netip.MustParseAddr("0.0.0.0"), Port: 8080},
		Remote: Endpoint{Address: netip.MustParseAddr("0.0.0.0")},
		Inode:  987654, UID: 0, NetNS: 4026531840, NetNSName: "host",
		Container: c,
		Forward: &Forward{Proto: TCP, Address: netip.MustParseAddr("172.17.0.2"), Port: 80,
			NetNS: 4026532999, NetNSName: "web-1", Container: c},
		Interface: "eth0", DualStack: false, Exposure: ExposureAll, Listening: true,
		Processes: []Process{p1, p2},
	}
}

func TestAppendSocketJSONCases(t *testing.T) {
	ny, err := time.LoadLocation("America/New_York")
	if err != nil {
		ny = time.FixedZone("EST", -5*3600) // no tzdata on this host
	}
	withProc := func(f func(p *Process)) func(s *Socket) {
		return func(s *Socket) { f(&s.Processes[0]) }
	}
	cases := []struct {
		name string
		mod  func(s *Socket)
	}{
		{"full", func(s *Socket) {}},
		{"zero socket", func(s *Socket) { *s = Socket{} }},
		{"nil processes", func(s *Socket) { s.Processes = nil; s.UnattributedReason = ReasonNotPermitted }},
		{"empty processes", func(s *Socket) { s.Processes = []Process{}; s.UnattributedReason = ReasonKernel }},
		{"zero process", func(s *Socket) { s.Processes = []Process{mkProc(0, "")} }},
		{"nil cmdline and fds", withProc(func(p *Process) { p.Cmdline, p.FDs = nil, nil })},
		{"empty cmdline and fds", withProc(func(p *Process) { p.Cmdline, p.FDs = []string{}, []int{} })},
		{"empty cmdline argument", withProc(func(p *Process) { p.Cmdline = []string{"", "", "x"} })},
		{"negative fd and pid", withProc(func(p *Process) { p.FDs = []int{-1, math.MaxInt, math.MinInt}; p.PID, p.PPID = -5, math.MinInt })},
		{"max integers", func(s *Socket) {
			s.Inode, s.UID, s.NetNS = math.MaxUint64, math.MaxUint32, math.MaxUint64
			s.Local.Port, s.Remote.Port = 65535, 65535
			p := &s.Processes[0]
			p.UID, p.StartTicks, p.RSSBytes = math.MaxUint32, math.MaxUint64, math.MaxUint64
		}},
		{"hidden and deleted", withProc(func(p *Process) { p.Hidden, p.ExeDeleted = true, true })},
		{"nil container and forward", func(s *Socket) { s.Container, s.Forward = nil, nil }},
		{"forward without container or netns", func(s *Socket) { s.Forward.Container, s.Forward.NetNS, s.Forward.NetNSName = nil, 0, "" }},
		{"empty container", func(s *Socket) { s.Container = &Container{} }},
		{"kubernetes container", func(s *Socket) {
			s.Container = &Container{Runtime: "containerd", ID: "abc", Pod: "web-7d9f", Namespace: "prod", Container: "nginx"}
		}},
		{"empty forward", func(s *Socket) { s.Forward = &Forward{} }},
		{"zero addresses", func(s *Socket) { s.Local.Address, s.Remote.Address = netip.Addr{}, netip.Addr{} }},
		{"ipv4", func(s *Socket) {
			s.Local.Address, s.Remote.Address = netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("255.255.255.255")
		}},
		{"ipv6", func(s *Socket) {
			s.Family = IPv6
			s.Local.Address, s.Remote.Address = netip.MustParseAddr("::"), netip.MustParseAddr("2001:db8::1:0:0:1")
			s.Forward.Address = netip.MustParseAddr("fd00:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
		}},
		{"ipv4-mapped ipv6", func(s *Socket) {
			s.Local.Address, s.Remote.Address = netip.MustParseAddr("::ffff:10.0.0.1"), netip.MustParseAddr("::ffff:0.0.0.0")
		}},
		{"zoned ipv6", func(s *Socket) {
			s.Local.Address = netip.MustParseAddr("fe80::1%eth0")
			s.Remote.Address = netip.MustParseAddr("::ffff:10.0.0.1").WithZone("wg0")
			s.Forward.Address = netip.MustParseAddr("fe80::2").WithZone("<a&b>\"\\\x1b\xff\u2028")
		}},
		{"zero time", withProc(func(p *Process) { p.StartTime = time.Time{} })},
		{"unix epoch", withProc(func(p *Process) { p.StartTime = time.Unix(0, 0) })},
		{"nanoseconds", withProc(func(p *Process) { p.StartTime = time.Date(2026, 1, 2, 3, 4, 5, 1, time.UTC) })},
		{"trailing zero nanoseconds", withProc(func(p *Process) { p.StartTime = time.Date(2026, 1, 2, 3, 4, 5, 120000000, time.UTC) })},
		{"monotonic reading", withProc(func(p *Process) { p.StartTime = time.Now() })},
		{"local zone", withProc(func(p *Process) { p.StartTime = time.Date(2026, 7, 4, 12, 0, 0, 5, ny) })},
		{"positive offset", withProc(func(p *Process) {
			p.StartTime = time.Date(2026, 7, 4, 12, 0, 0, 5, time.FixedZone("IST", 5*3600+30*60))
		})},
		{"offset with seconds", withProc(func(p *Process) {
			p.StartTime = time.Date(1850, 7, 4, 12, 0, 0, 0, time.FixedZone("LMT", -(4*3600+56*60+2)))
		})},
		{"year 0", withProc(func(p *Process) { p.StartTime = time.Date(0, 1, 1, 0, 0, 0, 0, time.UTC) })},
		{"year 9999", withProc(func(p *Process) { p.StartTime = time.Date(9999, 12, 31, 23, 59, 59, 999999999, time.UTC) })},
		{"cpu 1e-7", withProc(func(p *Process) { p.CPUPercent = 1e-7 })},
		{"cpu 1e-6", withProc(func(p *Process) { p.CPUPercent = 1e-6 })},
		{"cpu 1e21", withProc(func(p *Process) { p.CPUPercent = 1e21 })},
		{"cpu 1e20", withProc(func(p *Process) { p.CPUPercent = 1e20 })},
		{"cpu 0.1", withProc(func(p *Process) { p.CPUPercent = 0.1 })},
		{"cpu 123456789", withProc(func(p *Process) { p.CPUPercent = 123456789.0 })},
		{"cpu -0", withProc(func(p *Process) { p.CPUPercent = math.Copysign(0, -1) })},
		{"cpu -1.5e-300", withProc(func(p *Process) { p.CPUPercent = -1.5e-300 })},
		{"cpu max", withProc(func(p *Process) { p.CPUPercent = math.MaxFloat64 })},
		{"cpu smallest", withProc(func(p *Process) { p.CPUPercent = math.SmallestNonzeroFloat64 })},
		{"ansi escape", withProc(func(p *Process) { p.Name = "\x1b[31mred\x1b[0m"; p.Cmdline = []string{"\x1b]0;title\x07"} })},
		{"newlines and tabs", withProc(func(p *Process) { p.Name = "a\nb\r\nc\td\b\f"; p.Exe = "/tmp/x\n(deleted)" })},
		{"all control characters", withProc(func(p *Process) {
			var b []byte
			for c := 0; c < 0x20; c++ {
				b = append(b, byte(c))
			}
			p.Name = string(b) + "\x7f"
		})},
		{"bidi override", withProc(func(p *Process) { p.Name = "evil\u202egnp.exe"; p.User = "\u2066x\u2069" })},
		{"invalid utf-8", withProc(func(p *Process) {
			p.Name = "a\xffb\xc3"
			p.Cmdline = []string{"\xed\xa0\x80", "\xf4\x90\x80\x80", "\xe2\x80", "\xc0\xaf"}
		})},
		{"html", func(s *Socket) { s.NetNSName = "<script>&amp;</script>"; s.Interface = "a>b" }},
		{"quotes and backslashes", withProc(func(p *Process) { p.Exe = `C:\"x\"\\` })},
		{"line and paragraph separators", withProc(func(p *Process) { p.Name = "a\u2028b\u2029c\u2027\u202a" })},
		{"multibyte", withProc(func(p *Process) { p.Name = "café 日本 😀 \U0010ffff \ufffd" })},
		{"unknown state", func(s *Socket) { s.State = StateFromKernel(200); s.Proto = "quic\"" }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := fullSocket()
			tc.mod(&s)
			checkSocketJSON(t, &s)
			// AppendProcessJSON alone is what json.Marshal writes for one process.
			for i := range s.Processes {
				want, err := json.Marshal(mirrorProcess(&s.Processes[i]))
				if err != nil {
					t.Fatal(err)
				}
				if got := AppendProcessJSON(nil, &s.Processes[i]); !bytes.Equal(got, want) {
					t.Fatalf("AppendProcessJSON:\n got %s\nwant %s", got, want)
				}
			}
		})
	}
}

// TestAppendSocketJSONUnmarshalable checks the values json.Marshal refuses:
// the appender writes what jsonenc.go documents, and the document still
// reads back with json.Unmarshal.
func TestAppendSocketJSONUnmarshalable(t *testing.T) {
	cases := []struct {
		name  string
		start time.Time
		cpu   float64
		want  string // the bytes from "start_time" to "rss_bytes"
	}{
		{"year 10000", time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), 1,
			`"start_time":null,"start_ticks":0,"cpu_percent":1,"rss_bytes"`},
		{"year -1", time.Date(-1, 12, 31, 0, 0, 0, 0, time.UTC), 1,
			`"start_time":null,"start_ticks":0,"cpu_percent":1,"rss_bytes"`},
		{"year 10000 in its zone, 9999 in UTC", time.Date(10000, 1, 1, 1, 0, 0, 0, time.FixedZone("", 2*3600)), 1,
			`"start_time":"9999-12-31T23:00:00Z","start_ticks":0,"cpu_percent":1,"rss_bytes"`},
		{"year -1 in its zone, 0 in UTC", time.Date(-1, 12, 31, 23, 0, 0, 0, time.FixedZone("", -2*3600)), 1,
			`"start_time":"0000-01-01T01:00:00Z","start_ticks":0,"cpu_percent":1,"rss_bytes"`},
		{"offset 24h", time.Date(2026, 1, 2, 3, 4, 5, 6, time.FixedZone("", 24*3600)), 1,
			`"start_time":"2026-01-01T03:04:05.000000006Z","start_ticks":0,"cpu_percent":1,"rss_bytes"`},
		{"offset -100h", time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("", -100*3600)), 1,
			`"start_time":"2026-01-06T07:04:05Z","start_ticks":0,"cpu_percent":1,"rss_bytes"`},
		{"NaN", time.Time{}, math.NaN(),
			`"start_time":"0001-01-01T00:00:00Z","start_ticks":0,"cpu_percent":null,"rss_bytes"`},
		{"+Inf", time.Time{}, math.Inf(1),
			`"start_time":"0001-01-01T00:00:00Z","start_ticks":0,"cpu_percent":null,"rss_bytes"`},
		{"-Inf and year 10000", time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC), math.Inf(-1),
			`"start_time":null,"start_ticks":0,"cpu_percent":null,"rss_bytes"`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := mkProc(7, "x")
			p.StartTime, p.CPUPercent = tc.start, tc.cpu
			s := Socket{Processes: []Process{p, p}}
			if _, err := json.Marshal(mirrorSocket(&s)); err == nil {
				t.Fatalf("json.Marshal accepts the case, so it tests nothing")
			}
			got := checkSocketJSON(t, &s)
			if n := bytes.Count(got, []byte(tc.want)); n != 2 {
				t.Fatalf("want %s twice, found it %d times in %s", tc.want, n, got)
			}
			var back Socket
			if err := json.Unmarshal(got, &back); err != nil {
				t.Fatalf("json.Unmarshal of %s: %v", got, err)
			}
		})
	}
}

// TestJSONMirrorsMatchTypes checks that the mirrors hold the real types'
// fields: json.Marshal of a fully set Socket and of its mirror decode to the
// same tree. The order of keys is not compared here, since the real types'
// layout may change; the mirrors fix the order.
// jsonKeys lists the JSON names of t's fields as encoding/json finds them
// by reflection: embedded structs (and pointers to them) give theirs.
func jsonKeys(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		ft := f.Type
		if ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		tag := f.Tag.Get("json")
		if f.Anonymous && tag == "" && ft.Kind() == reflect.Struct {
			out = append(out, jsonKeys(ft)...)
			continue
		}
		if !f.IsExported() || tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if name == "" {
			name = f.Name
		}
		out = append(out, name)
	}
	return out
}

func TestJSONMirrorsMatchTypes(t *testing.T) {
	s := fullSocket()
	s.UnattributedReason = ReasonExited
	p := &s.Processes[0]
	p.ExeDeleted, p.Hidden, p.Container = true, true, "3f4e5d6c7b8a"
	// The types' own fields, as encoding/json would name them without
	// the MarshalJSON methods, against the mirrors': a field added to a
	// type and not to this file fails here.
	for _, c := range []struct{ typ, mirror reflect.Type }{
		{reflect.TypeFor[Socket](), reflect.TypeFor[jsonSocket]()},
		{reflect.TypeFor[Endpoint](), reflect.TypeFor[jsonEndpoint]()},
		{reflect.TypeFor[Process](), reflect.TypeFor[jsonProcess]()},
		{reflect.TypeFor[Container](), reflect.TypeFor[jsonContainer]()},
		{reflect.TypeFor[Forward](), reflect.TypeFor[jsonForward]()},
	} {
		got, want := jsonKeys(c.typ), jsonKeys(c.mirror)
		slices.Sort(got)
		slices.Sort(want)
		if !slices.Equal(got, want) {
			t.Errorf("%v has JSON keys %q, its mirror %q", c.typ, got, want)
		}
	}
	real := AppendSocketJSON(nil, &s)
	mirror, err := json.Marshal(mirrorSocket(&s))
	if err != nil {
		t.Fatal(err)
	}
	var a, b any
	if err := json.Unmarshal(real, &a); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(mirror, &b); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("the mirrors no longer match the types:\nreal   %s\nmirror %s", real, mirror)
	}
	// Every omitempty field is set above, so every key is present: count them.
	var keys func(v any) int
	keys = func(v any) int {
		n := 0
		switch v := v.(type) {
		case map[string]any:
			for _, x := range v {
				n += 1 + keys(x)
			}
		case []any:
			for _, x := range v {
				n += keys(x)
			}
		}
		return n
	}
	// 17 socket keys, 2*2 endpoint, 3 container, 6 forward + 3 container,
	// 2 processes: 17, and 14 (the second has no exe_deleted, hidden or
	// unit).
	if got, want := keys(a), 17+4+3+6+3+17+14; got != want {
		t.Errorf("%d keys in %s, want %d", got, real, want)
	}
}

func TestAppendSocketJSONAllocs(t *testing.T) {
	s := fullSocket()
	s.Local.Address = netip.MustParseAddr("fe80::1%eth0")
	buf := make([]byte, 0, 8192)
	n := testing.AllocsPerRun(100, func() {
		buf = AppendSocketJSON(buf[:0], &s)
	})
	if n != 0 {
		t.Errorf("AppendSocketJSON into a large enough buffer: %v allocations, want 0", n)
	}
}

// FuzzAppendSocketJSON builds a socket from fuzzed strings, numbers, an
// address and a time, and compares AppendSocketJSON with json.Marshal of the
// mirror byte for byte.
func FuzzAppendSocketJSON(f *testing.F) {
	f.Add("nginx", "/usr/sbin/nginx", "-g daemon off;", "host", "", []byte{127, 0, 0, 1}, uint16(80), uint64(4242), 1234, 0.5, int64(1764581415), int64(123456789), int32(0), uint8(0))
	f.Add("\x1b[31m<evil>\u202e", "a\xffb\u2028", "&\"\\\n", "pid 4242 (x)", "eth0", []byte{0xfe, 0x80, 15: 1}, uint16(65535), uint64(math.MaxUint64), -1, 1e-7, int64(-62135596800), int64(0), int32(5*3600+30*60), uint8(0xff))
	f.Fuzz(func(t *testing.T, name, exe, arg, nsName, zone string, addr []byte, port uint16, n uint64, pid int, cpu float64, sec, nsec int64, offset int32, flags uint8) {
		var a netip.Addr
		switch len(addr) {
		case 4:
			a = netip.AddrFrom4([4]byte(addr))
		case 16:
			a = netip.AddrFrom16([16]byte(addr)).WithZone(zone)
		}
		p := mkProc(pid, name)
		p.PPID = int(n)
		p.Exe = exe
		p.User = zone
		p.UID = uint32(n >> 32)
		p.StartTime = time.Unix(sec, nsec).In(time.FixedZone(nsName, int(offset)))
		p.StartTicks = n
		p.CPUPercent = cpu
		p.RSSBytes = n * 4096
		p.State = arg
		p.ExeDeleted = flags&1 != 0
		p.Hidden = flags&2 != 0
		if flags&4 != 0 {
			p.Cmdline = []string{exe, arg, name}
			p.FDs = []int{pid, int(port), int(n)}
		}
		if flags&8 != 0 {
			p.Unit, p.Container = nsName, arg
		}
		q := mkProc(int(port), arg)
		q.StartTime = time.Unix(0, nsec)
		q.CPUPercent = -cpu * 1e10
		if flags&16 != 0 {
			q.Cmdline, q.FDs = []string{}, []int{}
		}
		s := Socket{
			Proto: Proto(arg), Family: Family(name), State: State(exe),
			Local:  Endpoint{Address: a, Port: port},
			Remote: Endpoint{Address: a.Unmap(), Port: ^port},
			Inode:  n, UID: uint32(n), NetNS: n ^ 0xffff, NetNSName: nsName,
			Interface: zone, DualStack: flags&32 != 0, Exposure: ExposureOf(a),
			Listening: flags&64 != 0, UnattributedReason: Reason(name),
		}
		switch flags >> 6 {
		case 1:
			s.Processes = []Process{}
		case 2:
			s.Processes = []Process{p}
		case 3:
			s.Processes = []Process{p, q}
		}
		if flags&8 != 0 {
			s.Container = &Container{Runtime: name, ID: exe, Name: arg, Pod: nsName, Namespace: zone, Container: name}
			s.Forward = &Forward{Proto: Proto(zone), Address: a, Port: port, NetNS: uint64(pid), NetNSName: arg, Container: s.Container}
		} else if flags&16 != 0 {
			s.Container = &Container{}
			s.Forward = &Forward{}
		}
		checkSocketJSON(t, &s)
	})
}

func benchSocket() Socket {
	s := fullSocket()
	s.Processes = s.Processes[:2]
	return s
}

func BenchmarkAppendSocketJSON(b *testing.B) {
	s := benchSocket()
	buf := AppendSocketJSON(nil, &s)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendSocketJSON(buf[:0], &s)
	}
}

func BenchmarkMarshalSocketJSON(b *testing.B) {
	s := benchSocket()
	buf, _ := json.Marshal(&s)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(&s); err != nil {
			b.Fatal(err)
		}
	}
}

// ExampleAppendSocketJSON shows the encoding of a small socket.
func ExampleAppendSocketJSON() {
	s := Socket{Proto: TCP, Family: IPv4, State: "LISTEN",
		Local:    Endpoint{Address: netip.MustParseAddr("127.0.0.1"), Port: 22},
		Exposure: ExposureLoopback, Listening: true, UnattributedReason: ReasonNotPermitted}
	fmt.Println(string(AppendSocketJSON(nil, &s)))
	// Output:
	// {"proto":"tcp","family":"ipv4","state":"LISTEN","local":{"address":"127.0.0.1","port":22},"remote":{"address":"","port":0},"inode":0,"uid":0,"netns":0,"dual_stack":false,"exposure":"loopback","listening":true,"processes":null,"unattributed_reason":"not_permitted"}
}

package store

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

func mustOpen(t *testing.T, dir string) *Store {
	t.Helper()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func ev(kind string, port uint16, at time.Time, channels ...string) NewEvent {
	e := NewEvent{Event: Event{UID: NewUID(), Time: at, Kind: kind, Severity: "warning",
		Listener: fmt.Sprintf("tcp 0.0.0.0:%d", port), Port: port, Proto: "tcp", PID: 42,
		Payload: json.RawMessage(`{"socket":{"local":{"port":` + strconv.Itoa(int(port)) + `}}}`)}}
	for _, ch := range channels {
		e.Deliveries = append(e.Deliveries, Delivery{Channel: ch, AlertID: e.UID, Payload: []byte(`{"id":"` + e.UID + `"}`)})
	}
	return e
}

func TestRecordAndQuery(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t, t.TempDir())
	t0 := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ids, err := s.Record(ctx, Batch{Events: []NewEvent{
		ev("opened", 22, t0, "mail"),
		ev("opened", 4444, t0.Add(time.Second), "mail", "hook"),
		ev("closed", 4444, t0.Add(2*time.Second)),
	}, KV: map[string][]byte{"listeners": []byte("x")}})
	if err != nil {
		t.Fatal(err)
	}
	if len(ids) != 3 || ids[0] >= ids[1] || ids[1] >= ids[2] {
		t.Fatalf("ids = %v", ids)
	}
	all, err := s.Events(ctx, Filter{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 || all[0].Port != 22 || all[2].Kind != "closed" {
		t.Fatalf("events = %+v", all)
	}
	if !all[1].Time.Equal(t0.Add(time.Second)) {
		t.Errorf("time = %v", all[1].Time)
	}
	for _, tc := range []struct {
		f    Filter
		want int
	}{
		{Filter{Port: 4444}, 2},
		{Filter{Kind: "opened"}, 2},
		{Filter{Port: 4444, Kind: "closed"}, 1},
		{Filter{Since: t0.Add(time.Second)}, 2},
		{Filter{Limit: 1}, 1},
		{Filter{Port: 80}, 0},
	} {
		got, err := s.Events(ctx, tc.f)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != tc.want {
			t.Errorf("%+v: %d events, want %d", tc.f, len(got), tc.want)
		}
	}
	// Limit keeps the newest.
	last, _ := s.Events(ctx, Filter{Limit: 1})
	if last[0].Kind != "closed" {
		t.Errorf("limit kept %s, want the newest (closed)", last[0].Kind)
	}
	rows, _ := s.Outbox(ctx)
	if len(rows) != 3 {
		t.Fatalf("outbox has %d rows, want 3", len(rows))
	}
	v, _ := s.KV(ctx, "listeners")
	if string(v) != "x" {
		t.Errorf("kv = %q", v)
	}
	if v, _ := s.KV(ctx, "nope"); v != nil {
		t.Errorf("unset kv = %q", v)
	}
}

func TestOutboxLifecycle(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t, t.TempDir())
	t0 := time.Now()
	if _, err := s.Record(ctx, Batch{Events: []NewEvent{ev("violation", 1, t0, "a", "b"), ev("violation", 2, t0.Add(time.Millisecond), "a")}}); err != nil {
		t.Fatal(err)
	}
	heads, err := s.Heads(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if heads["a"].Pending != 2 || heads["b"].Pending != 1 || !heads["a"].NextRetry.IsZero() || heads["a"].OldestFresh.UnixNano() != t0.UnixNano() {
		t.Fatalf("heads = %+v", heads)
	}
	a, _ := s.Pending(ctx, "a", 10)
	if len(a) != 2 {
		t.Fatalf("pending a = %d", len(a))
	}
	next := t0.Add(time.Minute)
	if err := s.MarkRetry(ctx, []int64{a[0].ID, a[1].ID}, "451 try later", next); err != nil {
		t.Fatal(err)
	}
	heads, _ = s.Heads(ctx)
	if !heads["a"].OldestFresh.IsZero() || heads["a"].NextRetry.UnixNano() != next.UnixNano() {
		t.Fatalf("after retry heads = %+v", heads)
	}
	if err := s.MarkDelivered(ctx, []int64{a[0].ID}, t0); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkFailed(ctx, []int64{a[1].ID}, "550 no", t0); err != nil {
		t.Fatal(err)
	}
	// A finished row is not touched again.
	if err := s.MarkRetry(ctx, []int64{a[0].ID}, "late", next); err != nil {
		t.Fatal(err)
	}
	rows, _ := s.Outbox(ctx)
	got := map[int64]OutboxRow{}
	for _, r := range rows {
		got[r.ID] = r
	}
	if r := got[a[0].ID]; r.State != StateDelivered || r.Attempts != 2 || r.LastError != "" {
		t.Errorf("delivered row = %+v", r)
	}
	if r := got[a[1].ID]; r.State != StateFailed || r.LastError != "550 no" {
		t.Errorf("failed row = %+v", r)
	}
	if n, _ := s.PendingCount(ctx); n != 1 {
		t.Errorf("pending = %d, want 1 (channel b)", n)
	}
	n, err := s.FailOrphans(ctx, []string{"a"}, t0)
	if err != nil || n != 1 {
		t.Errorf("FailOrphans = %d, %v; want 1", n, err)
	}
	if n, _ := s.PendingCount(ctx); n != 0 {
		t.Errorf("pending after orphaning = %d", n)
	}
}

func TestOutboxBounded(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t, t.TempDir())
	s.MaxPending = 3
	var dropped int64
	s.OnDrop = func(ch string, n int64) {
		if ch != "a" {
			t.Errorf("dropped from channel %q", ch)
		}
		dropped += n
	}
	t0 := time.Now()
	for i := 0; i < 5; i++ {
		if _, err := s.Record(ctx, Batch{Events: []NewEvent{ev("opened", uint16(i+1), t0, "a")}}); err != nil {
			t.Fatal(err)
		}
	}
	rows, _ := s.Outbox(ctx)
	var states []string
	for _, r := range rows {
		states = append(states, r.State)
	}
	want := fmt.Sprint([]string{"dropped", "dropped", "pending", "pending", "pending"})
	if fmt.Sprint(states) != want {
		t.Errorf("states = %v, want %s (oldest dropped)", states, want)
	}
	if dropped != 2 {
		t.Errorf("OnDrop counted %d, want 2", dropped)
	}
}

func TestActive(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t, t.TempDir())
	t0 := time.Now()
	ids, err := s.Record(ctx, Batch{
		Events:    []NewEvent{ev("violation", 4444, t0)},
		SetActive: []ActiveUpdate{{Active: Active{Key: "unexpected/tcp/4444", Kind: "unexpected", Since: t0, Alert: json.RawMessage(`{"id":"x"}`)}, EventIndex: 0}},
	})
	if err != nil {
		t.Fatal(err)
	}
	act, err := s.ActiveFindings(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(act) != 1 || act[0].EventID != ids[0] || act[0].Key != "unexpected/tcp/4444" || string(act[0].Alert) != `{"id":"x"}` {
		t.Fatalf("active = %+v", act)
	}
	if _, err := s.Record(ctx, Batch{ClearActive: []string{"unexpected/tcp/4444"}}); err != nil {
		t.Fatal(err)
	}
	if act, _ := s.ActiveFindings(ctx); len(act) != 0 {
		t.Fatalf("active after clear = %+v", act)
	}
}

func TestRecordIsAtomic(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t, t.TempDir())
	// The second event reuses the first's uid: the insert fails, and the
	// first event and its outbox row must not be left behind.
	e1 := ev("opened", 1, time.Now(), "a")
	e2 := ev("opened", 2, time.Now(), "a")
	e2.UID = e1.UID
	if _, err := s.Record(ctx, Batch{Events: []NewEvent{e1, e2}}); err == nil {
		t.Fatal("duplicate uid recorded")
	}
	evs, _ := s.Events(ctx, Filter{})
	rows, _ := s.Outbox(ctx)
	if len(evs) != 0 || len(rows) != 0 {
		t.Fatalf("partial batch left %d events, %d outbox rows", len(evs), len(rows))
	}
}

func TestPrune(t *testing.T) {
	ctx := context.Background()
	s := mustOpen(t, t.TempDir())
	now := time.Now()
	var batch Batch
	for i := 0; i < 10; i++ {
		batch.Events = append(batch.Events, ev("opened", uint16(i+1), now.Add(-time.Duration(10-i)*time.Hour), "a"))
	}
	ids, err := s.Record(ctx, batch)
	if err != nil {
		t.Fatal(err)
	}
	// The oldest alert was delivered, the second is still owed.
	rows, _ := s.Outbox(ctx)
	if err := s.MarkDelivered(ctx, []int64{rows[0].ID}, now); err != nil {
		t.Fatal(err)
	}
	n, err := s.Prune(ctx, now, 5*time.Hour+time.Minute, 0)
	if err != nil {
		t.Fatal(err)
	}
	if n != 5 {
		t.Errorf("pruned %d by age, want 5", n)
	}
	n, err = s.Prune(ctx, now, 0, 3)
	if err != nil || n != 2 {
		t.Errorf("pruned %d by count, want 2 (%v)", n, err)
	}
	evs, _ := s.Events(ctx, Filter{})
	if len(evs) != 3 || evs[0].ID != ids[7] {
		t.Fatalf("kept %+v", evs)
	}
	rows, _ = s.Outbox(ctx)
	for _, r := range rows {
		if r.EventID == ids[0] {
			t.Errorf("delivered outbox row of a pruned event kept")
		}
	}
	if len(rows) != 9 {
		t.Errorf("outbox has %d rows, want 9 (pending alerts are kept)", len(rows))
	}
}

func TestReadOnly(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	if _, err := OpenReadOnly(dir); err == nil {
		t.Fatal("read-only open of a missing database succeeded")
	}
	w := mustOpen(t, dir)
	if _, err := w.Record(ctx, Batch{Events: []NewEvent{ev("opened", 22, time.Now())}}); err != nil {
		t.Fatal(err)
	}
	r, err := OpenReadOnly(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	evs, err := r.Events(ctx, Filter{})
	if err != nil || len(evs) != 1 {
		t.Fatalf("read-only events = %v, %v", evs, err)
	}
	if _, err := r.Record(ctx, Batch{Events: []NewEvent{ev("opened", 23, time.Now())}}); err == nil {
		t.Fatal("read-only store recorded")
	}
	// The writer keeps writing while the reader is open (WAL).
	if _, err := w.Record(ctx, Batch{Events: []NewEvent{ev("opened", 24, time.Now())}}); err != nil {
		t.Fatal(err)
	}
	evs, _ = r.Events(ctx, Filter{})
	if len(evs) != 2 {
		t.Fatalf("reader sees %d events, want 2", len(evs))
	}
}

// TestCrashSafety runs a real writer process, kills it with SIGKILL in the
// middle of its writes, and checks that every event it reported committed
// is there, each with all of its outbox rows, and nothing half-written.
func TestCrashSafety(t *testing.T) {
	if os.Getenv("PORTEIRO_STORE_WRITER") != "" {
		t.Skip("helper process")
	}
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperWriter$", "-test.count=1")
	cmd.Env = append(os.Environ(), "PORTEIRO_STORE_WRITER="+dir)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	committed := map[string]bool{}
	sc := bufio.NewScanner(out)
	for sc.Scan() && len(committed) < 60 {
		committed[sc.Text()] = true
	}
	// Kill while it is still writing: it never stops on its own.
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	go func() {
		for sc.Scan() {
		}
	}()
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("writer was not killed by SIGKILL: %v", err)
	}
	if len(committed) < 60 {
		t.Fatalf("writer reported only %d commits", len(committed))
	}
	if _, err := os.Stat(filepath.Join(dir, FileName+"-wal")); err != nil {
		t.Logf("no WAL file left behind: %v", err)
	}
	s := mustOpen(t, dir)
	ctx := context.Background()
	var check string
	if err := s.db.QueryRow("PRAGMA integrity_check").Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity_check = %q, %v", check, err)
	}
	evs, err := s.Events(ctx, Filter{Limit: 1 << 20})
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]int64{}
	for _, e := range evs {
		have[e.UID] = e.ID
	}
	for uid := range committed {
		if _, ok := have[uid]; !ok {
			t.Errorf("committed event %s lost", uid)
		}
	}
	rows, _ := s.Outbox(ctx)
	perEvent := map[int64]int{}
	for _, r := range rows {
		perEvent[r.EventID]++
	}
	for uid, id := range have {
		if perEvent[id] != 2 {
			t.Errorf("event %s has %d outbox rows, want 2 (written with it in one transaction)", uid, perEvent[id])
		}
	}
	t.Logf("%d events reported committed, %d found after SIGKILL", len(committed), len(have))
}

// TestHelperWriter is the child of TestCrashSafety: it records events
// forever and prints each uid once Record has returned.
func TestHelperWriter(t *testing.T) {
	dir := os.Getenv("PORTEIRO_STORE_WRITER")
	if dir == "" {
		t.Skip("helper process for TestCrashSafety")
	}
	s, err := Open(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	for i := 0; ; i++ {
		e := ev("opened", uint16(i%60000+1), time.Now(), "mail", "hook")
		if _, err := s.Record(context.Background(), Batch{Events: []NewEvent{e}}); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(3)
		}
		fmt.Println(e.UID)
	}
}

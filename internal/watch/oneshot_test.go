package watch

import (
	"context"
	"errors"
	"testing"

	"github.com/porteiro/porteiro/internal/notify"
	"github.com/porteiro/porteiro/internal/store"
)

func TestNotifyOnceDedupesAcrossRuns(t *testing.T) {
	ctx := context.Background()
	cfg := testConfig(t)
	bad := sock(4444, 200, "/tmp/nc")
	unexp := Finding{Kind: "unexpected", Key: "unexpected tcp 0.0.0.0:4444", Message: "unexpected listener on 4444", Socket: &bad}
	miss := Finding{Kind: "missing", Key: "missing ssh", Message: "ssh is not listening", Rule: "ssh"}
	// The first run cannot reach the channel (fault injection): the
	// alerts are kept for the next run.
	sink := &recordingSink{name: "mail", fail: []error{errors.New("connection refused")}}
	run := func(fs ...Finding) OnceResult {
		t.Helper()
		res, err := NotifyOnce(ctx, cfg, []notify.Sink{sink}, snapOf(bad), fs, quietLogger())
		if err != nil && sink.callCount() > 1 {
			t.Fatalf("run: %v", err)
		}
		return res
	}
	res := run(unexp, miss)
	if res.New != 2 || res.Pending != 2 {
		t.Fatalf("first run = %+v, want 2 new, 2 pending", res)
	}
	// Same findings: nothing new, and the kept alerts go out now.
	res = run(unexp, miss)
	if res.New != 0 || res.Pending != 0 {
		t.Fatalf("second run = %+v", res)
	}
	if got := alertKinds(sink.sent()); len(got) != 1 || len(got[0]) != 2 {
		t.Fatalf("sent %v, want one batch of the two violations", got)
	}
	// Again: nothing at all is sent.
	run(unexp, miss)
	if n := len(sink.sent()); n != 1 {
		t.Fatalf("a repeated finding was re-sent (%d batches)", n)
	}
	// The listener is gone: resolved, once.
	res = run(miss)
	if res.Resolved != 1 {
		t.Fatalf("third run = %+v", res)
	}
	run(miss)
	got := alertKinds(sink.sent())
	if len(got) != 2 || len(got[1]) != 1 || got[1][0] != KindResolved {
		t.Fatalf("sent %v, want the resolution once", got)
	}
	st, err := store.OpenReadOnly(cfg.StateDirPath())
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if k := storedKinds(t, st); k != "violation missing resolved" {
		t.Fatalf("events = %q", k)
	}
}

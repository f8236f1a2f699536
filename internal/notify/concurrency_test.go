package notify

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"sync"
	"testing"
)

// TestSinksAreSafeForConcurrentUse: the daemon may deliver to one sink
// from several goroutines (a send and an Alertmanager refresh). Run with
// -race.
func TestSinksAreSafeForConcurrentUse(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer srv.Close()
	sock := filepath.Join(t.TempDir(), "log")
	l := listenUnixgram(t, sock)
	defer l.Close()
	go func() {
		buf := make([]byte, 4096)
		for {
			if _, err := l.Read(buf); err != nil {
				return
			}
		}
	}()
	sinks, err := Build(ChannelsConfig{
		Webhook:      []WebhookConfig{{URL: srv.URL}},
		Alertmanager: []AlertmanagerConfig{{URL: srv.URL}},
		Syslog:       []SyslogConfig{{Address: sock}},
		Exec:         []ExecConfig{{Command: []string{"cat"}}},
	}, "web1")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for _, s := range sinks {
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				a := sampleAlert(t, "ev", uint16(1000+i))
				if i%2 == 1 {
					a.Resolved = true
				}
				if err := s.Send(context.Background(), []Alert{a}); err != nil {
					t.Errorf("%s: %v", s.Name(), err)
				}
				if r, ok := s.(Refresher); ok {
					if err := r.Refresh(context.Background(), []Alert{a}); err != nil {
						t.Errorf("%s refresh: %v", s.Name(), err)
					}
				}
			}()
		}
	}
	wg.Wait()
}

package daemoncli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func run(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	code := Main(args, strings.NewReader(""), &out, &errb)
	return out.String(), errb.String(), code
}

func TestUnknownCommandIsAnError(t *testing.T) {
	_, errs, code := run(t, "evnts")
	if code != 2 || !strings.Contains(errs, `unknown command "evnts"`) {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
}

func TestValidate(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	os.WriteFile(good, []byte("interval: 3s\npolicy: \"\"\nstate_dir: "+dir+"\n"), 0o600)
	out, errs, code := run(t, "validate", "-c", good)
	if code != 0 || !strings.Contains(out, good+": ok") {
		t.Errorf("good file: exit %d, %q %q", code, out, errs)
	}
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(bad, []byte("interval: 3s\nintreval: 4s\n"), 0o600)
	_, errs, code = run(t, "validate", "-c", bad)
	if code != 2 || !strings.Contains(errs, bad+":2:1") {
		t.Errorf("bad file: exit %d, stderr %q", code, errs)
	}
}

func TestOnceNeedsChannels(t *testing.T) {
	dir := t.TempDir()
	conf := filepath.Join(dir, "porteiro.yaml")
	os.WriteFile(conf, []byte("state_dir: "+dir+"\n"), 0o600)
	_, errs, code := run(t, "once", "-c", conf)
	if code != 2 || !strings.Contains(errs, "no alert channels") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
	_, errs, code = run(t, "once", "-c", filepath.Join(dir, "absent.yaml"))
	if code != 2 || !strings.Contains(errs, "no configuration at") {
		t.Errorf("absent: exit %d, stderr %q", code, errs)
	}
}

func TestEventsWithoutDatabase(t *testing.T) {
	_, errs, code := run(t, "events", "--state-dir", t.TempDir())
	if code != 2 || !strings.Contains(errs, "porteirod has not run") {
		t.Errorf("exit %d, stderr %q", code, errs)
	}
}

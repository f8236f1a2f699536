package taskfd

import (
	"os"
	"path/filepath"
	"sync"
	"testing"

	"golang.org/x/sys/unix"
)

// TestMain keeps the package's tests off the real cache (/run): each test
// that wants one points cachePath at its own directory.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "taskfd-cache")
	if err != nil {
		panic(err)
	}
	cachePath = filepath.Join(dir, "layout.cache")
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// resetLayout forgets the layout read so far, so that the next Open reads
// it again (from the cache, or the BTF), and points the cache at path.
func resetLayout(t *testing.T, path string) {
	old := cachePath
	cachePath = path
	layoutOnce, layout, layoutErr, layoutCached = sync.Once{}, Layout{}, nil, false
	t.Cleanup(func() {
		cachePath = old
		layoutOnce, layout, layoutErr, layoutCached = sync.Once{}, Layout{}, nil, false
	})
}

// The cache file is trusted only if it is root's, regular, and writable by
// nobody else.
func TestReadCacheTrustsOnlyRootsFile(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root: the cache is trusted only when root owns it")
	}
	dir := t.TempDir()
	k, l := testKey(), cacheLayout()
	good := filepath.Join(dir, "good")
	writeCache(good, k, l)
	if got, err := readCache(good, k); err != nil || got != l {
		t.Fatalf("root's own file: %+v, %v", got, err)
	}
	if st, err := os.Stat(good); err != nil || st.Mode().Perm() != 0o644 {
		t.Fatalf("written with mode %v, %v; want 0644", st.Mode(), err)
	}
	if m, _ := filepath.Glob(filepath.Join(dir, "good.tmp*")); len(m) != 0 {
		t.Fatalf("temporary files left: %v", m)
	}
	cp := func(name string) string {
		p := filepath.Join(dir, name)
		b, err := os.ReadFile(good)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	groupWritable := cp("group-writable")
	if err := os.Chmod(groupWritable, 0o664); err != nil {
		t.Fatal(err)
	}
	othersFile := cp("others")
	if err := os.Chown(othersFile, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(dir, "link")
	if err := os.Symlink(good, link); err != nil {
		t.Fatal(err)
	}
	fifo := filepath.Join(dir, "fifo")
	if err := unix.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for name, p := range map[string]string{"group-writable": groupWritable, "not root's": othersFile,
		"a symlink to a good file": link, "a FIFO": fifo, "missing": filepath.Join(dir, "none"), "/dev/zero": "/dev/zero"} {
		if _, err := readCache(p, k); err == nil {
			t.Errorf("%s: trusted", name)
		}
	}
}

// The first Open reads the BTF and writes the cache; the next reads the
// cache, and its iterator passes the first pass's check. A wrong layout
// in the cache is caught by that check, and the file removed.
func TestOpenUsesTheCache(t *testing.T) {
	path := filepath.Join(t.TempDir(), "layout.cache")
	resetLayout(t, path)
	it := openIterator(t)
	if layoutCached {
		t.Fatal("the first Open used a cache that did not exist")
	}
	if os.Geteuid() != 0 {
		t.Skip("only root writes the cache")
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("no cache written: %v", err)
	}
	parsed := layout
	it.Close()

	resetLayout(t, path)
	it = openIterator(t)
	if !layoutCached || layout != parsed {
		t.Fatalf("second Open: cached %v, layout %+v, want %+v", layoutCached, layout, parsed)
	}
	if _, err := it.Read(t.Context(), nil); err != nil {
		t.Fatalf("a pass with the cached layout: %v", err)
	}
	it.Close()

	// Wrong offsets in the cache: the verifier, which knows the kernel's
	// types, refuses some (the inode number 8 bytes further is no longer
	// inside an access it allows); the first pass's check catches others
	// (the namespace's inode number read 4 bytes further gives the probe
	// socket another namespace). Either way the
	// cache goes, and the next Open reads the BTF again.
	k, err := currentKey()
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name    string
		edit    func(l *Layout)
		refused bool // by the verifier, at Open; else by the check
	}{
		{"inode number +8", func(l *Layout) { l.InodeIno += 8 }, true},
		{"namespace inode +4", func(l *Layout) { l.NetInum += 4 }, false},
	} {
		wrong := parsed
		c.edit(&wrong)
		if err := os.Remove(path); err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		writeCache(path, k, wrong)
		resetLayout(t, path)
		it, err := Open()
		if c.refused {
			if err == nil {
				it.Close()
				t.Fatalf("%s: the kernel loaded the program", c.name)
			}
		} else {
			if err != nil {
				t.Fatalf("%s: %v", c.name, err)
			}
			if !layoutCached || layout != wrong {
				t.Fatalf("%s: Open did not take the layout from the cache: %+v", c.name, layout)
			}
			_, err = it.Read(t.Context(), nil)
			it.Close()
			if err == nil {
				t.Fatalf("%s: a pass passed its check", c.name)
			}
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Fatalf("%s: the wrong cache is still there: %v", c.name, err)
		}
		resetLayout(t, path)
		it = openIterator(t)
		if layoutCached || layout != parsed {
			t.Fatalf("%s: after the wrong cache went: cached %v, layout %+v", c.name, layoutCached, layout)
		}
		if _, err := it.Read(t.Context(), nil); err != nil {
			t.Fatal(err)
		}
		it.Close()
	}
}

package store

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpenLocksTheStateDirectory(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, err = Open(dir)
	var le *LockedError
	if !errors.As(err, &le) || le.PID != os.Getpid() || !strings.Contains(err.Error(), "pid") {
		t.Fatalf("second Open = %v, want a LockedError naming pid %d", err, os.Getpid())
	}
	// Readers need no lock.
	r, err := OpenReadOnly(dir)
	if err != nil {
		t.Fatalf("OpenReadOnly while locked: %v", err)
	}
	r.Close()
	s.Close()
	s2, err := Open(dir)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	s2.Close()
}

func TestOpenRefusesUntrustedStateDirectories(t *testing.T) {
	t.Run("symlinked database", func(t *testing.T) {
		dir := t.TempDir()
		target := filepath.Join(t.TempDir(), "elsewhere")
		if err := os.Symlink(target, filepath.Join(dir, FileName)); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(dir); !errors.Is(err, ErrUntrusted) {
			t.Fatalf("Open = %v, want ErrUntrusted", err)
		}
		if _, err := os.Lstat(target); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the symlink's target was created: %v", err)
		}
	})
	t.Run("symlinked lock", func(t *testing.T) {
		dir := t.TempDir()
		target := filepath.Join(t.TempDir(), "elsewhere")
		os.Symlink(target, filepath.Join(dir, LockName))
		if _, err := Open(dir); !errors.Is(err, ErrUntrusted) {
			t.Fatalf("Open = %v, want ErrUntrusted", err)
		}
		if _, err := os.Lstat(target); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("the symlink's target was created: %v", err)
		}
	})
	t.Run("symlinked directory", func(t *testing.T) {
		real := t.TempDir()
		link := filepath.Join(t.TempDir(), "state")
		os.Symlink(real, link)
		if _, err := Open(link); !errors.Is(err, ErrUntrusted) {
			t.Fatalf("Open = %v, want ErrUntrusted", err)
		}
	})
	t.Run("world-writable directory", func(t *testing.T) {
		dir := t.TempDir()
		if err := os.Chmod(dir, 0o777); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(dir); !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "chmod go-w") {
			t.Fatalf("Open = %v, want ErrUntrusted saying what to do", err)
		}
	})
	t.Run("a file, not a directory", func(t *testing.T) {
		f := filepath.Join(t.TempDir(), "file")
		os.WriteFile(f, nil, 0o600)
		if _, err := Open(f); err == nil {
			t.Fatal("Open on a file succeeded")
		}
	})
	t.Run("owned by another user", func(t *testing.T) {
		if os.Geteuid() != 0 {
			t.Skip("chown to another user needs root; run the suite as root, as CI does")
		}
		dir := filepath.Join(t.TempDir(), "state")
		os.Mkdir(dir, 0o750)
		if err := os.Chown(dir, 65534, 65534); err != nil {
			t.Fatal(err)
		}
		if _, err := Open(dir); !errors.Is(err, ErrUntrusted) || !strings.Contains(err.Error(), "uid 65534") {
			t.Fatalf("Open = %v, want ErrUntrusted naming uid 65534", err)
		}
	})
}

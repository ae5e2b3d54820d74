// Package damage breaks files on disk the way disks and people do, by
// offset, for the tests of state directories: zeroed blocks, flipped
// bytes, truncation, deletion. Every helper fails the test on an I/O error.
package damage

import (
	"io"
	"os"
	"path/filepath"
	"testing"
)

// One returns the only file of dir matching pattern (a filepath.Match
// pattern such as "*.sst"), failing the test when there is not exactly one.
func One(t testing.TB, dir, pattern string) string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, pattern))
	if err != nil || len(m) != 1 {
		t.Fatalf("want one %s in %s, have %v (%v)", pattern, dir, m, err)
	}
	return m[0]
}

// Size is path's size in bytes.
func Size(t testing.TB, path string) int64 {
	t.Helper()
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	return info.Size()
}

// Zero overwrites n bytes of path at off with zeros.
func Zero(t testing.TB, path string, off int64, n int) {
	t.Helper()
	write(t, path, off, make([]byte, n))
}

// Flip inverts every bit of the bytes of path at offsets.
func Flip(t testing.TB, path string, offsets ...int64) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, 1)
	for _, off := range offsets {
		if _, err := f.ReadAt(b, off); err != nil {
			t.Fatalf("flip %s at %d: %v", path, off, err)
		}
		b[0] ^= 0xff
		if _, err := f.WriteAt(b, off); err != nil {
			t.Fatal(err)
		}
	}
}

// Truncate cuts path to size bytes.
func Truncate(t testing.TB, path string, size int64) {
	t.Helper()
	if err := os.Truncate(path, size); err != nil {
		t.Fatal(err)
	}
}

// Remove deletes every file of dir matching pattern, failing the test when
// there is none.
func Remove(t testing.TB, dir, pattern string) {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(dir, pattern))
	if len(m) == 0 {
		t.Fatalf("no %s in %s to remove", pattern, dir)
	}
	for _, p := range m {
		if err := os.Remove(p); err != nil {
			t.Fatal(err)
		}
	}
}

// Copy copies the regular files of dir into a new temporary directory and
// returns it. A copy of a directory a process has open, taken while it
// waits between writes it has synced, is what a kill -9 would leave.
func Copy(t testing.TB, dir string) string {
	t.Helper()
	dst := t.TempDir()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		copyFile(t, filepath.Join(dir, e.Name()), filepath.Join(dst, e.Name()))
	}
	return dst
}

func copyFile(t testing.TB, src, dst string) {
	t.Helper()
	in, err := os.Open(src)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	out, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	// Badger's logs are preallocated and mostly zeros: leave holes.
	buf := make([]byte, 64<<10)
	var size int64
	for {
		n, rerr := io.ReadFull(in, buf)
		if n > 0 && !zeros(buf[:n]) {
			if _, err := out.WriteAt(buf[:n], size); err != nil {
				t.Fatal(err)
			}
		}
		size += int64(n)
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			t.Fatal(rerr)
		}
	}
	if err := out.Truncate(size); err != nil {
		t.Fatal(err)
	}
}

func zeros(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

func write(t testing.TB, path string, off int64, b []byte) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

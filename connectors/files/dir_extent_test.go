package files_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/connectors/connectortest"
)

// A dir: source tells the files it has done of those it found, and their
// bytes as stored (compressed for .gz), from its first listing on, after
// new files come and after a restart from a position.
func TestDirExtent(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a", strings.Repeat("a line of the first file\n", 3000))
	write(t, dir, "b.gz", gzipped(t, strings.Repeat("zipped\n", 5000)))
	write(t, dir, "c", "x\nyy\nzzz\n")
	size := func(names ...string) (n int64) {
		for _, name := range names {
			st, err := os.Stat(filepath.Join(dir, name))
			if err != nil {
				t.Fatal(err)
			}
			n += st.Size()
		}
		return n
	}
	src := openSource("dir:" + dir + "?poll=5ms")(t)
	m, ok := src.(connectors.Measured)
	if !ok {
		t.Fatalf("a dir: source (%T) does not tell its extent", src)
	}
	if got := m.Extent(); got != (connectors.Extent{}) {
		t.Fatalf("before reading: %+v, want nothing known", got)
	}
	p := connectortest.Start(t, src).Partitions()[0]
	ctx := context.Background()
	if _, err := p.Read(ctx); err != nil {
		t.Fatal(err)
	}
	got := m.Extent()
	if got.FilesDone != 0 || got.FilesFound != 3 || got.BytesFound != size("a", "b.gz", "c") || got.BytesRead <= 0 || got.BytesRead > size("a") {
		t.Fatalf("after the first batch: %+v, want 0 of 3 files done, %d bytes found, some of a's %d read", got, size("a", "b.gz", "c"), size("a"))
	}
	readToEnd := func() {
		t.Helper()
		for deadline := time.Now().Add(time.Minute); ; {
			b, err := p.Read(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if b.CaughtUp {
				return
			}
			if time.Now().After(deadline) {
				t.Fatal("not caught up within a minute")
			}
		}
	}
	readToEnd()
	all := size("a", "b.gz", "c")
	if got, want := m.Extent(), (connectors.Extent{FilesDone: 3, FilesFound: 3, BytesRead: all, BytesFound: all}); got != want {
		t.Fatalf("at the end: %+v, want %+v", got, want)
	}
	write(t, dir, "d", "a late file\n")
	var b connectors.Batch
	for b.Where != "d" {
		var err error
		if b, err = p.Read(ctx); err != nil {
			t.Fatal(err)
		}
	}
	readToEnd()
	all = size("a", "b.gz", "c", "d")
	if got, want := m.Extent(), (connectors.Extent{FilesDone: 4, FilesFound: 4, BytesRead: all, BytesFound: all}); got != want {
		t.Fatalf("after a new file: %+v, want %+v", got, want)
	}

	// A restart in c after its first line: a is done; c is found, b.gz
	// and d once the source lists the directory.
	src2 := openSource("dir:" + dir + "?poll=5ms")(t)
	p2 := connectortest.Start(t, src2).Partitions()[0]
	if err := p2.Seek(connectors.Position(`{"done":["a"],"file":"c","off":2,"line":1}`)); err != nil {
		t.Fatal(err)
	}
	m2 := src2.(connectors.Measured)
	if got, want := m2.Extent(), (connectors.Extent{FilesDone: 1, FilesFound: 2, BytesRead: size("a") + 2, BytesFound: size("a", "c")}); got != want {
		t.Fatalf("after the restart: %+v, want %+v", got, want)
	}
	p = p2
	readToEnd()
	if got, want := m2.Extent(), (connectors.Extent{FilesDone: 4, FilesFound: 4, BytesRead: all, BytesFound: all}); got != want {
		t.Fatalf("after the restart, at the end: %+v, want %+v", got, want)
	}
}

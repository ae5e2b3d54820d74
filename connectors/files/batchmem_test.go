package files_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"unsafe"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/connectors/files"
)

// TestDirReleaseReuse: a released batch's memory is read into again, and a
// batch not released keeps its values whatever is read after it.
func TestDirReleaseReuse(t *testing.T) {
	dir := t.TempDir()
	var lines []string
	for i := range 5000 {
		lines = append(lines, fmt.Sprintf(`{"n":%d,"pad":"%s"}`, i, strings.Repeat("x", i%300)))
	}
	write(t, dir, "a.json", strings.Join(lines, "\n")+"\n")
	src, err := files.NewDir(dir, files.DirConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	p := src.Partition
	read := func() connectors.Batch {
		t.Helper()
		b, err := p.Read(context.Background())
		if err != nil || len(b.Records) == 0 || b.Release == nil {
			t.Fatalf("read: %d records, release set %v, err %v", len(b.Records), b.Release != nil, err)
		}
		return b
	}
	check := func(b connectors.Batch, what string) {
		t.Helper()
		for _, r := range b.Records {
			if got, want := string(r.Value), lines[r.Seq-1]; got != want {
				t.Fatalf("%s: line %d is %.40q, want %.40q", what, r.Seq, got, want)
			}
		}
	}
	a := read()
	kept := read() // never released while the others are read
	at := unsafe.SliceData(a.Records[0].Value)
	a.Release()
	c := read()
	if unsafe.SliceData(c.Records[0].Value) != at {
		t.Errorf("the batch read after a release did not reuse the released memory")
	}
	for {
		check(kept, "the batch not released")
		check(c, "a batch read into released memory")
		c.Release()
		b, err := p.Read(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(b.Records) == 0 {
			break
		}
		c = b
	}
	defer func() {
		if recover() == nil {
			t.Errorf("a second release of a batch did not panic")
		}
	}()
	c.Release()
}

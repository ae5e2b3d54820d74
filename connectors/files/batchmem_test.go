package files_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/connectors/connectortest"
	"github.com/eddy-stream/eddy/connectors/files"
)

// TestDirReleaseReuse: a released batch's memory is read into again (a
// file of many blocks is read in a few), and a batch not released keeps
// its values whatever is read after it.
func TestDirReleaseReuse(t *testing.T) {
	dir := t.TempDir()
	var lines []string
	size := 0
	for i := range 20000 {
		lines = append(lines, fmt.Sprintf(`{"n":%d,"pad":"%s"}`, i, strings.Repeat("x", i%300)))
		size += len(lines[i]) + 1
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
	a.Release()
	c := read()
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
	if made, blocks := files.BlocksMade(src), size/files.BlockSize; made > 4 || blocks < 6 {
		t.Errorf("%d blocks made to read a file of %d blocks: released blocks are not read into again", made, blocks)
	}
	defer func() {
		if recover() == nil {
			t.Errorf("a second release of a batch did not panic")
		}
	}()
	c.Release()
}

// A plain file's lines, read as slices of blocks, come out as a .gz file's
// of the same text do through the line reader of before: lines cut by a
// block's end, lines longer than a block, lines just within and just over
// the maximum size (with "\n" or "\r\n"), empty lines and a last line
// without its line end. Each batch is released as soon as it is checked,
// so blocks are read into again.
func TestDirBlocksReadAsBefore(t *testing.T) {
	const max = 700_000
	rnd := rand.New(rand.NewPCG(3, 4))
	var sb strings.Builder
	for i := range 6000 {
		n := rnd.IntN(300)
		switch rnd.IntN(200) {
		case 0:
			n = 400_000 + rnd.IntN(800_000) // longer than a block, some too long
		case 1:
			n = max - 1 + rnd.IntN(3) // at the maximum
		case 2:
			n = 0
		}
		fmt.Fprintf(&sb, "%d:%s", i, strings.Repeat("z", n))
		if rnd.IntN(3) == 0 {
			sb.WriteString("\r")
		}
		sb.WriteString("\n")
	}
	sb.WriteString("last line without its end")
	text := sb.String()
	plain, zipped := t.TempDir(), t.TempDir()
	write(t, plain, "a.log", text)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write([]byte(text))
	zw.Close()
	write(t, zipped, "a.log.gz", gz.String())
	got, want := readAll(t, "dir:"+plain+"?max-record-size=700000"), readAll(t, "dir:"+zipped+"?max-record-size=700000")
	if len(got) != len(want) || len(want) < 6000 {
		t.Fatalf("%d records from the plain file, %d from the .gz", len(got), len(want))
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("record %d: plain %.80s, .gz %.80s", i, got[i], want[i])
		}
	}
}

// readAll reads the dir: source uri to its end and describes each record
// (its line number, value and error with the offset left out: a .gz
// file's is unknown), releasing each batch once described.
func readAll(t *testing.T, uri string) []string {
	t.Helper()
	p := connectortest.Start(t, openSource(uri)(t)).Partitions()[0]
	var out []string
	for {
		b, err := p.Read(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range b.Records {
			why := ""
			if tl, ok := r.Err.(*connectors.TooLongError); ok {
				why = fmt.Sprintf("too long: %d of %d", tl.Size, tl.Max)
			}
			out = append(out, fmt.Sprintf("%d %d %q %s", r.Seq, len(r.Value), r.Value, why))
		}
		if b.Release != nil {
			b.Release()
		}
		if b.CaughtUp {
			return out
		}
	}
}

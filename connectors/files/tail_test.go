package files_test

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/connectors/connectortest"
)

func appendTo(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

func numbered(prefix string, from, to int) string {
	var b strings.Builder
	for i := from; i <= to; i++ {
		b.WriteString(prefix + strconv.Itoa(i) + "\n")
	}
	return b.String()
}

// readUntil reads p until it has yielded n records or the deadline passes.
func readUntil(t *testing.T, p connectors.Partition, n int) ([]string, connectors.Batch) {
	t.Helper()
	var got []string
	var last connectors.Batch
	deadline := time.Now().Add(5 * time.Second)
	for len(got) < n {
		if time.Now().After(deadline) {
			t.Fatalf("got %d records before the deadline, want %d: %v", len(got), n, got)
		}
		b, err := p.Read(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for i, r := range b.Records {
			got = append(got, b.Locate(i)+" "+string(r.Value))
		}
		last = b
	}
	return got, last
}

func startFile(t *testing.T, uri string) connectors.Partition {
	t.Helper()
	return connectortest.Start(t, openSource(uri)(t)).Partitions()[0]
}

func TestFileConformance(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	appendTo(t, path, numbered("line ", 1, 3000)+"\n\r\nafter blanks\r\nno newline yet")
	connectortest.TestSource(t, openSource("file:"+path+"?poll=5ms"), connectortest.SourceOptions{})
}

func TestFileFollows(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	p := startFile(t, "file:"+path+"?poll=5ms&wait=true")
	// Missing file, waited for: caught up, no error.
	b, err := p.Read(context.Background())
	if err != nil || !b.CaughtUp {
		t.Fatalf("missing file: %+v %v", b, err)
	}
	appendTo(t, path, "one\ntw")
	got, _ := readUntil(t, p, 1)
	if strings.Join(got, "|") != "app.log line 1 one" {
		t.Fatalf("got %v", got)
	}
	// The partial line waits for its newline.
	b, err = p.Read(context.Background())
	if err != nil || len(b.Records) != 0 || !b.CaughtUp {
		t.Fatalf("partial line was read: %+v %v", b, err)
	}
	appendTo(t, path, "o\nthree\n")
	got, _ = readUntil(t, p, 2)
	if strings.Join(got, "|") != "app.log line 2 two|app.log line 3 three" {
		t.Fatalf("got %v", got)
	}
}

func TestFileRotation(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "app.log")
	appendTo(t, path, numbered("old ", 1, 3))
	p := startFile(t, "file:"+path+"?poll=5ms")
	readUntil(t, p, 3)
	// The writer adds two lines, then the file is rotated away and a new
	// one started; the old file's last lines come first.
	appendTo(t, path, numbered("old ", 4, 5)+"partial")
	if err := os.Rename(path, path+".1"); err != nil {
		t.Fatal(err)
	}
	appendTo(t, path, numbered("new ", 1, 2))
	got, last := readUntil(t, p, 4)
	want := "app.log line 4 old 4|app.log line 5 old 5|app.log line 1 new 1|app.log line 2 new 2"
	if strings.Join(got, "|") != want {
		t.Fatalf("got  %s\nwant %s", strings.Join(got, "|"), want)
	}
	// A restart from there continues in the new file.
	appendTo(t, path, "new 3\n")
	p2 := startFile(t, "file:"+path+"?poll=5ms")
	if err := p2.Seek(last.End); err != nil {
		t.Fatal(err)
	}
	got, _ = readUntil(t, p2, 1)
	if strings.Join(got, "|") != "app.log line 3 new 3" {
		t.Fatalf("after restart got %v", got)
	}
}

func TestFileRotationWhileStopped(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	appendTo(t, path, numbered("old ", 1, 5))
	p := startFile(t, "file:"+path)
	_, last := readUntil(t, p, 5)
	p.Close()
	// The file is replaced while eddy is down: the checkpoint's inode no
	// longer matches, so the new file is read from its start, even though
	// it is longer than the old offset.
	os.Rename(path, path+".1")
	appendTo(t, path, numbered("replacement ", 1, 10))
	p2 := startFile(t, "file:"+path)
	if err := p2.Seek(last.End); err != nil {
		t.Fatal(err)
	}
	got, _ := readUntil(t, p2, 10)
	if got[0] != "app.log line 1 replacement 1" {
		t.Fatalf("restart on a replaced file began with %q", got[0])
	}
}

func TestFileTruncation(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	appendTo(t, path, numbered("long line number ", 1, 10))
	p := startFile(t, "file:"+path+"?poll=5ms")
	readUntil(t, p, 10)
	// copytruncate: same inode, shorter content.
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	appendTo(t, path, "fresh 1\nfresh 2\n")
	got, _ := readUntil(t, p, 2)
	if strings.Join(got, "|") != "app.log line 1 fresh 1|app.log line 2 fresh 2" {
		t.Fatalf("after truncation got %v", got)
	}
}

func TestFileFromEnd(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	appendTo(t, path, numbered("before ", 1, 5)+"half")
	p := startFile(t, "file:"+path+"?poll=5ms&from=end")
	b, err := p.Read(context.Background())
	if err != nil || len(b.Records) != 0 {
		t.Fatalf("from=end read old lines: %+v %v", b, err)
	}
	appendTo(t, path, " written\nafter\n")
	got, _ := readUntil(t, p, 2)
	// Line numbers count from where reading began.
	if strings.Join(got, "|") != "app.log line 1 half written|app.log line 2 after" {
		t.Fatalf("got %v", got)
	}
}

func TestFileErrors(t *testing.T) {
	dir := t.TempDir()
	tests := []struct {
		name        string
		uri         string
		errContains string
	}{
		{"a directory", "file:" + dir, "is a directory: use dir:"},
		{"bad from", "file:" + dir + "/x.log?from=middle", `from="middle" is not one of start, end`},
		{"bad poll", "file:" + dir + "/x.log?poll=-1s", "poll=-1s must be positive"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := connectors.OpenSource(tt.uri, nil)
			if err == nil || !strings.Contains(err.Error(), tt.errContains) {
				t.Fatalf("got %v, want an error containing %q", err, tt.errContains)
			}
		})
	}
}

func TestFileLongLines(t *testing.T) {
	path := filepath.Join(t.TempDir(), "big.log")
	long := strings.Repeat("x", 3<<20)
	appendTo(t, path, "short\n"+long+"\n"+numbered("n", 1, 2000))
	p := startFile(t, "file:"+path)
	res := connectortest.ReadAll(t, p, 0, 0)
	recs := res.Records()
	if len(recs) != 2002 || string(recs[1].Value) != long || recs[2001].Seq != 2002 {
		t.Fatalf("got %d records", len(recs))
	}
	for _, b := range res.Batches {
		if len(b.Records) > 1024 {
			t.Fatalf("batch of %d records", len(b.Records))
		}
	}
}

func TestFileFromEndOfMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "later.log")
	p := startFile(t, "file:"+path+"?poll=5ms&from=end&wait=true")
	if b, err := p.Read(context.Background()); err != nil || !b.CaughtUp {
		t.Fatalf("missing file: %+v %v", b, err)
	}
	appendTo(t, path, "first\nsecond\n")
	got, _ := readUntil(t, p, 2)
	if strings.Join(got, "|") != "later.log line 1 first|later.log line 2 second" {
		t.Fatalf("a file that appeared later was not read whole: %v", got)
	}
	// Rewinding to the start reads it whole again.
	if err := p.Seek(nil); err != nil {
		t.Fatal(err)
	}
	got, _ = readUntil(t, p, 2)
	if got[0] != "later.log line 1 first" {
		t.Fatalf("after Seek(nil): %v", got)
	}
}

func TestFileFromEndRewind(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	appendTo(t, path, "old\n")
	p := startFile(t, "file:"+path+"?poll=5ms&from=end")
	p.Read(context.Background())
	appendTo(t, path, "new\n")
	readUntil(t, p, 1)
	// Seek(nil) goes back to where the partition started: the end as it
	// was then, not the file's start.
	if err := p.Seek(nil); err != nil {
		t.Fatal(err)
	}
	got, _ := readUntil(t, p, 1)
	if got[0] != "app.log line 1 new" {
		t.Fatalf("after Seek(nil): %v", got)
	}
}

package files_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/connectors/connectortest"
	"github.com/eddy-stream/eddy/internal/lockedbuf"
)

// Files that shrink, vanish or are replaced under a dir: source (issue 12:
// a file truncated while being read lost 272,635 of 360,000 lines with
// exit 0, and a file deleted before it was reached was skipped silently).
// Each case reads a first batch, changes the directory, and reads on: the
// loss is an error naming the file and what was lost, or with on-loss=warn
// a warning saying the same.
func TestDirLoss(t *testing.T) {
	line := strings.Repeat("x", 40) + "\n" // 41 bytes
	big := strings.Repeat(line, 20_000)    // 820,000 bytes: many batches
	tests := []struct {
		name    string
		files   map[string]string
		change  func(t *testing.T, dir string)
		wantErr string
	}{
		{"truncated while being read", map[string]string{"a.log": big},
			func(t *testing.T, dir string) {
				if err := os.Truncate(filepath.Join(dir, "a.log"), int64(len(big)/4)); err != nil {
					t.Fatal(err)
				}
			},
			"a.log shrank from 801 KiB to 200 KiB while being read at offset 200 KiB: about 15000 lines after line 5000 may be lost"},
		{"deleted before it was read", map[string]string{"a.log": "one\n", "b.log": "two\n"},
			func(t *testing.T, dir string) { os.Remove(filepath.Join(dir, "b.log")) },
			"b.log was deleted before it was read: all its lines are lost"},
		{"replaced while being read", map[string]string{"a.log": big},
			func(t *testing.T, dir string) { write(t, dir, "a.log", "new\n") },
			"a.log was replaced while being read: the new file of that name is not read"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, onLoss := range []string{"", "warn"} {
				dir := t.TempDir()
				for name, content := range tt.files {
					write(t, dir, name, content)
				}
				uri := "dir:" + dir + "?poll=1ms"
				if onLoss != "" {
					uri += "&on-loss=" + onLoss
				}
				logs := captureLogs(t)
				p := connectortest.Start(t, openSource(uri)(t)).Partitions()[0]
				if _, err := p.Read(context.Background()); err != nil {
					t.Fatal(err)
				}
				tt.change(t, dir)
				err := readToEnd(t, p)
				if onLoss == "" {
					if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
						t.Fatalf("got %v, want an error containing %q", err, tt.wantErr)
					}
					continue
				}
				if err != nil {
					t.Fatalf("on-loss=warn: %v", err)
				}
				if !strings.Contains(logs.String(), tt.wantErr) || !strings.Contains(logs.String(), "level=WARN") {
					t.Fatalf("on-loss=warn: the log lacks a warning %q:\n%s", tt.wantErr, logs)
				}
			}
		})
	}
}

// A checkpoint's file that is gone at a restart is a loss too.
func TestDirCheckpointFileGone(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a.log", "one\ntwo\n")
	p := connectortest.Start(t, openSource("dir:"+dir)(t)).Partitions()[0]
	err := p.Seek(connectors.Position(`{"done":[],"file":"gone.log","off":4,"line":1}`))
	if err == nil || !strings.Contains(err.Error(), "gone.log, the file the checkpoint was reading, is gone: its lines after line 1 are lost") {
		t.Fatalf("got %v", err)
	}
}

// readToEnd reads p until it is caught up, returning the first error.
func readToEnd(t *testing.T, p connectors.Partition) error {
	t.Helper()
	for range 10_000 {
		b, err := p.Read(context.Background())
		if err != nil {
			return err
		}
		if b.CaughtUp {
			return nil
		}
	}
	t.Fatal("never caught up")
	return nil
}

// captureLogs sends the default logger to a buffer for the test.
func captureLogs(t *testing.T) *lockedbuf.Buffer {
	t.Helper()
	var b lockedbuf.Buffer
	old := slog.Default()
	slog.SetDefault(slog.New(slog.NewTextHandler(&b, nil)))
	t.Cleanup(func() { slog.SetDefault(old) })
	return &b
}

// A line longer than max-record-size is one record carrying a
// TooLongError and a 1 KiB preview, read without holding the line: the
// bytes allocated while reading a 64 MiB line stay far below its size.
// The lines around it come through whole.
func TestLongLineIsDeadLetter(t *testing.T) {
	const size = 64 << 20
	for _, scheme := range []string{"dir", "file"} {
		t.Run(scheme, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "big.log")
			writeLongLine(t, path, "before\n", size, "\nafter\n")
			uri := scheme + ":" + dir + "?max-record-size=1MiB"
			if scheme == "file" {
				uri = scheme + ":" + path + "?max-record-size=1MiB&poll=1ms"
			}
			p := connectortest.Start(t, openSource(uri)(t)).Partitions()[0]
			var recs []connectors.Record
			alloc := allocated(func() {
				for len(recs) < 3 {
					b, err := p.Read(context.Background())
					if err != nil {
						t.Fatal(err)
					}
					recs = append(recs, b.Records...)
				}
			})
			if len(recs) != 3 || string(recs[0].Value) != "before" || string(recs[2].Value) != "after" || recs[2].Seq != 3 {
				t.Fatalf("got %d records: %q … %q", len(recs), preview(recs, 0), preview(recs, len(recs)-1))
			}
			var tl *connectors.TooLongError
			if !errors.As(recs[1].Err, &tl) || tl.Size != size+1 || tl.Max != 1<<20 || tl.Offset != 7 || recs[1].Seq != 2 {
				t.Fatalf("the long line: %+v, err %v", recs[1], recs[1].Err)
			}
			if len(recs[1].Value) != connectors.PreviewBytes || strings.Trim(string(recs[1].Value), "y") != "" {
				t.Fatalf("preview of %d bytes: %.40q", len(recs[1].Value), recs[1].Value)
			}
			for _, want := range []string{"record of 64 MiB (67108865 bytes) at byte 7", "maximum record size 1.0 MiB"} {
				if !strings.Contains(tl.Error(), want) {
					t.Fatalf("reason %q lacks %q", tl.Error(), want)
				}
			}
			if alloc > 8<<20 {
				t.Fatalf("reading a %d MiB line allocated %d MiB", size>>20, alloc>>20)
			}
		})
	}
}

func preview(recs []connectors.Record, i int) string {
	if i < 0 || i >= len(recs) {
		return ""
	}
	return string(recs[i].Value[:min(20, len(recs[i].Value))])
}

// writeLongLine writes head, n bytes of 'y' and tail to path, a chunk at a
// time.
func writeLongLine(t *testing.T, path, head string, n int, tail string) {
	t.Helper()
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	f.WriteString(head)
	chunk := bytes.Repeat([]byte("y"), 1<<20)
	for n > 0 {
		k := min(n, len(chunk))
		if _, err := f.Write(chunk[:k]); err != nil {
			t.Fatal(err)
		}
		n -= k
	}
	f.WriteString(tail)
}

// allocated returns the bytes the process allocated while f ran.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// A file: source follows tail -F: a truncated file is read again from its
// start with a warning that says what may be lost, and a removed file is
// waited for with a warning.
func TestFileTruncatedOrRemovedWarns(t *testing.T) {
	path := filepath.Join(t.TempDir(), "app.log")
	appendTo(t, path, numbered("line ", 1, 10))
	logs := captureLogs(t)
	p := startFile(t, "file:"+path+"?poll=1ms")
	readUntil(t, p, 10)
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	appendTo(t, path, "fresh\n")
	if got, _ := readUntil(t, p, 1); got[0] != "app.log line 1 fresh" {
		t.Fatalf("after truncation: %v", got)
	}
	if want := "app.log was truncated to 6 B after line 10 (offset 71 B); reading it again from its start"; !strings.Contains(logs.String(), want) {
		t.Fatalf("no warning %q:\n%s", want, logs)
	}
	os.Remove(path)
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(logs.String(), "file was removed; waiting for it to appear again") {
		if time.Now().After(deadline) {
			t.Fatalf("no warning of the removal:\n%s", logs)
		}
		if _, err := p.Read(context.Background()); err != nil {
			t.Fatal(err)
		}
	}
	appendTo(t, path, "again\n")
	if got, _ := readUntil(t, p, 1); got[0] != "app.log line 1 again" {
		t.Fatalf("after re-creation: %v", got)
	}
}

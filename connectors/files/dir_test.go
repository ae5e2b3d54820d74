package files_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/connectors/connectortest"
	"github.com/eddy-stream/eddy/connectors/gen"
)

func openSource(uri string) func(t *testing.T) connectors.Source {
	return func(t *testing.T) connectors.Source {
		t.Helper()
		s, err := connectors.OpenSource(uri, nil)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
}

// write puts a complete file into dir the way producers should: under a
// .tmp name, then renamed.
func write(t *testing.T, dir, name, content string) {
	t.Helper()
	tmp := filepath.Join(dir, name+".tmp")
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, name)); err != nil {
		t.Fatal(err)
	}
}

func gzipped(t *testing.T, s string) string {
	t.Helper()
	var b bytes.Buffer
	zw := gzip.NewWriter(&b)
	zw.Write([]byte(s))
	zw.Close()
	return b.String()
}

func TestDirConformance(t *testing.T) {
	dir := t.TempDir()
	if err := gen.WriteDir(dir, "netflow", 3, 5000, 4, 0.05); err != nil {
		t.Fatal(err)
	}
	write(t, dir, "x-crlf.txt", "a\r\n\r\nb\r\nlast without newline")
	write(t, dir, "y-empty.txt", "")
	write(t, dir, "y-only-newlines.txt", "\n\n\n")
	write(t, dir, "z.gz", gzipped(t, strings.Repeat("zipped line\n\n", 1500)+"tail"))
	connectortest.TestSource(t, openSource("dir:"+dir+"?poll=10ms"), connectortest.SourceOptions{})
}

func readDir(t *testing.T, uri string) connectortest.ReadResult {
	t.Helper()
	l := connectortest.Start(t, openSource(uri)(t))
	return connectortest.ReadAll(t, l.Partitions()[0], 0, 0)
}

func TestDirLines(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "b.txt", "b1\n\nb3\r\n\r\nb5")
	write(t, dir, "a.txt", "a1\n")
	write(t, dir, "c.gz", gzipped(t, "c1\n\nc3\n"))
	for _, skipped := range []string{".hidden", "_SUCCESS", "half.json.tmp"} {
		write(t, dir, skipped, "never\n")
	}
	os.Mkdir(filepath.Join(dir, "sub"), 0o755)
	write(t, filepath.Join(dir, "sub"), "d.txt", "never\n")
	os.Symlink(filepath.Join(dir, "a.txt"), filepath.Join(dir, "e-link.txt"))

	var got []string
	for _, r := range readDir(t, "dir:"+dir).Records() {
		got = append(got, r.Locate+" "+string(r.Value))
	}
	want := []string{
		"a.txt line 1 a1",
		"b.txt line 1 b1", "b.txt line 3 b3", "b.txt line 5 b5",
		"c.gz line 1 c1", "c.gz line 3 c3",
		"e-link.txt line 1 a1",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestDirBatchesStayInOneFile(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "a", strings.Repeat("x\n", 2500))
	write(t, dir, "b", strings.Repeat(strings.Repeat("y", 300<<10)+"\n", 7))
	res := readDir(t, "dir:"+dir)
	var shape []string
	for _, b := range res.Batches {
		if b.CaughtUp {
			shape = append(shape, "caught-up")
			continue
		}
		shape = append(shape, b.Where+":"+strconv.Itoa(len(b.Records)))
	}
	// 1024-record batches, and 1 MiB ones: four 300 KiB lines pass 1 MiB.
	want := "a:1024 a:1024 a:452 b:4 b:3 caught-up"
	if got := strings.Join(shape, " "); got != want {
		t.Fatalf("batches %s, want %s", got, want)
	}
	if !res.Batches[len(res.Batches)-1].CaughtUp {
		t.Fatal("the last batch is not CaughtUp")
	}
}

func TestDirNewFiles(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "part-1", "one\n")
	l := connectortest.Start(t, openSource("dir:"+dir+"?poll=5ms")(t))
	p := l.Partitions()[0]
	ctx := context.Background()

	b, err := p.Read(ctx)
	if err != nil || len(b.Records) != 1 {
		t.Fatalf("first read: %d records, %v", len(b.Records), err)
	}
	// Caught up at once the first time after records.
	b, err = p.Read(ctx)
	if err != nil || !b.CaughtUp || len(b.Records) != 0 {
		t.Fatalf("second read: %+v, %v", b, err)
	}
	// Then each read waits a poll interval and reports caught up again.
	b, err = p.Read(ctx)
	if err != nil || !b.CaughtUp {
		t.Fatalf("third read: %+v, %v", b, err)
	}
	write(t, dir, "part-0", "zero is lexically first but came late\n")
	write(t, dir, "part-2", "two\n")
	deadline := time.Now().Add(5 * time.Second)
	var got []string
	for len(got) < 2 && time.Now().Before(deadline) {
		b, err := p.Read(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range b.Records {
			got = append(got, b.Where+"="+string(r.Value))
		}
	}
	if strings.Join(got, ",") != "part-0=zero is lexically first but came late,part-2=two" {
		t.Fatalf("new files read as %v", got)
	}
	// A restart from the last position knows all three are done.
	b, _ = p.Read(ctx)
	l2 := connectortest.Start(t, openSource("dir:"+dir+"?poll=5ms")(t))
	p2 := l2.Partitions()[0]
	if err := p2.Seek(b.End); err != nil {
		t.Fatal(err)
	}
	if d := p2.Describe(b.End); d != "3 files done" {
		t.Errorf("Describe = %q", d)
	}
	b, err = p2.Read(ctx)
	if err != nil || len(b.Records) != 0 || !b.CaughtUp {
		t.Fatalf("restart re-read %d records, %v", len(b.Records), err)
	}
}

func TestDirReadHonoursContext(t *testing.T) {
	dir := t.TempDir()
	l := connectortest.Start(t, openSource("dir:"+dir+"?poll=1h")(t))
	p := l.Partitions()[0]
	if b, err := p.Read(context.Background()); err != nil || !b.CaughtUp {
		t.Fatalf("empty dir: %+v %v", b, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() {
		_, err := p.Read(ctx)
		done <- err
	}()
	cancel()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Read returned no error after cancel")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("Read did not return after cancel")
	}
}

func TestDirMaxFilesPerTrigger(t *testing.T) {
	dir := t.TempDir()
	for i, n := range []int{3, 2000, 0, 1, 5} {
		write(t, dir, "f"+strconv.Itoa(i), strings.Repeat("l\n", n))
	}
	res := readDir(t, "dir:"+dir+"?max-files-per-trigger=2")
	var got []string
	for _, b := range res.Batches {
		if b.Boundary {
			got = append(got, b.Where+":"+strconv.Itoa(len(b.Records)))
		}
	}
	// f1 ends with a batch of 2000-1024; f3 is the 4th file; f2 (empty)
	// counts as a file.
	if strings.Join(got, " ") != "f1:976 f3:1" {
		t.Fatalf("boundaries after %v, want f1:976 f3:1", got)
	}

	// The count of done files survives a restart: resume after f2 and the
	// boundary still falls on f3.
	var after connectors.Position
	for _, b := range res.Batches {
		if b.Where == "f1" && b.Boundary {
			after = b.End
		}
	}
	l := connectortest.Start(t, openSource("dir:"+dir+"?max-files-per-trigger=2")(t))
	p := l.Partitions()[0]
	if err := p.Seek(after); err != nil {
		t.Fatal(err)
	}
	res = connectortest.ReadAll(t, p, 0, 0)
	got = nil
	for _, b := range res.Batches {
		if b.Boundary {
			got = append(got, b.Where)
		}
	}
	if strings.Join(got, " ") != "f3" {
		t.Fatalf("boundaries after restart %v, want f3", got)
	}

	// The engine's --max-files-per-trigger arrives as an extra parameter.
	s, err := connectors.OpenSource("dir:"+dir, connectors.Params{"max-files-per-trigger": {"1"}})
	if err != nil {
		t.Fatal(err)
	}
	l = connectortest.Start(t, s)
	n := 0
	for _, b := range connectortest.ReadAll(t, l.Partitions()[0], 0, 0).Batches {
		if b.Boundary {
			n++
		}
	}
	if n != 5 {
		t.Fatalf("max-files-per-trigger=1 gave %d boundaries, want 5", n)
	}
}

func TestDirErrors(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "f.json", "{}\n")
	tests := []struct {
		name        string
		uri         string
		errContains string
	}{
		{"missing dir", "dir:" + dir + "/nope", "directory " + dir + "/nope does not exist"},
		{"a file", "dir:" + dir + "/f.json", "is not a directory"},
		{"bad max files", "dir:" + dir + "?max-files-per-trigger=x", `max-files-per-trigger="x"`},
		{"negative max files", "dir:" + dir + "?max-files-per-trigger=-1", "max-files-per-trigger=-1"},
		{"bad poll", "dir:" + dir + "?poll=often", `poll="often"`},
		{"no path", "dir:", "no path"},
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

func TestDirRemovedWhileRunning(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "d")
	os.Mkdir(dir, 0o755)
	l := connectortest.Start(t, openSource("dir:"+dir)(t))
	p := l.Partitions()[0]
	os.Remove(dir)
	_, err := p.Read(context.Background())
	if err == nil || !strings.Contains(err.Error(), dir) {
		t.Fatalf("got %v, want an error naming %s", err, dir)
	}
}

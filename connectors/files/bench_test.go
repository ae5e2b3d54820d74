package files_test

import (
	"bufio"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/connectors/connectortest"
	"github.com/eddy-stream/eddy/connectors/gen"
)

const benchLines = 200000

func benchDir(b *testing.B) string {
	b.Helper()
	dir := b.TempDir()
	if err := gen.WriteDir(dir, "netflow", 1, benchLines, 8, 0); err != nil {
		b.Fatal(err)
	}
	return dir
}

// BenchmarkDirSource reads 200k netflow lines through the dir: source.
func BenchmarkDirSource(b *testing.B) {
	dir := benchDir(b)
	b.ReportAllocs()
	for b.Loop() {
		s, _ := connectors.OpenSource("dir:"+dir, nil)
		l := connectortest.NewListener()
		s.Start(context.Background(), l)
		p := l.Partitions()[0]
		n := 0
		for {
			bt, err := p.Read(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			n += len(bt.Records)
			if bt.CaughtUp {
				break
			}
		}
		if n != benchLines {
			b.Fatalf("read %d lines", n)
		}
		s.Close()
	}
	b.ReportMetric(float64(benchLines*b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkScannerBaseline is plain Go reading the same files line by line.
func BenchmarkScannerBaseline(b *testing.B) {
	dir := benchDir(b)
	entries, _ := os.ReadDir(dir)
	b.ReportAllocs()
	for b.Loop() {
		n := 0
		for _, e := range entries {
			f, _ := os.Open(filepath.Join(dir, e.Name()))
			sc := bufio.NewScanner(f)
			for sc.Scan() {
				n++
			}
			f.Close()
		}
		if n != benchLines {
			b.Fatalf("read %d lines", n)
		}
	}
	b.ReportMetric(float64(benchLines*b.N)/b.Elapsed().Seconds(), "records/s")
}

func BenchmarkSinkJSONL(b *testing.B) {
	s, err := connectors.OpenSink("file:" + filepath.Join(b.TempDir(), "out.jsonl"))
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	rows := connectortest.DefaultRows()
	b.ReportAllocs()
	for b.Loop() {
		s.Write(context.Background(), rows)
	}
	b.ReportMetric(float64(len(rows)*b.N)/b.Elapsed().Seconds(), "rows/s")
}

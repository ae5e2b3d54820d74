package actors_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/internal/reference"

	"github.com/valyala/fastjson"

	"github.com/eddy-stream/eddy/actors"
	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/connectors/files"
	"github.com/eddy-stream/eddy/connectors/gen"
	"github.com/eddy-stream/eddy/internal/benchrun"
	"github.com/eddy-stream/eddy/internal/memio"
	"github.com/eddy-stream/eddy/scripting"
	"github.com/eddy-stream/eddy/state"
)

// BenchmarkNetflow runs the netflow pipeline (scripts/netflow_webservers.lua)
// over generated files and, in the same process, a plain-Go baseline doing
// the same computation: read the files line by line, decode the two fields
// with the same JSON parser, filter, count per device, take the top 20. It
// checks both top 20s are equal row by row and prints, for each side,
// records/s, CPU, cores used, allocations per record, peak heap and RSS
// (internal/benchrun), and batch latencies; then peak heap for 1M and 10M
// records from the generator, to show memory grows with keys, not records.
// Run it with `just bench`.
func BenchmarkNetflow(b *testing.B) {
	records := int64(1_000_000)
	if testing.Short() {
		records = 200_000
	}
	dir := filepath.Join(b.TempDir(), "flows")
	if err := gen.WriteDir(dir, "netflow", 7, records, 16, 0); err != nil {
		b.Fatal(err)
	}
	warm(dir) // the page cache serves both runs alike

	var want, got string
	var baseLat, eddyLat *actors.Latency
	base := benchrun.Measure("baseline (plain Go: bufio + fastjson + map)", records, func() { want, baseLat = baseline(b, dir) })
	eddy := benchrun.Measure("eddy (Lua + actors + Badger checkpoints)", records, func() { got, eddyLat = runEddy(b, "dir:"+dir) })
	if err := reference.DiffRows(want, got); err != nil {
		b.Fatalf("eddy and the baseline disagree: %v", err)
	}
	b.ReportMetric(eddy.Rate(), "eddy-rec/s")
	b.ReportMetric(base.Rate(), "baseline-rec/s")
	benchrun.Print(fmt.Sprintf("netflow top 20 over %d records in 16 files, both top 20s equal row by row", records), base, eddy)
	fmt.Printf("  batch latency p50/p99: baseline %v / %v, eddy %v / %v\n", baseLat.Quantile(0.5), baseLat.Quantile(0.99),
		eddyLat.Quantile(0.5), eddyLat.Quantile(0.99))

	if testing.Short() {
		return
	}
	fmt.Printf("\nmemory against records and keys (gen:netflow: its Zipf tail brings new devices as records grow)\n")
	for _, n := range []int64{1_000_000, 10_000_000} {
		m := benchrun.Measure("", n, func() { runEddy(b, fmt.Sprintf("gen:netflow?count=%d&seed=7", n)) })
		fmt.Printf("  %9d records: %10.0f records/s, %5.2f cores, %6d keys, peak heap %7.1f MiB (%.0f bytes a key), peak RSS %7.1f MiB\n",
			n, m.Rate(), m.Cores(), lastKeys, float64(m.PeakHeap)/(1<<20), float64(m.PeakHeap)/float64(max(lastKeys, 1)), float64(m.PeakRSS)/(1<<20))
	}
}

func warm(dir string) {
	paths, _ := filepath.Glob(filepath.Join(dir, "*"))
	buf := make([]byte, 1<<20)
	for _, p := range paths {
		f, _ := os.Open(p)
		for {
			if _, err := f.Read(buf); err != nil {
				break
			}
		}
		f.Close()
	}
}

// baseline is the same computation in plain Go; it returns the top 20 as
// the script's result lines.
func baseline(b *testing.B, dir string) (string, *actors.Latency) {
	lat := &actors.Latency{}
	paths, _ := filepath.Glob(filepath.Join(dir, "part-*"))
	sort.Strings(paths)
	counts := map[string]int64{}
	var p fastjson.Parser
	for _, path := range paths {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		n, t0 := 0, time.Now()
		for sc.Scan() {
			if dev, ok := reference.WebFlowDevice(&p, sc.Bytes()); ok {
				counts[string(dev)]++
			}
			if n++; n == 1024 {
				lat.Observe(time.Since(t0))
				n, t0 = 0, time.Now()
			}
		}
		f.Close()
	}
	return reference.Top(counts, 20), lat
}

// runEddy runs the netflow script on source and returns its result lines.
func runEddy(b *testing.B, source string) (string, *actors.Latency) {
	p, err := scripting.Load("../scripts/netflow_webservers.lua")
	if err != nil {
		b.Fatal(err)
	}
	var src connectors.Source
	if t, _ := connectors.Parse(source); t.Scheme == "dir" {
		src, err = files.NewDir(t.Path, files.DirConfig{})
	} else {
		src, err = gen.Open("netflow", t)
	}
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	rows, stats, keys := runBench(b, actors.Config{Pipeline: p, Source: src})
	lastKeys = keys
	var sb strings.Builder
	for _, r := range rows {
		sb.Write(connectors.AppendJSON(nil, r))
		sb.WriteByte('\n')
	}
	return sb.String(), &stats.BatchLatency
}

// runBench runs cfg to the end of its input with a fresh store and the
// results in memory; it returns the result rows, the run's stats and the
// state keys of its final checkpoint.
func runBench(b *testing.B, cfg actors.Config) ([]connectors.Row, *actors.Stats, int64) {
	store, err := state.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer store.Close()
	results := &memio.Sink{}
	cfg.Store, cfg.Results, cfg.Stats, cfg.UntilIdle, cfg.MaxErrors = store, results, &actors.Stats{}, true, -1
	if _, err := actors.Run(context.Background(), cfg); err != nil {
		b.Fatal(err)
	}
	var keys int64
	if cp, err := store.Last(); err == nil {
		keys = cp.Keys
	}
	return results.Rows(), cfg.Stats, keys
}

// lastKeys is the state keys of the last runEddy's final checkpoint.
var lastKeys int64

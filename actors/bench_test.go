package actors_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/internal/reference"

	"github.com/valyala/fastjson"

	"github.com/eddy-stream/eddy/actors"
	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/connectors/files"
	"github.com/eddy-stream/eddy/connectors/gen"
	"github.com/eddy-stream/eddy/internal/memio"
	"github.com/eddy-stream/eddy/scripting"
	"github.com/eddy-stream/eddy/state"
)

// BenchmarkNetflow runs the netflow pipeline (scripts/netflow_webservers.lua)
// over generated files and, in the same process, a plain-Go baseline doing
// the same computation: read the files line by line, decode the two fields
// with the same JSON parser, filter, count per device, take the top 20. It
// prints both rates, their ratio, batch latencies and peak heap, then peak
// heap for 1M and 10M records from the generator, to show memory grows
// with keys, not records. Run it with `just bench`.
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
	base := measure(func() (lat *actors.Latency) { want, lat = baseline(b, dir); return lat })
	eddy := measure(func() (lat *actors.Latency) { got, lat = runEddy(b, "dir:"+dir); return lat })
	if err := reference.DiffRows(want, got); err != nil {
		b.Fatalf("eddy and the baseline disagree: %v", err)
	}
	b.ReportMetric(float64(records)/eddy.took.Seconds(), "eddy-rec/s")
	b.ReportMetric(float64(records)/base.took.Seconds(), "baseline-rec/s")
	fmt.Printf("\nnetflow top 20 over %d records in 16 files (GOMAXPROCS=%d)\n", records, runtime.GOMAXPROCS(0))
	fmt.Printf("  %-44s %12s %12s %12s %14s\n", "", "records/s", "batch p50", "batch p99", "peak heap")
	for _, r := range []struct {
		name string
		m    measurement
	}{{"baseline (plain Go: bufio + fastjson + map)", base}, {"eddy (Lua + actors + Badger checkpoints)", eddy}} {
		fmt.Printf("  %-44s %12.0f %12v %12v %11.1f MiB\n", r.name, float64(records)/r.m.took.Seconds(),
			r.m.lat.Quantile(0.5), r.m.lat.Quantile(0.99), float64(r.m.peakHeap)/(1<<20))
	}
	fmt.Printf("  ratio eddy/baseline: %.2f\n", base.took.Seconds()/eddy.took.Seconds())

	if testing.Short() {
		return
	}
	fmt.Printf("\nmemory against records and keys (gen:netflow: its Zipf tail brings new devices as records grow)\n")
	for _, n := range []int64{1_000_000, 10_000_000} {
		m := measure(func() *actors.Latency {
			_, lat := runEddy(b, fmt.Sprintf("gen:netflow?count=%d&seed=7", n))
			return lat
		})
		fmt.Printf("  %9d records: %10.0f records/s, %6d keys, peak heap %7.1f MiB (%.0f bytes a key)\n", n, float64(n)/m.took.Seconds(),
			lastKeys, float64(m.peakHeap)/(1<<20), float64(m.peakHeap)/float64(max(lastKeys, 1)))
	}
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	fmt.Printf("  process peak RSS (all runs): %.1f MiB\n", float64(ru.Maxrss)/1024)
}

type measurement struct {
	took     time.Duration
	peakHeap uint64
	lat      *actors.Latency
}

// measure runs fn after a GC, sampling the heap every 10ms.
func measure(fn func() *actors.Latency) measurement {
	runtime.GC()
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	var m measurement
	start := time.Now()
	m.lat = fn()
	m.took = time.Since(start)
	close(stop)
	<-sampled
	m.peakHeap = peak.Load()
	return m
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

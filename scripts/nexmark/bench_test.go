package nexmark_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/internal/nexmark"
)

// flinkPerCore is Flink's throughput per core in the example result table
// of github.com/nexmark/nexmark's GUIDE_V1.md (100M events, 8 one-slot
// TaskManagers, RocksDB, exactly-once checkpoints every 3 minutes), in
// events per second: for context, not a like-for-like comparison.
var flinkPerCore = map[string]float64{
	"q0": 155.02e3, "q1": 157.94e3, "q2": 175.21e3, "q3": 152.12e3, "q4": 34.33e3,
	"q5": 22.14e3, "q7": 12.33e3, "q8": 146.14e3, "q9": 14.24e3, "q11": 39.7e3,
}

// measured is one run: wall time, CPU time (user + system) and peak RSS.
type measured struct {
	wall, cpu time.Duration
	peakRSS   int64 // bytes
}

func cpuNow() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// runEddy runs q's script on dir's files as a process of its own.
func runEddy(b *testing.B, q query, dir, out string) measured {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, eddyBin, "run", q.name+".lua", "--source", dirSource(q, dir),
		"--sink", "file:"+out, "--until-idle", "--progress=false")
	cmd.Stderr = os.Stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		b.Fatalf("eddy run %s.lua: %v", q.name, err)
	}
	ps := cmd.ProcessState
	ru := ps.SysUsage().(*syscall.Rusage)
	return measured{wall: time.Since(start), cpu: ps.UserTime() + ps.SystemTime(), peakRSS: ru.Maxrss << 10}
}

// baseline reads q's stream and computes its reference in this process.
func baseline(b *testing.B, q query, dir string) ([]any, measured) {
	b.Helper()
	runtime.GC()
	start, cpu := time.Now(), cpuNow()
	e := &events{dir: dir}
	for _, s := range q.sources {
		switch s {
		case "person":
			e.persons = readStream[nexmark.Person](b, filepath.Join(dir, "person"))
		case "auction":
			e.auctions = readStream[nexmark.Auction](b, filepath.Join(dir, "auction"))
		case "bid":
			e.bids = readStream[nexmark.Bid](b, filepath.Join(dir, "bid"))
		default:
			b.Fatalf("%s reads %s: no such stream", q.name, s)
		}
	}
	want := q.want(e)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return want, measured{wall: time.Since(start), cpu: cpuNow() - cpu, peakRSS: int64(ms.HeapAlloc)}
}

// BenchmarkNexmark runs each script of scripts/nexmark on the first
// EDDY_BENCH_EVENTS events (default 1,000,000) of gen:nexmark, beside the
// plain-Go reference in this process, checks the rows are equal and prints
// events per second and per core beside Flink's published figures.
func BenchmarkNexmark(b *testing.B) {
	events := int64(1_000_000)
	if s := os.Getenv("EDDY_BENCH_EVENTS"); s != "" {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil || n < 1 {
			b.Fatalf("EDDY_BENCH_EVENTS=%q: want a positive number of events", s)
		}
		events = n
	}
	dir := b.TempDir()
	files := max(2, runtime.NumCPU())
	eddy(b, "gen", "nexmark", "--count", strconv.FormatInt(events, 10), "--seed", "42", "--files", strconv.Itoa(files), "--out", dir)
	for range b.N {
		fmt.Printf("\nNexmark on eddy: %d events (gen:nexmark, 10,000 events/s of event time), %d files per stream, %d CPUs\n",
			events, files, runtime.NumCPU())
		fmt.Printf("events/s count every event of the run, as Nexmark does; each eddy query reads only its streams (bids: 92%%)\n")
		fmt.Printf("%-5s %-9s %8s %12s %7s %12s %10s %10s  %s\n",
			"query", "run", "time", "events/s", "cores", "events/s/core", "peak mem", "Flink/core", "rows")
		// Every eddy run first: a child's peak RSS counts the memory this
		// process had when it forked, kept small until the baselines run.
		runs := make([]measured, len(queries))
		for i, q := range queries {
			runs[i] = runEddy(b, q, dir, filepath.Join(dir, q.name+".jsonl"))
		}
		for i, q := range queries {
			want, base := baseline(b, q, dir)
			out, err := os.ReadFile(filepath.Join(dir, q.name+".jsonl"))
			if err != nil {
				b.Fatal(err)
			}
			if err := nexmark.Compare(want, q.got(b, out), false); err != nil {
				b.Fatalf("%s: eddy's rows differ from the reference's: %v", q.name, err)
			}
			row := func(name string, m measured, flink string, rows string) {
				fmt.Printf("%-5s %-9s %7.2fs %12.0f %7.2f %12.0f %7.0f MiB %10s  %s\n", q.name, name, m.wall.Seconds(),
					float64(events)/m.wall.Seconds(), m.cpu.Seconds()/m.wall.Seconds(), float64(events)/m.cpu.Seconds(),
					float64(m.peakRSS)/(1<<20), flink, rows)
			}
			row("eddy", runs[i], fmt.Sprintf("%.0f", flinkPerCore[q.name]), fmt.Sprintf("%d, equal", len(want)))
			row("plain Go", base, "", "reference (encoding/json)")
		}
		fmt.Printf("peak mem: eddy's peak RSS; the plain-Go row's is its heap when the query is done. Flink/core: nexmark/nexmark GUIDE_V1.md's example table.\n")
	}
}

// Package benchrun measures one run of a benchmark's side (eddy or its
// plain-Go baseline) in the same process and prints the sides in one
// table: records/s, CPU seconds, cores used, allocations per record, peak
// heap and peak RSS. The benches of actors and connectors/kafka use it.
package benchrun

import (
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Run is what one side took over its records.
type Run struct {
	Name    string
	Records int64
	Took    time.Duration
	// CPU is the process's user and system time over the run (the whole
	// process: with one side running at a time, that side's).
	CPU time.Duration
	// Mallocs counts heap allocations over the run.
	Mallocs uint64
	// PeakHeap and PeakRSS are sampled every 10ms (PeakHeap from
	// runtime/metrics, which, unlike runtime.ReadMemStats, does not stop
	// the world: a sampler that did stopped every goroutine 100 times a
	// second, which cost a parallel side far more than a one-goroutine
	// one); PeakRSS is the
	// process's resident set (Go keeps freed pages a while, so a later
	// side may see an earlier side's pages: the runs start after
	// debug.FreeOSMemory to limit that).
	PeakHeap, PeakRSS uint64
}

// Measure runs fn (one side over records) after a GC and a return of freed
// memory to the OS, sampling heap and RSS every 10ms.
func Measure(name string, records int64, fn func()) Run {
	debug.FreeOSMemory()
	var peakHeap, peakRSS atomic.Uint64
	stop, sampled := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			peakHeap.Store(max(peakHeap.Load(), heapInuse()))
			peakRSS.Store(max(peakRSS.Load(), rss()))
			select {
			case <-stop:
				return
			case <-t.C:
			}
		}
	}()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	cpu0, start := cpuTime(), time.Now()
	fn()
	r := Run{Name: name, Records: records, Took: time.Since(start), CPU: cpuTime() - cpu0}
	runtime.ReadMemStats(&after)
	close(stop)
	<-sampled
	r.Mallocs = after.Mallocs - before.Mallocs
	r.PeakHeap, r.PeakRSS = peakHeap.Load(), peakRSS.Load()
	return r
}

// Rate is records per second of wall time.
func (r Run) Rate() float64 { return float64(r.Records) / r.Took.Seconds() }

// Cores is CPU time over wall time: how many cores the run kept busy.
func (r Run) Cores() float64 { return r.CPU.Seconds() / r.Took.Seconds() }

// Print writes the runs as a table, then eddy's (the last run's) rate and
// CPU per record against the first's.
func Print(title string, runs ...Run) {
	fmt.Printf("\n%s (GOMAXPROCS=%d)\n", title, runtime.GOMAXPROCS(0))
	fmt.Printf("  %-46s %11s %8s %8s %6s %11s %10s %10s\n", "", "records/s", "wall", "CPU", "cores", "allocs/rec", "peak heap", "peak RSS")
	for _, r := range runs {
		fmt.Printf("  %-46s %11.0f %8s %8s %6.2f %11.2f %6.1f MiB %6.1f MiB\n", r.Name, r.Rate(),
			r.Took.Round(time.Millisecond), r.CPU.Round(time.Millisecond), r.Cores(),
			float64(r.Mallocs)/float64(max(r.Records, 1)), mib(r.PeakHeap), mib(r.PeakRSS))
	}
	if len(runs) >= 2 {
		base, eddy := runs[0], runs[len(runs)-1]
		fmt.Printf("  ratio eddy/baseline: %.2f records/s, %.2f CPU per record\n",
			eddy.Rate()/base.Rate(), eddy.CPU.Seconds()/max(base.CPU.Seconds(), 1e-9))
	}
}

// heapInuse reads runtime.MemStats's HeapInuse, the bytes of the heap's
// spans in use, without stopping the world: it is the sum of these
// runtime/metrics.
func heapInuse() uint64 {
	samples := []metrics.Sample{
		{Name: "/memory/classes/heap/objects:bytes"},
		{Name: "/memory/classes/heap/unused:bytes"},
	}
	metrics.Read(samples)
	var n uint64
	for _, s := range samples {
		if s.Value.Kind() == metrics.KindUint64 {
			n += s.Value.Uint64()
		}
	}
	return n
}

func mib(n uint64) float64 { return float64(n) / (1 << 20) }

// ReportCPU starts measuring the process's CPU time (user and system,
// GC included) for a Go benchmark; the function it returns reports it as
// cpu-ns/op, which a loaded machine inflates less than ns/op.
func ReportCPU(b *testing.B) func() {
	start := cpuTime()
	return func() { b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op") }
}

// CPU is the process's user and system time so far: a side that marks a
// moment within its run (a restore serving before its first checkpoint)
// takes the difference of two.
func CPU() time.Duration { return cpuTime() }

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// rss is the process's resident set in bytes, 0 where /proc is missing.
func rss() uint64 {
	b, err := os.ReadFile("/proc/self/statm")
	if err != nil {
		return 0
	}
	f := strings.Fields(string(b))
	if len(f) < 2 {
		return 0
	}
	pages, err := strconv.ParseUint(f[1], 10, 64)
	if err != nil {
		return 0
	}
	return pages * uint64(os.Getpagesize())
}

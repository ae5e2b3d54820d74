package kafka_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/internal/testenv"
)

const benchTableRows = 100_000

// BenchmarkTableBootstrap measures what a start costs: reading a
// 100,000-row compacted topic into a table, by eddy's Table in memory (no
// --state), kept in a new state directory, restarted on a kept one, and by
// a plain franz-go loop doing the in-memory work (read to the end offsets,
// decode each JSON value into a map, keep the last per key), in the same
// process.
func BenchmarkTableBootstrap(b *testing.B) {
	brokers := testenv.Kafka(b)
	topic := compactedTopic(b, brokers, 4)
	fillTable(b, brokers, topic)
	bootstrap := func(b *testing.B, stateDir func() string) {
		b.ReportAllocs()
		cpu := cpuTime()
		for range b.N {
			l, err := connectors.OpenLookup(uri(brokers, topic, ""), "")
			if err != nil {
				b.Fatal(err)
			}
			tb := l.(connectors.KeptTable)
			if dir := stateDir(); dir != "" {
				tb.KeepIn(dir)
			}
			if err := tb.Start(b.Context()); err != nil {
				b.Fatal(err)
			}
			rows := tb.(interface{ Len() int }).Len()
			tb.Close()
			if rows != benchTableRows {
				b.Fatalf("%d rows, want %d", rows, benchTableRows)
			}
		}
		reportPerRow(b, cpu)
	}
	b.Run("eddy", func(b *testing.B) { bootstrap(b, func() string { return "" }) })
	// kept: each start in a new state directory, so it reads the whole topic.
	b.Run("eddy-kept", func(b *testing.B) { bootstrap(b, func() string { return b.TempDir() }) })
	// kept-restart: every start after the first finds the table stored and
	// reads no record (the CPU is opening the store and checking its rows).
	b.Run("eddy-kept-restart", func(b *testing.B) {
		dir := b.TempDir()
		bootstrap(b, func() string { return dir })
	})
	b.Run("plain", func(b *testing.B) {
		b.ReportAllocs()
		cpu := cpuTime()
		for range b.N {
			if n := plainTable(b, brokers, topic); n != benchTableRows {
				b.Fatalf("%d rows, want %d", n, benchTableRows)
			}
		}
		reportPerRow(b, cpu)
	})
}

// cpuTime is the process's user and system CPU time so far: on a shared
// machine the wall clock says little.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// reportPerRow reports the CPU and wall time per table row, and the cores
// used, since cpu (cpuTime at the start).
func reportPerRow(b *testing.B, cpu time.Duration) {
	used := cpuTime() - cpu
	rows := float64(b.N * benchTableRows)
	b.ReportMetric(float64(used.Nanoseconds())/rows, "cpu-ns/row")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/rows, "wall-ns/row")
	b.ReportMetric(used.Seconds()/b.Elapsed().Seconds(), "cores")
}

func fillTable(b *testing.B, brokers []string, topic string) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	recs := make([]*kgo.Record, 0, benchTableRows)
	for i := range benchTableRows {
		recs = append(recs, &kgo.Record{Key: fmt.Appendf(nil, "user-%d", i),
			Value: fmt.Appendf(nil, `{"name":"name %d","tier":"gold","level":%d,"score":%d.5}`, i, i%10, i)})
	}
	if err := cl.ProduceSync(b.Context(), recs...).FirstErr(); err != nil {
		b.Fatal(err)
	}
}

// plainTable is the baseline: a franz-go consumer reading the topic to its
// end offsets into a map of decoded rows.
func plainTable(b *testing.B, brokers []string, topic string) int {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(b.Context(), time.Minute)
	defer cancel()
	ends, err := kadm.NewClient(cl).ListEndOffsets(ctx, topic)
	if err != nil {
		b.Fatal(err)
	}
	left := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[o.Partition] = o.Offset
		}
	})
	rows := map[string]map[string]any{}
	for len(left) > 0 && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			var row map[string]any
			d := json.NewDecoder(bytesReader(r.Value))
			d.UseNumber()
			if err := d.Decode(&row); err != nil {
				b.Fatal(err)
			}
			rows[string(r.Key)] = row
			if r.Offset+1 >= left[r.Partition] {
				delete(left, r.Partition)
			}
		})
	}
	return len(rows)
}

func bytesReader(b []byte) *bytes.Reader { return bytes.NewReader(b) }

// BenchmarkTableLookup measures Get on a 100,000-row table: kept in
// memory (no --state), kept in the state with a cache of every row, and
// with a cache of a tenth of them (most lookups read Badger and decode the
// row), beside the plain-Go baseline of a map of decoded rows. Keys are
// looked up in a fixed pseudo-random order. heap-MiB is the live heap
// with the table open (after a GC), which the cache bounds.
func BenchmarkTableLookup(b *testing.B) {
	brokers := testenv.Kafka(b)
	topic := compactedTopic(b, brokers, 4)
	fillTable(b, brokers, topic)
	keys := make([]string, 1<<16)
	for i := range keys {
		keys[i] = fmt.Sprintf("user-%d", (uint64(i)*2654435761)%benchTableRows)
	}
	lookups := func(b *testing.B, get func(string) (map[string]any, bool, error)) {
		b.ReportAllocs()
		b.ResetTimer()
		cpu := cpuTime()
		for i := range b.N {
			if _, found, err := get(keys[i&(len(keys)-1)]); err != nil || !found {
				b.Fatalf("Get(%s): %v, %v", keys[i&(len(keys)-1)], found, err)
			}
		}
		used := cpuTime() - cpu
		b.ReportMetric(float64(used.Nanoseconds())/float64(b.N), "cpu-ns/lookup")
		b.ReportMetric(float64(b.N)/used.Seconds(), "lookups/cpu-s")
		reportHeap(b) // after ResetTimer, which drops metrics reported before it
	}
	table := func(b *testing.B, params, stateDir string) connectors.Table {
		l, err := connectors.OpenLookup(uri(brokers, topic, params), "")
		if err != nil {
			b.Fatal(err)
		}
		tb := l.(connectors.KeptTable)
		if stateDir != "" {
			tb.KeepIn(stateDir)
		}
		if err := tb.Start(b.Context()); err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { tb.Close() })
		return tb
	}
	b.Run("memory", func(b *testing.B) {
		tb := table(b, "", "")
		lookups(b, tb.Get)
	})
	b.Run("kept-cache-all", func(b *testing.B) {
		tb := table(b, "", b.TempDir())
		for _, k := range keys {
			tb.Get(k)
		}
		lookups(b, tb.Get)
	})
	b.Run("kept-cache-tenth", func(b *testing.B) {
		tb := table(b, fmt.Sprintf("cache-rows=%d", benchTableRows/10), b.TempDir())
		for _, k := range keys {
			tb.Get(k)
		}
		lookups(b, tb.Get)
	})
	b.Run("plain", func(b *testing.B) {
		rows := map[string]map[string]any{}
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			b.Fatal(err)
		}
		defer cl.Close()
		ctx, cancel := context.WithTimeout(b.Context(), time.Minute)
		defer cancel()
		for len(rows) < benchTableRows && ctx.Err() == nil {
			cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
				var row map[string]any
				d := json.NewDecoder(bytesReader(r.Value))
				d.UseNumber()
				if err := d.Decode(&row); err != nil {
					b.Fatal(err)
				}
				rows[string(r.Key)] = row
			})
		}
		lookups(b, func(k string) (map[string]any, bool, error) { row, ok := rows[k]; return row, ok, nil })
	})
}

// reportHeap reports the live heap after a GC.
func reportHeap(b *testing.B) {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapAlloc)/(1<<20), "heap-MiB")
}

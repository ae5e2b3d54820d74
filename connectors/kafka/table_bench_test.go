package kafka_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/internal/testenv"
)

const benchTableRows = 100_000

// BenchmarkTableBootstrap measures what a start (or a restart: the table
// is not kept in the state) costs: reading a 100,000-row compacted topic
// into a table, by eddy's Table and by a plain franz-go loop doing the same
// work (read to the end offsets, decode each JSON value into a map, keep
// the last per key), in the same process.
func BenchmarkTableBootstrap(b *testing.B) {
	brokers := testenv.Kafka(b)
	topic := compactedTopic(b, brokers, 4)
	fillTable(b, brokers, topic)
	b.Run("eddy", func(b *testing.B) {
		b.ReportAllocs()
		cpu := cpuTime()
		for range b.N {
			l, err := connectors.OpenLookup(uri(brokers, topic, ""), "")
			if err != nil {
				b.Fatal(err)
			}
			tb := l.(connectors.Table)
			if err := tb.Start(b.Context()); err != nil {
				b.Fatal(err)
			}
			rows, _ := tb.Load(b.Context())
			tb.Close()
			if len(rows) != benchTableRows {
				b.Fatalf("%d rows, want %d", len(rows), benchTableRows)
			}
		}
		reportPerRow(b, cpu)
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

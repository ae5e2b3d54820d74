package kafka_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/connectors/connectortest"
	"github.com/eddy-stream/eddy/connectors/kafka"
	"github.com/eddy-stream/eddy/internal/benchrun"
	"github.com/eddy-stream/eddy/internal/testenv"
)

// BenchmarkKafkaSource is the Kafka source's share of bench-kafka: it
// fills a 4-partition topic with the same netflow records (LZ4), then
// reads it with eddy's source alone (every partition read on a goroutine
// of its own, each batch released as the engine releases it, nothing
// parsed) and with a plain franz-go loop that polls the same records.
// Both count the records and add up their values' lengths, which must
// agree. It prints each side's CPU, cores, allocations and bytes
// allocated per record; the source's time includes joining its group and
// closing, as in a run. EDDY_BENCH_RECORDS (1M), EDDY_BENCH_ROUNDS (1,
// the sides in turn) and EDDY_BENCH_FETCHERS (the source's default) set
// the sizes.
func BenchmarkKafkaSource(b *testing.B) {
	brokers := testenv.Kafka(b)
	records := int64(testenv.BenchSize(b, "EDDY_BENCH_RECORDS", 1_000_000))
	topic := testenv.NewTopic(b, brokers, 4)
	fill(b, brokers, topic, records)
	rounds := testenv.BenchSize(b, "EDDY_BENCH_ROUNDS", 1)
	var cpus []float64
	for round := 1; round <= rounds; round++ {
		var plainSum, srcSum readSum
		var plainBytes, srcBytes uint64
		plain := benchrun.Measure("plain franz-go loop (poll, value lengths)", records, func() {
			plainBytes = allocated(func() { plainSum = plainRead(b, brokers, topic) })
		})
		src := benchrun.Measure("eddy's kafka source (Read, Release)", records, func() {
			srcBytes = allocated(func() { srcSum = sourceRead(b, brokers, topic) })
		})
		if plainSum != srcSum || plainSum.records != records {
			b.Fatalf("the plain loop read %+v, the source %+v, of %d records", plainSum, srcSum, records)
		}
		benchrun.Print(fmt.Sprintf("the kafka source alone over a pre-filled topic, 4 partitions, same records and value bytes, round %d of %d", round, rounds), plain, src)
		fmt.Printf("  bytes allocated per record: plain %.0f, source %.0f\n", float64(plainBytes)/float64(records), float64(srcBytes)/float64(records))
		cpus = append(cpus, src.CPU.Seconds()/max(plain.CPU.Seconds(), 1e-9))
	}
	if rounds > 1 {
		fmt.Printf("  over %d rounds, source/plain CPU per record: %.2f-%.2f\n", rounds, slices.Min(cpus), slices.Max(cpus))
	}
}

// readSum is what a side read: records and their values' bytes.
type readSum struct{ records, bytes int64 }

// allocated runs fn and returns the bytes the process allocated meanwhile.
func allocated(fn func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	fn()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// plainRead polls the topic from its start to its end with one franz-go
// client.
func plainRead(b *testing.B, brokers []string, topic string) readSum {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
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
	var sum readSum
	for len(left) > 0 {
		fs := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			b.Fatalf("the plain loop read %d records in 5 minutes", sum.records)
		}
		fs.EachRecord(func(r *kgo.Record) {
			if end, ok := left[r.Partition]; ok && r.Offset+1 >= end {
				delete(left, r.Partition)
			}
			sum.records++
			sum.bytes += int64(len(r.Value))
		})
	}
	return sum
}

// sourceRead reads every partition of the topic with eddy's source until
// each is caught up, releasing each batch once counted.
func sourceRead(b *testing.B, brokers []string, topic string) readSum {
	src, err := kafka.NewSource(kafka.SourceConfig{Conn: kafka.Conn{Brokers: brokers, Topics: []string{topic}},
		Fetchers: testenv.BenchSize(b, "EDDY_BENCH_FETCHERS", 0),
		Group:    topic + "-src-" + strconv.FormatInt(time.Now().UnixNano(), 36)})
	if err != nil {
		b.Fatal(err)
	}
	defer src.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	l := connectortest.NewListener()
	if err := src.Start(ctx, l); err != nil {
		b.Fatal(err)
	}
	l.WaitPartitions(b, 4, time.Minute)
	var (
		mu    sync.Mutex
		sum   readSum
		wg    sync.WaitGroup
		first error
		cp    = connectors.Checkpoint{ID: 1, Positions: map[string]connectors.Position{}}
	)
	for _, p := range l.Partitions() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s, end, err := readPartition(ctx, p)
			mu.Lock()
			defer mu.Unlock()
			sum.records += s.records
			sum.bytes += s.bytes
			cp.Positions[p.ID()] = end
			if first == nil {
				first = err
			}
		}()
	}
	wg.Wait()
	if first != nil {
		b.Fatal(first)
	}
	// As the engine does at the end of a run: the source commits the
	// checkpoint's offsets, and Close finds them covered (it waits up to
	// a second for a checkpoint of what was read).
	if err := src.Checkpointed(ctx, cp); err != nil {
		b.Fatal(err)
	}
	return sum
}

// readPartition reads p until a batch says it is caught up, and returns
// where it ended.
func readPartition(ctx context.Context, p connectors.Partition) (readSum, connectors.Position, error) {
	var sum readSum
	for {
		batch, err := p.Read(ctx)
		if err != nil {
			return sum, nil, fmt.Errorf("%s after %d records: %w", p.ID(), sum.records, err)
		}
		for _, r := range batch.Records {
			sum.records++
			sum.bytes += int64(len(r.Value))
		}
		if batch.Release != nil {
			batch.Release()
		}
		if batch.CaughtUp {
			return sum, batch.End, nil
		}
	}
}

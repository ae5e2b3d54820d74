package kafka_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/internal/reference"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/valyala/fastjson"

	"github.com/eddy-stream/eddy/actors"
	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/connectors/gen"
	"github.com/eddy-stream/eddy/connectors/kafka"
	"github.com/eddy-stream/eddy/internal/benchrun"
	"github.com/eddy-stream/eddy/internal/memio"
	"github.com/eddy-stream/eddy/internal/testenv"
	"github.com/eddy-stream/eddy/scripting"
	"github.com/eddy-stream/eddy/state"
)

// BenchmarkKafkaNetflow fills a 4-partition topic with generated netflow
// records, then reads it twice: with the netflow pipeline
// (scripts/netflow_webservers.lua) on eddy's Kafka source, and with a
// plain franz-go consumer loop doing the same count in Go. It prints both
// rates and their ratio. Then it measures end-to-end latency, from produce
// time to output time, at a fixed input rate: eddy's records pipeline
// beside the same plain loop. Both top 20s must be equal row by row; the
// table gives each side's CPU, cores, allocations and peak memory
// (internal/benchrun). Run it with `just bench-kafka`
// (EDDY_BENCH_RECORDS overrides the million records; EDDY_BENCH_ROUNDS=N
// reads the topic N times with each, in turn, and prints the ratios'
// range: on a loaded machine one round says little; EDDY_BENCH_FETCHERS=N
// gives eddy's source N fetching clients instead of one per core;
// EDDY_BENCH_TIMELINE=1 prints where each eddy run's wall time went).
func BenchmarkKafkaNetflow(b *testing.B) {
	brokers := testenv.Kafka(b)
	records := int64(testenv.BenchSize(b, "EDDY_BENCH_RECORDS", 1_000_000))
	topic := testenv.NewTopic(b, brokers, 4)
	t0 := time.Now()
	fill(b, brokers, topic, records)
	fmt.Printf("\nfilled %s with %d netflow records in %v\n", topic, records, time.Since(t0).Round(time.Millisecond))

	rounds := testenv.BenchSize(b, "EDDY_BENCH_ROUNDS", 1)
	var rates, cpus []float64
	var base, eddy benchrun.Run
	for round := 1; round <= rounds; round++ {
		var baseTop, eddyTop string
		// The labels let a -cpuprofile of the bench be cut by side
		// (pprof -tagfocus side=eddy): goroutines inherit them, franz-go's
		// fetch goroutines included. The regions mark each side's span in
		// a -trace.
		base = benchrun.Measure("plain franz-go loop (fastjson + map)", records, func() {
			pprof.Do(context.Background(), pprof.Labels("side", "plain"), func(ctx context.Context) {
				trace.WithRegion(ctx, "plain", func() { baseTop = plainCount(b, brokers, topic) })
			})
		})
		eddy = benchrun.Measure("eddy (kafka:// source, Lua, actors, Badger)", records, func() {
			pprof.Do(context.Background(), pprof.Labels("side", "eddy"), func(ctx context.Context) {
				trace.WithRegion(ctx, "eddy", func() { eddyTop = eddyCount(b, brokers, topic) })
			})
		})
		if err := reference.DiffRows(baseTop, eddyTop); err != nil {
			b.Fatalf("eddy and the plain loop disagree on the top 20: %v", err)
		}
		benchrun.Print(fmt.Sprintf("netflow top 20 over a pre-filled topic, 4 partitions, both top 20s equal row by row, round %d of %d", round, rounds), base, eddy)
		rates = append(rates, eddy.Rate()/base.Rate())
		cpus = append(cpus, eddy.CPU.Seconds()/max(base.CPU.Seconds(), 1e-9))
	}
	if rounds > 1 {
		fmt.Printf("  over %d rounds, eddy/baseline: %.2f-%.2f records/s, %.2f-%.2f CPU per record\n",
			rounds, slices.Min(rates), slices.Max(rates), slices.Min(cpus), slices.Max(cpus))
	}
	b.ReportMetric(eddy.Rate(), "eddy-rec/s")
	b.ReportMetric(base.Rate(), "plain-rec/s")

	const rate, secs = 20_000, 5
	pl, el := latency(b, brokers, rate, secs)
	fmt.Printf("end-to-end latency, produce to output, at %d records/s for %ds\n", rate, secs)
	fmt.Printf("  %-50s p50 %8v  p99 %8v\n", "plain franz-go loop", pl.Quantile(0.5), pl.Quantile(0.99))
	fmt.Printf("  %-50s p50 %8v  p99 %8v\n", "eddy records pipeline (kafka:// in, sink write)", el.Quantile(0.5), el.Quantile(0.99))
}

// fill produces count netflow lines, round robin over the partitions.
func fill(b *testing.B, brokers []string, topic string, count int64) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(10*time.Millisecond),
		kgo.ProducerBatchCompression(kgo.Lz4Compression()), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(gen.Write(pw, "netflow", 7, 0, count, 0)) }()
	sc := bufio.NewScanner(pr)
	var mu sync.Mutex
	var perr error
	for sc.Scan() {
		cl.Produce(context.Background(), &kgo.Record{Value: append([]byte(nil), sc.Bytes()...)}, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				perr = err
				mu.Unlock()
			}
		})
	}
	if err := cl.Flush(context.Background()); err != nil || perr != nil {
		b.Fatal(err, perr)
	}
}

// plainCount is the netflow count with franz-go and fastjson alone. Its
// timeline (EDDY_BENCH_TIMELINE=1) has the same milestones as eddy's
// where it has them, for a comparison phase by phase.
func plainCount(b *testing.B, brokers []string, topic string) string {
	tl := newTimeline(os.Getenv("EDDY_BENCH_TIMELINE") != "")
	tl.title = "the plain loop's timeline from its client's creation:"
	defer tl.print()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		b.Fatal(err)
	}
	defer tl.mark("client closed")
	defer cl.Close()
	ends, err := kadm.NewClient(cl).ListEndOffsets(context.Background(), topic)
	if err != nil {
		b.Fatal(err)
	}
	left := map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) {
		if o.Offset > 0 {
			left[o.Partition] = o.Offset
		}
	})
	tl.mark("end offsets listed")
	counts := map[string]int64{}
	var p fastjson.Parser
	for first := true; len(left) > 0; {
		fs := cl.PollFetches(context.Background())
		if first && fs.NumRecords() > 0 {
			tl.mark("first records read")
			first = false
		}
		fs.EachRecord(func(r *kgo.Record) {
			if end, ok := left[r.Partition]; ok && r.Offset+1 >= end {
				delete(left, r.Partition)
			}
			if dev, ok := reference.WebFlowDevice(&p, r.Value); ok {
				counts[string(dev)]++
			}
		})
	}
	tl.mark("last record read")
	return reference.Top(counts, 20)
}

func eddyCount(b *testing.B, brokers []string, topic string) string {
	p, err := scripting.Load("../../scripts/netflow_webservers.lua")
	if err != nil {
		b.Fatal(err)
	}
	res := runPipeline(b, p, brokers, topic, &memio.Sink{}, nil)
	var s []byte
	for _, r := range res.Rows() {
		s = append(connectors.AppendJSON(s, r), '\n')
	}
	return string(s)
}

func runPipeline(b *testing.B, p *scripting.Pipeline, brokers []string, topic string, out *memio.Sink, ctx context.Context) *memio.Sink {
	conn := kafka.Conn{Brokers: brokers, Topics: []string{topic}}
	fetchers := testenv.BenchSize(b, "EDDY_BENCH_FETCHERS", 0) // 0: the source's default
	src, err := kafka.NewSource(kafka.SourceConfig{Conn: conn, Fetchers: fetchers, Group: topic + "-bench-" + strconv.FormatInt(time.Now().UnixNano(), 36)})
	if err != nil {
		b.Fatal(err)
	}
	tl := newTimeline(os.Getenv("EDDY_BENCH_TIMELINE") != "")
	defer tl.print()
	defer tl.mark("source closed")
	defer src.Close()
	store, err := state.Open(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	tl.mark("store opened")
	defer tl.mark("store closed")
	defer store.Close()
	stats := &actors.Stats{}
	cfg := actors.Config{Pipeline: p, Source: src, Store: store, UntilIdle: ctx == nil, MaxErrors: -1, Stats: stats}
	if p.HasAggregate() {
		cfg.Results = out
	} else {
		cfg.Records = out
	}
	if ctx == nil {
		ctx = context.Background()
	}
	stop := tl.watch(stats)
	_, err = actors.Run(ctx, cfg)
	stop()
	tl.mark(fmt.Sprintf("run returned (the source restarted its fetches for a resumed partition %d times)", kafka.FetchRestarts(src)))
	if err != nil {
		b.Fatal(err)
	}
	return out
}

// timeline notes when a bench run of eddy passed its milestones (joined,
// first record, each stall of reads of 50ms or more, last record,
// checkpoints, run returned, store and source closed), for a wall time
// breakdown: EDDY_BENCH_TIMELINE=1 prints it. The milestones seen from
// Stats are polled every millisecond.
type timeline struct {
	on     bool
	title  string
	start  time.Time
	mu     sync.Mutex
	events []string
}

func newTimeline(on bool) *timeline {
	return &timeline{on: on, start: time.Now(), title: "eddy's timeline from the source's creation:"}
}

func (t *timeline) mark(what string) {
	if !t.on {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.events = append(t.events, fmt.Sprintf("%8.1f ms  %s", float64(time.Since(t.start).Microseconds())/1000, what))
}

// since is the time from the start to at, in ms.
func (t *timeline) since(at time.Time) float64 { return float64(at.Sub(t.start).Microseconds()) / 1000 }

// watch polls stats until the returned stop is called.
func (t *timeline) watch(stats *actors.Stats) (stop func()) {
	if !t.on {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		var parts, cps, read, kept int64
		var moved, keptAt time.Time // when read, and kept, last changed
		for {
			select {
			case <-done:
				t.mark(fmt.Sprintf("(%d records read, the last %.1f ms after the start; %d kept by the filter, the last %.1f ms after the start; checkpoints took %v in all)",
					stats.Read.Load(), t.since(moved), stats.Kept.Load(), t.since(keptAt), stats.CheckpointLatency.Sum().Round(100*time.Microsecond)))
				return
			case <-tick.C:
			}
			if n := stats.Kept.Load(); n != kept {
				kept, keptAt = n, time.Now()
			}
			if n := stats.Partitions.Load(); n != parts {
				parts = n
				t.mark(fmt.Sprintf("%d partitions", n))
			}
			// The first record, and every stall of reads of 50ms or more.
			if n := stats.Read.Load(); n != read {
				if read == 0 {
					t.mark("first records read")
				} else if gap := time.Since(moved); gap >= 50*time.Millisecond {
					t.mark(fmt.Sprintf("reads resume after %v at %d records", gap.Round(time.Millisecond), read))
				}
				read, moved = n, time.Now()
			}
			if n := stats.Checkpoints.Load(); n != cps {
				cps = n
				t.mark(fmt.Sprintf("checkpoint %d complete", n))
			}
		}
	}()
	return func() { close(done); wg.Wait() }
}

func (t *timeline) print() {
	if !t.on {
		return
	}
	t.mark("returns")
	t.mu.Lock()
	defer t.mu.Unlock()
	fmt.Println(" ", t.title)
	for _, e := range t.events {
		fmt.Println("   ", e)
	}
}

// latencySink records, for each row, now minus the row's "sent" field.
type latencySink struct {
	lat  *actors.Latency
	seen *int64
	mu   sync.Mutex
}

func (s *latencySink) Write(_ context.Context, rows []connectors.Row) error {
	now := time.Now().UnixNano()
	for _, r := range rows {
		if v, ok := r.Get("sent"); ok {
			if f, ok := v.(float64); ok {
				s.lat.Observe(time.Duration(now - int64(f)))
			} else if n, ok := v.(int64); ok {
				s.lat.Observe(time.Duration(now - n))
			}
		}
	}
	s.mu.Lock()
	*s.seen += int64(len(rows))
	s.mu.Unlock()
	return nil
}
func (s *latencySink) Flush(context.Context) error { return nil }
func (s *latencySink) Close() error                { return nil }

// waitJoined waits, for a minute at most, until eddy's engine holds all
// parts partitions of the group's assignment and the plain loop is ready.
func waitJoined(b *testing.B, stats *actors.Stats, parts int64, plainReady chan struct{}, plainDone chan int64) {
	b.Helper()
	deadline := time.After(time.Minute)
	select {
	case <-plainReady:
	case <-plainDone:
		b.Fatal("the plain loop stopped before it was ready")
	case <-deadline:
		b.Fatal("the plain loop has no metadata of the topic after a minute")
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for stats.Partitions.Load() < parts {
		select {
		case <-tick.C:
		case <-deadline:
			b.Fatalf("eddy holds %d of the topic's %d partitions after a minute", stats.Partitions.Load(), parts)
		}
	}
}

// latency produces rate records/s for secs seconds, each carrying its
// produce time, while eddy (a records pipeline) and a plain loop consume
// them; each notes now minus the produce time as records come out.
func latency(b *testing.B, brokers []string, rate, secs int) (plain, eddy *actors.Latency) {
	topic := testenv.NewTopic(b, brokers, 4)
	script := `return { name = "latency", parse = eddy.json { dstdevice = "string", dstport = "string|number", sent = "integer" },
  filter = function(f) return f.dstport == "80" or f.dstport == "443" or f.dstport == 80 or f.dstport == 443 end }`
	path := b.TempDir() + "/latency.lua"
	if err := os.WriteFile(path, []byte(script), 0o644); err != nil {
		b.Fatal(err)
	}
	p, err := scripting.Load(path)
	if err != nil {
		b.Fatal(err)
	}
	plain, eddy = &actors.Latency{}, &actors.Latency{}
	total := int64(rate * secs)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var eddySeen int64
	sink := &latencySink{lat: eddy, seen: &eddySeen}
	stats := &actors.Stats{}
	eddyDone := make(chan struct{})
	go func() {
		defer close(eddyDone)
		conn := kafka.Conn{Brokers: brokers, Topics: []string{topic}}
		// (The topic is new and empty: earliest misses nothing however
		// late the partitions are seeked.)
		src, err := kafka.NewSource(kafka.SourceConfig{Conn: conn, Group: topic + "-lat", Start: "earliest"})
		if err != nil {
			b.Error(err)
			return
		}
		defer src.Close()
		store, err := state.Open(b.TempDir())
		if err != nil {
			b.Error(err)
			return
		}
		defer store.Close()
		if _, err := actors.Run(ctx, actors.Config{Pipeline: p, Source: src, Store: store, Records: sink, MaxErrors: -1, Stats: stats}); err != nil {
			b.Error(err)
		}
	}()
	plainDone, plainReady := make(chan int64), make(chan struct{})
	go func() {
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
		if err != nil {
			b.Error(err)
			plainDone <- 0
			return
		}
		defer cl.Close()
		// Joined: it knows the topic's leaders and has a connection.
		if _, err := kadm.NewClient(cl).Metadata(ctx, topic); err != nil {
			b.Error(err)
			plainDone <- 0
			return
		}
		close(plainReady)
		var fp fastjson.Parser
		var n int64
		for n < total && ctx.Err() == nil {
			fs := cl.PollFetches(ctx)
			now := time.Now().UnixNano()
			fs.EachRecord(func(r *kgo.Record) {
				n++
				v, err := fp.ParseBytes(r.Value)
				if err != nil {
					return
				}
				port := string(v.GetStringBytes("dstport"))
				if port == "" {
					port = v.Get("dstport").String()
				}
				if port == "80" || port == "443" {
					plain.Observe(time.Duration(now - v.GetInt64("sent")))
				}
			})
		}
		plainDone <- n
	}()
	waitJoined(b, stats, 4, plainReady, plainDone)
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(0))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(gen.Write(pw, "netflow", 11, 0, total, 0)) }()
	sc := bufio.NewScanner(pr)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	per := rate / 100
	var fp fastjson.Parser
	for sent := int64(0); sent < total; {
		<-tick.C
		for i := 0; i < per && sc.Scan(); i++ {
			v, err := fp.ParseBytes(sc.Bytes())
			if err != nil {
				continue
			}
			line := fmt.Appendf(nil, `{"dstdevice":%s,"dstport":%s,"sent":%d}`, v.Get("dstdevice"), v.Get("dstport"), time.Now().UnixNano())
			cl.Produce(ctx, &kgo.Record{Value: line}, nil)
			sent++
		}
	}
	cl.Flush(ctx)
	select {
	case <-plainDone:
	case <-time.After(30 * time.Second):
	}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && eddy.Count() < plain.Count() {
		time.Sleep(50 * time.Millisecond)
	}
	cancel()
	<-eddyDone
	// Both timed the same records: every web flow produced, once.
	if eddy.Count() != plain.Count() || plain.Count() == 0 {
		b.Fatalf("eddy timed %d web flows, the plain loop %d", eddy.Count(), plain.Count())
	}
	return plain, eddy
}

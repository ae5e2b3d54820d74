package kafka_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/connectors/connectortest"
	"github.com/eddy-stream/eddy/connectors/kafka"
	"github.com/eddy-stream/eddy/internal/testenv"
)

// A source's partitions are spread over its fetchers (franz-go clients
// with a fetch goroutine each), and every partition reads each of its
// records once, in offset order, from the start and again after a seek,
// whichever fetcher brings it.
func TestSourceFetchersShareThePartitions(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := testenv.NewTopic(t, brokers, 4)
	const n = 4000
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic),
		kgo.ProducerBatchCompression(kgo.Lz4Compression()), kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < n && err == nil; i += 500 {
		var recs []*kgo.Record
		for j := i; j < i+500; j++ {
			recs = append(recs, &kgo.Record{Value: fmt.Appendf(nil, `{"i":%d}`, j)})
		}
		err = cl.ProduceSync(t.Context(), recs...).FirstErr()
	}
	cl.Close()
	if err != nil {
		t.Fatal(err)
	}
	for _, fetchers := range []int{1, 2, 3} {
		t.Run(fmt.Sprintf("fetchers=%d", fetchers), func(t *testing.T) {
			src, err := connectors.OpenSource(uri(brokers, topic, fmt.Sprintf("group=%s-%d&batch=300&fetchers=%d", topic, fetchers, fetchers)), nil)
			if err != nil {
				t.Fatal(err)
			}
			l := connectortest.Start(t, src)
			l.WaitPartitions(t, 4, 30*time.Second)
			perFetcher := make([]int, fetchers)
			var all []string
			for _, p := range l.Partitions() {
				f := kafka.FetcherOf(p)
				if f < 0 || f >= fetchers {
					t.Fatalf("%s: fetched by fetcher %d of %d", p.ID(), f, fetchers)
				}
				perFetcher[f]++
				recs := readInOrder(t, p)
				for _, r := range recs {
					all = append(all, string(r.Value))
				}
				// Back to the middle: the second half again, from the
				// fetcher's client.
				mid := recs[len(recs)/2]
				if err := p.Seek(fmt.Appendf(nil, `{"offset":%d}`, mid.Seq)); err != nil {
					t.Fatal(err)
				}
				again := readInOrder(t, p)
				if !slices.EqualFunc(again, recs[len(recs)/2:], func(a, b connectortest.Located) bool { return a.Seq == b.Seq && string(a.Value) == string(b.Value) }) {
					t.Fatalf("%s: after a seek to offset %d read %d records, want the %d from there", p.ID(), mid.Seq, len(again), len(recs)-len(recs)/2)
				}
			}
			// 4 partitions over the fetchers: 4, 2+2, 2+1+1.
			if slices.Max(perFetcher)-slices.Min(perFetcher) > 1 {
				t.Fatalf("partitions per fetcher %v: not spread evenly", perFetcher)
			}
			slices.Sort(all)
			want := make([]string, n)
			for i := range want {
				want[i] = fmt.Sprintf(`{"i":%d}`, i)
			}
			slices.Sort(want)
			if !slices.Equal(all, want) {
				t.Fatalf("read %d records, want each of the %d once", len(all), n)
			}
		})
	}
}

// readInOrder reads p to its end and checks that its offsets rise.
func readInOrder(t *testing.T, p connectors.Partition) []connectortest.Located {
	t.Helper()
	recs := connectortest.ReadAll(t, p, 0, 30*time.Second).Records()
	if len(recs) == 0 {
		t.Fatalf("%s: no records", p.ID())
	}
	for i := 1; i < len(recs); i++ {
		if recs[i].Seq <= recs[i-1].Seq {
			t.Fatalf("%s: offset %d after %d", p.ID(), recs[i].Seq, recs[i-1].Seq)
		}
	}
	return recs
}

// A partition whose buffer filled up is paused; when its reader has
// drained half of it, it is resumed while its fetcher's other partition is
// at its end, so the fetch in flight is one the broker holds for up to
// FetchMaxWait. The fetcher restarts its fetches then, from where each
// partition's records were fetched to, and the partition reads every
// record once, in order.
func TestSourceResumeRestartsALongPoll(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := testenv.NewTopic(t, brokers, 2)
	// Uncompressed 16 KiB values: a fetch (1 MiB a partition) brings ~64,
	// more than the buffer's 60, so partition 1 pauses at each fetch.
	const few, many, size = 5, 600, 16 << 10
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic),
		kgo.ProducerBatchCompression(kgo.NoCompression()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	var recs []*kgo.Record
	for i := range few + many {
		part := int32(1)
		if i < few {
			part = 0
		}
		v := make([]byte, size)
		copy(v, fmt.Sprintf("%d/%d", part, i))
		recs = append(recs, &kgo.Record{Partition: part, Value: v})
	}
	err = cl.ProduceSync(t.Context(), recs...).FirstErr()
	cl.Close()
	if err != nil {
		t.Fatal(err)
	}
	src, err := connectors.OpenSource(uri(brokers, topic, "group="+topic+"&fetchers=1&batch=20&buffer=60"), nil)
	if err != nil {
		t.Fatal(err)
	}
	l := connectortest.Start(t, src)
	l.WaitPartitions(t, 2, 30*time.Second)
	ps := map[string]connectors.Partition{}
	for _, p := range l.Partitions() {
		ps[p.ID()] = p
	}
	p0, p1 := ps["kafka:"+topic+"/0"], ps["kafka:"+topic+"/1"]
	if got := readInOrder(t, p0); len(got) != few {
		t.Fatalf("partition 0: read %d records, want %d", len(got), few)
	}
	got := readInOrder(t, p1)
	if len(got) != many || got[0].Seq != 0 || got[len(got)-1].Seq != many-1 {
		t.Fatalf("partition 1: read %d records, offsets %d to %d; want offsets 0 to %d", len(got), got[0].Seq, got[len(got)-1].Seq, many-1)
	}
	for i, r := range got {
		if want := fmt.Sprintf("1/%d", few+i); string(r.Value[:len(want)]) != want {
			t.Fatalf("partition 1, offset %d: value starts %q, want %q", r.Seq, r.Value[:len(want)], want)
		}
	}
	if kafka.FetchRestarts(src) == 0 {
		t.Fatal("partition 1 was resumed while partition 0 was at its end, and its fetcher did not restart its fetches")
	}
}

// Where the partitions of an assignment start without a checkpoint is
// listed once for them all, as they are assigned: the group's committed
// offset where it has one, else the start policy (earliest here).
func TestSourceListsTheStartsOfAnAssignmentOnce(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := testenv.NewTopic(t, brokers, 4)
	group := topic + "-g"
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	var recs []*kgo.Record
	for part := range int32(4) {
		for i := range 10 {
			recs = append(recs, &kgo.Record{Partition: part, Value: fmt.Appendf(nil, "%d/%d", part, i)})
		}
	}
	if err := cl.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
	// The group committed offsets 3 and 7 for partitions 1 and 2.
	offs := kadm.Offsets{}
	offs.AddOffset(topic, 1, 3, -1)
	offs.AddOffset(topic, 2, 7, -1)
	if err := kadm.NewClient(cl).CommitAllOffsets(t.Context(), group, offs); err != nil {
		t.Fatal(err)
	}
	src, err := connectors.OpenSource(uri(brokers, topic, "group="+group), nil)
	if err != nil {
		t.Fatal(err)
	}
	l := connectortest.Start(t, src)
	l.WaitPartitions(t, 4, 30*time.Second)
	want := map[string]int64{"0": 0, "1": 3, "2": 7, "3": 0}
	for _, p := range l.Partitions() {
		part := p.ID()[len(p.ID())-1:]
		got := readInOrder(t, p)
		if got[0].Seq != want[part] || len(got) != 10-int(want[part]) {
			t.Fatalf("%s: read offsets %d to %d, want %d to 9", p.ID(), got[0].Seq, got[len(got)-1].Seq, want[part])
		}
	}
	if n := kafka.StartListings(src); n != 1 {
		t.Fatalf("the starts of 4 partitions assigned together were listed %d times, want once", n)
	}
}

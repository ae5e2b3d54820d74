package kafka_test

import (
	"context"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/connectors/connectortest"
	"github.com/eddy-stream/eddy/connectors/kafka"
	"github.com/eddy-stream/eddy/internal/testenv"
)

// newRepartitionTopic makes a repartition topic of n partitions for this
// test, deleted when it ends.
func newRepartitionTopic(t *testing.T, brokers []string, n int32) (kafka.Conn, string) {
	t.Helper()
	conn := kafka.Conn{Brokers: brokers}
	topic := kafka.RepartitionTopic(testenv.NewTopic(t, brokers, 1), 1)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := kafka.EnsureRepartitionTopic(ctx, conn, topic, n); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
		if err != nil {
			return
		}
		defer cl.Close()
		kadm.NewClient(cl).DeleteTopic(context.Background(), topic)
	})
	// Again, with the same count: fine; with another: refused.
	if err := kafka.EnsureRepartitionTopic(ctx, conn, topic, n); err != nil {
		t.Fatal(err)
	}
	if err := kafka.EnsureRepartitionTopic(ctx, conn, topic, n+1); err == nil {
		t.Fatalf("a repartition topic of %d partitions passed for %d", n, n+1)
	}
	return conn, topic
}

// newWriter is a repartition writer of topic under transactional id
// txnID, closed when the test ends.
func newWriter(t *testing.T, conn kafka.Conn, topic string, n int32, txnID string) *kafka.RepartitionWriter {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	w, err := kafka.NewRepartitionWriter(ctx, conn, topic, n, txnID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return w
}

// writeRange writes records seq from..to-1 of stream from, keyed k(seq%5),
// valued STREAM-SEQ, and commits them.
func writeRange(t *testing.T, w *kafka.RepartitionWriter, stream string, from, to int) {
	t.Helper()
	writeOpen(t, w, stream, "", from, to)
	if err := w.Commit(t.Context(), "", nil); err != nil {
		t.Fatal(err)
	}
}

// writeOpen writes records as writeRange does, their values ending in
// tag, into the writer's open transaction, and waits for their
// acknowledgement without committing.
func writeOpen(t *testing.T, w *kafka.RepartitionWriter, stream, tag string, from, to int) {
	t.Helper()
	var recs []kafka.RepartitionRecord
	for i := from; i < to; i++ {
		recs = append(recs, kafka.RepartitionRecord{Key: fmt.Sprintf("k%d", i%5), Value: fmt.Appendf(nil, "%s-%d%s", stream, i, tag),
			From: stream, Source: "bids", Seq: kafka.Seq{Hi: int64(i)}})
	}
	if err := w.Write(t.Context(), recs); err != nil {
		t.Fatal(err)
	}
	if err := w.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
}

// A source partition's next owner fences its previous writer: what that
// one left open is aborted (a reader never sees it), and its later
// writes fail as fenced instead of landing after the new owner's. Without
// the transactions, the old owner's records of 10–19 would be read, and
// its late 20 would follow the new owner's.
func TestRepartitionWriterFencesThePreviousOwner(t *testing.T) {
	brokers := testenv.Kafka(t)
	conn, topic := newRepartitionTopic(t, brokers, 2)
	txnID := topic + "-txn"
	old := newWriter(t, conn, topic, 2, txnID)
	writeRange(t, old, "u0", 0, 10)
	writeOpen(t, old, "u0", "-old", 10, 20) // then paused, or killed
	next := newWriter(t, conn, topic, 2, txnID)
	writeRange(t, next, "u0", 10, 30)
	late := []kafka.RepartitionRecord{{Key: "k0", Value: []byte("u0-20-old"), From: "u0", Seq: kafka.Seq{Hi: 20}}}
	if err := old.Write(t.Context(), late); err != nil {
		t.Fatal(err)
	}
	if err := old.Commit(t.Context(), "", nil); !kafka.Fenced(err) {
		t.Fatalf("the fenced writer's commit: %v, want fenced", err)
	}

	src, err := connectors.OpenSource(uri(brokers, topic, "group="+topic+"-g&streams=u0"), nil)
	if err != nil {
		t.Fatal(err)
	}
	l := connectortest.Start(t, src)
	l.WaitPartitions(t, 2, 30*time.Second)
	var got []string
	for _, p := range l.Partitions() {
		for _, r := range connectortest.ReadAll(t, p, 0, 30*time.Second).Records() {
			got = append(got, string(r.Value))
		}
	}
	sort.Strings(got)
	var want []string
	for i := range 30 {
		want = append(want, fmt.Sprintf("u0-%d", i))
	}
	sort.Strings(want)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("read %v\nwant %v", got, want)
	}
}

// A replay's repeats are skipped by their sequence, also after a seek to a
// checkpointed position; each batch is one stream's; markers arrive as
// Marks.
func TestRepartitionTopicSkipsRepeatsAndCarriesMarks(t *testing.T) {
	brokers := testenv.Kafka(t)
	conn, topic := newRepartitionTopic(t, brokers, 2)
	w := newWriter(t, conn, topic, 2, topic+"-txn")
	writeRange(t, w, "u0", 0, 60)
	writeRange(t, w, "u1", 0, 40)
	writeRange(t, w, "u0", 30, 80) // u0 crashed after 60 and replays from 30
	if err := w.Mark(t.Context(), "u1", 1234); err != nil {
		t.Fatal(err)
	}
	if err := w.Commit(t.Context(), "", nil); err != nil {
		t.Fatal(err)
	}

	src, err := connectors.OpenSource(uri(brokers, topic, "group="+topic+"-g&batch=7&streams=u0,u1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	l := connectortest.Start(t, src)
	l.WaitPartitions(t, 2, 30*time.Second)
	seen := map[string]int{}
	var mid connectors.Position
	var midSeen map[string]int
	for _, p := range l.Partitions() {
		if s, ok := p.(interface{ Streams() []string }); !ok || fmt.Sprint(s.Streams()) != "[u0 u1]" {
			t.Fatalf("%s: streams %v, want [u0 u1]", p.ID(), s)
		}
		res := connectortest.ReadAll(t, p, 0, 30*time.Second)
		marked := false
		for i, b := range res.Batches {
			for _, r := range b.Records {
				if want := string(r.Value[:2]); b.Stream != want || b.Source != "bids" {
					t.Fatalf("%s: record %s in a batch of stream %q source %q", p.ID(), r.Value, b.Stream, b.Source)
				}
				seen[string(r.Value)]++
			}
			if b.Marks["u1"] == 1234 {
				marked = true
			}
			if i == len(res.Batches)/2 && mid == nil {
				mid, midSeen = b.End, map[string]int{}
				for _, b := range res.Batches[i+1:] {
					for _, r := range b.Records {
						midSeen[string(r.Value)]++
					}
				}
			}
		}
		if !marked {
			t.Fatalf("%s: no batch carried u1's marker", p.ID())
		}
		if mid != nil && midSeen != nil {
			// Back to the middle: the same records after it, no repeats.
			if err := p.Seek(mid); err != nil {
				t.Fatal(err)
			}
			again := map[string]int{}
			for _, r := range connectortest.ReadAll(t, p, 0, 30*time.Second).Records() {
				again[string(r.Value)]++
			}
			if fmt.Sprint(again) != fmt.Sprint(midSeen) {
				t.Fatalf("%s: after a seek to %s read %v, want %v", p.ID(), mid, again, midSeen)
			}
			midSeen = nil
		}
	}
	if len(seen) != 120 {
		t.Fatalf("read %d distinct records, want 120 (u0 0–79, u1 0–39)", len(seen))
	}
	for v, n := range seen {
		if n != 1 {
			t.Fatalf("%s read %d times", v, n)
		}
	}
}

// A repartition topic read without naming its upstream streams is refused:
// its event time could not wait for them.
func TestRepartitionTopicNeedsStreams(t *testing.T) {
	brokers := testenv.Kafka(t)
	_, topic := newRepartitionTopic(t, brokers, 1)
	if _, err := connectors.OpenSource(uri(brokers, topic, "group="+topic+"-g"), nil); err == nil {
		t.Fatal("opened a repartition topic without streams=")
	}
}

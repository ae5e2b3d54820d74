package kafka_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/connectors/connectortest"
	"github.com/eddy-stream/eddy/internal/testenv"
)

// The source reads compressed fetches into memory it reuses once a batch
// is released: a batch not released keeps its values while later fetches
// are decoded and their batches released.
func TestSourceBatchValidUntilReleased(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := testenv.NewTopic(t, brokers, 1)
	const n = 3000
	value := func(i int) string { return fmt.Sprintf(`{"i":%d,"pad":%q}`, i, strings.Repeat("ab", i%50)) }
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic), kgo.ProducerBatchCompression(kgo.Lz4Compression()))
	if err != nil {
		t.Fatal(err)
	}
	// In record batches of 100, each decompressed into a buffer of its
	// own, which later batches reuse once it is given back.
	for i := 0; i < n && err == nil; i += 100 {
		var recs []*kgo.Record
		for j := i; j < i+100; j++ {
			recs = append(recs, &kgo.Record{Value: []byte(value(j))})
		}
		err = cl.ProduceSync(t.Context(), recs...).FirstErr()
	}
	cl.Close()
	if err != nil {
		t.Fatal(err)
	}
	src, err := connectors.OpenSource(uri(brokers, topic, "group="+topic+"-g&batch=100"), nil)
	if err != nil {
		t.Fatal(err)
	}
	l := connectortest.Start(t, src)
	l.WaitPartitions(t, 1, 30*time.Second)
	p := l.Partitions()[0]
	check := func(b connectors.Batch, what string) {
		t.Helper()
		for _, r := range b.Records {
			if got, want := string(r.Value), value(int(r.Seq)); got != want {
				t.Fatalf("%s: offset %d is %.40q, want %.40q", what, r.Seq, got, want)
			}
		}
	}
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var first connectors.Batch
	read := 0
	for read < n {
		b, err := p.Read(ctx)
		if err != nil {
			t.Fatalf("after %d records: %v", read, err)
		}
		if len(b.Records) > 0 && b.Release == nil {
			t.Fatal("a batch with records has no Release")
		}
		check(b, "a batch just read")
		read += len(b.Records)
		switch {
		case first.Records == nil && len(b.Records) > 0:
			first = b
		case b.Release != nil:
			b.Release()
		}
	}
	check(first, "the batch not released")
	first.Release()
	defer func() {
		if recover() == nil {
			t.Error("a second release of a batch did not panic")
		}
	}()
	first.Release()
}

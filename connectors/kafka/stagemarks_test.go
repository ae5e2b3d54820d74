package kafka_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/connectors/connectortest"
	"github.com/eddy-stream/eddy/connectors/kafka"
	"github.com/eddy-stream/eddy/internal/testenv"
)

// A stage topic's writer puts each row in its next key's partition and,
// in the same transaction, a watermark marker per upstream partition in
// every partition; its reader (read_committed, streams= naming the
// upstream partitions) gets the rows as records and the markers as Marks,
// never as records. An aborted transaction's rows and markers are never
// seen: a marker is visible exactly when the rows before it are.
func TestStageTopicCarriesMarkersWithItsRows(t *testing.T) {
	brokers := testenv.Kafka(t)
	conn := kafka.Conn{Brokers: brokers}
	topic := kafka.StageTopic(testenv.NewTopic(t, brokers, 1), 2)
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	if err := kafka.EnsureRepartitionTopic(ctx, conn, topic, 2); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
		if err != nil {
			return
		}
		defer cl.Close()
		kadm.NewClient(cl).DeleteTopics(context.Background(), topic, "__eddy_checkpoints."+topic+".w")
	})
	out, err := kafka.NewTxSink(kafka.SinkConfig{Conn: conn, Topic: topic, ExactlyOnce: true, Format: "json",
		TransactionalID: topic + ".w", Partitions: 2,
		RowKey: func(r connectors.Row) string { k, _ := r.Get("k"); return k.(string) }})
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	row := func(k string, n int) connectors.Row {
		return connectors.Row{Fields: []connectors.Field{{Name: "k", Value: k}, {Name: "n", Value: int64(n)}}}
	}
	txn := func(id uint64, commit bool, marks map[string]int64, rows ...connectors.Row) {
		t.Helper()
		if err := out.Write(t.Context(), rows); err != nil {
			t.Fatal(err)
		}
		if err := out.MarkWatermarks(t.Context(), marks); err != nil {
			t.Fatal(err)
		}
		if err := out.Flush(t.Context()); err != nil {
			t.Fatal(err)
		}
		if !commit {
			if err := out.Abort(t.Context()); err != nil {
				t.Fatal(err)
			}
			return
		}
		if err := out.Commit(t.Context(), connectors.Checkpoint{ID: id}); err != nil {
			t.Fatal(err)
		}
	}
	txn(1, true, map[string]int64{"up/0": 100}, row("a", 1), row("b", 2), row("c", 3))
	txn(2, false, map[string]int64{"up/0": 900, "up/1": 900}, row("a", 90), row("d", 91))
	txn(3, true, map[string]int64{"up/1": 50}, row("a", 4), row("e", 5))

	src, err := connectors.OpenSource(uri(brokers, topic, "group="+topic+"-g&isolation=read_committed&streams=up/0,up/1"), nil)
	if err != nil {
		t.Fatal(err)
	}
	l := connectortest.Start(t, src)
	l.WaitPartitions(t, 2, 30*time.Second)
	var rows []string
	partOf := map[string]string{}
	for _, p := range l.Partitions() {
		if m, ok := p.(interface{ Marked() bool }); !ok || !m.Marked() {
			t.Fatalf("%s: not marked: its event time would move by its rows", p.ID())
		}
		marks := map[string]int64{}
		for _, b := range connectortest.ReadAll(t, p, 0, 30*time.Second).Batches {
			for s, at := range b.Marks {
				marks[s] = max(marks[s], at)
			}
			for _, r := range b.Records {
				k, _ := decodeRow(t, r.Value).Get("k")
				if at, ok := partOf[k.(string)]; ok && at != p.ID() {
					t.Errorf("rows of key %s in %s and %s: want one partition", k, at, p.ID())
				}
				partOf[k.(string)] = p.ID()
				rows = append(rows, string(r.Value))
			}
		}
		if fmt.Sprint(marks) != "map[up/0:100 up/1:50]" {
			t.Errorf("%s: marks %v, want up/0 at 100 and up/1 at 50 (the committed ones)", p.ID(), marks)
		}
	}
	if len(rows) != 5 || strings.Contains(strings.Join(rows, ""), "9") {
		t.Errorf("rows %v: want the five committed ones, none of the aborted transaction", rows)
	}
}

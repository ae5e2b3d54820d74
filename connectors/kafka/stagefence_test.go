package kafka

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/internal/testenv"
)

// A node killed with rows written to a stage topic since its last
// checkpoint leaves their transaction open there, with nothing of its
// changelog in it. The node that takes a partition over (End) ends it at
// once, not when it times out, and leaves alone the open transaction of a
// writer still in the group.
func TestTakeoverEndsTheStageTransactionOfAWriterGoneFromTheGroup(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := testenv.NewTopic(t, brokers, 1)
	out := testenv.NewTopic(t, brokers, 1)
	group := topic + "-g"
	aTxn, bTxn, deadTxn := out+".a", out+".b", out+".dead"
	t.Cleanup(func() {
		deleteChangelogTopic(t, brokers, ChangelogTopic(group, topic))
		for _, txn := range []string{aTxn, bTxn, deadTxn} {
			deleteChangelogTopic(t, brokers, markerTopic(txn))
		}
	})
	ctx := t.Context()
	a, aEvents := openGroupSource(t, brokers, topic, group), newGroupEvents()
	a.SetClientID(StageWriterClientID("a"))
	if err := a.Start(ctx, aEvents); err != nil {
		t.Fatal(err)
	}
	id := waitEvent(t, aEvents.assigned, "assignment of a")
	aLog := openLog(t, a)
	shareWithSink(t, brokers, aLog, out, aTxn, group)
	if err := FenceDeadWritersAtTakeover(aLog, out, 1); err != nil {
		t.Fatal(err)
	}
	joinAs(t, brokers, topic, group, StageWriterClientID("b"))
	waitGroupStable(t, brokers, group, 2)

	// b (a member) and dead (none) each have a row in an open transaction.
	b, dead := openTxSink(t, brokers, out, bTxn), openTxSink(t, brokers, out, deadTxn)
	for _, s := range []*TxSink{dead, b} {
		if err := s.Write(ctx, []connectors.Row{{Key: s.txnID, Fields: []connectors.Field{{Name: "by", Value: s.txnID}}}}); err != nil {
			t.Fatal(err)
		}
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := aLog.End(ctx, id); err != nil {
		t.Fatalf("a's takeover of %s: %v", id, err)
	}
	cp := connectors.Checkpoint{ID: 1, Positions: map[string]connectors.Position{}}
	if err := dead.Commit(ctx, cp); err == nil {
		t.Fatal("the dead writer's transaction committed after a took a partition over, want it fenced")
	}
	if err := b.Commit(ctx, cp); err != nil {
		t.Fatalf("b, a member, could not commit after a took a partition over: %v", err)
	}
	if got := readCommitted(t, brokers, out); got != bTxn {
		t.Fatalf("committed rows on the stage topic: %q, want b's alone", got)
	}
}

// openTxSink opens an exactly-once sink on topic with transactional id
// txnID, closed when the test ends.
func openTxSink(t *testing.T, brokers []string, topic, txnID string) *TxSink {
	t.Helper()
	k, err := connectors.OpenSink("kafka://" + strings.Join(brokers, ",") + "/" + topic + "?exactly-once=true&transactional-id=" + txnID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { k.Close() })
	return k.(*TxSink)
}

// joinAs has a plain consumer join group with client id clientID, until
// the test ends.
func joinAs(t *testing.T, brokers []string, topic, group, clientID string) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumerGroup(group), kgo.ConsumeTopics(topic),
		kgo.ClientID(clientID), kgo.Balancers(kgo.CooperativeStickyBalancer()), kgo.SessionTimeout(6*time.Second),
		kgo.DisableAutoCommit())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil && !cl.PollFetches(ctx).IsClientClosed() {
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
		cl.Close()
	})
}

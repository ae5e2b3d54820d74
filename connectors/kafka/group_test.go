package kafka

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/internal/testenv"
)

// A gone member's open changelog transaction is aborted by the member that
// removes it: the gone producer is fenced (its commit fails) and the
// partition's last stable offset passes what it wrote, long before the
// transaction would time out.
func TestRemoveAbortsTheGoneMembersTransaction(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := testenv.NewTopic(t, brokers, 1)
	txnID := "eddy.changelog.test." + topic
	gone, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.TransactionalID(txnID),
		kgo.TransactionTimeout(10*time.Minute), kgo.DefaultProduceTopic(topic))
	if err != nil {
		t.Fatal(err)
	}
	defer gone.Close()
	ctx := t.Context()
	if err := gone.BeginTransaction(); err != nil {
		t.Fatal(err)
	}
	if err := gone.ProduceSync(ctx, &kgo.Record{Value: []byte("left open")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	adm := kadm.NewClient(gone)
	stable := func() (int64, int64) {
		lso, err1 := adm.ListCommittedOffsets(ctx, topic)
		hw, err2 := adm.ListEndOffsets(ctx, topic)
		if err := errors.Join(err1, err2); err != nil {
			t.Fatal(err)
		}
		l, _ := lso.Lookup(topic, 0)
		h, _ := hw.Lookup(topic, 0)
		return l.Offset, h.Offset
	}
	if lso, hw := stable(); lso >= hw {
		t.Fatalf("the open transaction does not hold the last stable offset back: %d of %d", lso, hw)
	}

	target, err := connectors.Parse("kafka://" + strings.Join(brokers, ",") + "/" + topic + "?group=" + topic + "-g")
	if err != nil {
		t.Fatal(err)
	}
	s, err := OpenSource(target)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	// A transactional id made from an instance is left alone.
	if err := s.fenceChangelog(ctx, connectors.GroupMember{ID: "m", Instance: "n1", Txn: txnID}); err != nil {
		t.Fatal(err)
	}
	if lso, hw := stable(); lso >= hw {
		t.Fatalf("the transaction of a static member was aborted: last stable offset %d of %d", lso, hw)
	}
	if err := s.fenceChangelog(ctx, connectors.GroupMember{ID: "m", Txn: txnID}); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(50 * time.Millisecond) {
		lso, hw := stable()
		if lso >= hw {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the gone member's transaction is still open a minute after the fence: last stable offset %d of %d", lso, hw)
		}
	}
	err = gone.EndTransaction(ctx, kgo.TryCommit)
	if !errors.Is(err, kerr.ProducerFenced) && !errors.Is(err, kerr.InvalidProducerEpoch) && !errors.Is(err, kerr.InvalidProducerIDMapping) {
		t.Fatalf("the gone producer's commit after the fence: %v, want it fenced", err)
	}
}

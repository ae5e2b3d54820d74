package testenv

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// NewTopic creates a topic with the given number of partitions (one replica)
// that no other test uses, waits until every partition has a leader, and
// deletes it when the test ends. It returns the topic's name.
func NewTopic(t testing.TB, brokers []string, partitions int32) string {
	t.Helper()
	return newTopic(t, []kgo.Opt{kgo.SeedBrokers(brokers...)}, brokers, partitions)
}

// newTopic is [NewTopic] with a client of opts (brokers, for messages).
func newTopic(t testing.TB, opts []kgo.Opt, brokers []string, partitions int32) string {
	t.Helper()
	adm := newKafkaAdmin(t, opts, brokers)
	topic := uniqueName(t, "eddy_test_", 200)

	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	res, err := adm.CreateTopic(ctx, partitions, 1, nil, topic)
	if err == nil {
		err = res.Err
	}
	if err != nil {
		t.Fatalf("testenv: create topic %s on %v: %v", topic, brokers, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		res, err := adm.DeleteTopic(ctx, topic)
		if err == nil {
			err = res.Err
		}
		if err != nil {
			t.Errorf("testenv: delete topic %s: %v", topic, err)
		}
	})
	if err := WaitForLeaders(ctx, adm, topic, int(partitions)); err != nil {
		t.Fatalf("testenv: topic %s on %v: %v", topic, brokers, err)
	}
	return topic
}

func newKafkaAdmin(t testing.TB, opts []kgo.Opt, brokers []string) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatalf("testenv: kafka client for %v: %v", brokers, err)
	}
	// Cleanups run last-in first-out: this one after the topic is deleted.
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// WaitForLeaders polls the metadata until the topic has n partitions, each
// with a leader, so a test's first produce does not race the creation.
func WaitForLeaders(ctx context.Context, adm *kadm.Client, topic string, n int) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		md, err := adm.Metadata(ctx, topic)
		if err == nil {
			if err = ready(md, topic, n); err == nil {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for partition leaders: %w (last: %w)", ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// WaitForTopicConfig polls the topic's described configs until key reads
// value: a broker acknowledges AlterConfigs before its metadata follows,
// and a client that reads the config meanwhile gets the old value.
func WaitForTopicConfig(ctx context.Context, adm *kadm.Client, topic, key, value string) error {
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	last := "(not described)"
	for {
		if rcs, err := adm.DescribeTopicConfigs(ctx, topic); err == nil {
			if rc, err := rcs.On(topic, nil); err == nil && rc.Err == nil {
				for _, c := range rc.Configs {
					if c.Key == key && c.Value != nil {
						last = *c.Value
					}
				}
			}
		}
		if last == value {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s of %s still %q, want %q: %w", key, topic, last, value, ctx.Err())
		case <-tick.C:
		}
	}
}

func ready(md kadm.Metadata, topic string, n int) error {
	td, ok := md.Topics[topic]
	if !ok {
		return fmt.Errorf("not in metadata yet")
	}
	if td.Err != nil {
		return td.Err
	}
	if len(td.Partitions) != n {
		return fmt.Errorf("%d of %d partitions in metadata", len(td.Partitions), n)
	}
	for _, p := range td.Partitions {
		if p.Err != nil {
			return fmt.Errorf("partition %d: %w", p.Partition, p.Err)
		}
		if p.Leader < 0 {
			return fmt.Errorf("partition %d has no leader", p.Partition)
		}
	}
	return nil
}

// Produce writes one record a value to topic, spread over its partitions
// round-robin, and waits for every acknowledgement.
func Produce(t testing.TB, brokers []string, topic string, values [][]byte) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(5*time.Millisecond),
		kgo.RecordPartitioner(kgo.RoundRobinPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	recs := make([]*kgo.Record, len(values))
	for i, v := range values {
		recs[i] = &kgo.Record{Value: v}
	}
	if err := cl.ProduceSync(t.Context(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

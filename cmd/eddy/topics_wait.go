package main

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
)

// waitForTopic returns once the metadata shows topic with every partition
// led, or fails after 30s: a broker answers CreateTopics before every
// broker's metadata knows the topic, and the next command (a produce, a
// table read) would be told it does not exist.
func waitForTopic(ctx context.Context, adm *kadm.Client, topic string, partitions int) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		md, err := adm.Metadata(ctx, topic)
		if err == nil && ledPartitions(md, topic) >= partitions {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topic %s was created but its partitions have no leader after 30s", topic)
		case <-tick.C:
		}
	}
}

// ledPartitions counts topic's partitions that have a leader.
func ledPartitions(md kadm.Metadata, topic string) int {
	td, ok := md.Topics[topic]
	if !ok || td.Err != nil {
		return 0
	}
	n := 0
	for _, p := range td.Partitions {
		if p.Err == nil && p.Leader >= 0 {
			n++
		}
	}
	return n
}

// waitForTopicsGone waits until no broker's metadata lists topics any more:
// a delete is acknowledged by the controller before the brokers' metadata
// follows, and a create or a list right after would still meet the topics.
func waitForTopicsGone(ctx context.Context, adm *kadm.Client, topics []string) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		md, err := adm.Metadata(ctx, topics...)
		var left []string
		for _, t := range topics {
			if td, ok := md.Topics[t]; err != nil || ok && td.Err == nil {
				left = append(left, t)
			}
		}
		if len(left) == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("topics %s were deleted but metadata still lists them after 30s (last error: %v)", strings.Join(left, ","), err)
		case <-tick.C:
		}
	}
}

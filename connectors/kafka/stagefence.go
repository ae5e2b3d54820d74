package kafka

import (
	"context"
	"fmt"
	"strings"

	"github.com/eddy-stream/eddy/connectors"
)

// A stage topic (eddy-stages.GROUP.N) is written by every node of the
// group, each in its changelog's transactions under the transactional id
// TOPIC.WRITER. A node killed with rows written since its last checkpoint
// leaves that transaction open, and when nothing of its changelog is in
// it yet, no changelog takeover ends it: it holds every read_committed
// reader of the topic back until it times out. So the node that takes a
// partition over also ends the open transactions, on the stage topic, of
// the writers that are no longer members of the group: each writer's
// group client is named StageWriterClientID(WRITER), which the group's
// description lists beside each member.

// StageWriterClientID is the client id of the group client of the node
// whose writer of a stage topic is writer (the suffix of its
// transactional id).
func StageWriterClientID(writer string) string { return stageWriterPrefix + writer }

const stageWriterPrefix = "eddy-stage-writer."

// SetClientID names the source's group client (SourceConfig.ClientID); it
// must be called before Start.
func (s *Source) SetClientID(id string) { s.cfg.ClientID = id }

// stageFence is a stage topic whose dead writers a takeover fences.
type stageFence struct {
	topic      string
	partitions int32
}

// FenceDeadWritersAtTakeover makes the changelog cl (a stage's writer's,
// sharing its transactions with the writer of topic) end, whenever it
// takes a partition over (End), the transactions open on topic's
// partitions of the writers that are not members of its group.
func FenceDeadWritersAtTakeover(cl connectors.Changelog, topic string, partitions int32) error {
	c, ok := cl.(*changelog)
	if !ok {
		return fmt.Errorf("stage topic %s: the writer's changelog is not a Kafka changelog", topic)
	}
	c.txMu.Lock()
	c.stage = &stageFence{topic: topic, partitions: partitions}
	c.txMu.Unlock()
	return nil
}

// fenceDeadWriters ends the open transactions on the stage topic of the
// writers that are not members of the changelog's group (see above).
func (c *changelog) fenceDeadWriters(ctx context.Context, sf *stageFence) error {
	spare, err := c.liveWriters(ctx, sf.topic)
	if err != nil {
		return fmt.Errorf("stage topic %s: %w", sf.topic, err)
	}
	for p := range sf.partitions {
		if err := c.fenceExcept(ctx, fmt.Sprintf("kafka stage topic %s/%d", sf.topic, p), sf.topic, p, spare); err != nil {
			return err
		}
	}
	return nil
}

// liveWriters are the transactional ids on topic of the group's members
// (their group clients named by StageWriterClientID), and this node's own.
func (c *changelog) liveWriters(ctx context.Context, topic string) ([]string, error) {
	live := c.ownTxnIDs()
	err := retryTransient(ctx, "describe group "+c.group, func(ctx context.Context) error {
		groups, err := c.adm.DescribeGroups(ctx, c.group)
		if err != nil {
			return err
		}
		g, ok := groups[c.group]
		if !ok {
			return fmt.Errorf("no answer for group %s", c.group)
		}
		if g.Err != nil {
			return g.Err
		}
		for _, m := range g.Members {
			if w, ok := strings.CutPrefix(m.ClientID, stageWriterPrefix); ok {
				live = append(live, topic+"."+w)
			}
		}
		return nil
	})
	return live, err
}

// FenceStageWriters ends every other producer's transaction open on
// topic's partitions, as a takeover does on a changelog partition
// (fencePrevious), whether or not its writer is still a member: a run
// that reads the stage topic to its end (--until-idle) calls this first,
// once its stage 1 has read all its input; otherwise it would take the
// offset an open transaction holds back for the end. cl is the changelog
// of the stage's writer, whose own transactions are left alone.
func FenceStageWriters(ctx context.Context, cl connectors.Changelog, topic string, partitions int32) error {
	c, ok := cl.(*changelog)
	if !ok {
		return fmt.Errorf("stage topic %s: the writer's changelog is not a Kafka changelog", topic)
	}
	for p := range partitions {
		if err := c.fencePrevious(ctx, topic, p); err != nil {
			return fmt.Errorf("stage topic %s: %w", topic, err)
		}
	}
	return nil
}

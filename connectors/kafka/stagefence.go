package kafka

import (
	"context"
	"fmt"

	"github.com/eddy-stream/eddy/connectors"
)

// FenceStageWriters ends every other producer's transaction open on
// topic's partitions, as a takeover does on a changelog partition
// (fencePrevious): a stage topic's writer that was killed with rows
// written since its last checkpoint leaves its transaction open, with no
// changelog partition in it yet, so no takeover ends it, and it holds
// read_committed readers of the topic back until it times out. A run that
// reads the stage topic to its end (--until-idle) calls this first:
// otherwise it would take the held-back offset for the end. cl is the
// changelog of the stage's writer, whose own transactions are left alone.
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

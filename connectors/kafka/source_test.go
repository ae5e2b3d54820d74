package kafka

import (
	"testing"

	"github.com/eddy-stream/eddy/connectors"
)

// The engine starts the source on a goroutine of its own, and a checkpoint
// of no partitions may complete before Start has even checked the topics
// (a loaded machine, a slow broker): Checkpointed must take it then.
func TestCheckpointedBeforeStart(t *testing.T) {
	target, err := connectors.Parse("kafka://127.0.0.1:1/nowhere?group=g")
	if err != nil {
		t.Fatal(err)
	}
	s, err := OpenSource(target)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Checkpointed(t.Context(), connectors.Checkpoint{ID: 1}); err != nil {
		t.Fatalf("a checkpoint before Start: %v", err)
	}
}

package actors

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/internal/memio"
)

// refuseFirstChangelog refuses the first commit, as a group that dropped
// the node does, and closes refused.
type refuseFirstChangelog struct {
	*memio.Changelog
	once    sync.Once
	refused chan struct{}
}

func (c *refuseFirstChangelog) Commit(ctx context.Context, markers map[string]connectors.ChangelogMarker) (map[string]int64, error) {
	first := false
	c.once.Do(func() { first = true })
	if first {
		c.Changelog.Abort(ctx)
		close(c.refused)
		return nil, fmt.Errorf("injected: %w", connectors.ErrNotMember)
	}
	return c.Changelog.Commit(ctx, markers)
}

// The pipeline's name (ownerKey) is written beside the first checkpoint's
// shards' writes. When that checkpoint is aborted (its writes hidden by
// the next complete one), the next checkpoint writes the name again: the
// store still names its pipeline.
func TestOwnerWrittenAgainAfterAnAbortedCheckpoint(t *testing.T) {
	cl := &refuseFirstChangelog{Changelog: &memio.Changelog{}, refused: make(chan struct{})}
	store := openStore(t)
	// "busy" reads its lines and ends; "slow" waits for the refusal,
	// so the first checkpoint comes before the input's end.
	src := &gatedSource{
		busy: []string{`{"dstdevice":"a","dstport":"80"}`, `{"dstdevice":"b","dstport":"443"}`},
		slow: []string{`{"dstdevice":"a","dstport":"80"}`},
		gate: cl.refused,
	}
	p := load(t, countScript)
	stats := &Stats{}
	_, err := runWithin(t, context.Background(), time.Minute, Config{Pipeline: p, Source: src, Store: store, Results: &memio.Sink{},
		MaxErrors: -1, Shards: 2, Changelog: cl, Node: "test", Stats: stats,
		CheckpointInterval: 20 * time.Millisecond, TriggerInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if stats.CheckpointsFailed.Load() == 0 {
		t.Fatal("no checkpoint was aborted")
	}
	cp, err := store.Last()
	if err != nil {
		t.Fatal(err)
	}
	owner, ok, err := store.Get(cp.ID, ownerKey)
	if err != nil || !ok || string(owner) != p.Name {
		t.Fatalf("checkpoint %d names pipeline %q (found %v, %v), want %q", cp.ID, owner, ok, err, p.Name)
	}
}

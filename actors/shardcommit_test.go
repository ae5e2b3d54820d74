package actors

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/internal/memio"
	"github.com/eddy-stream/eddy/state"
)

// A shard folds the batches after a checkpoint's barrier while that
// checkpoint's commit is still writing to the store (the commit runs off
// the shard's goroutine), and the result stays exact.
func TestShardFoldsWhileItsCheckpointCommits(t *testing.T) {
	var lines []string
	want := map[string]int{}
	for i := 0; i < 100000; i++ {
		dev := fmt.Sprintf("C%d", (i*7919)%13)
		lines = append(lines, fmt.Sprintf(`{"dstdevice":%q,"dstport":"443"}`, dev))
		want[dev]++
	}
	var added atomic.Int64 // batches shard 0 has begun to add
	addedMore := newPulse()
	setTestHookAdd(t, func(_ string, shard int) {
		if shard == 0 {
			added.Add(1)
			addedMore.fire()
		}
	})
	// The first commit of shard 0 holds until the shard has added three
	// more batches, or a minute has passed.
	var first sync.Once
	var folded atomic.Bool
	setTestHookCommit(t, func(_ string, shard int, _ uint64) {
		if shard != 0 {
			return
		}
		first.Do(func() {
			from := added.Load()
			folded.Store(addedMore.until(func() bool { return added.Load() >= from+3 }))
		})
	})
	store, err := state.Open("", state.WithInMemory())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	results := &memio.Sink{}
	_, err = Run(context.Background(), Config{
		Pipeline: load(t, countScript), Source: &memio.Source{Lines: lines, BatchSize: 100}, Store: store,
		Results: results, Shards: 2, UntilIdle: true, TriggerInterval: 10 * time.Millisecond, CheckpointInterval: 10 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !folded.Load() {
		t.Error("shard 0 added no batch while its first checkpoint was committing")
	}
	if got, wantText := rowsText(results.Rows()), top(want, 3); got != wantText {
		t.Errorf("got\n%swant\n%s", got, wantText)
	}
}

// At the end of the input the emit and the sinks' flush run while the
// final checkpoint's shards still write to the store, but the checkpoint
// is complete only once every write is in: while shard 0's write is held,
// the results arrive, the node waits for the write, and no checkpoint is
// complete yet; after it, the checkpoint holds every key.
func TestEmitRunsBesideTheFinalCheckpointsWrites(t *testing.T) {
	var lines []string
	want := map[string]int{}
	for i := 0; i < 20000; i++ {
		dev := fmt.Sprintf("C%d", (i*7919)%101)
		lines = append(lines, fmt.Sprintf(`{"dstdevice":%q,"dstport":"80"}`, dev))
		want[dev]++
	}
	store, err := state.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	changed := newPulse()
	results := &pulsingSink{changed: changed}
	var awaited atomic.Bool // the node waits for the held write
	setTestHookAwaitWrites(t, func(uint64) { awaited.Store(true); changed.fire() })
	var held sync.Once
	var emitted, waited, completeEarly atomic.Bool
	setTestHookCommit(t, func(_ string, shard int, _ uint64) {
		if shard != 0 {
			return
		}
		held.Do(func() {
			changed.until(func() bool { return len(results.Rows()) > 0 && awaited.Load() })
			emitted.Store(len(results.Rows()) > 0)
			waited.Store(awaited.Load())
			_, err := store.Last()
			completeEarly.Store(err == nil)
		})
	})
	_, err = Run(context.Background(), Config{
		Pipeline: load(t, countScript), Source: &memio.Source{Lines: lines, BatchSize: 500}, Store: store,
		Results: results, Shards: 2, UntilIdle: true, TriggerInterval: time.Hour, CheckpointInterval: time.Hour,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !emitted.Load() {
		t.Error("no result was emitted while shard 0 wrote the final checkpoint")
	}
	if !waited.Load() {
		t.Error("the node did not wait for shard 0's write after the sinks' flush")
	}
	if completeEarly.Load() {
		t.Error("the checkpoint was complete before shard 0's write was in the store")
	}
	if got, wantText := rowsText(results.Rows()), top(want, 3); got != wantText {
		t.Errorf("got\n%swant\n%s", got, wantText)
	}
	cp, err := store.Last()
	if err != nil {
		t.Fatal(err)
	}
	if cp.Keys != int64(len(want))+1 { // (and the pipeline's owner: ownerKey)
		t.Errorf("the checkpoint holds %d keys, want %d", cp.Keys, len(want)+1)
	}
}

// setTestHookAwaitWrites sets testHookAwaitWrites until the test ends.
func setTestHookAwaitWrites(t *testing.T, hook func(epoch uint64)) {
	t.Helper()
	testHookAwaitWrites.Store(&hook)
	t.Cleanup(func() { testHookAwaitWrites.Store(nil) })
}

// setTestHookCommit sets testHookCommit until the test ends.
func setTestHookCommit(t *testing.T, hook func(partition string, shard int, epoch uint64)) {
	t.Helper()
	testHookCommit.Store(&hook)
	t.Cleanup(func() { testHookCommit.Store(nil) })
}

// A checkpoint's commit writes in key order, and a key written twice in
// one checkpoint keeps its later value, whichever of the commit's batches
// it falls in.
func TestRecordedWritesKeepTheLaterWriteOfAKey(t *testing.T) {
	store, err := state.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	epoch, err := store.Begin()
	if err != nil {
		t.Fatal(err)
	}
	w := &recordedWrites{}
	const keys = 2000
	for round, v := range []string{"first", "second", "last"} {
		for i := range keys {
			k := []byte(fmt.Sprintf("agg/p\x00k%05d", (i*7919)%keys))
			if round == 1 && i%2 == 0 {
				if err := w.Delete(k); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if err := w.Set(k, []byte(v)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// In batches of 7 writes: a key's three writes fall across batch
	// boundaries, and must go to one batch (the later winning, the key
	// counted once).
	was := commitChunk
	commitChunk = 7
	defer func() { commitChunk = was }()
	if err := w.commit(store, epoch); err != nil {
		t.Fatal(err)
	}
	if err := store.Complete(state.Checkpoint{ID: epoch}); err != nil {
		t.Fatal(err)
	}
	if cp, err := store.Last(); err != nil || cp.Keys != keys {
		t.Fatalf("the checkpoint counts %d keys (%v), want %d", cp.Keys, err, keys)
	}
	for i := range keys {
		k := []byte(fmt.Sprintf("agg/p\x00k%05d", i))
		if v, ok, err := store.Get(epoch, k); err != nil || !ok || string(v) != "last" {
			t.Fatalf("%s: %q %v %v, want \"last\"", k, v, ok, err)
		}
	}
}

// pulsingSink is a memio.Sink that fires changed after each write.
type pulsingSink struct {
	memio.Sink
	changed pulse
}

func (s *pulsingSink) Write(ctx context.Context, rows []connectors.Row) error {
	defer s.changed.fire()
	return s.Sink.Write(ctx, rows)
}

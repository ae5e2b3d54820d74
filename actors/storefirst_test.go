package actors

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/internal/memio"
)

// txnWatch tells whether the changelog has an open transaction (writes
// since the last Commit or Abort), and signals the next write of a
// partition once armed.
type txnWatch struct {
	*memio.Changelog
	partition string

	mu    sync.Mutex
	open  int
	armed chan struct{}
}

func (w *txnWatch) Write(partition string, key, value []byte) {
	w.mu.Lock()
	w.open++
	if partition == w.partition && w.armed != nil {
		close(w.armed)
		w.armed = nil
	}
	w.mu.Unlock()
	w.Changelog.Write(partition, key, value)
}

func (w *txnWatch) Commit(ctx context.Context, markers map[string]connectors.ChangelogMarker) (map[string]int64, error) {
	w.mu.Lock()
	w.open = 0
	w.mu.Unlock()
	return w.Changelog.Commit(ctx, markers)
}

func (w *txnWatch) Abort(ctx context.Context) error {
	w.mu.Lock()
	w.open = 0
	w.mu.Unlock()
	return w.Changelog.Abort(ctx)
}

// arm returns a channel closed at the partition's next write.
func (w *txnWatch) arm() <-chan struct{} {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.armed == nil {
		w.armed = make(chan struct{})
	}
	return w.armed
}

func (w *txnWatch) written() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.open
}

// A partition restored from the changelog writes what it restored to the
// store before any changelog transaction opens: a store write of millions
// of keys can outlast the transaction's timeout (up to 80 s on a loaded
// machine against Kafka's one minute, and the checkpoint was lost). Node
// b restores "big" while "live" goes on reading; the store write of big's
// first checkpoint is held until live writes to the changelog (it must
// not, before big's write is done) or for a few seconds; what big read
// after its restore goes to the changelog after its store write too.
func TestRestoredStateIsStoredBeforeTheTransaction(t *testing.T) {
	was := storeFirstAbove
	storeFirstAbove = 1
	t.Cleanup(func() { storeFirstAbove = was })
	var big []string
	for i := range 300 {
		big = append(big, fmt.Sprintf(`{"dstdevice":"B%d"}`, i))
	}
	cl := &memio.Changelog{}
	_, err := Run(context.Background(), Config{Pipeline: load(t, clogScript), Source: &partsSource{parts: []connectors.Partition{&quietPart{id: "big", lines: big}}},
		Store: openStore(t), Results: &memio.Sink{}, MaxErrors: -1, Changelog: cl, Shards: 3, UntilIdle: true})
	if err != nil {
		t.Fatal(err)
	}

	live := clogLines(1_000_000)
	watch := &txnWatch{Changelog: cl, partition: "live"}
	var first atomic.Uint64
	var openDuring atomic.Int64
	held := make(chan struct{})
	var heldOnce sync.Once
	setTestHookCommit(t, func(partition string, _ int, epoch uint64) {
		if partition != "big" || !first.CompareAndSwap(0, epoch) && first.Load() != epoch {
			return
		}
		select {
		case <-watch.arm():
		case <-time.After(3 * time.Second):
		}
		openDuring.Add(int64(watch.written()))
		heldOnce.Do(func() { close(held) })
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-held:
		case <-time.After(time.Minute):
			t.Error("big's first checkpoint did not reach the store within a minute")
		}
		cancel()
	}()
	// big has 50 records more to read after its restore: their changes
	// go to the changelog only after the store write too.
	more := append(big[:len(big):len(big)], big[:50]...)
	b := openStore(t)
	_, err = Run(ctx, Config{Pipeline: load(t, clogScript), Store: b, Results: &memio.Sink{}, MaxErrors: -1, Changelog: watch, Shards: 3,
		Source:             &partsSource{parts: []connectors.Partition{&quietPart{id: "live", lines: live, pace: time.Millisecond}, &quietPart{id: "big", lines: more}}},
		CheckpointInterval: 100 * time.Millisecond, TriggerInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if n := openDuring.Load(); n > 0 {
		t.Fatalf("the changelog had %d writes in an open transaction while big's restored state was written to the store", n)
	}
	want, _ := cl.Keys("big")
	if got := storeKeys(t, b, "agg/big", "key/big"); len(want) != 600 || !maps.Equal(got, want) {
		t.Fatalf("b's store has %d keys of big, the changelog %d (want 600)", len(got), len(want))
	}
}

package actors

import (
	"math"
	"strings"
	"testing"

	"github.com/eddy-stream/eddy/state"
)

// A held window emitted at a checkpoint that is aborted: the store (and
// the changelog) drop that checkpoint's writes, its delete of the held
// window among them, so the next checkpoint must delete it again, or a
// restart from it holds the window once more and emits it twice. (The
// emitter learns of the abort from the store at its next save.)
func TestAHeldWindowDeletedInAnAbortedCheckpointIsDeletedByTheNext(t *testing.T) {
	store := openStore(t)
	e := &engine{cfg: Config{Pipeline: load(t, heldWindowScript), Store: store, Shards: 1, Stats: &Stats{}}}
	em, err := newEmitter(e)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { em.rt.Close() })
	// Checkpoint 1 holds window [0, 10s) of key "a", fired in partition p.
	accs, err := em.rt.NewAccs()
	if err != nil {
		t.Fatal(err)
	}
	v, err := em.rt.EncodeEntry(nil, []any{"a", int64(0), int64(10_000), int64(10_000)}, accs)
	if err != nil {
		t.Fatal(err)
	}
	k := heldKey("p", windowKey("a", 0))
	if err := em.hold(k, v); err != nil {
		t.Fatal(err)
	}
	checkpoint := func(complete bool) uint64 {
		t.Helper()
		epoch, err := store.Begin()
		if err != nil {
			t.Fatal(err)
		}
		if err := em.save(epoch); err != nil {
			t.Fatal(err)
		}
		if complete {
			if err := store.Complete(state.Checkpoint{ID: epoch}); err != nil {
				t.Fatal(err)
			}
		}
		return epoch
	}
	if held := heldIn(t, store, checkpoint(true)); held != string(k) {
		t.Fatalf("checkpoint 1 holds %q, want %q", held, k)
	}
	// The watermark passes the window: it is emitted, at checkpoint 2,
	// which is aborted; checkpoint 3 completes.
	rows, err := em.rows(false, math.MaxInt64)
	if err != nil || len(rows) != 1 {
		t.Fatalf("emitted %v (%v), want the held window", rows, err)
	}
	checkpoint(false)
	if held := heldIn(t, store, checkpoint(true)); held != "" {
		t.Fatalf("the checkpoint after the aborted one still holds %q, emitted before it", held)
	}
}

const heldWindowScript = `
return {
  parse = eddy.json { k = "string", t = "integer" },
  event_time = "t",
  key = "k",
  window = eddy.tumbling("10s"),
  aggregate = { n = eddy.count() },
  emit = "final",
}`

// heldIn lists the held-window keys of checkpoint epoch.
func heldIn(t *testing.T, store *state.Store, epoch uint64) string {
	t.Helper()
	var keys []string
	if err := store.Scan(epoch, []byte("held/"), func(k, _ []byte) error {
		keys = append(keys, string(k))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return strings.Join(keys, ",")
}

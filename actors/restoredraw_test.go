package actors

import (
	"context"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/internal/memio"
	"github.com/eddy-stream/eddy/state"
)

// refuseFirstMarker refuses, as Kafka does a node the group dropped, the
// first changelog commit that carries a marker of partition: that
// checkpoint is aborted and the shards redo its writes at the next.
type refuseFirstMarker struct {
	*memio.Changelog
	partition string
	mu        sync.Mutex
	refused   bool
}

func (c *refuseFirstMarker) Commit(ctx context.Context, markers map[string]connectors.ChangelogMarker) (map[string]int64, error) {
	c.mu.Lock()
	_, marks := markers[c.partition]
	refuse := marks && !c.refused
	c.refused = c.refused || refuse
	c.mu.Unlock()
	if refuse {
		c.Changelog.Abort(ctx)
		return nil, fmt.Errorf("injected: %w", connectors.ErrNotMember)
	}
	return c.Changelog.Commit(ctx, markers)
}

// A lazy shard's restore goes to the store as the changelog's changes
// came (writeRestored), not re-encoded from its table. So the order of a
// key's changes decides: the changelog holds two values of k0..k5 (two
// runs of node a), a delete of k3 and of a key that never was, and k7
// deleted and written again; node b, empty, restores it, counts k0, k3
// and k7 again (restored keys updated, a deleted key recreated), and the
// first checkpoint after its restore is aborted (its changelog commit
// refused), so the next one must write the restored changes again. Each
// run's counts must be the reference's, and b's store must equal the
// changelog; then b stops and starts again from its store, and an empty
// node c restores from the changelog: both must count the same.
func TestRestoredChangesAreStoredInTheirOrder(t *testing.T) {
	was := storeFirstAbove
	storeFirstAbove = 1
	t.Cleanup(func() { storeFirstAbove = was })
	p := load(t, lazyScript)
	run := func(store *state.Store, cl connectors.Changelog, lines []string, from int) map[string]string {
		t.Helper()
		results := &memio.Sink{}
		if _, err := runWithin(t, context.Background(), time.Minute, Config{Pipeline: p, Source: &memio.Source{Lines: lines, BatchSize: 2, From: from},
			Store: store, Results: results, MaxErrors: -1, Shards: 3, Changelog: cl, Node: "test",
			CheckpointInterval: 20 * time.Millisecond, TriggerInterval: 10 * time.Millisecond}); err != nil {
			t.Fatal(err)
		}
		got := map[string]string{}
		for _, r := range results.Rows() {
			got[r.Key] = fmt.Sprint(r.Fields[1].Value)
		}
		return got
	}
	cl := &memio.Changelog{}
	a := openStore(t)
	lines := countLines(60, 12) // k0..k11, 5 each
	run(a, cl, lines, 0)
	from := len(lines)
	lines = append(lines, countLines(30, 6)...) // k0..k5, 5 more each
	run(a, cl, lines, from)
	// A tail written by hand (no marker: the last one stands).
	cl.Write("mem", stateKey("mem", "k3"), nil)
	cl.Write("mem", stateKey("mem", "gone"), nil)
	cl.Write("mem", stateKey("mem", "k7"), nil)
	cl.Write("mem", stateKey("mem", "k7"), []byte(`[["k7"],[42]]`))
	if _, err := cl.Commit(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for i := range 12 {
		want[fmt.Sprintf("k%d", i)] = "5"
	}
	for i := range 6 {
		want[fmt.Sprintf("k%d", i)] = "10"
	}
	want["k0"], want["k3"], want["k7"] = "11", "1", "43"

	from = len(lines)
	lines = append(lines, `{"id":"k0"}`, `{"id":"k3"}`, `{"id":"k7"}`)
	b := openStore(t)
	refusing := &refuseFirstMarker{Changelog: cl, partition: "mem"}
	if got := run(b, refusing, lines, from); !maps.Equal(got, want) {
		t.Fatalf("node b after its restore counted\n%v\nwant\n%v", got, want)
	}
	if !refusing.refused {
		t.Fatal("no changelog commit of mem was refused: the test aborted no checkpoint")
	}
	clKeys, _ := cl.Keys("mem")
	if stored := storeKeys(t, b, "agg/"); !maps.Equal(stored, clKeys) {
		t.Fatalf("node b's store:\n%v\nthe changelog:\n%v", stored, clKeys)
	}
	if got := run(b, cl, lines, len(lines)); !maps.Equal(got, want) {
		t.Errorf("node b started again from its store counted\n%v\nwant\n%v", got, want)
	}
	if got := run(openStore(t), cl, lines, len(lines)); !maps.Equal(got, want) {
		t.Errorf("node c restored from the changelog counted\n%v\nwant\n%v", got, want)
	}
}

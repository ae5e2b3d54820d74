package actors

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/internal/memio"
)

// keyWatch is a changelog that notes every key written to it.
type keyWatch struct {
	*memio.Changelog
	mu   sync.Mutex
	keys []string
}

func (w *keyWatch) Write(partition string, key, value []byte) {
	w.mu.Lock()
	w.keys = append(w.keys, string(key))
	w.mu.Unlock()
	w.Changelog.Write(partition, key, value)
}

// A window that opens and fires between two checkpoints never needs to be
// in state: no checkpoint writes it, nor deletes it, to the store or the
// changelog. Here the only checkpoint is the final one, after every window
// fired, so no window key may reach either.
func TestWindowsBetweenCheckpointsAreNotWritten(t *testing.T) {
	script := `return {
		parse = eddy.json { k = "string", t = "number" },
		event_time = "t",
		watermark = { out_of_order = "0s" },
		key = "k",
		window = eddy.tumbling("60s"),
		aggregate = { n = eddy.count() },
		emit = "final",
	}`
	var lines []string
	for ts := 0; ts < 200; ts += 10 {
		for _, k := range []string{"a", "b"} {
			lines = append(lines, fmt.Sprintf(`{"k":%q,"t":%d}`, k, ts))
		}
	}
	cl := &keyWatch{Changelog: &memio.Changelog{}}
	store := openStore(t)
	results := &memio.Sink{}
	_, err := Run(context.Background(), Config{Pipeline: load(t, script), Source: &memio.Source{Lines: lines, BatchSize: 7},
		Store: store, Results: results, MaxErrors: -1, Changelog: cl, Shards: 2, Node: "test", CheckpointInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for m, n := range []int{6, 6, 6, 2} {
		for _, k := range []string{"a", "b"} {
			fmt.Fprintf(&want, "{\"k\":%q,\"window_start\":\"1970-01-01T00:%02d:00.000Z\",\"window_end\":\"1970-01-01T00:%02d:00.000Z\",\"n\":%d}\n", k, m, m+1, n)
		}
	}
	if got := rowsText(results.Rows()); got != want.String() {
		t.Fatalf("emitted\n%swant\n%s", got, want.String())
	}
	for _, k := range cl.keys {
		if strings.HasPrefix(k, "agg/") {
			t.Errorf("the changelog got window key %q", k)
		}
	}
	if got := storeKeys(t, store, "agg/"); len(got) != 0 {
		t.Errorf("the store holds window keys %v", got)
	}
}

package actors_test

import (
	"context"
	"fmt"
	"strconv"
	"testing"

	"github.com/eddy-stream/eddy/actors"
	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/internal/benchrun"
	"github.com/eddy-stream/eddy/internal/memio"
	"github.com/eddy-stream/eddy/internal/testenv"
	"github.com/eddy-stream/eddy/scripting"
	"github.com/eddy-stream/eddy/state"
)

const restoreScript = `
return {
  parse = eddy.json { id = "string" },
  key = "id",
  aggregate = { count = eddy.count() },
  emit = "update",
}`

// BenchmarkRestore takes over a partition whose changelog holds
// EDDY_BENCH_KEYS (default 1,000,000) keys' counts, in one process and
// without Kafka: a run with an empty store restores the partition from
// an in-memory changelog, takes in one new record, writes its first
// checkpoint (every restored entry goes to the store) and ends. Beside it,
// the plain-Go baseline holds the same changes in a map, the least a
// restore that keeps every key in memory does. It prints CPU, allocations
// and peak heap per key for both, and checks the run's result (the new
// record's count) and the store's keys.
func BenchmarkRestore(b *testing.B) {
	keys := testenv.BenchSize(b, "EDDY_BENCH_KEYS", 1_000_000)
	p, err := scripting.LoadSource("restore.lua", []byte(restoreScript))
	if err != nil {
		b.Fatal(err)
	}
	cl := &memio.Changelog{}
	id := func(i int) string { return fmt.Sprintf("id-%09d", i) }
	for i := range keys {
		cl.Write("mem", []byte("agg/mem\x00"+id(i)), []byte(`[["`+id(i)+`"],[1]]`))
	}
	marker := connectors.ChangelogMarker{Checkpoint: 1, Position: connectors.Position("0"), Node: "filler"}
	if _, err := cl.Commit(context.Background(), map[string]connectors.ChangelogMarker{"mem": marker}); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		base := benchrun.Measure("baseline: the changes in a Go map", int64(keys), func() {
			m := map[string][]byte{}
			_, _, err := cl.Restore(context.Background(), "mem", 0, func(k, v []byte) error {
				m[string(k[len("agg/mem\x00"):])] = v
				return nil
			}, nil)
			if err != nil || len(m) != keys {
				b.Fatalf("baseline: %d keys (%v)", len(m), err)
			}
		})
		store, err := state.Open(b.TempDir())
		if err != nil {
			b.Fatal(err)
		}
		results := &memio.Sink{}
		stats := &actors.Stats{}
		eddy := benchrun.Measure("eddy: restore, one record, first checkpoint", int64(keys), func() {
			_, err = actors.Run(context.Background(), actors.Config{Pipeline: p, Source: &memio.Source{Lines: []string{`{"id":"` + id(keys/2) + `"}`}},
				Store: store, Results: results, Changelog: cl, Shards: 2, Node: "bench", MaxErrors: -1, Stats: stats})
		})
		if err != nil {
			b.Fatal(err)
		}
		rows := results.Rows()
		if len(rows) != 1 || rows[0].Key != id(keys/2) || fmt.Sprint(rows[0].Fields[1].Value) != "2" {
			b.Fatalf("results %v, want %s counted twice", rows, id(keys/2))
		}
		cp, err := store.Last()
		if err != nil || cp.Keys < int64(keys) {
			b.Fatalf("the store's last checkpoint %+v (%v): want %d keys at least", cp, err, keys)
		}
		store.Close()
		benchrun.Print("restore of "+strconv.Itoa(keys)+" keys from an in-memory changelog (BenchmarkRestore)", base, eddy)
		fmt.Printf("  eddy: %.2f µs CPU, %.1f allocations and %.0f bytes of peak heap a key; %d changes restored\n",
			eddy.CPU.Seconds()*1e6/float64(keys), float64(eddy.Mallocs)/float64(keys), float64(eddy.PeakHeap)/float64(keys), stats.Restored.Load())
	}
}

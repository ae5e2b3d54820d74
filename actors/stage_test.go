package actors

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/internal/memio"
	"github.com/eddy-stream/eddy/state"
)

const stagesScript = `return {
	parse = eddy.json { k = "string", t = "number" },
	event_time = "t",
	stages = {
		{ key = "k", window = eddy.tumbling("10s"), aggregate = { n = eddy.count() } },
		{ key = "window_start", aggregate = { most = eddy.max("n") }, emit = "final" },
	},
}`

// A partition of a multi-stage pipeline that fails ends the run with the
// cause, instead of restarting alone: its restart would send the next
// stage windows it has already counted.
func TestStagesPartitionFailureEndsRun(t *testing.T) {
	setTestHookAdd(t, func(string, int) { panic(fmt.Errorf("shard crashed on its first batch")) })
	store, err := state.Open("", state.WithInMemory())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var lines []string
	for i := range 100 {
		lines = append(lines, fmt.Sprintf(`{"k":"a%d","t":%d}`, i%5, 1_700_000_000+i))
	}
	_, err = runWithin(t, context.Background(), 30*time.Second, Config{
		Pipeline: load(t, stagesScript), Source: &memio.Source{Lines: lines, BatchSize: 10}, Store: store,
		Results: &memio.Sink{}, Shards: 2, Workers: 1, MaxErrors: -1, RestartBackoff: 5 * time.Millisecond,
		TriggerInterval: 10 * time.Millisecond,
	})
	want := "partition mem failed: shard crashed on its first batch; a multi-stage pipeline does not restart one partition"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want an error containing %q", err, want)
	}
}

// A stage's checkpoint writes what changed since the last complete
// checkpoint, not only since the last save: a key a checkpoint that never
// completed wrote is written again, or completing the next would hide it.
func TestStageSaveRewritesAbandoned(t *testing.T) {
	store, err := state.Open("", state.WithInMemory())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	p := load(t, stagesScript).Last()
	e := &engine{cfg: Config{Store: store, Pipeline: p}}
	s, err := newStage(e, p, 0, 1, 1, stageHop{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.rt.Close()
	row := func(start string) connectors.Row {
		return connectors.Row{Fields: []connectors.Field{{Name: "window_start", Value: start}, {Name: "n", Value: int64(3)}}}
	}
	checkpoint := func(complete bool) uint64 {
		t.Helper()
		epoch, err := store.Begin()
		if err != nil {
			t.Fatal(err)
		}
		if err := s.save(epoch); err != nil {
			t.Fatal(err)
		}
		if complete {
			if err := store.Complete(state.Checkpoint{ID: epoch}); err != nil {
				t.Fatal(err)
			}
		}
		return epoch
	}
	for _, step := range []struct {
		start    string
		complete bool
	}{{"a", true}, {"b", false}, {"", true}} {
		if step.start != "" {
			if err := s.add(row(step.start)); err != nil {
				t.Fatal(err)
			}
		}
		checkpoint(step.complete)
	}
	restored, err := newStage(e, p, 0, 1, 1, stageHop{})
	if err != nil {
		t.Fatal(err)
	}
	defer restored.rt.Close()
	if len(restored.table) != 2 || restored.table["a"] == nil || restored.table["b"] == nil {
		t.Fatalf("restored keys %v, want a and b (b written by a checkpoint that never completed, then by the next)", keysOf(restored.table))
	}
}

func keysOf[V any](m map[string]V) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// The last stage's shards each hold part of its table; the collector puts
// a complete-mode table together whole: ordered, limited, numbered.
func TestStagesCompleteAcrossShards(t *testing.T) {
	store, err := state.Open("", state.WithInMemory())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	var lines []string
	// Keys k0..k9 in 10 s windows; key ki has i+1 records in window w.
	for w := range 6 {
		for i := range 10 {
			for range i + 1 {
				lines = append(lines, fmt.Sprintf(`{"k":"k%d","t":%d}`, i, 1_700_000_000+w*10))
			}
		}
	}
	src := strings.Replace(stagesScript, `{ key = "window_start", aggregate = { most = eddy.max("n") }, emit = "final" }`,
		`{ key = "n", aggregate = { windows = eddy.count() }, emit = "complete", order_by = { "n desc" }, limit = 3 }`, 1)
	results := &memio.Sink{}
	_, err = runWithin(t, context.Background(), 30*time.Second, Config{
		Pipeline: load(t, src), Source: &memio.Source{Lines: lines, BatchSize: 7}, Store: store,
		Results: results, Shards: 4, Workers: 1, MaxErrors: -1, TriggerInterval: time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	rows := results.Rows()
	if len(rows) < 3 {
		t.Fatalf("%d rows, want at least one table of 3", len(rows))
	}
	var last []string
	for i, r := range rows {
		trigger, _ := r.Get(TriggerColumn)
		if want := int64(i/3 + 1); trigger != want {
			t.Fatalf("row %d is in table %v, want %d (tables of 3 rows, numbered in turn)", i, trigger, want)
		}
		if i >= len(rows)-3 {
			n, _ := r.Get("n")
			w, _ := r.Get("windows")
			last = append(last, fmt.Sprintf("%v:%v", n, w))
		}
	}
	if got := strings.Join(last, " "); got != "10:6 9:6 8:6" {
		t.Fatalf("last table %s, want 10:6 9:6 8:6 (n = 10, 9, 8 in each of the 6 windows)", got)
	}
}

// A row a later stage can't add (a string where sum wants a number) goes
// to the dead letters, named by its stage, and counts nowhere; the flush of
// the barrier that carried it covers it (a checkpoint completes only with
// its dead letters durable).
func TestStageRowToDeadLetters(t *testing.T) {
	store, err := state.Open("", state.WithInMemory())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	src := strings.Replace(stagesScript, `{ key = "k", window = eddy.tumbling("10s"), aggregate = { n = eddy.count() } }`,
		`{ key = "k", window = eddy.tumbling("10s"), aggregate = { n = eddy.count(), v = eddy.max("k") } }`, 1)
	src = strings.Replace(src, `aggregate = { most = eddy.max("n") }`, `aggregate = { most = eddy.max("n"), s = eddy.sum("v") }`, 1)
	results, dead := &memio.Sink{}, &flushedSink{Sink: &memio.Sink{}}
	_, err = runWithin(t, context.Background(), 30*time.Second, Config{
		Pipeline: load(t, src), Source: &memio.Source{Lines: []string{`{"k":"a","t":1700000000}`}}, Store: store,
		Results: results, DeadLetters: dead, Shards: 2, Workers: 1, MaxErrors: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	rows := dead.Rows()
	if len(rows) != 1 {
		t.Fatalf("%d dead letters, want 1", len(rows))
	}
	msg, _ := rows[0].Get("error")
	if want := `stages[2]: aggregate s:`; !strings.HasPrefix(fmt.Sprint(msg), want) {
		t.Fatalf("dead letter %v, want it to start %q", msg, want)
	}
	if len(results.Rows()) != 0 {
		t.Fatalf("results %v, want none (the one row failed)", results.Rows())
	}
	if n := dead.flushedRows(); n != 1 {
		t.Fatalf("%d dead letters flushed by the run's last barrier, want 1 (a dead letter written after its barrier's flush is not covered by its checkpoint)", n)
	}
}

// flushedSink counts the rows it had written at its last flush.
type flushedSink struct {
	*memio.Sink
	mu      sync.Mutex
	flushed int
}

func (s *flushedSink) Flush(ctx context.Context) error {
	n := len(s.Rows())
	s.mu.Lock()
	s.flushed = n
	s.mu.Unlock()
	return s.Sink.Flush(ctx)
}

func (s *flushedSink) flushedRows() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flushed
}

package actors

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/internal/memio"
	"github.com/eddy-stream/eddy/state"
)

// A partition that crashes while no checkpoint is in flight, with a
// transactional sink: the sink's open transaction holds the records the
// partition wrote since the last checkpoint (here: since its start, there
// is no barrier before the input ends). Restarted in-process from the last
// checkpoint, the partition wrote them again into that same transaction,
// and the final checkpoint committed them twice. The run now ends with the
// cause instead, and the next run resumes from the last checkpoint: every
// record is committed exactly once.
func TestPartitionCrashWithATransactionalSinkEndsTheRun(t *testing.T) {
	script := `return {
	parse = eddy.json { k = "string", t = "number" },
	event_time = "t",
	watermark = { out_of_order = "0s" },
	key = "k",
	window = eddy.tumbling("10s"),
	aggregate = { n = eddy.count() },
	emit = "final",
}`
	const n = 300
	var lines []string
	for ts := range n {
		lines = append(lines, fmt.Sprintf(`{"k":"a","t":%d}`, ts))
	}
	// The 41st shard add crashes (batch 21 of 5 records, 2 shards); later
	// ones, the next run's, don't.
	var adds atomic.Int64
	setTestHookAdd(t, func(string, int) {
		if adds.Add(1) == 41 {
			panic("injected crash")
		}
	})
	dir := t.TempDir()
	records, results := &txSink{}, &txSink{}
	run := func() error {
		store, err := state.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		// No trigger and no checkpoint before the input ends: nothing
		// is in flight when the partition crashes.
		_, err = runWithin(t, context.Background(), time.Minute, Config{Pipeline: load(t, script),
			Source: &memio.Source{Lines: lines, BatchSize: 5}, Store: store, Records: records, Results: results,
			MaxErrors: -1, Shards: 2, RestartBackoff: time.Millisecond,
			CheckpointInterval: time.Hour, TriggerInterval: time.Hour})
		return err
	}
	err := run()
	if adds.Load() < 41 {
		t.Fatalf("%d shard adds: the injected crash did not happen", adds.Load())
	}
	if err != nil {
		for _, want := range []string{"partition mem failed: injected crash", "run it again to resume from the last checkpoint"} {
			if !strings.Contains(err.Error(), want) {
				t.Fatalf("the run ended with %q, want it to contain %q", err, want)
			}
		}
		// The next process: fresh sinks with what was committed. The
		// run that ended may still have rows on their way to the old
		// ones after Run returns (a process that exits loses them with
		// its transaction).
		records, results = records.successor(), results.successor()
		if err := run(); err != nil {
			t.Fatal(err)
		}
	}
	// Every record once, in order (one partition).
	recs, wins := records.committedRows(), results.committedRows()
	if len(recs) != n {
		t.Fatalf("committed %d records for %d lines", len(recs), n)
	}
	for i, r := range recs {
		if v, _ := r.Get("t"); fmt.Sprint(v) != fmt.Sprint(i) {
			t.Fatalf("committed record %d has t=%v, want %d", i, v, i)
		}
	}
	// Every window once, with its 10 records, counted in plain Go.
	if len(wins) != n/10 {
		t.Fatalf("committed %d windows, want %d:\n%s", len(wins), n/10, rowsText(wins))
	}
	for i, r := range wins {
		if c, _ := r.Get("n"); c != int64(10) {
			t.Fatalf("window %d counted %v records, want 10:\n%s", i, c, rowsText(wins))
		}
	}
}

// committedRows is a copy of the rows committed so far.
func (s *txSink) committedRows() []connectors.Row {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]connectors.Row(nil), s.committed...)
}

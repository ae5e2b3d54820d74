package actors

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/internal/memio"
)

// A partition restarted after its shard crashed reads again from the last
// checkpoint (here: from its start, there is none yet). The barriers it
// gets must not carry the watermark its predecessor had reached: the
// shards, reading again, would count those records late and fire their
// windows without them.
func TestRestartedPartitionReadsAgainBehindTheWatermark(t *testing.T) {
	script := `return {
	parse = eddy.json { k = "string", t = "number" },
	event_time = "t",
	watermark = { out_of_order = "0s" },
	key = "k",
	window = eddy.tumbling("10s"),
	aggregate = { n = eddy.count() },
	emit = "final",
}`
	var lines []string
	for ts := 0; ts < 300; ts++ {
		lines = append(lines, fmt.Sprintf(`{"k":"a","t":%d}`, ts))
	}
	// every window of 10 records, counted in plain Go
	var want []string
	stamp := func(s int) string { return time.Unix(int64(s), 0).UTC().Format("2006-01-02T15:04:05.000Z") }
	for s := 0; s < 300; s += 10 {
		want = append(want, fmt.Sprintf(`{"k":"a","window_start":%q,"window_end":%q,"n":10}`, stamp(s), stamp(s+10)))
	}
	// A trigger after every batch of 5 (Boundary) and no other: when
	// batch 21 (t 100 to 104) comes, the windows up to 90 are out and
	// [90,100) waits for it. The first shard add of batch 21 crashes.
	var adds atomic.Int64
	setTestHookAdd(t, func(string, int) {
		if adds.Add(1) == 41 {
			panic("injected crash")
		}
	})
	results := &memio.Sink{}
	stats := &Stats{}
	_, err := runWithin(t, context.Background(), time.Minute, Config{Pipeline: load(t, script),
		Source: &memio.Source{Lines: lines, BatchSize: 5, Boundary: true}, Store: openStore(t), Results: results,
		MaxErrors: -1, Shards: 2, Stats: stats, RestartBackoff: time.Millisecond,
		CheckpointInterval: time.Hour, TriggerInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	if adds.Load() < 41 {
		t.Fatalf("%d shard adds: the injected crash did not happen", adds.Load())
	}
	// At least once (the sink is not transactional): each window, whole.
	seen := map[string]bool{}
	var got []string
	for _, r := range strings.Split(strings.TrimSuffix(rowsText(results.Rows()), "\n"), "\n") {
		if !seen[r] {
			seen[r] = true
			got = append(got, r)
		}
	}
	sort.Strings(got)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("the windows emitted (each once here):\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

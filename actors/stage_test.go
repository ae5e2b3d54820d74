package actors

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

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

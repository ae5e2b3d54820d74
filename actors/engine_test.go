package actors

import (
	"context"
	"errors"
	"fmt"
	"github.com/asynkron/protoactor-go/actor"
	"sort"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/internal/memio"
	"github.com/eddy-stream/eddy/scripting"
	"github.com/eddy-stream/eddy/state"
)

const countScript = `
local web = { ["80"] = true, ["443"] = true }
return {
  parse = eddy.json { dstdevice = "string", dstport = "string|number" },
  filter = function(r) return web[tostring(r.dstport)] end,
  key = "dstdevice",
  aggregate = { count = eddy.count() },
  order_by = { "count desc", "dstdevice" },
  limit = 3,
  emit = "final",
}`

func load(t *testing.T, src string) *scripting.Pipeline {
	t.Helper()
	p, err := scripting.LoadSource("test.lua", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func rowsText(rows []connectors.Row) string {
	var sb strings.Builder
	for _, r := range rows {
		sb.Write(connectors.AppendJSON(nil, r))
		sb.WriteByte('\n')
	}
	return sb.String()
}

func TestRunCounts(t *testing.T) {
	var lines []string
	for i := 0; i < 5000; i++ {
		port := []string{"80", "443", "22", "Port1"}[i%4]
		lines = append(lines, fmt.Sprintf(`{"dstdevice":"C%d","dstport":%q}`, i%7, port))
	}
	lines = append(lines, `{"dstdevice":"C1","dstport":80}`, `not json`, `{"dstdevice":5,"dstport":"80"}`)
	store, err := state.Open("", state.WithInMemory())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	results, dead := &memio.Sink{}, &memio.Sink{}
	sum, err := Run(context.Background(), Config{
		Pipeline: load(t, countScript), Source: &memio.Source{Lines: lines, BatchSize: 100}, Store: store,
		Results: results, DeadLetters: dead, Shards: 3, MaxErrors: -1,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]int{}
	for i := 0; i < 5000; i++ {
		if i%4 < 2 {
			want[fmt.Sprintf("C%d", i%7)]++
		}
	}
	want["C1"]++
	got := rowsText(results.Rows())
	if wantText := top(want, 3); got != wantText {
		t.Errorf("got\n%swant\n%s", got, wantText)
	}
	if sum.Read != int64(len(lines)) || sum.Failed != 2 {
		t.Errorf("summary %+v: want %d read, 2 failed", sum, len(lines))
	}
	if len(dead.Rows()) != 2 {
		t.Errorf("dead letters: got %d, want 2:\n%s", len(dead.Rows()), rowsText(dead.Rows()))
	}
}

// top renders the first n of counts as the netflow script's rows.
func top(counts map[string]int, n int) string {
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if counts[keys[i]] != counts[keys[j]] {
			return counts[keys[i]] > counts[keys[j]]
		}
		return keys[i] < keys[j]
	})
	var sb strings.Builder
	for _, k := range keys[:min(n, len(keys))] {
		fmt.Fprintf(&sb, "{\"dstdevice\":%q,\"count\":%d}\n", k, counts[k])
	}
	return sb.String()
}

// A shard that crashes mid-run is restarted from the last checkpoint with
// its partition rewound: the result is still exact.
func TestCrashedShardRestartsFromCheckpoint(t *testing.T) {
	var lines []string
	want := map[string]int{}
	for i := 0; i < 40000; i++ {
		dev := fmt.Sprintf("C%d", (i*7919)%13)
		lines = append(lines, fmt.Sprintf(`{"dstdevice":%q,"dstport":"443"}`, dev))
		want[dev]++
	}
	var batches atomic.Int64
	crashed := make(chan struct{})
	setTestHookAdd(t, func(string, int) {
		if batches.Add(1) == 150 {
			close(crashed)
			panic("injected crash")
		}
	})
	store, err := state.Open("", state.WithInMemory())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	results := &memio.Sink{}
	stats := &Stats{}
	_, err = Run(context.Background(), Config{
		Pipeline: load(t, countScript), Source: &memio.Source{Lines: lines, BatchSize: 50}, Store: store,
		Results: results, Shards: 2, Workers: 2, MaxErrors: -1, Stats: stats,
		TriggerInterval: 5 * time.Millisecond, CheckpointInterval: 5 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-crashed:
	default:
		t.Fatal("the injected crash never happened")
	}
	if stats.Checkpoints.Load() < 2 {
		t.Errorf("only %d checkpoints: the crash did not happen between checkpoints", stats.Checkpoints.Load())
	}
	if got, wantText := rowsText(results.Rows()), top(want, 3); got != wantText {
		t.Fatalf("after a crashed shard:\ngot\n%swant\n%s", got, wantText)
	}
}

// A state directory remembers its pipeline: another pipeline can't
// restore from it by mistake.
func TestStateBelongsToOnePipeline(t *testing.T) {
	dir := t.TempDir()
	run := func(src string) error {
		store, err := state.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		_, err = Run(context.Background(), Config{Pipeline: load(t, src), Source: &memio.Source{Lines: []string{`{"dstdevice":"a","dstport":"80"}`}},
			Store: store, Results: &memio.Sink{}, MaxErrors: -1})
		return err
	}
	if err := run(countScript); err != nil {
		t.Fatal(err)
	}
	if err := run(countScript); err != nil {
		t.Fatalf("the same pipeline again: %v", err)
	}
	other := strings.Replace(countScript, "return {", `return { name = "other",`, 1)
	if err := run(other); err == nil || !strings.Contains(err.Error(), `holds checkpoints of pipeline "test", not "other"`) {
		t.Fatalf("another pipeline on the same state: %v", err)
	}
}

// A running pipeline answers status and live-state queries.
func TestHandleStatusAndState(t *testing.T) {
	store, err := state.Open("", state.WithInMemory())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	lines := []string{`{"dstdevice":"A","dstport":"80"}`, `{"dstdevice":"B","dstport":"443"}`, `{"dstdevice":"A","dstport":443}`}
	src := strings.Replace(countScript, `emit = "final"`, `emit = "update"`, 1)
	handles := make(chan *Handle, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := Run(ctx, Config{Pipeline: load(t, src), Source: &quietSource{lines: lines}, Store: store,
			Results: &memio.Sink{}, MaxErrors: -1, TriggerInterval: 10 * time.Millisecond,
			OnReady: func(h *Handle) { handles <- h }})
		done <- err
	}()
	h := <-handles
	deadline := time.Now().Add(10 * time.Second)
	var rows []connectors.Row
	for (len(rows) < 2 || err != nil) && time.Now().Before(deadline) {
		// incomplete while the partition starts
		if rows, err = h.State(ctx, ""); err != nil && !errors.Is(err, ErrIncomplete) {
			t.Fatal(err)
		}
	}
	if got := rowsText(rows); err != nil || got != "{\"dstdevice\":\"A\",\"count\":2}\n{\"dstdevice\":\"B\",\"count\":1}\n" {
		t.Fatalf("state: %v\n%s", err, got)
	}
	one, err := h.State(ctx, "B")
	if err != nil || rowsText(one) != "{\"dstdevice\":\"B\",\"count\":1}\n" {
		t.Fatalf("state of B: %v %s", err, rowsText(one))
	}
	// A query its asker gave up on is neither worked on nor answered: a
	// busy emitter does not fall behind on answers no one waits for.
	late := &stateQuery{deadline: time.Now().Add(-time.Second)}
	if _, err := h.e.system.Root.RequestFuture(h.e.emitter, late, time.Second).Result(); !errors.Is(err, actor.ErrTimeout) {
		t.Fatalf("a state query past its deadline: %v, want no answer", err)
	}
	// Two nodes' shares, merged: here the same share twice, so every
	// count doubles; the whole table keeps order_by.
	share, err := h.Share(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	merged, err := h.Merge(ctx, "", [][]byte{share.Data, share.Data})
	if err != nil {
		t.Fatal(err)
	}
	if got := rowsText(merged); got != "{\"dstdevice\":\"A\",\"count\":4}\n{\"dstdevice\":\"B\",\"count\":2}\n" {
		t.Fatalf("merged shares:\n%s\nshare:\n%s", got, share.Data)
	}
	shareB, err := h.Share(ctx, "B")
	if err != nil {
		t.Fatal(err)
	}
	merged, err = h.Merge(ctx, "B", [][]byte{shareB.Data, nil, shareB.Data, shareB.Data})
	if err != nil || rowsText(merged) != "{\"dstdevice\":\"B\",\"count\":3}\n" {
		t.Fatalf("merged shares of B: %v %s", err, rowsText(merged))
	}
	if _, err := h.Merge(ctx, "", [][]byte{[]byte("not json\n")}); err == nil || !strings.Contains(err.Error(), "share 0: bad share line") {
		t.Fatalf("a bad share: %v", err)
	}
	st, err := h.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Pipeline != "test" || len(st.Partitions) != 2 || st.Read != 3 || st.Partitions[0].ID != "busy" || st.Partitions[0].Position != "3" {
		t.Fatalf("status %+v", st)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// setTestHookAdd sets testHookAdd until the test ends.
func setTestHookAdd(t *testing.T, hook func(partition string, shard int)) {
	t.Helper()
	testHookAdd.Store(&hook)
	t.Cleanup(func() { testHookAdd.Store(nil) })
}

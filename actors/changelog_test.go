package actors

import (
	"context"
	"fmt"
	"maps"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/internal/memio"
	"github.com/eddy-stream/eddy/state"
)

// clogScript counts every device, with a hook state per device so both
// kinds of state move.
const clogScript = `
return {
  parse = eddy.json { dstdevice = "string" },
  key = "dstdevice",
  aggregate = { count = eddy.count() },
  on_record = function(r, ctx) ctx.state.seen = (ctx.state.seen or 0) + 1 end,
  order_by = { "dstdevice" },
  emit = "final",
}`

func clogLines(n int) []string {
	lines := make([]string, n)
	for i := range lines {
		lines[i] = fmt.Sprintf(`{"dstdevice":"D%d"}`, i%13)
	}
	return lines
}

func wantCounts(lines []string) string {
	counts := map[string]int{}
	for _, l := range lines {
		counts[strings.TrimSuffix(strings.TrimPrefix(l, `{"dstdevice":"`), `"}`)]++
	}
	keys := make([]string, 0, len(counts))
	for k := range counts {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var sb strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&sb, "{\"dstdevice\":%q,\"count\":%d}\n", k, counts[k])
	}
	return sb.String()
}

// runNode runs the pipeline over lines on a store of its own (a node),
// sharing the changelog, and returns the final result.
// Without a checkpoint of the partition, reading starts at start, as a
// Kafka partition starts at the group's committed offset.
func runNode(t *testing.T, store *state.Store, cl connectors.Changelog, lines []string, start int) (string, Summary, *Stats) {
	t.Helper()
	results := &memio.Sink{}
	stats := &Stats{}
	sum, err := Run(context.Background(), Config{Pipeline: load(t, clogScript), Source: &memio.Source{Lines: lines, BatchSize: 50, From: start},
		Store: store, Results: results, MaxErrors: -1, Shards: 3, Changelog: cl, Node: "test", Stats: stats})
	if err != nil {
		t.Fatal(err)
	}
	return rowsText(results.Rows()), sum, stats
}

func openStore(t *testing.T) *state.Store {
	t.Helper()
	s, err := state.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// A partition read by node a, then b, then a again: each takes the state
// where the last left it, from the changelog, and a's old local state is
// brought up to date, not counted twice.
func TestStateFollowsThePartition(t *testing.T) {
	lines := clogLines(3000)
	cl := &memio.Changelog{}
	a, b := openStore(t), openStore(t)
	if got, _, _ := runNode(t, a, cl, lines[:1000], 0); got != wantCounts(lines[:1000]) {
		t.Fatalf("a, first third:\n%s\nwant\n%s", got, wantCounts(lines[:1000]))
	}
	got, sum, stats := runNode(t, b, cl, lines[:2000], 1000)
	if got != wantCounts(lines[:2000]) || sum.Read != 1000 || stats.Restored.Load() != 26 {
		t.Fatalf("b, restored from the changelog (%d changes), read %d, two thirds:\n%s\nwant\n%s", stats.Restored.Load(), sum.Read, got, wantCounts(lines[:2000]))
	}
	// a's store holds the first third; the changelog has b's third on top.
	got, sum, stats = runNode(t, a, cl, lines, 2000)
	if got != wantCounts(lines) || sum.Read != 1000 || stats.Restored.Load() != 26 {
		t.Fatalf("a again, %d changes restored, read %d:\n%s\nwant\n%s", stats.Restored.Load(), sum.Read, got, wantCounts(lines))
	}
	// The changelog holds the final state: 13 counts and 13 hook states.
	keys, marker := cl.Keys("mem")
	if len(keys) != 26 || !strings.Contains(marker, `"position":"MzAwMA=="`) {
		t.Fatalf("changelog: %d keys, marker %s", len(keys), marker)
	}
	// A fourth node restores everything and has nothing left to read.
	c := openStore(t)
	if got, sum, _ := runNode(t, c, cl, lines, 0); got != wantCounts(lines) || sum.Read != 0 {
		t.Fatalf("c read %d:\n%s\nwant\n%s", sum.Read, got, wantCounts(lines))
	}
}

// Local state from a run without the changelog is not trusted once the
// changelog has the partition: the changelog wins, and the stale local
// keys are deleted.
func TestChangelogWinsOverOlderLocalState(t *testing.T) {
	lines := clogLines(2000)
	a := openStore(t)
	// a's own, without the changelog, with a device the changelog never
	// sees.
	own := append([]string{`{"dstdevice":"STALE"}`}, lines[1:500]...)
	runNode(t, a, nil, own, 0)
	if keys := storeKeys(t, a, "agg/", "key/"); len(keys) != 28 {
		t.Fatalf("a's own run left %d keys, want 28 (14 devices' counts and hook states)", len(keys))
	}
	cl := &memio.Changelog{}
	b := openStore(t)
	runNode(t, b, cl, lines[:1000], 0)
	if got, _, _ := runNode(t, a, cl, lines, 1000); got != wantCounts(lines) {
		t.Fatalf("a with the changelog:\n%s\nwant\n%s", got, wantCounts(lines))
	}
	// a's store holds the state the changelog has, no more.
	want, _ := cl.Keys("mem")
	if got := storeKeys(t, a, "agg/", "key/"); len(want) != 26 || !maps.Equal(got, want) {
		t.Fatalf("a's store (%d keys):\n%v\nthe changelog (%d keys, want 26):\n%v", len(got), got, len(want), want)
	}
}

// storeKeys reads the keys under prefixes at the store's last checkpoint.
func storeKeys(t *testing.T, s *state.Store, prefixes ...string) map[string]string {
	t.Helper()
	cp, err := s.Last()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, prefix := range prefixes {
		err := s.Scan(cp.ID, []byte(prefix), func(k, v []byte) error {
			got[string(k)] = string(v)
			return nil
		})
		if err != nil {
			t.Fatalf("scanning %s at checkpoint %d: %v", prefix, cp.ID, err)
		}
	}
	return got
}

// A failed changelog commit fails the run: no checkpoint completes that
// the changelog doesn't have.
func TestChangelogCommitFailureStopsTheRun(t *testing.T) {
	cl := &memio.Changelog{FailCommit: fmt.Errorf("broker says no")}
	_, err := Run(context.Background(), Config{Pipeline: load(t, clogScript), Source: &memio.Source{Lines: clogLines(100)},
		Store: openStore(t), Results: &memio.Sink{}, MaxErrors: -1, Changelog: cl})
	if err == nil || !strings.Contains(err.Error(), "changelog: broker says no") {
		t.Fatalf("err = %v", err)
	}
}

// standbySource reads one quiet partition of its own and names "mem" as a
// partition to keep a warm copy of.
type standbySource struct {
	cl connectors.Changelog
}

func (s *standbySource) Start(_ context.Context, l connectors.Listener) error {
	l.Assign(&quietPart{id: "other"})
	return nil
}
func (s *standbySource) Close() error                                    { return nil }
func (s *standbySource) Changelog(string) (connectors.Changelog, error)  { return s.cl, nil }
func (s *standbySource) Standbys(context.Context, int) ([]string, error) { return []string{"mem"}, nil }

// A node with --standby keeps a warm copy of a partition another node
// reads: when the partition comes to it, it reads only the changes since
// its copy, not the whole changelog.
func TestStandbyCopyShortensTheRestore(t *testing.T) {
	lines := clogLines(1500)
	cl := &memio.Changelog{}
	a, b := openStore(t), openStore(t)
	runNode(t, a, cl, lines[:1000], 0) // 26 changes

	// b keeps a copy of "mem" while reading a partition of its own.
	ctx, cancel := context.WithTimeout(context.Background(), 2500*time.Millisecond)
	defer cancel()
	bStats := &Stats{}
	_, err := Run(ctx, Config{Pipeline: load(t, clogScript), Source: &standbySource{cl: cl}, Store: b, Results: &memio.Sink{},
		MaxErrors: -1, Shards: 3, Changelog: cl, Standby: 1, CheckpointInterval: 200 * time.Millisecond, TriggerInterval: 100 * time.Millisecond,
		Stats: bStats})
	if err != nil {
		t.Fatal(err)
	}
	want, _ := cl.Keys("mem")
	if got := storeKeys(t, b, "agg/mem", "key/mem"); len(want) != 26 || !maps.Equal(got, want) {
		t.Fatalf("b's copy of mem:\n%v\nthe changelog:\n%v", got, want)
	}
	// Its progress shows in the counters the metrics read.
	if n, offsets := bStats.StandbyChanges.Load(), bStats.StandbyOffsets.Load(); n != 26 || offsets == nil || (*offsets)["mem"] <= 0 {
		t.Fatalf("standby progress: %d changes read, offsets %v; want 26 and mem's", n, offsets)
	}

	runNode(t, a, cl, lines[:1500], 0) // 26 more changes
	// b takes "mem" over: it reads the 26 changes after its copy, not 52.
	out, sum, stats := runNode(t, b, cl, lines, 1500)
	if out != wantCounts(lines) || sum.Read != 0 || stats.Restored.Load() != 26 {
		t.Fatalf("b restored %d changes and read %d:\n%s\nwant\n%s", stats.Restored.Load(), sum.Read, out, wantCounts(lines))
	}
}

func TestStandbyNeedsAChangelog(t *testing.T) {
	_, err := Run(context.Background(), Config{Pipeline: load(t, clogScript), Source: &memio.Source{}, Store: openStore(t),
		Results: &memio.Sink{}, Standby: 1})
	if err == nil || !strings.Contains(err.Error(), "--standby needs the changelog") {
		t.Fatalf("err = %v", err)
	}
}

// partsSource assigns the partitions it is given.
type partsSource struct{ parts []connectors.Partition }

func (s *partsSource) Start(_ context.Context, l connectors.Listener) error {
	for _, p := range s.parts {
		l.Assign(p)
	}
	return nil
}
func (s *partsSource) Close() error { return nil }

// Windows that fired in a partition but wait for the node's slowest
// partition (final emits) move with the partition: the next owner emits
// them.
func TestHeldWindowsMoveWithThePartition(t *testing.T) {
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
		lines = append(lines, fmt.Sprintf(`{"k":"a","t":%d}`, ts))
	}
	cl := &memio.Changelog{}
	// a: "busy" fires three windows; "quiet" holds the node's watermark
	// back, so they wait. a stops once the changelog has its checkpoint of
	// all of "busy", before they are out.
	end := connectors.Position(strconv.Itoa(len(lines)))
	committed := &commitWatch{Changelog: cl, partition: "busy", end: end, done: make(chan struct{})}
	results := &memio.Sink{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-committed.done:
		case <-time.After(time.Minute):
			t.Error("a's checkpoint of all of busy did not reach the changelog within a minute")
		}
		cancel()
	}()
	_, err := Run(ctx, Config{Pipeline: load(t, script), Source: &quietSource{lines: lines}, Store: openStore(t), Results: results,
		MaxErrors: -1, Changelog: committed, Shards: 2, CheckpointInterval: 100 * time.Millisecond, TriggerInterval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	if n := len(results.Rows()); n != 0 {
		t.Fatalf("a emitted %d windows; the quiet partition should hold them", n)
	}
	// b gets "busy" alone, at its end: the held windows come with it, from
	// the changelog (b reads nothing), and are out at b's final emit, with
	// the open one.
	results = &memio.Sink{}
	stats := &Stats{}
	sum, err := Run(context.Background(), Config{Pipeline: load(t, script), Source: &partsSource{parts: []connectors.Partition{&quietPart{id: "busy", lines: lines}}},
		Store: openStore(t), Results: results, MaxErrors: -1, Changelog: cl, Shards: 2, UntilIdle: true, Stats: stats})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Read != 0 || stats.Restored.Load() == 0 {
		t.Fatalf("b read %d records and restored %d changes: want 0 read, its state restored", sum.Read, stats.Restored.Load())
	}
	got := rowsText(results.Rows())
	want := `{"k":"a","window_start":"1970-01-01T00:00:00.000Z","window_end":"1970-01-01T00:01:00.000Z","n":6}
{"k":"a","window_start":"1970-01-01T00:01:00.000Z","window_end":"1970-01-01T00:02:00.000Z","n":6}
{"k":"a","window_start":"1970-01-01T00:02:00.000Z","window_end":"1970-01-01T00:03:00.000Z","n":6}
{"k":"a","window_start":"1970-01-01T00:03:00.000Z","window_end":"1970-01-01T00:04:00.000Z","n":2}
`
	if got != want {
		t.Fatalf("b emitted\n%swant\n%s", got, want)
	}
}

// commitWatch closes done once a commit's marker for partition is at end.
type commitWatch struct {
	*memio.Changelog
	partition string
	end       connectors.Position
	done      chan struct{}
	once      sync.Once
}

func (w *commitWatch) Commit(ctx context.Context, markers map[string]connectors.ChangelogMarker) (map[string]int64, error) {
	offsets, err := w.Changelog.Commit(ctx, markers)
	if m, ok := markers[w.partition]; ok && err == nil && string(m.Position) == string(w.end) {
		w.once.Do(func() { close(w.done) })
	}
	return offsets, err
}

// A partition restored from the changelog, in an update emit, emits only
// the keys that change after the restore: the keys it brought were emitted
// by the previous owner, before the checkpoint the changelog holds.
func TestRestoredRowsAreNotEmittedAgain(t *testing.T) {
	script := strings.Replace(clogScript, `emit = "final"`, `emit = "update"`, 1)
	lines := clogLines(1006)
	cl := &memio.Changelog{}
	run := func(lines []string, start int) []connectors.Row {
		t.Helper()
		results := &memio.Sink{}
		_, err := Run(context.Background(), Config{Pipeline: load(t, script), Source: &memio.Source{Lines: lines, BatchSize: 50, From: start},
			Store: openStore(t), Results: results, MaxErrors: -1, Shards: 3, Changelog: cl, Node: "test"})
		if err != nil {
			t.Fatal(err)
		}
		return results.Rows()
	}
	run(lines[:1000], 0)
	// b restores the 13 devices' counts, then reads 6 records of 6 of
	// them: its output is those 6 rows, each with its whole count.
	got := map[string]string{}
	for _, r := range run(lines, 1000) {
		line := string(connectors.AppendJSON(nil, r))
		got[line[:strings.Index(line, `","count"`)]] = line
	}
	var keys []string
	for k := range got {
		keys = append(keys, got[k])
	}
	sort.Strings(keys)
	var want []string
	for _, l := range strings.Split(strings.TrimSpace(wantCounts(lines)), "\n") {
		for _, i := range []int{1000, 1001, 1002, 1003, 1004, 1005} {
			if strings.Contains(l, fmt.Sprintf(`"D%d"`, i%13)) {
				want = append(want, l)
			}
		}
	}
	sort.Strings(want)
	if strings.Join(keys, "\n") != strings.Join(want, "\n") {
		t.Fatalf("the restored node emitted\n%s\nwant only the keys it read after the restore\n%s", strings.Join(keys, "\n"), strings.Join(want, "\n"))
	}
}

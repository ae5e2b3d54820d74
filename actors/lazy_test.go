package actors

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/internal/memio"
	"github.com/eddy-stream/eddy/state"
)

const lazyScript = `
return {
  parse = eddy.json { id = "string" },
  key = "id",
  aggregate = { count = eddy.count() },
  emit = "final",
}`

// countLines is n records of ids k0..k(keys-1), round robin.
func countLines(n, keys int) []string {
	lines := make([]string, n)
	for i := range lines {
		lines[i] = fmt.Sprintf(`{"id":"k%d"}`, i%keys)
	}
	return lines
}

// A restored entry is decoded only when a record, a query or an emit
// needs it (lazyEntries); one that does not decode then is damaged state:
// the partition fails and the run ends naming the key, instead of the
// record going to the dead letters as a record's own fault would.
func TestDamagedRestoredEntryStopsTheRun(t *testing.T) {
	store, err := state.Open("", state.WithInMemory())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	p := load(t, lazyScript)
	lines := countLines(300, 3)
	if _, err := Run(context.Background(), Config{Pipeline: p, Source: &memio.Source{Lines: lines[:200], BatchSize: 50}, Store: store,
		Results: &memio.Sink{}, Shards: 2, MaxErrors: -1}); err != nil {
		t.Fatal(err)
	}
	// The last checkpoint again, with k1's entry damaged.
	cp, err := store.Last()
	if err != nil {
		t.Fatal(err)
	}
	epoch, err := store.Begin()
	if err != nil {
		t.Fatal(err)
	}
	b := store.Batch(epoch)
	if err := b.Set(stateKey("mem", "k1"), []byte(`[["k1"],{not an entry`)); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	cp.ID = epoch
	if err := store.Complete(cp); err != nil {
		t.Fatal(err)
	}
	dead := &memio.Sink{}
	_, err = Run(context.Background(), Config{Pipeline: p, Source: &memio.Source{Lines: lines, BatchSize: 50}, Store: store,
		Results: &memio.Sink{}, DeadLetters: dead, Shards: 2, MaxErrors: -1, MaxRestarts: 1, RestartBackoff: time.Millisecond})
	t.Logf("the run ended: %v", err)
	if err == nil || !strings.Contains(err.Error(), `"k1"`) {
		t.Errorf("the run with a damaged entry of k1 ended with %v, want an error naming the key", err)
	}
	if rows := dead.Rows(); len(rows) > 0 {
		t.Errorf("dead letters: %s, want none: the records are not at fault", rowsText(rows))
	}
}

// A damaged entry fails the partition as it restores, even when no record
// reaches its key and only the emit at the end reads it: the emitter
// holds restored entries encoded and can't fail a partition, so the shard
// checks each as it keeps it. The run ends naming the shard and the key,
// after the partition's restarts, not from the results sink.
func TestDamagedEntryNoRecordReadsFailsThePartition(t *testing.T) {
	store, err := state.Open("", state.WithInMemory())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	p := load(t, lazyScript)
	lines := countLines(200, 3)
	if _, err := Run(context.Background(), Config{Pipeline: p, Source: &memio.Source{Lines: lines, BatchSize: 50}, Store: store,
		Results: &memio.Sink{}, Shards: 2, MaxErrors: -1}); err != nil {
		t.Fatal(err)
	}
	damage(t, store, "k1")
	_, err = Run(context.Background(), Config{Pipeline: p, Source: &memio.Source{Lines: lines, BatchSize: 50}, Store: store,
		Results: &memio.Sink{}, Shards: 2, MaxErrors: -1, MaxRestarts: 2, RestartBackoff: time.Millisecond})
	t.Logf("the run ended: %v", err)
	if err == nil || !strings.Contains(err.Error(), `of key "k1" does not decode`) || !strings.Contains(err.Error(), "failed 3 times in a row") ||
		strings.Contains(err.Error(), "sink") {
		t.Errorf("the run with a damaged entry of k1 ended with %v, want the partition's failures naming the key", err)
	}
}

// damage completes a checkpoint after the last whose entry of key is not
// an entry.
func damage(t *testing.T, store *state.Store, key string) {
	t.Helper()
	cp, err := store.Last()
	if err != nil {
		t.Fatal(err)
	}
	epoch, err := store.Begin()
	if err != nil {
		t.Fatal(err)
	}
	b := store.Batch(epoch)
	if err := b.Set(stateKey("mem", key), []byte(`[["`+key+`"],{not an entry`)); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	cp.ID = epoch
	if err := store.Complete(cp); err != nil {
		t.Fatal(err)
	}
}

// Restored entries kept undecoded add up exactly: each key's records
// before the checkpoint and after it, in the shards' state and in the
// emitter's table, whether the key gets new records or not.
func TestRestoredEntriesAddUp(t *testing.T) {
	store, err := state.Open("", state.WithInMemory())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	p := load(t, lazyScript)
	// k0..k9 before the restart; k0..k4 and k10 after.
	first := countLines(100, 10)
	second := append(append([]string{}, first...), `{"id":"k0"}`, `{"id":"k1"}`, `{"id":"k2"}`, `{"id":"k3"}`, `{"id":"k4"}`, `{"id":"k10"}`)
	if _, err := Run(context.Background(), Config{Pipeline: p, Source: &memio.Source{Lines: first, BatchSize: 10}, Store: store,
		Results: &memio.Sink{}, Shards: 3, MaxErrors: -1}); err != nil {
		t.Fatal(err)
	}
	results := &memio.Sink{}
	if _, err := Run(context.Background(), Config{Pipeline: p, Source: &memio.Source{Lines: second, BatchSize: 2}, Store: store,
		Results: results, Shards: 3, MaxErrors: -1}); err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, r := range results.Rows() {
		got[r.Key] = string(fmt.Sprint(r.Fields[1].Value))
	}
	for i := range 11 {
		want := "10"
		switch {
		case i < 5:
			want = "11"
		case i == 10:
			want = "1"
		}
		if k := fmt.Sprintf("k%d", i); got[k] != want {
			t.Errorf("count of %s: %q, want %s (all: %v)", k, got[k], want, got)
		}
	}
	if len(got) != 11 {
		t.Errorf("%d rows, want 11: %v", len(got), got)
	}
}

// An unwindowed pipeline's key is its only state key: a query finds it
// (or not) by itself, whatever bytes it holds, without reading the table;
// a windowed one's keys are found by their windows'.
func TestMatchingKeys(t *testing.T) {
	table := map[string]*resultEntry{"a": {}, "a" + windowSep + "b": {}, "c": {}}
	for _, c := range []struct {
		key      string
		windowed bool
		want     []string
	}{
		{"a", false, []string{"a"}},
		{"a" + windowSep + "b", false, []string{"a" + windowSep + "b"}},
		{"x", false, nil},
		{"", false, []string{"a", "a" + windowSep + "b", "c"}},
		{"a", true, []string{"a", "a" + windowSep + "b"}},
	} {
		if got := matching(table, c.key, c.windowed); !slices.Equal(got, c.want) {
			t.Errorf("matching(%q, windowed %v) = %q, want %q", c.key, c.windowed, got, c.want)
		}
	}
}

// A restore keeps the changelog's values in slabs: each as it was, apart
// from the buffer it came in; a deletion (nil) stays one, an empty value
// stays empty.
func TestValueSlab(t *testing.T) {
	var s valueSlab
	src := []byte("abcdef")
	a, b := s.keep(src[:3]), s.keep(src[3:])
	big := s.keep(make([]byte, valueSlabSize))
	src[0] = 'x'
	if string(a) != "abc" || string(b) != "def" || len(big) != valueSlabSize {
		t.Errorf("kept %q %q (%d bytes), want abc def (%d)", a, b, len(big), valueSlabSize)
	}
	if grown := append(a, 'z'); string(grown) != "abcz" || string(b) != "def" {
		t.Errorf("appending to a kept value changed the next: %q", b)
	}
	if s.keep(nil) != nil || s.keep([]byte{}) == nil {
		t.Error("a deletion (nil) or an empty value changed kind")
	}
}

// writeCounter counts a changelog's writes by key.
type writeCounter struct {
	*memio.Changelog
	mu     sync.Mutex
	writes map[string]int
}

func (w *writeCounter) Write(partition string, key, value []byte) {
	w.mu.Lock()
	w.writes[string(key)]++
	w.mu.Unlock()
	w.Changelog.Write(partition, key, value)
}

// A node that takes a partition over from its changelog writes what it
// restored to its own store, and to the changelog only what changed
// since: the keys it restored and left alone are not written to the
// changelog again (a restore of millions would double it).
func TestRestoredKeysAreNotWrittenBack(t *testing.T) {
	p := load(t, lazyScript)
	lines := countLines(100, 10)
	more := append(append([]string{}, lines...), `{"id":"k0"}`, `{"id":"k0"}`, `{"id":"k0"}`)
	cl := &memio.Changelog{}
	run := func(store *state.Store, cl connectors.Changelog, lines []string, from int) string {
		t.Helper()
		results := &memio.Sink{}
		if _, err := Run(context.Background(), Config{Pipeline: p, Source: &memio.Source{Lines: lines, BatchSize: 10, From: from},
			Store: store, Results: results, MaxErrors: -1, Shards: 3, Changelog: cl, Node: "test"}); err != nil {
			t.Fatal(err)
		}
		return rowsText(results.Rows())
	}
	run(openStore(t), cl, lines, 0)
	b := openStore(t)
	w := &writeCounter{Changelog: cl, writes: map[string]int{}}
	got := run(b, w, more, len(lines))
	want := map[string]int{}
	for i := range 10 {
		want[fmt.Sprintf("k%d", i)] = 10
	}
	want["k0"] = 13
	for k, n := range want {
		if row := fmt.Sprintf(`{"id":%q,"count":%d}`, k, n); !strings.Contains(got, row) {
			t.Errorf("results lack %s:\n%s", row, got)
		}
	}
	for k := range w.writes {
		if k != string(stateKey("mem", "k0")) && strings.HasPrefix(k, "agg/") {
			t.Errorf("the node wrote restored key %q to the changelog again (writes: %v)", k, w.writes)
		}
	}
	if w.writes[string(stateKey("mem", "k0"))] == 0 {
		t.Errorf("k0 changed and was not written to the changelog (writes: %v)", w.writes)
	}
	clKeys, _ := cl.Keys("mem")
	if stored := storeKeys(t, b, "agg/"); !maps.Equal(stored, clKeys) {
		t.Errorf("the node's store:\n%v\nthe changelog:\n%v", stored, clKeys)
	}
}

// idleMem is a source of one partition, "mem", with nothing to read.
type idleMem struct{}

func (idleMem) Start(_ context.Context, l connectors.Listener) error {
	l.Assign(&quietPart{id: "mem"})
	return nil
}
func (idleMem) Close() error { return nil }

// Rows restored and not decoded yet answer queries as decoded ones do:
// a key's row, the whole table, and a node's share of it (merged here
// with itself, as two nodes' shares would be).
func TestRestoredRowsAnswerQueries(t *testing.T) {
	store, err := state.Open("", state.WithInMemory())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	p := load(t, strings.Replace(lazyScript, `emit = "final"`, `emit = "update"`, 1))
	if _, err := Run(context.Background(), Config{Pipeline: p, Source: &memio.Source{Lines: countLines(30, 3)}, Store: store,
		Results: &memio.Sink{}, MaxErrors: -1, Shards: 2}); err != nil {
		t.Fatal(err)
	}
	handles := make(chan *Handle, 1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := Run(ctx, Config{Pipeline: p, Source: idleMem{}, Store: store, Results: &memio.Sink{}, MaxErrors: -1, Shards: 2,
			TriggerInterval: 10 * time.Millisecond, OnReady: func(h *Handle) { handles <- h }})
		done <- err
	}()
	defer func() {
		cancel()
		<-done
	}()
	h := <-handles
	var rows []connectors.Row
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); {
		// empty before the partition is assigned, incomplete while it starts
		rows, err = h.State(ctx, "")
		if err != nil && !errors.Is(err, ErrIncomplete) || err == nil && len(rows) >= 3 {
			break
		}
	}
	all := `{"id":"k0","count":10}` + "\n" + `{"id":"k1","count":10}` + "\n" + `{"id":"k2","count":10}` + "\n"
	if got := sortedText(rows); err != nil || got != all {
		t.Fatalf("state: %v\n%s", err, got)
	}
	if one, err := h.State(ctx, "k1"); err != nil || rowsText(one) != `{"id":"k1","count":10}`+"\n" {
		t.Fatalf("state of k1: %v %s", err, rowsText(one))
	}
	share, err := h.Share(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	merged, err := h.Merge(ctx, "", [][]byte{share.Data, share.Data})
	if got, want := sortedText(merged), strings.ReplaceAll(all, ":10}", ":20}"); err != nil || got != want {
		t.Fatalf("merged shares: %v\n%s\nwant\n%s\nshare:\n%s", err, got, want, share.Data)
	}
}

// sortedText is rowsText with the rows in order of their text.
func sortedText(rows []connectors.Row) string {
	lines := strings.SplitAfter(rowsText(rows), "\n")
	slices.Sort(lines)
	return strings.Join(lines, "")
}

// A partition that goes back and forth between two nodes restores each
// time from the node's own checkpoint plus the changelog's tail (the
// other node's changes since), with entries kept encoded: the tail's
// newer values win over the checkpoint's, keys new records reach are
// decoded from the newer value, and the checkpoint after each restore
// leaves the node's store equal to the changelog, so the next restore
// from it is right too. Each round's keys overlap the last round's and
// leave some keys alone.
func TestLocalCheckpointAndTailAddUp(t *testing.T) {
	p := load(t, lazyScript)
	cl := &memio.Changelog{}
	nodes := []*state.Store{openStore(t), openStore(t)}
	var lines []string
	want := map[string]int{}
	for round := range 7 {
		from := len(lines)
		for i := range 40 {
			k := fmt.Sprintf("k%d", (round*5+i)%(12+round))
			lines = append(lines, fmt.Sprintf(`{"id":%q}`, k))
			want[k]++
		}
		store := nodes[round%2]
		results := &memio.Sink{}
		if _, err := Run(context.Background(), Config{Pipeline: p, Source: &memio.Source{Lines: lines, BatchSize: 7, From: from},
			Store: store, Results: results, MaxErrors: -1, Shards: 3, Changelog: cl, Node: "test"}); err != nil {
			t.Fatal(err)
		}
		got := map[string]int{}
		for _, r := range results.Rows() {
			n, _ := r.Fields[1].Value.(int64)
			got[fmt.Sprint(r.Fields[0].Value)] = int(n)
		}
		if !maps.Equal(got, want) {
			t.Fatalf("round %d (node %d):\n%v\nwant\n%v", round, round%2, got, want)
		}
		clKeys, _ := cl.Keys("mem")
		if stored := storeKeys(t, store, "agg/"); !maps.Equal(stored, clKeys) {
			t.Fatalf("round %d: node %d's store:\n%v\nthe changelog:\n%v", round, round%2, stored, clKeys)
		}
	}
}

// A restored partition's shards each make room for all of the partition's
// keys at most once: a shard a little over its even share does not copy
// the table again; the keys the table held stay in it.
func TestEmitterRoom(t *testing.T) {
	em := &Emitter{table: map[string]*resultEntry{"other": {}}, shards: 3}
	em.room(100) // the first shard
	grown := em.tableRoom
	for i := range 200 { // its keys and the second's
		em.room(100 * min(i, 1))
		em.table[fmt.Sprint(i)] = &resultEntry{}
	}
	em.room(110) // the last shard, over its share
	if em.tableRoom != grown || grown < 1+3*100 || em.table["other"] == nil || len(em.table) != 201 {
		t.Errorf("room for 3 shards of 100 keys, then 100 and 110: %d, then %d (%d keys)", grown, em.tableRoom, len(em.table))
	}
}

// staleEnd is a changelog whose first End answers 0: a node that looked
// before the partition's next owner wrote there, and commits after it.
type staleEnd struct {
	*memio.Changelog
	looked bool
}

func (c *staleEnd) End(ctx context.Context, partition string) (int64, error) {
	if !c.looked {
		c.looked = true
		return 0, nil
	}
	return c.Changelog.End(ctx, partition)
}

// A node resumed after a pause can commit a checkpoint of a partition it
// never read, after the partition's next owner wrote to the changelog
// (with no position, the group's fence has no offset to refuse it with).
// Given the partition back, it restores the changelog whole, not its own
// empty state plus what follows its marker, which would leave out every
// key the other node wrote before it (TestClusterHealsAfterAPause read
// 86 of 992 keys low).
func TestCheckpointOfAnUnreadPartitionIsNoRestoreBase(t *testing.T) {
	p := load(t, lazyScript)
	cl := &memio.Changelog{}
	a, b := openStore(t), openStore(t)
	var lines []string
	want := map[string]int{}
	for i := range 40 {
		k := fmt.Sprintf("k%d", i%9)
		lines = append(lines, fmt.Sprintf(`{"id":%q}`, k))
		want[k]++
	}
	run := func(store *state.Store, clog connectors.Changelog, from int) map[string]int {
		t.Helper()
		results := &memio.Sink{}
		if _, err := Run(context.Background(), Config{Pipeline: p, Source: &memio.Source{Lines: lines, BatchSize: 7, From: from},
			Store: store, Results: results, MaxErrors: -1, Shards: 3, Changelog: clog, Node: "test"}); err != nil {
			t.Fatal(err)
		}
		got := map[string]int{}
		for _, r := range results.Rows() {
			n, _ := r.Fields[1].Value.(int64)
			got[fmt.Sprint(r.Fields[0].Value)] = int(n)
		}
		return got
	}
	run(a, cl, 0)                                              // a reads every line
	run(b, &staleEnd{Changelog: cl}, len(lines))               // b reads none, commits after a
	if got := run(b, cl, len(lines)); !maps.Equal(got, want) { // b has the partition again
		t.Fatalf("b, given the partition back:\n%v\nwant\n%v", got, want)
	}
}

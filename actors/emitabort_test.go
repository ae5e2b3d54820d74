package actors

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/internal/memio"
)

// The emitter checkpoints the windows it holds (fired in a partition,
// waiting for the pipeline's watermark) and deletes them from the store
// and the changelog once they are out. A checkpoint aborted after the
// emitter wrote it (here: the changelog's commit refused, as when the
// group drops the node) takes those deletes with it; the next checkpoint
// must make them again, or the windows stay held in the store and the
// changelog and a restart emits them a second time.

const heldAbortScript = `return {
	parse = eddy.json { k = "string", t = "number" },
	event_time = "t",
	watermark = { out_of_order = "0s", idle_timeout = "1h" },
	key = "k",
	window = eddy.tumbling("60s"),
	aggregate = { n = eddy.count() },
	emit = "final",
}`

// heldAbortLines: "busy" fires three windows of "a" and ends with a
// fourth open; "slow", once let go, moves the watermark past them.
func heldAbortLines() (busy, slow []string) {
	for ts := 0; ts < 200; ts += 10 {
		busy = append(busy, fmt.Sprintf(`{"k":"a","t":%d}`, ts))
	}
	return busy, []string{`{"k":"b","t":1000}`}
}

// wantWindowCounts is every window's row, counted from the lines by plain
// Go, sorted.
func wantWindowCounts(t *testing.T, lines ...[]string) []string {
	t.Helper()
	type win struct {
		k     string
		start int64
	}
	counts := map[win]int{}
	for _, ls := range lines {
		for _, l := range ls {
			var k string
			var ts int64
			if _, err := fmt.Sscanf(l, `{"k":%q,"t":%d}`, &k, &ts); err != nil {
				t.Fatalf("line %s: %v", l, err)
			}
			counts[win{k, ts - ts%60}]++
		}
	}
	stamp := func(s int64) string { return time.Unix(s, 0).UTC().Format("2006-01-02T15:04:05.000Z") }
	var rows []string
	for w, n := range counts {
		rows = append(rows, fmt.Sprintf(`{"k":%q,"window_start":%q,"window_end":%q,"n":%d}`, w.k, stamp(w.start), stamp(w.start+60), n))
	}
	sort.Strings(rows)
	return rows
}

func sortedRows(rows []connectors.Row) []string {
	out := strings.Split(strings.TrimSuffix(rowsText(rows), "\n"), "\n")
	if len(rows) == 0 {
		out = nil
	}
	sort.Strings(out)
	return out
}

// gatedSource assigns "busy", which reads its lines and ends, and "slow",
// which reads nothing (and holds the watermark back) until gate is
// closed, then reads its lines and ends.
type gatedSource struct {
	busy, slow []string
	gate       chan struct{}
}

func (s *gatedSource) Start(_ context.Context, l connectors.Listener) error {
	l.Assign(&gatedPart{id: "busy", lines: s.busy})
	l.Assign(&gatedPart{id: "slow", lines: s.slow, gate: s.gate})
	return nil
}
func (s *gatedSource) Close() error { return nil }

type gatedPart struct {
	id    string
	lines []string
	next  int
	gate  chan struct{}
}

func (p *gatedPart) ID() string { return p.id }
func (p *gatedPart) Seek(pos connectors.Position) error {
	p.next = 0
	if pos != nil {
		p.next, _ = strconv.Atoi(string(pos))
	}
	return nil
}
func (p *gatedPart) Read(ctx context.Context) (connectors.Batch, error) {
	if p.gate != nil {
		select {
		case <-p.gate:
		case <-ctx.Done():
			return connectors.Batch{}, ctx.Err()
		case <-time.After(20 * time.Millisecond):
			// not caught up: the run goes on waiting for it
			return connectors.Batch{End: connectors.Position(strconv.Itoa(p.next))}, nil
		}
	}
	if p.next >= len(p.lines) {
		return connectors.Batch{}, connectors.ErrEndOfInput
	}
	b := connectors.Batch{Where: p.id, Unit: "line", Records: []connectors.Record{{Value: []byte(p.lines[p.next]), Seq: int64(p.next)}}}
	p.next++
	b.End = connectors.Position(strconv.Itoa(p.next))
	return b, nil
}
func (p *gatedPart) Describe(pos connectors.Position) string { return string(pos) }
func (p *gatedPart) Close() error                            { return nil }

// refusingChangelog refuses, as a group that dropped the node does, the
// first commit whose transaction deletes a held window.
type refusingChangelog struct {
	*memio.Changelog
	mu               sync.Mutex
	heldDelete, done bool
	refused          chan struct{}
	committed        pulse // fired after each commit it passes on
}

func (c *refusingChangelog) Write(partition string, key, value []byte) {
	c.mu.Lock()
	if value == nil && strings.HasPrefix(string(key), "held/") {
		c.heldDelete = true
	}
	c.mu.Unlock()
	c.Changelog.Write(partition, key, value)
}

func (c *refusingChangelog) Commit(ctx context.Context, markers map[string]connectors.ChangelogMarker) (map[string]int64, error) {
	c.mu.Lock()
	refuse := c.heldDelete && !c.done
	c.done = c.done || refuse
	c.mu.Unlock()
	if refuse {
		c.Changelog.Abort(ctx)
		close(c.refused)
		return nil, fmt.Errorf("injected: %w", connectors.ErrNotMember)
	}
	defer c.committed.fire()
	return c.Changelog.Commit(ctx, markers)
}

func heldKeys(keys map[string]string) []string {
	var held []string
	for k := range keys {
		if strings.HasPrefix(k, "held/") {
			held = append(held, k)
		}
	}
	sort.Strings(held)
	return held
}

func TestHeldWindowDeletesRedoneAfterAnAbortedCheckpoint(t *testing.T) {
	busy, slow := heldAbortLines()
	want := wantWindowCounts(t, busy, slow)
	cl := &refusingChangelog{Changelog: &memio.Changelog{}, refused: make(chan struct{}), committed: newPulse()}
	store := openStore(t)
	gate := make(chan struct{})
	src := &gatedSource{busy: busy, slow: slow, gate: gate}
	run := func() []connectors.Row {
		t.Helper()
		results := &memio.Sink{}
		_, err := runWithin(t, context.Background(), time.Minute, Config{Pipeline: load(t, heldAbortScript), Source: src,
			Store: store, Results: results, MaxErrors: -1, Shards: 2, Changelog: cl, Node: "test", Stats: &Stats{},
			CheckpointInterval: 20 * time.Millisecond, TriggerInterval: 10 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		return results.Rows()
	}
	go func() {
		// Let "slow" go once the changelog holds busy's three fired
		// windows: then they are out, and the checkpoint that deletes
		// them is refused.
		cl.committed.until(func() bool {
			keys, _ := cl.Keys("busy")
			return len(heldKeys(keys)) == 3
		})
		close(gate)
	}()
	first := run()
	select {
	case <-cl.refused:
	default:
		t.Fatal("no changelog commit was refused: the test did not abort the checkpoint that deletes the held windows")
	}
	if got := sortedRows(first); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("the run emitted\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if held := heldKeys(storeKeys(t, store, "held/")); len(held) > 0 {
		t.Errorf("the store's last checkpoint still holds windows emitted before it: %q", held)
	}
	for _, p := range []string{"busy", "slow"} {
		keys, _ := cl.Keys(p)
		if held := heldKeys(keys); len(held) > 0 {
			t.Errorf("the changelog of %s still holds windows emitted before its last marker: %q", p, held)
		}
	}
	// A restart has nothing left to read, and nothing left to emit.
	if again := sortedRows(run()); len(again) > 0 {
		t.Errorf("the restart emitted again:\n%s", strings.Join(again, "\n"))
	}
}

// rejoinSource is gatedSource whose listener the test holds: it can take
// the partitions away (Lose) and assign them again, as a Kafka group does
// with a node it dropped and then let back in.
type rejoinSource struct {
	gatedSource
	listener chan connectors.Listener
}

func (s *rejoinSource) Start(ctx context.Context, l connectors.Listener) error {
	s.listener <- l
	return s.gatedSource.Start(ctx, l)
}

// refusingTxSink is txSink refusing, as Kafka does once the group dropped
// the node, the first commit that carries rows: nothing of it commits.
type refusingTxSink struct {
	txSink
	refusedOnce bool
	refused     chan struct{}
	afterCommit pulse // fired after each commit it passes on
}

func (s *refusingTxSink) Commit(ctx context.Context, cp connectors.Checkpoint) error {
	s.mu.Lock()
	refuse := !s.refusedOnce && len(s.pending) > 0
	s.refusedOnce = s.refusedOnce || refuse
	s.mu.Unlock()
	if refuse {
		close(s.refused)
		return fmt.Errorf("injected: %w", connectors.ErrNotMember)
	}
	defer s.afterCommit.fire()
	return s.txSink.Commit(ctx, cp)
}

// With a transactional sink and no changelog, a checkpoint aborted after
// the emitter emitted held windows drops their rows with the transaction;
// the partitions start again from the last complete checkpoint, whose
// shards count those windows as fired: the emitter must hold them again,
// or no one ever emits them.
func TestHeldWindowsEmittedAgainAfterTheirOutputIsAborted(t *testing.T) {
	busy, slow := heldAbortLines()
	want := wantWindowCounts(t, busy, slow)
	store := openStore(t)
	gate := make(chan struct{})
	src := &rejoinSource{gatedSource: gatedSource{busy: busy, slow: slow, gate: gate}, listener: make(chan connectors.Listener, 1)}
	sink := &refusingTxSink{refused: make(chan struct{}), afterCommit: newPulse()}
	done := make(chan error, 1)
	go func() {
		_, err := Run(context.Background(), Config{Pipeline: load(t, heldAbortScript), Source: src,
			Store: store, Results: sink, MaxErrors: -1, Shards: 2, Node: "test", Stats: &Stats{},
			CheckpointInterval: 20 * time.Millisecond, TriggerInterval: 10 * time.Millisecond})
		done <- err
	}()
	var l connectors.Listener
	select {
	case l = <-src.listener:
	case <-time.After(time.Minute):
		t.Fatal("the source did not start within a minute")
	}
	// busy's three windows fired and are held, in a complete checkpoint;
	// then slow lets them out, and the commit of their rows is refused.
	// (Checkpoints go on while the gate is shut: each commit is followed
	// by the store's, which the next commit's pulse finds done.)
	if !sink.afterCommit.until(func() bool {
		_, err := store.Last()
		return err == nil && len(heldKeys(storeKeys(t, store, "held/"))) == 3
	}) {
		t.Fatal("the store held no three windows of busy within a minute")
	}
	close(gate)
	waitClosed(t, sink.refused, "the refused commit")
	// The group dropped the node: its partitions are lost, then it is let
	// back in and gets them again.
	waitClosed(t, loseID(l, "busy"), "Lose busy")
	waitClosed(t, loseID(l, "slow"), "Lose slow")
	l.Assign(&gatedPart{id: "busy", lines: busy})
	l.Assign(&gatedPart{id: "slow", lines: slow, gate: gate})
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the run did not end within a minute")
	}
	sink.mu.Lock()
	got := sortedRows(sink.committed)
	sink.mu.Unlock()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("committed\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// loseID calls l.Lose(id) and closes the returned channel when it returns.
func loseID(l connectors.Listener, id string) chan struct{} {
	returned := make(chan struct{})
	go func() {
		l.Lose(id)
		close(returned)
	}()
	return returned
}

// A partition lost (with a changelog: its state goes to its next owner)
// takes every window it fired and the emitter holds, not only those a
// checkpoint saved: here it fired them at a trigger with no checkpoint
// since. The next owner starts from the changelog, fires them again and
// emits them; this node must not.
func TestHeldWindowsLeaveWithTheirLostPartition(t *testing.T) {
	busy, slow := heldAbortLines()
	want := wantWindowCounts(t, busy, slow)
	cl := &memio.Changelog{}
	gate := make(chan struct{})
	src := &rejoinSource{gatedSource: gatedSource{busy: busy, slow: slow, gate: gate}, listener: make(chan connectors.Listener, 1)}
	results := &flushPulseSink{Sink: &memio.Sink{}, flushed: newPulse()}
	stats := &Stats{}
	handles := make(chan *Handle, 1)
	done := make(chan error, 1)
	go func() {
		_, err := Run(context.Background(), Config{Pipeline: load(t, heldAbortScript), Source: src,
			Store: openStore(t), Results: results, MaxErrors: -1, Shards: 2, Changelog: cl, Node: "a", Stats: stats,
			CheckpointInterval: time.Hour, TriggerInterval: 10 * time.Millisecond, OnReady: func(h *Handle) { handles <- h }})
		done <- err
	}()
	var l connectors.Listener
	var h *Handle
	for l == nil || h == nil {
		select {
		case l = <-src.listener:
		case h = <-handles:
		case <-time.After(time.Minute):
			t.Fatal("the run did not start within a minute")
		}
	}
	// In a final emit the emitter's table holds the windows that fired:
	// wait for busy's three, looking after each trigger's flush of the
	// results (the emitter has taken the trigger's rows then).
	var rows []connectors.Row
	var err error
	if !results.flushed.until(func() bool {
		rows, err = h.State(context.Background(), "a")
		return err == nil && len(rows) == 3
	}) {
		t.Fatalf("the emitter did not hold busy's three windows within a minute: %v, %v", rowsText(rows), err)
	}
	if n := stats.Checkpoints.Load(); n > 0 {
		t.Fatalf("%d checkpoints before the loss: the test needs windows fired since the last", n)
	}
	waitClosed(t, loseID(l, "busy"), "Lose busy")
	close(gate)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatal("the run did not end within a minute")
	}
	first := sortedRows(results.Rows())
	// busy's next owner: all of busy comes from it.
	results2 := &memio.Sink{}
	if _, err := runWithin(t, context.Background(), time.Minute, Config{Pipeline: load(t, heldAbortScript),
		Source: &partsSource{parts: []connectors.Partition{&gatedPart{id: "busy", lines: busy}}}, Store: openStore(t),
		Results: results2, MaxErrors: -1, Shards: 2, Changelog: cl, Node: "b"}); err != nil {
		t.Fatal(err)
	}
	got := append(first, sortedRows(results2.Rows())...)
	sort.Strings(got)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("node a emitted\n%s\nnode b\n%s\nwant each window once\n%s", strings.Join(first, "\n"),
			rowsText(results2.Rows()), strings.Join(want, "\n"))
	}
}

// flushPulseSink is memio.Sink firing flushed after each flush.
type flushPulseSink struct {
	*memio.Sink
	flushed pulse
}

func (s *flushPulseSink) Flush(ctx context.Context) error {
	defer s.flushed.fire()
	return s.Sink.Flush(ctx)
}

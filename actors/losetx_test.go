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
)

// A partition lost while a checkpoint that covers it flushes a
// transactional records sink: the checkpoint is aborted, and with it the
// sink's open transaction, which holds the rows every partition wrote
// since the last checkpoint. The partition that stays does not read them
// again; its rows there must not be lost (nor the lost partition's
// committed twice once it comes back from the last checkpoint).

// stallPart reads its lines one a batch, then stays caught up, never
// ending (a Kafka partition with nothing more to read); positions as
// gatedPart's.
type stallPart struct {
	id    string
	lines []string
	next  int
}

func (p *stallPart) ID() string { return p.id }
func (p *stallPart) Seek(pos connectors.Position) error {
	p.next = 0
	if pos != nil {
		p.next, _ = strconv.Atoi(string(pos))
	}
	return nil
}
func (p *stallPart) Read(ctx context.Context) (connectors.Batch, error) {
	if p.next >= len(p.lines) {
		select {
		case <-ctx.Done():
			return connectors.Batch{}, ctx.Err()
		case <-time.After(10 * time.Millisecond):
			return connectors.Batch{End: connectors.Position(strconv.Itoa(p.next)), CaughtUp: true}, nil
		}
	}
	b := connectors.Batch{Where: p.id, Unit: "line", Records: []connectors.Record{{Value: []byte(p.lines[p.next]), Seq: int64(p.next)}}}
	p.next++
	b.End = connectors.Position(strconv.Itoa(p.next))
	return b, nil
}
func (p *stallPart) Describe(pos connectors.Position) string { return string(pos) }
func (p *stallPart) Close() error                            { return nil }

// listenedSource assigns its partitions and hands the test its listener.
type listenedSource struct {
	parts    []connectors.Partition
	listener chan connectors.Listener
}

func (s *listenedSource) Start(_ context.Context, l connectors.Listener) error {
	s.listener <- l
	for _, p := range s.parts {
		l.Assign(p)
	}
	return nil
}
func (s *listenedSource) Close() error { return nil }

// successor is the sink as the next process finds it: what s committed,
// nothing uncommitted. A fresh one: the run that ended may still have
// rows on their way to s (a process that exits loses them with its
// transaction).
func (s *txSink) successor() *txSink {
	s.mu.Lock()
	defer s.mu.Unlock()
	return &txSink{committed: append([]connectors.Row(nil), s.committed...), last: s.last, commits: s.commits}
}

// flushHeldTxSink is txSink holding its first flush that has a row of
// "keep" pending after a commit (a checkpoint flushing what keep wrote
// since the last one) until released.
type flushHeldTxSink struct {
	txSink
	committed pulse // fired after each commit
	once      sync.Once
	held      chan struct{}
	release   chan struct{}
}

func (s *flushHeldTxSink) Commit(ctx context.Context, cp connectors.Checkpoint) error {
	defer s.committed.fire()
	return s.txSink.Commit(ctx, cp)
}

func (s *flushHeldTxSink) Flush(ctx context.Context) error {
	s.mu.Lock()
	hold := s.commits > 0 && hasLine(s.pending, "keep ")
	s.mu.Unlock()
	if hold {
		s.once.Do(func() {
			close(s.held)
			<-s.release
		})
	}
	return s.txSink.Flush(ctx)
}

func (s *flushHeldTxSink) commitCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.commits
}

func hasLine(rows []connectors.Row, prefix string) bool {
	for _, r := range rows {
		if v, _ := r.Get("line"); strings.HasPrefix(fmt.Sprint(v), prefix) {
			return true
		}
	}
	return false
}

func numbered(prefix string, n int) []string {
	var lines []string
	for i := range n {
		lines = append(lines, fmt.Sprintf("%s %d", prefix, i))
	}
	return lines
}

func TestLostPartitionLeavesTheOthersRowsInTheTransaction(t *testing.T) {
	if err := loseDuringAFlush(t, "gone"); err == nil {
		t.Log("the run went on (and committed each row once)")
	}
}

// A node that loses every partition (Kafka's group dropped it) gets them
// back and goes on: nothing of the aborted transaction stays behind.
func TestNodeThatLostEveryPartitionGoesOn(t *testing.T) {
	if err := loseDuringAFlush(t, "keep", "gone"); err != nil {
		t.Fatalf("the run ended: %v; want it to go on with the partitions given back", err)
	}
}

// loseDuringAFlush runs keep and gone to a transactional records sink;
// once a checkpoint has committed keep reads its lines, and the flush of
// the checkpoint after them is held while the partitions lost are lost,
// then they are given back (their next owner, here this node again), read
// from their last checkpoint to their end. Every line must be committed
// once; a run that ends instead must say to run it again, and the next
// one (a new process: a fresh sink with what was committed) then commits
// the rest. It returns the first run's error.
func loseDuringAFlush(t *testing.T, lost ...string) error {
	t.Helper()
	lines := map[string][]string{"keep": numbered("keep", 200), "gone": numbered("gone", 50)}
	gate := make(chan struct{})
	src := &listenedSource{parts: []connectors.Partition{&gatedPart{id: "keep", lines: lines["keep"], gate: gate},
		&stallPart{id: "gone", lines: lines["gone"]}}, listener: make(chan connectors.Listener, 1)}
	sink := &flushHeldTxSink{committed: newPulse(), held: make(chan struct{}), release: make(chan struct{})}
	store := openStore(t)
	cfg := func(src connectors.Source, records connectors.Sink) Config {
		return Config{Pipeline: load(t, `return { }`), Source: src, Store: store, Records: records, MaxErrors: -1,
			Shards: 2, Node: "test", Stats: &Stats{}, CheckpointInterval: 20 * time.Millisecond, TriggerInterval: 10 * time.Millisecond}
	}
	done := make(chan error, 1)
	go func() {
		_, err := Run(context.Background(), cfg(src, sink))
		done <- err
	}()
	var l connectors.Listener
	select {
	case l = <-src.listener:
	case <-time.After(time.Minute):
		t.Fatal("the source did not start within a minute")
	}
	if !sink.committed.until(func() bool { return sink.commitCount() > 0 }) {
		t.Fatal("no commit within a minute")
	}
	close(gate)
	waitClosed(t, sink.held, "a flush with keep's rows after a commit")
	var returned []chan struct{}
	for _, id := range lost {
		returned = append(returned, loseID(l, id))
	}
	for i, r := range returned {
		waitClosed(t, r, "Lose "+lost[i])
	}
	close(sink.release)
	for _, id := range lost {
		l.Assign(&gatedPart{id: id, lines: lines[id]})
	}
	var err error
	select {
	case err = <-done:
	case <-time.After(time.Minute):
		t.Fatal("the run did not end within a minute")
	}
	if err != nil {
		if !strings.Contains(err.Error(), "run it again to resume from the last checkpoint") {
			t.Fatal(err)
		}
		t.Logf("the run ended: %v", err)
		next := sink.successor()
		both := &partsSource{parts: []connectors.Partition{&gatedPart{id: "keep", lines: lines["keep"]}, &gatedPart{id: "gone", lines: lines["gone"]}}}
		if _, err := runWithin(t, context.Background(), time.Minute, cfg(both, next)); err != nil {
			t.Fatal(err)
		}
		checkOnce(t, next.committedRows(), lines["keep"], lines["gone"])
		return err
	}
	checkOnce(t, sink.committedRows(), lines["keep"], lines["gone"])
	return err
}

// A partition lost with no barrier in flight: its rows since the last
// checkpoint are in the open transaction, and its next owner (here this
// node again) reads them again from that checkpoint. They must not be
// committed twice.
func TestLostPartitionsRowsLeaveTheTransaction(t *testing.T) {
	keep, gone := numbered("keep", 20), numbered("gone", 50)
	gate := make(chan struct{})
	src := &listenedSource{parts: []connectors.Partition{&gatedPart{id: "keep", lines: keep, gate: gate}, &stallPart{id: "gone", lines: gone}},
		listener: make(chan connectors.Listener, 1)}
	sink := &writeWatchedTxSink{wrote: newPulse()}
	store := openStore(t)
	// No barrier before keep's gate opens: keep neither reads nor is
	// caught up, and the timers are an hour.
	cfg := func(src connectors.Source, records connectors.Sink) Config {
		return Config{Pipeline: load(t, `return { }`), Source: src, Store: store, Records: records, MaxErrors: -1,
			Shards: 2, Node: "test", Stats: &Stats{}, CheckpointInterval: time.Hour, TriggerInterval: time.Hour}
	}
	done := make(chan error, 1)
	go func() {
		_, err := Run(context.Background(), cfg(src, sink))
		done <- err
	}()
	var l connectors.Listener
	select {
	case l = <-src.listener:
	case <-time.After(time.Minute):
		t.Fatal("the source did not start within a minute")
	}
	if !sink.wrote.until(func() bool { return sink.pendingCount() == len(gone) }) {
		t.Fatalf("gone's %d rows were not written within a minute", len(gone))
	}
	waitClosed(t, loseID(l, "gone"), "Lose gone")
	l.Assign(&gatedPart{id: "gone", lines: gone})
	close(gate)
	var err error
	select {
	case err = <-done:
	case <-time.After(time.Minute):
		t.Fatal("the run did not end within a minute")
	}
	if err != nil {
		if !strings.Contains(err.Error(), "run it again to resume from the last checkpoint") {
			t.Fatal(err)
		}
		t.Logf("the run ended: %v", err)
		next := sink.successor()
		both := &partsSource{parts: []connectors.Partition{&gatedPart{id: "keep", lines: keep}, &gatedPart{id: "gone", lines: gone}}}
		if _, err := runWithin(t, context.Background(), time.Minute, cfg(both, next)); err != nil {
			t.Fatal(err)
		}
		checkOnce(t, next.committedRows(), keep, gone)
		return
	}
	checkOnce(t, sink.committedRows(), keep, gone)
}

// writeWatchedTxSink is txSink firing wrote after each write.
type writeWatchedTxSink struct {
	txSink
	wrote pulse
}

func (s *writeWatchedTxSink) Write(ctx context.Context, rows []connectors.Row) error {
	defer s.wrote.fire()
	return s.txSink.Write(ctx, rows)
}

func (s *writeWatchedTxSink) pendingCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pending)
}

// checkOnce fails unless rows' lines are lines, each once.
func checkOnce(t *testing.T, rows []connectors.Row, lines ...[]string) {
	t.Helper()
	var want, got []string
	for _, ls := range lines {
		want = append(want, ls...)
	}
	sort.Strings(want)
	for _, r := range rows {
		v, _ := r.Get("line")
		got = append(got, fmt.Sprint(v))
	}
	sort.Strings(got)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("committed %d rows for %d lines, each not once:%s", len(got), len(want), lineDiff(want, got))
	}
}

// lineDiff names the lines got has fewer or more times than want.
func lineDiff(want, got []string) string {
	count := map[string]int{}
	for _, l := range want {
		count[l]++
	}
	for _, l := range got {
		count[l]--
	}
	var missing, extra []string
	for l, n := range count {
		switch {
		case n > 0:
			missing = append(missing, l)
		case n < 0:
			extra = append(extra, l)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	return fmt.Sprintf("\nmissing %d: %q\nextra %d: %q", len(missing), missing[:min(10, len(missing))], len(extra), extra[:min(10, len(extra))])
}

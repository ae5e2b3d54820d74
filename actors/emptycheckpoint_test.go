package actors

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/internal/memio"
)

// A run whose source assigns its partitions only after several of the
// node's triggers (a group join slower than the checkpoint interval)
// resumes them from the last run's checkpoint: no checkpoint of no
// partition became the last, which would have made them start afresh,
// their rows committed twice.
func TestTriggersBeforeTheAssignmentKeepTheLastCheckpoint(t *testing.T) {
	lines := numbered("line", 100)
	store := openStore(t)
	sink := &txSink{}
	logs := &syncBuffer{}
	cfg := func(src connectors.Source, records connectors.Sink, every time.Duration) Config {
		return Config{Pipeline: load(t, `return { }`), Source: src, Store: store, Records: records, MaxErrors: -1,
			Shards: 2, Node: "test", Stats: &Stats{}, CheckpointInterval: every, TriggerInterval: every,
			Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	}
	if _, err := runWithin(t, context.Background(), time.Minute, cfg(&memio.Source{Lines: lines[:50]}, sink, time.Hour)); err != nil {
		t.Fatal(err)
	}
	first, err := store.Last()
	if err != nil || len(first.Positions) == 0 {
		t.Fatalf("the first run's checkpoint: %+v, %v", first, err)
	}
	before := strings.Count(logs.String(), "msg=barrier")
	next := sink.successor()
	src := &lateSource{src: &memio.Source{Lines: lines}, ready: func() error {
		return logs.until(func(log string) bool { return strings.Count(log, "msg=barrier") >= before+3 })
	}}
	if _, err := runWithin(t, context.Background(), time.Minute, cfg(src, next, 5*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	checkOnce(t, next.committedRows(), lines) // (the successor holds the first run's too)
}

// A run stopped before its source assigned a partition ends without a
// checkpoint: the last one stays the previous run's.
func TestStopBeforeTheAssignmentKeepsTheLastCheckpoint(t *testing.T) {
	store := openStore(t)
	if _, err := runWithin(t, context.Background(), time.Minute, Config{Pipeline: load(t, `return { }`), Source: &memio.Source{Lines: numbered("line", 20)},
		Store: store, Records: &txSink{}, MaxErrors: -1, Shards: 2, Node: "test", Stats: &Stats{}}); err != nil {
		t.Fatal(err)
	}
	first, err := store.Last()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	never := &lateSource{src: &memio.Source{}, ready: func() error { <-ctx.Done(); return ctx.Err() }}
	logs := &syncBuffer{}
	done := make(chan error, 1)
	go func() {
		_, err := runWithin(t, ctx, time.Minute, Config{Pipeline: load(t, `return { }`), Source: never, Store: store, Records: &txSink{}, MaxErrors: -1,
			Shards: 2, Node: "test", Stats: &Stats{}, CheckpointInterval: 5 * time.Millisecond, TriggerInterval: 5 * time.Millisecond,
			Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
		done <- err
	}()
	if err := logs.until(func(log string) bool { return strings.Count(log, "msg=barrier") >= 3 }); err != nil {
		t.Fatal(err)
	}
	cancel()
	if err := <-done; err != nil && !strings.Contains(err.Error(), "context canceled") {
		t.Fatal(err)
	}
	last, err := store.Last()
	if err != nil {
		t.Fatal(err)
	}
	if last.ID != first.ID {
		t.Fatalf("the stopped run completed checkpoint %d (positions %q) after the first run's %d", last.ID, last.Positions, first.ID)
	}
}

// lateSource starts src once ready returns.
type lateSource struct {
	src   connectors.Source
	ready func() error
}

func (s *lateSource) Start(ctx context.Context, l connectors.Listener) error {
	go func() {
		if s.ready() == nil {
			s.src.Start(ctx, l)
		}
	}()
	return nil
}

func (s *lateSource) Close() error { return s.src.Close() }

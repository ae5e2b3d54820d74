package actors

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/internal/lockedbuf"
	"github.com/eddy-stream/eddy/internal/memio"
	"github.com/eddy-stream/eddy/state"
)

// txSink is a transactional sink in memory: rows become committed at
// Commit. failAt makes that commit succeed and then report an error, as a
// process that dies between the sink's commit and the store's.
type txSink struct {
	mu        sync.Mutex
	pending   []connectors.Row
	committed []connectors.Row
	last      connectors.Checkpoint
	commits   int
	failAt    int
	// failAtRows: as failAt, at the nth commit that carries rows
	failAtRows, rowCommits int
}

func (s *txSink) Write(_ context.Context, rows []connectors.Row) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending = append(s.pending, rows...)
	return nil
}
func (s *txSink) Flush(context.Context) error { return nil }
func (s *txSink) Close() error                { return nil }
func (s *txSink) Commit(_ context.Context, cp connectors.Checkpoint) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	rows := len(s.pending) > 0
	if rows {
		s.rowCommits++
	}
	s.committed = append(s.committed, s.pending...)
	s.pending, s.last = nil, cp
	s.commits++
	if s.commits == s.failAt || rows && s.rowCommits == s.failAtRows {
		return errors.New("injected: died after the commit")
	}
	return nil
}
func (s *txSink) Committed(context.Context) (connectors.Checkpoint, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.last, nil
}
func (s *txSink) Abort(context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending = nil
	return nil
}

// A process that dies after its transactional sink committed a checkpoint
// but before the store marked it complete: the restart completes that
// checkpoint from the sink's record instead of replaying it, so every
// record is committed exactly once.
func TestTransactionalSinkExactlyOnceAcrossCrash(t *testing.T) {
	var lines []string
	for i := 0; i < 20000; i++ {
		lines = append(lines, fmt.Sprintf("line %d", i))
	}
	dir := t.TempDir()
	sink := &txSink{failAt: 1}
	run := func() error {
		store, err := state.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		_, err = Run(context.Background(), Config{
			Pipeline: load(t, `return { }`), Source: &memio.Source{Lines: lines, BatchSize: 10}, Store: store,
			Records: sink, MaxErrors: -1, TriggerInterval: 2 * time.Millisecond, CheckpointInterval: 2 * time.Millisecond,
		})
		return err
	}
	if err := run(); err == nil || sink.commits != 1 {
		t.Fatalf("first run: err=%v after %d commits, want the injected failure at commit 1", err, sink.commits)
	}
	sink.pending = nil // a new process: nothing uncommitted survives
	if err := run(); err != nil {
		t.Fatal(err)
	}
	if len(sink.committed) != len(lines) {
		t.Fatalf("committed %d rows for %d lines", len(sink.committed), len(lines))
	}
	for i, r := range sink.committed {
		if v, _ := r.Get("line"); v != lines[i] {
			t.Fatalf("committed row %d is %v, want %q", i, v, lines[i])
		}
	}
}

// A multi-stage pipeline that dies after its transactional sink committed
// a checkpoint, before the store marked it complete: the restart completes
// that checkpoint, and every part of the engine resumes from it. The
// emitter and the later stages restored from the checkpoint before it
// while the shards and the source resumed from it: stage 2 lacked the
// windows stage 1 had sent it in that checkpoint, which stage 1 never sent
// again (issue 15: q5 on Kafka lost two windows after kill -9). Here the
// sink dies at its first commit with rows, so that checkpoint carries
// windows into stage 2.
func TestStagesResumeFromTheCheckpointTheSinkCommitted(t *testing.T) {
	const script = `return {
		parse = eddy.json { k = "string", t = "number" },
		event_time = "t",
		stages = {
			{ key = "k", window = eddy.tumbling("1s"), aggregate = { n = eddy.count() } },
			{ key = "k", aggregate = { total = eddy.sum("n") }, emit = "update" },
		},
	}`
	const n = 3000
	var lines []string
	for i := range n {
		lines = append(lines, fmt.Sprintf(`{"k":"a","t":%d}`, 1_700_000_000+i))
	}
	dir := t.TempDir()
	sink := &txSink{failAtRows: 1}
	logs := &lockedbuf.Buffer{}
	run := func() error {
		store, err := state.Open(dir)
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close()
		_, err = runWithin(t, context.Background(), time.Minute, Config{
			Pipeline: load(t, script), Source: &memio.Source{Lines: lines, BatchSize: 10}, Store: store,
			Results: sink, MaxErrors: -1, TriggerInterval: 2 * time.Millisecond, CheckpointInterval: 2 * time.Millisecond,
			Logger: slog.New(slog.NewTextHandler(logs, nil)),
		})
		return err
	}
	if err := run(); err == nil || sink.rowCommits != 1 {
		t.Fatalf("first run: err=%v after %d commits with rows, want the injected failure at the first", err, sink.rowCommits)
	}
	sink.pending = nil // a new process: nothing uncommitted survives
	logs = &lockedbuf.Buffer{}
	committed := sink.last.ID
	if err := run(); err != nil {
		t.Fatal(err)
	}
	// The log names the checkpoint the run resumed from: the one the sink
	// committed, not the store's last before recovering it.
	if want := fmt.Sprintf(`msg="resuming from checkpoint" id=%d `, committed); !strings.Contains(logs.String(), want) {
		t.Fatalf("the restart's log lacks %q:\n%s", want, logs.String())
	}
	if len(sink.committed) == 0 {
		t.Fatal("nothing committed")
	}
	last := sink.committed[len(sink.committed)-1]
	if total, _ := last.Get("total"); total != int64(n) {
		t.Fatalf("stage 2's last total is %v, want %d (every record counted once)", total, n)
	}
}

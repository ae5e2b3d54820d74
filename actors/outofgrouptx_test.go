package actors

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/internal/memio"
)

// The group refuses a checkpoint's flush or commit of the transactional
// records sink (connectors.ErrNotMember: the node was away past its
// session) and no loss follows: the checkpoint is aborted (outOfGroup),
// and with it the sink's open transaction, which held the rows the
// partition wrote since the last checkpoint. The partition reads on and
// does not read them again, so no later checkpoint may commit: the run
// ends, and the next process (a fresh sink with what was committed)
// resumes from the last checkpoint. Every line is committed once.
func TestRefusedCheckpointWithATransactionalSinkEndsTheRun(t *testing.T) {
	for _, at := range []string{"flush", "commit"} {
		t.Run(at, func(t *testing.T) { refuseOnce(t, at) })
	}
}

// refuseOnce runs 100 lines from memio, 5 a batch with a barrier after
// each, to a transactional records sink refusing (at its flush or its
// commit) the first checkpoint with rows after one committed some. The
// partition waits at line 10 until a commit carried rows and its
// position, and at line 50 until the refusal: lines 10-49 are read after
// the last commit and before the refusal, so the open transaction it
// aborts holds some.
func refuseOnce(t *testing.T, at string) {
	lines := numbered("line", 100)
	sink := &notMemberTxSink{at: at, rowsCommitted: make(chan struct{}), refused: make(chan struct{})}
	gates := map[int]chan struct{}{10: sink.rowsCommitted, 50: sink.refused}
	store := openStore(t)
	cfg := func(src connectors.Source, records connectors.Sink, every time.Duration) Config {
		return Config{Pipeline: load(t, `return { }`), Source: src, Store: store, Records: records, MaxErrors: -1,
			Shards: 2, Node: "test", Stats: &Stats{}, CheckpointInterval: every, TriggerInterval: every}
	}
	mem := func() *memio.Source { return &memio.Source{Lines: lines, BatchSize: 5, Boundary: true} }
	_, err := runWithin(t, context.Background(), time.Minute, cfg(&gatedMem{Source: mem(), gates: gates}, sink, time.Millisecond))
	select {
	case <-sink.refused:
	default:
		t.Fatalf("the sink refused no %s (the run returned %v)", at, err)
	}
	if err == nil {
		t.Fatalf("the run went on after the refused %s aborted the open transaction; committed:%s", at,
			lineDiff(lines, rowLines(sink.committedRows())))
	}
	if !strings.Contains(err.Error(), "run it again to resume from the last checkpoint") {
		t.Fatal(err)
	}
	t.Logf("the run ended: %v", err)
	next := sink.successor()
	// The next process checkpoints at its end only: a checkpoint on the
	// timer before mem is assigned would complete without its position,
	// and mem, planning its start from it, would read from line 0.
	if _, err := runWithin(t, context.Background(), time.Minute, cfg(mem(), next, time.Hour)); err != nil {
		t.Fatal(err)
	}
	checkOnce(t, next.committedRows(), lines)
}

// gatedMem is a memio.Source whose partition, before it reads from line
// i of gates on, waits until gates[i] is closed.
type gatedMem struct {
	*memio.Source
	gates map[int]chan struct{}
}

func (s *gatedMem) Start(ctx context.Context, l connectors.Listener) error {
	return s.Source.Start(ctx, gatedListener{Listener: l, gates: s.gates})
}

type gatedListener struct {
	connectors.Listener
	gates map[int]chan struct{}
}

func (l gatedListener) Assign(p connectors.Partition) {
	l.Listener.Assign(&gatedMemPart{Partition: p, gates: l.gates})
}

// gatedMemPart: positions are line numbers, as memio's.
type gatedMemPart struct {
	connectors.Partition
	gates map[int]chan struct{}
	next  int
}

func (p *gatedMemPart) Seek(pos connectors.Position) error {
	p.next = 0
	if pos != nil {
		p.next, _ = strconv.Atoi(string(pos))
	}
	return p.Partition.Seek(pos)
}

func (p *gatedMemPart) Read(ctx context.Context) (connectors.Batch, error) {
	for at, gate := range p.gates {
		if p.next < at {
			continue
		}
		select {
		case <-gate:
		case <-ctx.Done():
			return connectors.Batch{}, ctx.Err()
		}
	}
	b, err := p.Partition.Read(ctx)
	if b.End != nil {
		p.next, _ = strconv.Atoi(string(b.End))
	}
	return b, err
}

func rowLines(rows []connectors.Row) []string {
	var got []string
	for _, r := range rows {
		v, _ := r.Get("line")
		got = append(got, fmt.Sprint(v))
	}
	return got
}

// notMemberTxSink is txSink refusing, as a group that dropped the node
// does, its first flush or commit (at) with rows pending after a commit
// carried rows and mem's position (a checkpoint started before mem was
// assigned commits the rows mem wrote meanwhile without its position);
// a refused commit commits nothing.
type notMemberTxSink struct {
	txSink
	at            string
	rowsCommitted chan struct{} // closed at the first commit with rows and a position of mem
	refused       chan struct{} // closed at the refusal
	done          bool
}

func (s *notMemberTxSink) Flush(ctx context.Context) error {
	if s.at == "flush" && s.refuseNow() {
		return fmt.Errorf("injected: flush: %w", connectors.ErrNotMember)
	}
	return s.txSink.Flush(ctx)
}

func (s *notMemberTxSink) Commit(ctx context.Context, cp connectors.Checkpoint) error {
	if s.at == "commit" && s.refuseNow() {
		return fmt.Errorf("injected: commit: %w", connectors.ErrNotMember)
	}
	s.mu.Lock()
	rows := len(s.pending) > 0
	s.mu.Unlock()
	err := s.txSink.Commit(ctx, cp)
	if rows && cp.Positions["mem"] != nil && !isClosed(s.rowsCommitted) {
		close(s.rowsCommitted)
	}
	return err
}

func (s *notMemberTxSink) refuseNow() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.done || !isClosed(s.rowsCommitted) || len(s.pending) == 0 {
		return false
	}
	s.done = true
	close(s.refused)
	return true
}

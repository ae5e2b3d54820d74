package actors

import (
	"context"
	"errors"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/scripting"
)

// A reload restarts every partition from the checkpoint it took over at.
// One partition (a) starts again and writes a row to the transactional
// records sink's open transaction, and a barrier passes it, before the
// other (b) reports its restart: that report aborts the barrier, and with
// it the open transaction, which held a's row. a reads on and does not
// read it again, so no later checkpoint may commit: the run ends, and the
// next process (a fresh sink with what was committed) resumes from the
// last checkpoint. Every line is committed once.
func TestRestartAbortingABarrierWithATransactionalSinkEndsTheRun(t *testing.T) {
	const script = `return { filter = function(r) return r.line ~= "VERSION" end }`
	version := func(v string) *scripting.Pipeline { return load(t, strings.Replace(script, "VERSION", v, 1)) }
	a, b := numbered("a", 100), numbered("b", 100)
	aRestarted := make(chan struct{})
	logs := &syncBuffer{}
	var seekErr error
	// In their first incarnation both wait at line 50 until a restarts
	// (the reload's checkpoint comes before they end). b's restart waits
	// until a barrier passed a after the reload: that barrier waits for
	// b, and a wrote the row it read before it to the open transaction
	// (or holds it, when the barrier came first).
	partA := &hookedPart{id: "a", lines: a,
		onSeek: func(seeks int) error {
			if seeks == 1 {
				close(aRestarted)
			}
			return nil
		},
		onRead: func(ctx context.Context, seeks, _, next int) error {
			if seeks == 0 && next >= 50 {
				return waitOr(ctx, aRestarted)
			}
			return nil
		}}
	partB := &hookedPart{id: "b", lines: b,
		onSeek: func(seeks int) error {
			if seeks == 1 {
				seekErr = logs.until(func(log string) bool {
					_, after, ok := strings.Cut(log, "reloaded the script")
					return ok && passedA.MatchString(after)
				})
			}
			return seekErr
		},
		onRead: func(ctx context.Context, seeks, _, next int) error {
			if seeks == 0 && next >= 50 {
				return waitOr(ctx, aRestarted)
			}
			return nil
		}}
	sink := &coveringTxSink{covered: make(chan struct{})}
	store := openStore(t)
	reloads := make(chan Reload, 1)
	// The reload once a checkpoint committed rows with the positions of
	// both partitions. (Sent before they are assigned, it starts a
	// checkpoint with no partition, which commits the rows they write
	// meanwhile without their positions: the next process reads them
	// again.)
	go func() {
		if waitOr(context.Background(), sink.covered) == nil {
			reloads <- Reload{Pipeline: version("v2"), Why: "test"}
		}
	}()
	cfg := func(p *scripting.Pipeline, src connectors.Source, records connectors.Sink, every time.Duration) Config {
		return Config{Pipeline: p, Source: src, Store: store, Records: records, MaxErrors: -1, Reload: reloads,
			Shards: 2, Node: "test", Stats: &Stats{},
			Logger: slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})), CheckpointInterval: every, TriggerInterval: every}
	}
	_, err := runWithin(t, context.Background(), time.Minute, cfg(version("v1"), &partsSource{parts: []connectors.Partition{partA, partB}}, sink, time.Millisecond))
	if seekErr != nil {
		t.Fatalf("b's restart: %v", seekErr)
	}
	if err == nil {
		t.Fatalf("the run went on after b's restart aborted the open transaction; committed:%s",
			lineDiff(append(append([]string(nil), a...), b...), rowLines(sink.committedRows())))
	}
	if !strings.Contains(err.Error(), "run it again to resume from the last checkpoint") {
		t.Fatal(err)
	}
	t.Logf("the run ended: %v", err)
	next := sink.successor()
	// (A pipeline runs once: the first run's v2 was stopped with it.) The
	// next process checkpoints at its end only: a checkpoint on the timer
	// before a and b are assigned would complete without their positions,
	// and they, planning their start from it, would read from line 0.
	both := &partsSource{parts: []connectors.Partition{&hookedPart{id: "a", lines: a}, &hookedPart{id: "b", lines: b}}}
	if _, err := runWithin(t, context.Background(), time.Minute, cfg(version("v2"), both, next, time.Hour)); err != nil {
		t.Fatal(err)
	}
	checkOnce(t, next.committedRows(), a, b)
}

var passedA = regexp.MustCompile(`msg="partition passed barrier" seq=\d+ partition=a\b`)

// until waits until ok says yes to the log, or a minute has passed.
func (s *syncBuffer) until(ok func(log string) bool) error {
	deadline := time.After(time.Minute)
	for {
		s.mu.Lock()
		if ok(s.b.String()) {
			s.mu.Unlock()
			return nil
		}
		if s.more == nil {
			s.more = make(chan struct{})
		}
		more := s.more
		s.mu.Unlock()
		select {
		case <-more:
		case <-deadline:
			return errors.New("not in the log within a minute")
		}
	}
}

// coveringTxSink is txSink closing covered at the first commit with rows
// and the positions of partitions a and b.
type coveringTxSink struct {
	txSink
	covered chan struct{}
}

func (s *coveringTxSink) Commit(ctx context.Context, cp connectors.Checkpoint) error {
	s.mu.Lock()
	rows := len(s.pending) > 0
	s.mu.Unlock()
	err := s.txSink.Commit(ctx, cp)
	if rows && cp.Positions["a"] != nil && cp.Positions["b"] != nil && !isClosed(s.covered) {
		close(s.covered)
	}
	return err
}

// waitOr waits until c is closed, ctx is done or a minute has passed.
func waitOr(ctx context.Context, c chan struct{}) error {
	select {
	case <-c:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(time.Minute):
		return errors.New("not within a minute")
	}
}

// hookedPart reads its lines one a batch, each followed by a barrier
// (Boundary), calling onSeek with the number of seeks so far (one for
// each restart: a partition's first start does not seek) before a seek,
// and onRead before a read with that number, the reads since the seek
// and the line it reads next. Positions are line numbers.
type hookedPart struct {
	id                 string
	lines              []string
	next, seeks, reads int
	onSeek             func(seeks int) error
	onRead             func(ctx context.Context, seeks, reads, next int) error
}

func (p *hookedPart) ID() string { return p.id }
func (p *hookedPart) Seek(pos connectors.Position) error {
	p.seeks++
	p.reads = 0
	if p.onSeek != nil {
		if err := p.onSeek(p.seeks); err != nil {
			return err
		}
	}
	p.next = 0
	if pos != nil {
		p.next, _ = strconv.Atoi(string(pos))
	}
	return nil
}
func (p *hookedPart) Read(ctx context.Context) (connectors.Batch, error) {
	if p.onRead != nil {
		if err := p.onRead(ctx, p.seeks, p.reads, p.next); err != nil {
			return connectors.Batch{}, err
		}
	}
	p.reads++
	if p.next >= len(p.lines) {
		return connectors.Batch{}, connectors.ErrEndOfInput
	}
	b := connectors.Batch{Where: p.id, Unit: "line", Boundary: true, Records: []connectors.Record{{Value: []byte(p.lines[p.next]), Seq: int64(p.next)}}}
	p.next++
	b.End = connectors.Position(strconv.Itoa(p.next))
	return b, nil
}
func (p *hookedPart) Describe(pos connectors.Position) string { return string(pos) }
func (p *hookedPart) Close() error                            { return nil }

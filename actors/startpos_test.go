package actors

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/internal/memio"
)

// groupPart is a partition that, without a seek to a checkpoint, starts
// at its group's committed offset (as a Kafka partition does), and says
// where it started (Start) until it hands out a batch. hold keeps its
// first Read from returning.
type groupPart struct {
	quietPart
	group   *int
	hold    chan struct{}
	started chan struct{} // closed once the first Read has seeked

	mu       sync.Mutex
	seeked   bool
	returned bool
	once     sync.Once
}

func (p *groupPart) Seek(pos connectors.Position) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.seeked = true
	if pos == nil {
		p.next = *p.group
		return nil
	}
	p.next, _ = strconv.Atoi(string(pos))
	return nil
}

func (p *groupPart) Start() connectors.Position {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.seeked || p.returned {
		return nil
	}
	return connectors.Position(strconv.Itoa(p.next))
}

func (p *groupPart) Read(ctx context.Context) (connectors.Batch, error) {
	p.mu.Lock()
	seeked := p.seeked
	p.mu.Unlock()
	if !seeked {
		p.Seek(nil)
	}
	p.once.Do(func() { close(p.started) })
	if p.hold != nil {
		select {
		case <-p.hold:
		case <-ctx.Done():
			return connectors.Batch{}, ctx.Err()
		}
	}
	p.mu.Lock()
	p.returned = true
	p.mu.Unlock()
	return p.quietPart.Read(ctx)
}

// markerWatch closes done at the first commit with a marker of partition
// once after is closed.
type markerWatch struct {
	*memio.Changelog
	partition string
	after     chan struct{}
	done      chan struct{}
	once      sync.Once
}

func (w *markerWatch) Commit(ctx context.Context, markers map[string]connectors.ChangelogMarker) (map[string]int64, error) {
	select {
	case <-w.after:
	default:
		return w.Changelog.Commit(ctx, markers)
	}
	offsets, err := w.Changelog.Commit(ctx, markers)
	if _, ok := markers[w.partition]; ok && err == nil {
		w.once.Do(func() { close(w.done) })
	}
	return offsets, err
}

// A partition checkpointed before it delivered anything keeps, in its
// changelog marker, where its source started it, not "nowhere": node b
// starts P at the group's offset 0 and checkpoints it before its first
// batch; then the group's offset moves to 50 (a later checkpoint of
// another node, whose marker the next owner may not see yet: behind an
// open transaction of the changelog). The next owner, restoring from b's
// marker, reads P from 0, not from 50 with none of 0-49 counted.
func TestAPartitionCheckpointedBeforeItsFirstBatchKeepsWhereItStarted(t *testing.T) {
	lines := clogLines(100)
	cl := &memio.Changelog{}
	group := 0
	p := &groupPart{quietPart: quietPart{id: "P", lines: lines}, group: &group, hold: make(chan struct{}), started: make(chan struct{})}
	watch := &markerWatch{Changelog: cl, partition: "P", after: p.started, done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-watch.done:
		case <-time.After(time.Minute):
			t.Error("no checkpoint of P reached the changelog within a minute")
		}
		cancel()
	}()
	_, err := Run(ctx, Config{Pipeline: load(t, clogScript), Source: &partsSource{parts: []connectors.Partition{p}}, Store: openStore(t),
		Results: &memio.Sink{}, MaxErrors: -1, Changelog: watch, Shards: 2, CheckpointInterval: 20 * time.Millisecond, TriggerInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	group = 50
	next := &groupPart{quietPart: quietPart{id: "P", lines: lines}, group: &group, started: make(chan struct{})}
	results := &memio.Sink{}
	if _, err := Run(context.Background(), Config{Pipeline: load(t, clogScript), Source: &partsSource{parts: []connectors.Partition{next}}, Store: openStore(t),
		Results: results, MaxErrors: -1, Changelog: cl, Shards: 2, UntilIdle: true}); err != nil {
		t.Fatal(err)
	}
	if got := rowsText(results.Rows()); got != wantCounts(lines) {
		t.Fatalf("the next owner of P counted\n%swant\n%s", got, wantCounts(lines))
	}
}

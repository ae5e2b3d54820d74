package actors

import (
	"context"
	"fmt"
	"strconv"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/internal/memio"
	"github.com/eddy-stream/eddy/state"
)

// markedPart is a repartition topic's partition as the engine sees it: its
// records come from one upstream stream, and its event time moves by that
// stream alone, never by idleness (connectors/kafka, Marked and Streams).
type markedPart struct {
	quietPart
}

func (p *markedPart) Marked() bool      { return true }
func (p *markedPart) Streams() []string { return []string{"up"} }
func (p *markedPart) Read(ctx context.Context) (connectors.Batch, error) {
	b, err := p.quietPart.Read(ctx)
	if len(b.Records) > 0 {
		b.Stream = "up"
	}
	return b, err
}

const markedScript = `return {
	parse = eddy.json { k = "string", t = "number" },
	event_time = "t",
	watermark = { out_of_order = "0s" },
	key = "k",
	window = eddy.tumbling("10s"),
	aggregate = { n = eddy.count() },
	emit = "final",
}`

// runMarkedUntil runs parts on store until the changelog has a checkpoint
// of partition at position end, then stops; it returns the rows emitted
// and the records reported late.
func runMarkedUntil(t *testing.T, store *state.Store, cl *memio.Changelog, partition string, end int, parts ...connectors.Partition) (int, int64) {
	t.Helper()
	committed := &commitWatch{Changelog: cl, partition: partition, end: connectors.Position(strconv.Itoa(end)), done: make(chan struct{})}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		select {
		case <-committed.done:
		case <-time.After(time.Minute):
			t.Errorf("no checkpoint of %s at %d reached the changelog within a minute", partition, end)
		}
		cancel()
	}()
	results, stats := &memio.Sink{}, &Stats{}
	_, err := Run(ctx, Config{Pipeline: load(t, markedScript), Source: &partsSource{parts: parts}, Store: store, Results: results,
		MaxErrors: -1, Changelog: committed, Shards: 2, CheckpointInterval: 50 * time.Millisecond, TriggerInterval: 20 * time.Millisecond, Stats: stats})
	if err != nil {
		t.Fatal(err)
	}
	if t.Failed() {
		t.FailNow()
	}
	return len(results.Rows()), stats.Late.Load()
}

func timedLines(from, to int) []string {
	var lines []string
	for ts := from; ts < to; ts++ {
		lines = append(lines, fmt.Sprintf(`{"k":"a","t":%d}`, ts))
	}
	return lines
}

// A repartition partition goes by its own watermark, also when it comes
// back to a node whose watermark went on without it: node a reads P to
// t=99, then only Q (t up to 1999: a's watermark is there), while b takes
// P on to t=149; when P comes back to a, restored from a's checkpoint and
// b's changelog, its records from t=150 are on time, as they were where
// they came from. (With the checkpoint's node watermark, every one of
// them was late.)
func TestAMarkedPartitionComingBackKeepsItsOwnWatermark(t *testing.T) {
	lines := timedLines(0, 200)
	cl := &memio.Changelog{}
	a, b := openStore(t), openStore(t)
	p := func() *markedPart { return &markedPart{quietPart{id: "P", lines: lines}} }
	limited := func(n int) *markedPart { return &markedPart{quietPart{id: "P", lines: lines[:n]}} }
	if _, late := runMarkedUntil(t, a, cl, "P", 100, limited(100)); late != 0 {
		t.Fatalf("a, P to t=99: %d records late", late)
	}
	q := &markedPart{quietPart{id: "Q", lines: timedLines(1000, 2000)}}
	if _, late := runMarkedUntil(t, a, cl, "Q", 1000, q); late != 0 {
		t.Fatalf("a, Q: %d records late", late)
	}
	if _, late := runMarkedUntil(t, b, cl, "P", 150, limited(150)); late != 0 {
		t.Fatalf("b, P to t=149: %d records late", late)
	}
	if _, late := runMarkedUntil(t, a, cl, "P", 200, p()); late != 0 {
		t.Fatalf("P back on a, t=150 to 199: %d of 50 records late (a's watermark is Q's, not P's)", late)
	}
}

// The same without b: P comes back to a from a's own checkpoint alone
// (the changelog has nothing newer), and still goes by its own watermark.
func TestAMarkedPartitionRestoredLocallyKeepsItsOwnWatermark(t *testing.T) {
	lines := timedLines(0, 200)
	cl := &memio.Changelog{}
	a := openStore(t)
	if _, late := runMarkedUntil(t, a, cl, "P", 100, &markedPart{quietPart{id: "P", lines: lines[:100]}}); late != 0 {
		t.Fatalf("a, P to t=99: %d records late", late)
	}
	if _, late := runMarkedUntil(t, a, cl, "Q", 1000, &markedPart{quietPart{id: "Q", lines: timedLines(1000, 2000)}}); late != 0 {
		t.Fatalf("a, Q: %d records late", late)
	}
	if _, late := runMarkedUntil(t, a, cl, "P", 200, &markedPart{quietPart{id: "P", lines: lines}}); late != 0 {
		t.Fatalf("P back on a, t=100 to 199: %d of 100 records late (a's watermark is Q's, not P's)", late)
	}
}

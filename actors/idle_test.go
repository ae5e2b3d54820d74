package actors

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/internal/memio"
	"github.com/eddy-stream/eddy/scripting"
	"github.com/eddy-stream/eddy/state"
)

// quietSource has two partitions: "busy" delivers its lines and then stays
// caught up, "quiet" never delivers anything. Neither ends.
// quietSource has a busy partition, which reads its lines one a pace
// apart, and a quiet one, which never has anything.
type quietSource struct {
	lines []string
	pace  time.Duration
}

func (s *quietSource) Start(_ context.Context, l connectors.Listener) error {
	l.Assign(&quietPart{id: "busy", lines: s.lines, pace: s.pace})
	l.Assign(&quietPart{id: "quiet"})
	return nil
}
func (s *quietSource) Close() error { return nil }

type quietPart struct {
	id    string
	lines []string
	next  int
	pace  time.Duration
}

func (p *quietPart) ID() string { return p.id }
func (p *quietPart) Seek(pos connectors.Position) error {
	p.next = 0
	if pos != nil {
		p.next, _ = strconv.Atoi(string(pos))
	}
	return nil
}
func (p *quietPart) Read(ctx context.Context) (connectors.Batch, error) {
	if p.next < len(p.lines) {
		time.Sleep(p.pace)
		b := connectors.Batch{Where: p.id, Unit: "line", Records: []connectors.Record{{Value: []byte(p.lines[p.next]), Seq: int64(p.next)}}}
		p.next++
		b.End = connectors.Position(strconv.Itoa(p.next))
		return b, nil
	}
	select {
	case <-ctx.Done():
		return connectors.Batch{}, ctx.Err()
	case <-time.After(20 * time.Millisecond):
	}
	return connectors.Batch{CaughtUp: true, End: connectors.Position(strconv.Itoa(p.next))}, nil
}
func (p *quietPart) Describe(pos connectors.Position) string { return string(pos) }
func (p *quietPart) Close() error                            { return nil }

// A partition just assigned, whose supervisor has not reported yet, may
// have records older than the other partitions': it holds the watermark
// back, as one with no event time yet does, rather than counting as idle.
func TestAnAssignedPartitionHoldsTheWatermarkBack(t *testing.T) {
	e := &engine{cfg: Config{Pipeline: load(t, sessionsScript("final")), Stats: &Stats{}}}
	n := newNode(e, nil)
	busy := newPartState(&quietPart{id: "busy"})
	busy.status = partitionStatus{id: "busy", maxTime: 100_000, timed: true, active: time.Now()}
	n.parts["busy"] = busy
	n.parts["new"] = newPartState(&quietPart{id: "new"})
	n.advanceWatermark()
	if n.watermark != math.MinInt64 {
		t.Fatalf("the watermark moved to %s while a partition assigned had not reported", scripting.FormatTime(n.watermark))
	}
}

// A partition that delivers nothing stops holding the watermark back after
// idle_timeout, so the busy partition's windows close while the run goes on;
// and a processing-time timer fires on the wall clock.
func TestIdlePartitionAndProcessingTimer(t *testing.T) {
	script := `return {
		parse = eddy.json { k = "string", t = "number" },
		event_time = "t",
		watermark = { out_of_order = "0s", idle_timeout = "100ms" },
		key = "k",
		window = eddy.tumbling("60s"),
		aggregate = { n = eddy.count() },
		emit = "final",
		on_record = function(r, ctx)
			if not ctx.timer("wall") then ctx.set_processing_timer("wall", 0.05) end
		end,
		on_timer = function(name, ctx) ctx.emit("pings", { key = ctx.key, timer = name }) end,
		sinks = { pings = "stdout" },
	}`
	var lines []string
	for ts := 0; ts < 200; ts += 10 {
		lines = append(lines, fmt.Sprintf(`{"k":"a","t":%d}`, ts))
	}
	store, err := state.Open("", state.WithInMemory())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	results, pings := &memio.Sink{}, &memio.Sink{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		// The busy partition reads for 200ms: still active when the quiet
		// one turns idle, whatever the machine's load.
		_, err := Run(ctx, Config{Pipeline: load(t, script), Source: &quietSource{lines: lines, pace: 10 * time.Millisecond}, Store: store,
			Results: results, Outputs: map[string]connectors.Sink{"pings": pings}, MaxErrors: -1,
			TriggerInterval: 20 * time.Millisecond})
		done <- err
	}()
	deadline := time.After(10 * time.Second)
	for len(results.Rows()) < 3 || len(pings.Rows()) < 1 {
		select {
		case <-deadline:
			cancel()
			t.Fatalf("after 10s: %d windows (want the 3 closed ones) and %d timer rows: the quiet partition still holds the watermark back",
				len(results.Rows()), len(pings.Rows()))
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	got := rowsText(results.Rows()[:3])
	want := `{"k":"a","window_start":"1970-01-01T00:00:00.000Z","window_end":"1970-01-01T00:01:00.000Z","n":6}
{"k":"a","window_start":"1970-01-01T00:01:00.000Z","window_end":"1970-01-01T00:02:00.000Z","n":6}
{"k":"a","window_start":"1970-01-01T00:02:00.000Z","window_end":"1970-01-01T00:03:00.000Z","n":6}
`
	if got != want {
		t.Fatalf("windows closed while running:\n%s\nwant\n%s", got, want)
	}
}

// quietGroup is quietSource as a group's source, which names its
// partitions: connectors.Merged reads both as one partition.
type quietGroup struct{ quietSource }

func (s *quietGroup) AllPartitions(context.Context) ([]string, error) {
	return []string{"busy", "quiet"}, nil
}

// Within one partition that reads several (a Merged of a topic's Kafka
// partitions), a stream that delivers nothing stops holding the
// partition's event time back after idle_timeout, as a quiet partition
// does the node's: the busy stream's windows close while the run goes on.
func TestIdleStreamOfMergedPartition(t *testing.T) {
	script := `return {
		parse = eddy.json { k = "string", t = "number" },
		event_time = "t",
		watermark = { out_of_order = "0s", idle_timeout = "100ms" },
		key = "k",
		window = eddy.tumbling("60s"),
		aggregate = { n = eddy.count() },
		emit = "final",
	}`
	var lines []string
	for ts := 0; ts < 200; ts += 10 {
		lines = append(lines, fmt.Sprintf(`{"k":"a","t":%d}`, ts))
	}
	store, err := state.Open("", state.WithInMemory())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// The busy stream reads for 200ms: still active when the quiet one
	// turns idle, whatever the machine's load.
	src := &quietGroup{quietSource{lines: lines, pace: 10 * time.Millisecond}}
	m, err := connectors.NewMergedInputs(ctx, []connectors.MergedInput{{Source: src, Name: func(string) string { return "" }}})
	if err != nil {
		t.Fatal(err)
	}
	results := &memio.Sink{}
	done := make(chan error, 1)
	go func() {
		_, err := Run(ctx, Config{Pipeline: load(t, script), Source: connectors.Single{Partition: m}, Store: store,
			Results: results, MaxErrors: -1, TriggerInterval: 20 * time.Millisecond})
		done <- err
	}()
	deadline := time.After(time.Minute)
	for len(results.Rows()) < 3 {
		select {
		case <-deadline:
			cancel()
			t.Fatalf("after a minute: %d windows (want the 3 closed ones): the quiet stream still holds the watermark back", len(results.Rows()))
		case <-time.After(10 * time.Millisecond):
		}
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	want := `{"k":"a","window_start":"1970-01-01T00:00:00.000Z","window_end":"1970-01-01T00:01:00.000Z","n":6}
{"k":"a","window_start":"1970-01-01T00:01:00.000Z","window_end":"1970-01-01T00:02:00.000Z","n":6}
{"k":"a","window_start":"1970-01-01T00:02:00.000Z","window_end":"1970-01-01T00:03:00.000Z","n":6}
`
	if got := rowsText(results.Rows()[:3]); got != want {
		t.Fatalf("windows closed while running:\n%s\nwant\n%s", got, want)
	}
}

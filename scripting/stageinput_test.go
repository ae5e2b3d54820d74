package scripting

import (
	"strings"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/connectors"
)

// A later stage run on its own keys and aggregates a row of the stage
// before, read back from JSON, as the in-process stage does (KeyRow): the
// key is stage 2's, integral numbers are integers again, and the row goes
// to the partition of that key (StageKey).
func TestLaterStageReadsRowsAsJSON(t *testing.T) {
	p, err := LoadSource("st.lua", []byte(stagesSrc("", "", "")))
	if err != nil {
		t.Fatal(err)
	}
	if first := p.FirstStage(); len(first.Stages) != 0 || first.Emit != EmitFinal || len(p.Stages) != 1 {
		t.Fatalf("FirstStage: %d stages, emit %q (the pipeline's stages: %d): want none, final, and p unchanged", len(first.Stages), first.Emit, len(p.Stages))
	}
	second, err := p.LaterStage(2)
	if err != nil {
		t.Fatal(err)
	}
	rt, err := second.NewRuntime(false)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	row := connectors.Row{Key: "7", Fields: []connectors.Field{{Name: "auction", Value: int64(7)},
		{Name: "window_start", Value: "2024-01-01T00:00:00.000Z"}, {Name: "window_end", Value: "2024-01-01T00:00:10.000Z"},
		{Name: "bids", Value: int64(3)}, {Name: "top", Value: 2.5}}}
	k, _, kept, err := rt.ProcessAt(connectors.AppendJSON(nil, row), 0)
	if err != nil || !kept {
		t.Fatalf("ProcessAt: kept %v, %v", kept, err)
	}
	want, err := second.StageKey(row)
	if err != nil {
		t.Fatal(err)
	}
	if k.Key != "2024-01-01T00:00:00.000Z" || k.Key != want {
		t.Errorf("key %q, StageKey %q: want stage 2's, window_start", k.Key, want)
	}
	if got, ok := k.Vals[1].(int64); !ok || got != 3 {
		t.Errorf("max(bids) takes %#v: want the integer 3", k.Vals[1])
	}
	if _, _, _, err := rt.ProcessAt([]byte(`[1,2]`), 0); err == nil || !strings.Contains(err.Error(), "want an object") {
		t.Errorf("a row that is not an object: %v", err)
	}
}

// A windowed later stage run on its own takes each row at its window's
// last instant (window_end less a millisecond), as the in-process stage
// does, with no out-of-order allowance (the stage topic's markers are its
// watermark); a third stage runs on its own too.
func TestWindowedLaterStageTimesRowsByWindowEnd(t *testing.T) {
	p, err := LoadSource("st.lua", []byte(`return { parse = eddy.json { a = "string", t = "string" }, event_time = "t", stages = {
			{ key = "a", window = eddy.tumbling("1s"), aggregate = { n = eddy.count() } },
			{ key = "a", window = eddy.tumbling("1m"), aggregate = { m = eddy.max("n") } },
			{ aggregate = { x = eddy.max("m") } } } }`))
	if err != nil {
		t.Fatal(err)
	}
	second, err := p.LaterStage(2)
	if err != nil {
		t.Fatal(err)
	}
	if w := second.Watermark; !second.HasEventTime() || w.OutOfOrder != 0 || second.AllowedLateness != 0 || w.IdleTimeout < 100*365*24*time.Hour {
		t.Fatalf("stages[2] on its own: event time %v, out of order %v, lateness %v, idle after %v: want event time, no allowance, never idle", second.EventTime, w.OutOfOrder, second.AllowedLateness, w.IdleTimeout)
	}
	rt, err := second.NewRuntime(false)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	row := connectors.Row{Fields: []connectors.Field{{Name: "a", Value: "x"},
		{Name: "window_start", Value: "2024-01-01T00:00:09.000Z"}, {Name: "window_end", Value: "2024-01-01T00:00:10.000Z"}, {Name: "n", Value: int64(3)}}}
	k, _, kept, err := rt.ProcessAt(connectors.AppendJSON(nil, row), 0)
	if err != nil || !kept {
		t.Fatalf("ProcessAt: kept %v, %v", kept, err)
	}
	if want := int64(1704067210000 - 1); k.Time != want {
		t.Errorf("event time %d: want %d (window_end less 1 ms)", k.Time, want)
	}
	third, err := p.LaterStage(3)
	if err != nil || third.IsWindowed() || third.Stage() != 3 {
		t.Fatalf("stages[3] on its own: %v (windowed %v)", err, third != nil && third.IsWindowed())
	}
	if _, err := p.LaterStage(4); err == nil {
		t.Errorf("stages[4] of three: no error")
	}
}

package scripting

import (
	"strings"
	"testing"

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
	second, err := p.LaterStage()
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

func TestLaterStageRefusals(t *testing.T) {
	tests := []struct{ name, src, errContains string }{
		{"windowed second stage", stagesSrc("", "", `key = "auction", window = eddy.tumbling("1m")`), "stages[2] has a window"},
		{"three stages", `return { parse = eddy.json { a = "string", t = "string" }, event_time = "t", stages = {
			{ key = "a", window = eddy.tumbling("1s"), aggregate = { n = eddy.count() } },
			{ key = "a", window = eddy.tumbling("1m"), aggregate = { m = eddy.max("n") } },
			{ aggregate = { x = eddy.max("m") } } } }`, "has 3 stages"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := LoadSource("st.lua", []byte(tc.src))
			if err != nil {
				t.Fatal(err)
			}
			if _, err := p.LaterStage(); err == nil || !strings.Contains(err.Error(), tc.errContains) {
				t.Fatalf("LaterStage: %v, want an error containing %q", err, tc.errContains)
			}
		})
	}
}

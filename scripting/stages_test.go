package scripting

import (
	"strings"
	"testing"

	"github.com/eddy-stream/eddy/connectors"
)

// stagesSrc is a two-stage pipeline with the given fields spliced into the
// top level, stage 1 and stage 2.
func stagesSrc(top, first, second string) string {
	return `return {
		parse = eddy.json { auction = "integer", price = "number", time = "string" },
		event_time = "time",` + top + `
		stages = {
			{ key = "auction", window = eddy.tumbling("10s"), aggregate = { bids = eddy.count(), top = eddy.max("price") }, ` + first + ` },
			{ key = { "window_start" }, aggregate = { most = eddy.max("bids") }, ` + second + ` },
		},
	}`
}

func TestStagesLoadErrors(t *testing.T) {
	tests := []struct {
		name, src, errContains string
	}{
		{"not a list", `return { stages = 3 }`, "stages: want a list of stage tables"},
		{"one stage", `return { stages = { { aggregate = { n = eddy.count() } } } }`, "stages: want two or more stages"},
		{"a named stage", `return { stages = { { aggregate = {} }, { aggregate = {} }, x = {} } }`, "stages: want a list of stage tables, it has the key x"},
		{"stage not a table", `return { stages = { { window = eddy.tumbling("1s"), aggregate = {} }, "count" } }`, "stages[2]: want a table with key, window and aggregate, got string"},
		{"unknown stage field", stagesSrc("", "", "filter = 1"), "stages[2]: unknown field filter"},
		{"no aggregate", `return { stages = { { window = eddy.tumbling("1s") }, { aggregate = {} } } }`, "stages[1].aggregate: every stage aggregates"},
		{"emit on a feeding stage", stagesSrc("", `emit = "update"`, ""), "stages[1].emit: only the last stage (stages[2]) says how results are emitted"},
		{"unwindowed feeder", `return { stages = { { key = "a", aggregate = { n = eddy.count() } }, { aggregate = { m = eddy.max("n") } } } }`,
			"stages[1].window: stages[1] feeds stages[2], so it needs a window"},
		{"session window on a later stage", stagesSrc("", "", `window = eddy.session("1m")`), "stages[2].window: session windows are for the first stage"},
		{"update emit of a windowed later stage", stagesSrc("", "", `key = "auction", window = eddy.tumbling("1m"), emit = "update"`), `stages[2].emit: stages[2] has a window: it emits each window once, when it closes (final), not "update"`},
		{"limit on a windowed later stage", stagesSrc("", "", `key = "auction", window = eddy.tumbling("1m"), limit = 3`), "stages[2].limit: a windowed stage emits every window that closes"},
		{"window column as a windowed stage's key", stagesSrc("", "", `window = eddy.tumbling("1m")`), `stages[2].key: "window_start" names this stage's own window`},
		{"unwindowed middle stage", `return { stages = { { window = eddy.tumbling("1s"), aggregate = {} }, { aggregate = {} }, { aggregate = {} } } }`,
			"stages[2].window: stages[2] feeds stages[3], so it needs a window"},
		{"top-level key", stagesSrc(`key = "auction",`, "", ""), "key: with stages, each stage has its own key"},
		{"top-level emit", stagesSrc(`emit = "final",`, "", ""), "emit: with stages"},
		{"hooks", stagesSrc(`on_record = function() end,`, "", ""), "on_record: not available with stages (per-key hooks"},
		{"later key a function", stagesSrc("", "", "key = function(r) return 1 end"), "stages[2].key: a later stage is keyed by columns of its input (auction, window_start, window_end, bids, top)"},
		{"later key not an input column", stagesSrc("", "", ""), ""},
		{"key column missing upstream", `return { parse = eddy.json { a = "string", t = "string" }, event_time = "t",
			stages = { { key = "a", window = eddy.tumbling("1s"), aggregate = { n = eddy.count() } }, { key = "b", aggregate = { m = eddy.max("n") } } } }`,
			`stages[2].key: "b" is not a column of stages[1] (its columns: a, window_start, window_end, n)`},
		{"aggregate field missing upstream", stagesSrc("", "", `aggregate = { s = eddy.sum("price") }`), `stages[2].aggregate.s: "price" is not a column of stages[1]`},
		{"bad later aggregate", stagesSrc("", "", `aggregate = { s = "sum" }`), `stages[2].aggregate.s: want eddy.count()`},
		{"order by unknown column", stagesSrc("", "", `order_by = { "bids" }`), `stages[2].order_by[1]: "bids" is not a result column (columns: window_start, most)`},
		{"bad last emit", stagesSrc("", "", `emit = "often"`), `stages[2].emit: want update, complete or final`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadSource("bad.lua", []byte(tc.src))
			if tc.errContains == "" {
				if err != nil {
					t.Fatalf("a valid pipeline: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.errContains) {
				t.Fatalf("error %v, want it to contain %q", err, tc.errContains)
			}
		})
	}
}

// A two-stage pipeline loads as its first stage plus the later ones: the
// first emits final (its windows go on once), the last has the emit mode
// and shape, and --emit (SetEmit) changes the last stage on a copy.
func TestStagesShape(t *testing.T) {
	p, err := LoadSource("q.lua", []byte(stagesSrc("", "", `emit = "complete", order_by = { "most desc" }, limit = 2`)))
	if err != nil {
		t.Fatal(err)
	}
	if p.Emit != EmitFinal || !p.IsWindowed() || strings.Join(p.KeyColumns, ",") != "auction" {
		t.Fatalf("stage 1: emit %s, windowed %v, key %v", p.Emit, p.IsWindowed(), p.KeyColumns)
	}
	last := p.Last()
	if len(p.Stages) != 1 || last.Stage() != 2 || last.Emit != EmitComplete || last.Limit != 2 || last.OrderBy[0] != (Order{Column: "most", Desc: true}) {
		t.Fatalf("stage 2: %+v", last)
	}
	if got := strings.Join(last.Columns(), ","); got != "window_start,most" {
		t.Fatalf("stage 2 columns %s", got)
	}
	cp := *p
	if err := cp.SetEmit(EmitUpdate); err != nil {
		t.Fatal(err)
	}
	if cp.Last().Emit != EmitUpdate || p.Last().Emit != EmitComplete || cp.Emit != EmitFinal {
		t.Fatalf("SetEmit on a copy: copy's last %s, original's last %s, copy's first %s", cp.Last().Emit, p.Last().Emit, cp.Emit)
	}
}

// A later stage keys a row by its columns and picks its aggregates'
// values in Go; a Lua aggregate there gets the row as a table.
func TestStageKeyRow(t *testing.T) {
	p, err := LoadSource("q.lua", []byte(stagesSrc("", "", `key = { "window_start", "auction" }, aggregate = {
		n = eddy.count(), most = eddy.max("bids"), best = eddy.top(1, "auction", "bids"),
		seen = { init = function() return 0 end, add = function(a, r) return a + r.bids end, merge = function(a, b) return a + b end, result = function(a) return a end },
	}`)))
	if err != nil {
		t.Fatal(err)
	}
	rt, err := p.Last().NewRuntime(false)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	row := connectors.Row{Fields: []connectors.Field{{Name: "auction", Value: int64(7)}, {Name: "window_start", Value: "w"}, {Name: "bids", Value: int64(3)}}}
	k, err := rt.KeyRow(row)
	if err != nil {
		t.Fatal(err)
	}
	if k.Key != "w\x1f7" {
		t.Fatalf("key %q", k.Key)
	}
	accs, err := rt.NewAccs()
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Add(accs, k.Vals[2:]); err != nil {
		t.Fatal(err)
	}
	res, err := rt.Results(accs)
	if err != nil {
		t.Fatal(err)
	}
	got := string(connectors.AppendValue(nil, res))
	if want := `[[{"auction":7,"bids":3}],3,1,3]`; got != want {
		t.Fatalf("results %s, want %s (best, most, n, seen)", got, want)
	}
	if _, err := rt.KeyRow(connectors.Row{Fields: row.Fields[:1]}); err == nil || !strings.Contains(err.Error(), `stages[2].key: column "window_start" is missing`) {
		t.Fatalf("a row without a key column: %v", err)
	}
}

// A reload keeps the later stages' layout: their tables are checkpointed
// by it.
func TestStagesReload(t *testing.T) {
	old, err := LoadSource("q.lua", []byte(stagesSrc("", "", "")))
	if err != nil {
		t.Fatal(err)
	}
	same, err := LoadSource("q.lua", []byte(stagesSrc("", "", "")))
	if err != nil {
		t.Fatal(err)
	}
	if err := CheckReload(old, same); err != nil {
		t.Fatalf("the same script: %v", err)
	}
	next, err := LoadSource("q.lua", []byte(stagesSrc("", "", `key = "window_end"`)))
	if err != nil {
		t.Fatal(err)
	}
	err = CheckReload(old, next)
	if want := `the stages changed from stages[2]{key (window_start), most = max("bids")`; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("a changed stage key: %v, want %q", err, want)
	}
}

// A later stage's Lua aggregate can't be swapped in a running stage: the
// reload is refused with why.
func TestStagesReloadLuaAggregate(t *testing.T) {
	src := stagesSrc("", "", `aggregate = { most = { init = function() return 0 end, add = function(a, r) return math.max(a, r.bids) end,
		merge = function(a, b) return math.max(a, b) end, result = function(a) return a end } }`)
	old, err := LoadSource("q.lua", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	next, err := LoadSource("q.lua", []byte(strings.Replace(src, "math.max(a, r.bids)", "math.max(a, r.bids + 1)", 1)))
	if err != nil {
		t.Fatal(err)
	}
	err = CheckReload(old, next)
	if want := "stages[2].aggregate.most is a Lua aggregate, which a running later stage can't swap"; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want %q", err, want)
	}
}

package actors

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/internal/memio"
	"github.com/eddy-stream/eddy/scripting"
	"github.com/eddy-stream/eddy/state"
)

// runHaving runs src over lines with a trigger after every record (so
// update mode emits each change) and returns the result rows as text.
func runHaving(t *testing.T, src, emit string, lines []string) string {
	t.Helper()
	p := load(t, src)
	if err := p.SetEmit(emit); err != nil {
		t.Fatal(err)
	}
	store, err := state.Open("", state.WithInMemory())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	results := &memio.Sink{}
	if _, err := Run(context.Background(), Config{
		Pipeline: p, Source: &memio.Source{Lines: lines, BatchSize: 1, Boundary: true}, Store: store,
		Results: results, DeadLetters: &memio.Sink{}, Shards: 2, MaxErrors: -1,
	}); err != nil {
		t.Fatal(err)
	}
	return rowsText(results.Rows())
}

// having drops result rows before they are emitted, in every emit mode,
// windowed too; the declarative form and a Lua function give the same
// rows. In update mode a row that stops passing is not emitted again (and
// nothing retracts the one emitted before).
func TestHavingInEveryEmitMode(t *testing.T) {
	keyed := `return {
  parse = eddy.json { k = "string" },
  key = "k",
  aggregate = { n = eddy.count() },
  order_by = { "n desc", "k" },
  having = %s,
}`
	limited := `return {
  parse = eddy.json { k = "string" },
  key = "k",
  aggregate = { n = eddy.count() },
  order_by = { "n", "k" },
  limit = 1,
  having = %s,
}`
	windowed := `return {
  parse = eddy.json { k = "string", t = "number" },
  event_time = "t",
  watermark = { out_of_order = "0s" },
  key = "k",
  window = eddy.tumbling("10s"),
  aggregate = { n = eddy.count() },
  having = %s,
}`
	keys := []string{`{"k":"a"}`, `{"k":"a"}`, `{"k":"b"}`, `{"k":"a"}`, `{"k":"c"}`, `{"k":"c"}`}
	timed := []string{`{"k":"a","t":1}`, `{"k":"a","t":2}`, `{"k":"b","t":3}`, `{"k":"a","t":11}`, `{"k":"b","t":12}`, `{"k":"b","t":13}`, `{"k":"a","t":30}`}
	w := func(k string, start, n int) string {
		return fmt.Sprintf(`{"k":%q,"window_start":"1970-01-01T00:00:%02d.000Z","window_end":"1970-01-01T00:00:%02d.000Z","n":%d}`+"\n", k, start, start+10, n)
	}
	tests := []struct {
		name, src, emit, decl, lua string
		lines                      []string
		want                       string
	}{
		{"update: a row that stops passing is not emitted again", keyed, scripting.EmitUpdate, `eddy.le("n", 2)`, `function(row) return row.n <= 2 end`, keys,
			`{"k":"a","n":1}` + "\n" + `{"k":"a","n":2}` + "\n" + `{"k":"b","n":1}` + "\n" + `{"k":"c","n":1}` + "\n" + `{"k":"c","n":2}` + "\n"},
		{"final", keyed, scripting.EmitFinal, `eddy.ge("n", 2)`, `function(row) return row.n >= 2 end`, keys,
			`{"k":"a","n":3}` + "\n" + `{"k":"c","n":2}` + "\n"},
		{"final: having before limit", limited, scripting.EmitFinal, `eddy.ge("n", 2)`, `function(row) return row.n >= 2 end`, keys,
			`{"k":"c","n":2}` + "\n"},
		{"complete: each table filtered", keyed, scripting.EmitComplete, `eddy.all{ eddy.ge("n", 2), eddy.ne("k", "a") }`,
			`function(row) return row.n >= 2 and row.k ~= "a" end`, keys,
			`{"k":"c","n":2,"trigger":1}` + "\n"},
		{"windowed final", windowed, scripting.EmitFinal, `eddy.gt("n", 1)`, `function(row) return row.n > 1 end`, timed,
			w("a", 0, 2) + w("b", 10, 2)},
		{"windowed update", windowed, scripting.EmitUpdate, `eddy.is_in("n", { 2 })`, `function(row) return row.n == 2 end`, timed,
			// each window's row comes again when the window closes
			w("a", 0, 2) + w("a", 0, 2) + w("b", 10, 2) + w("b", 10, 2)},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			for _, having := range []string{tc.decl, tc.lua} {
				got := runHaving(t, fmt.Sprintf(tc.src, having), tc.emit, tc.lines)
				if got != tc.want {
					t.Errorf("having = %s: got\n%swant\n%s", having, got, tc.want)
				}
			}
		})
	}
}

// A having filter that fails (comparing a number with a string, as Lua
// would refuse) stops the run naming the key, rather than emitting or
// dropping the row silently.
func TestHavingErrorStopsTheRun(t *testing.T) {
	src := `return {
  parse = eddy.json { k = "string" },
  key = "k",
  aggregate = { n = eddy.count() },
  having = eddy.gt("k", 1),
}`
	store, err := state.Open("", state.WithInMemory())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	_, err = Run(context.Background(), Config{Pipeline: load(t, src), Source: &memio.Source{Lines: []string{`{"k":"a"}`}},
		Store: store, Results: &memio.Sink{}, DeadLetters: &memio.Sink{}, MaxErrors: -1})
	if err == nil || !strings.Contains(err.Error(), `key "a": having: gt("k", 1): field "k": attempt to compare number with string`) {
		t.Fatalf("error %v, want the having error naming the key", err)
	}
}

// A reload may change having (it shapes what is emitted, not the state):
// the new one decides the rows of the next trigger.
func TestReloadChangesHaving(t *testing.T) {
	version := func(having string) *scripting.Pipeline {
		src := strings.Replace(reloadScript, "PORTS", "[80] = true", 1)
		return load(t, strings.Replace(src, `emit = "final",`, `emit = "final", having = `+having+`,`, 1))
	}
	r := startReloadRun(t, version(`eddy.ge("count", 1000000)`), nil)
	lines := flowLines(0, 300)
	r.src.feed(lines, false)
	r.src.waitCaughtUp(t, len(lines))
	r.send(t, Reload{Pipeline: version(`eddy.eq("dev", "d1")`), Why: "test"})
	r.logs.waitFor(t, "reloaded the script", 30*time.Second)
	r.src.feed(nil, true)
	got := r.wait(t)
	all := map[string][2]int64{}
	expectedFlows(all, lines, 80)
	want := map[string][2]int64{"d1": all["d1"]}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("rows after the reload: got %v, want %v (only d1)", got, want)
	}
}

package scripting

import (
	"strings"
	"testing"

	"github.com/eddy-stream/eddy/connectors"
)

func TestLoadErrors(t *testing.T) {
	tests := []struct {
		name, src, errContains string
	}{
		{"syntax", `return {`, "bad.lua: syntax error"},
		{"not a table", `return 42`, "bad.lua: the script must return a pipeline table, it returned number"},
		{"runtime error at top level", `local x = nil; return x.y`, "bad.lua:1: attempt to index a non-table object(nil) with key 'y'"},
		{"unknown field", `return { fitler = function() end }`, `unknown field fitler`},
		{"uncalled constructor", `return { parse = eddy.json }`, `parse: eddy.json is a constructor: call it, as in eddy.json{ dstdevice = "string" }`},
		{"bad parse", `return { parse = "json" }`, "parse: want eddy.json{...}, eddy.csv{...}, eddy.lines() or a function(line), got string"},
		{"bad type name", `return { parse = eddy.json { a = "strng" } }`, `field "a": unknown type "strng"`},
		{"empty projection", `return { parse = eddy.json {} }`, "eddy.json needs the fields to project"},
		{"a field twice", `return { parse = eddy.json { "a", a = "string" } }`, `field "a" is listed twice`},
		{"bad filter", `return { filter = true }`, "filter: want a function(record)"},
		{"bad key", `return { key = 3 }`, "key: want a field name, a list of them, or a function(record), got number"},
		{"bad aggregate", `return { aggregate = { n = "count" } }`, "aggregate.n: want eddy.count()"},
		{"half a Lua aggregate", `return { aggregate = { n = { init = function() end } } }`, "aggregate.n: a Lua aggregate needs an add function"},
		{"bad emit", `return { emit = "sometimes" }`, `emit: want update, complete or final, got "sometimes"`},
		{"order by unknown column", `return { key = "k", aggregate = { n = eddy.count() }, order_by = { "count desc" } }`, `order_by[1]: "count" is not a result column (columns: k, n)`},
		{"limit without aggregate", `return { limit = 3 }`, "order_by and limit shape a result table"},
		{"bad limit", `return { key = "k", aggregate = { n = eddy.count() }, limit = 0 }`, "limit: want a whole number >= 1"},
		{"unknown sink output", `return { sinks = { result = "stdout" } }`, "sinks.result: nothing sends records there"},
		{"bad route", `return { route = "good" }`, "route: want a function(record)"},
		{"bad sink name", `return { sinks = { ["a-b"] = "stdout" } }`, "sinks: a-b is not a sink name"},
		{"top with n 0", `return { aggregate = { t = eddy.top(0, "x") } }`, "aggregate.t: eddy.top needs n >= 1"},
		{"bad test", `return { tests = { { name = "x" } } }`, "tests[1] (x): input: want a list of lines"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadSource("bad.lua", []byte(tc.src))
			if err == nil || !strings.Contains(err.Error(), tc.errContains) {
				t.Fatalf("error %v, want it to contain %q", err, tc.errContains)
			}
		})
	}
}

func TestProcessErrors(t *testing.T) {
	src := `return {
		parse = eddy.json { device = "string", port = "string|number", bytes = "integer?" },
		key = "device",
		aggregate = { n = eddy.count(), b = eddy.sum("bytes") },
	}`
	_, rt := loadRuntime(t, "flows.lua", src)
	tests := []struct{ name, line, errContains string }{
		{"ok", `{"device":"a","port":"80","bytes":3}`, ""},
		{"optional missing", `{"device":"a","port":80}`, ""},
		{"truncated", `{"device":"a","po`, "parse: not JSON"},
		{"not an object", `"hello"`, "parse: a JSON string, want an object"},
		{"missing field", `{"port":"80"}`, `parse: field "device" is missing`},
		{"null field", `{"device":null,"port":"80"}`, `parse: field "device" is null`},
		{"wrong type", `{"device":"a","port":{"n":80}}`, `parse: field "port" is a object, want string or number`},
		{"not an integer", `{"device":"a","port":"80","bytes":1.5}`, `parse: field "bytes" is a number, want integer`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, _, _, err := rt.Process([]byte(tc.line))
			if tc.errContains == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.errContains) {
				t.Fatalf("error %v, want it to contain %q", err, tc.errContains)
			}
		})
	}
}

// Accumulators survive the checkpoint encoding exactly, and merging two
// partitions' partials gives the same result as one partition over all.
func TestAccumulatorsRoundTripAndMerge(t *testing.T) {
	src := `return {
		parse = eddy.json { k = "string", v = "number", s = "string" },
		key = "k",
		aggregate = {
			n = eddy.count(), sum = eddy.sum("v"), lo = eddy.min("v"), hi = eddy.max("s"),
			mean = eddy.avg("v"), kinds = eddy.count_distinct("s"), best = eddy.top(2, "v"),
			list = { init = function() return {} end,
			         add = function(acc, r) acc[#acc + 1] = r.s; return acc end,
			         merge = function(a, b) for _, x in ipairs(b) do a[#a + 1] = x end; return a end,
			         result = function(acc) table.sort(acc); return table.concat(acc, "+") end },
		},
	}`
	p, rt := loadRuntime(t, "acc.lua", src)
	lines := []string{`{"k":"a","v":3,"s":"x"}`, `{"k":"a","v":1.5,"s":"y"}`, `{"k":"a","v":7,"s":"x"}`, `{"k":"a","v":-2,"s":"z"}`}
	all, _ := rt.NewAccs()
	left, _ := rt.NewAccs()
	right, _ := rt.NewAccs()
	for i, l := range lines {
		k, _, _, err := rt.Process([]byte(l))
		if err != nil {
			t.Fatal(err)
		}
		nk := len(p.KeyColumns)
		if err := rt.Add(all, k.Vals[nk:]); err != nil {
			t.Fatal(err)
		}
		half := left
		if i%2 == 1 {
			half = right
		}
		if err := rt.Add(half, k.Vals[nk:]); err != nil {
			t.Fatal(err)
		}
	}
	want, err := rt.Results(all)
	if err != nil {
		t.Fatal(err)
	}
	wantJSON := string(connectors.AppendValue(nil, want))
	if wantJSON != `[[7,3],"z",3,"x+x+y+z",-2,2.375,4,9.5]` {
		t.Fatalf("results %s", wantJSON)
	}
	// round trip through the checkpoint encoding
	enc, err := rt.EncodeEntry(nil, []any{"a"}, all)
	if err != nil {
		t.Fatal(err)
	}
	kv, back, err := rt.DecodeEntry(enc)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := rt.Results(back)
	if g := string(connectors.AppendValue(nil, got)); g != wantJSON || kv[0] != "a" {
		t.Errorf("after decode: %s %v, want %s", g, kv, wantJSON)
	}
	// merge of portable partials
	pl, _ := rt.Portable(left)
	pr, _ := rt.Portable(right)
	if err := rt.Merge(pl, pr); err != nil {
		t.Fatal(err)
	}
	merged, _ := rt.Results(pl)
	if g := string(connectors.AppendValue(nil, merged)); g != wantJSON {
		t.Errorf("merged: %s, want %s", g, wantJSON)
	}
	// a restored key goes on adding: every aggregate, the Lua one too,
	// takes the next record on top of what the checkpoint held
	k, _, _, err := rt.Process([]byte(`{"k":"a","v":10,"s":"w"}`))
	if err != nil {
		t.Fatal(err)
	}
	if err := rt.Add(back, k.Vals[len(p.KeyColumns):]); err != nil {
		t.Fatal(err)
	}
	more, _ := rt.Results(back)
	if g := string(connectors.AppendValue(nil, more)); g != `[[10,7],"z",4,"w+x+x+y+z",-2,3.9,5,19.5]` {
		t.Errorf("added to after decode: %s", g)
	}
}

// loadRuntime loads a script from its source and starts a runtime of it,
// closed when the test ends.
func loadRuntime(tb testing.TB, name, src string) (*Pipeline, *Runtime) {
	tb.Helper()
	p, err := LoadSource(name, []byte(src))
	if err != nil {
		tb.Fatal(err)
	}
	rt, err := p.NewRuntime(false)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(rt.Close)
	return p, rt
}

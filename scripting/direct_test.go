package scripting

import (
	"fmt"
	"strings"
	"testing"
)

// keyedOutcome is what one record gives a runtime without records output:
// dropped, failed with its message, or kept with its key, values and time.
func keyedOutcome(rt *Runtime, line string) string {
	k, rec, kept, err := rt.ProcessAt([]byte(line), 1)
	switch {
	case err != nil:
		return "error: " + err.Error()
	case !kept:
		return "dropped"
	}
	return fmt.Sprintf("%q %#v %d %#v", k.Key, keyedVals(rt, k), k.Time, rec)
}

// keyedVals is k.Vals with the key value the direct path leaves out put
// back, as the shard does (Keyed.KeyVals).
func keyedVals(rt *Runtime, k Keyed) []any {
	nk := min(len(rt.p.KeyColumns), len(k.Vals))
	return append(k.KeyVals(nk, k.Key), k.Vals[nk:]...)
}

// pathRuntime loads src on the direct path (direct) or the table path.
func pathRuntime(t *testing.T, src string, direct bool) *Runtime {
	t.Helper()
	return recordsRuntime(t, src, direct, false)
}

// recordsRuntime is pathRuntime, with the records output when records.
func recordsRuntime(t *testing.T, src string, direct, records bool) *Runtime {
	t.Helper()
	p, err := LoadSource("path.lua", []byte(src))
	if err != nil {
		t.Fatalf("%v\n%s", err, src)
	}
	if direct && !p.direct {
		t.Fatalf("not on the direct path:\n%s", src)
	}
	p.direct = direct
	rt, err := p.NewRuntime(records)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rt.Close)
	return rt
}

// sameOnBothPaths runs decl and lua, each on the direct path (when
// direct[i]) and on the table path, over edgeRecords: each script gives
// the same outcome on both paths, message for message, and decl gives
// what lua gives (the same failures, their messages aside).
func sameOnBothPaths(t *testing.T, decl, lua string, luaDirect bool) (kept int) {
	t.Helper()
	dd, dt := pathRuntime(t, decl, true), pathRuntime(t, decl, false)
	ld, lt := pathRuntime(t, lua, luaDirect), pathRuntime(t, lua, false)
	for _, line := range edgeRecords {
		a, b, c, d := keyedOutcome(dd, line), keyedOutcome(dt, line), keyedOutcome(ld, line), keyedOutcome(lt, line)
		if a != b {
			t.Errorf("%s: declarative gives %s on the direct path, %s on the table path", line, a, b)
		}
		if c != d {
			t.Errorf("%s: Lua gives %s on the direct path, %s on the table path", line, c, d)
		}
		if strings.HasPrefix(a, "error") != strings.HasPrefix(d, "error") || !strings.HasPrefix(a, "error") && a != d {
			t.Errorf("%s: declarative gives %s, Lua %s", line, a, d)
		}
		if a != "dropped" && !strings.HasPrefix(a, "error") {
			kept++
		}
	}
	return kept
}

// The direct path runs declarative filters on the scanned fields, and a
// filter function on the record table it fills for it alone: each gives
// what the table path gives, and the pairs of filterPairs agree there too.
func TestDeclarativeFiltersEqualLuaDirect(t *testing.T) {
	const rest = `parse = eddy.json { x = "any?", y = "any?" },
  aggregate = { n = eddy.count(), x = eddy.count_distinct("x"), y = eddy.count_distinct("y") },`
	for _, tc := range filterPairs {
		if strings.Contains(tc.lua, "nan") {
			continue // its NaN field needs edgeParse's parse function
		}
		t.Run(tc.decl, func(t *testing.T) {
			decl := fmt.Sprintf("return { %s filter = %s }", rest, tc.decl)
			lua := fmt.Sprintf("return { %s filter = function(r) return %s end }", rest, tc.lua)
			t.Logf("%d kept of %d", sameOnBothPaths(t, decl, lua, true), len(edgeRecords))
		})
	}
}

// A declarative map on the direct path gives what its Lua function gives
// on the table path, for keys and aggregates that read the mapped fields.
func TestDeclarativeMapsEqualLuaDirect(t *testing.T) {
	const parse = `parse = eddy.json { x = "any?", y = "any?" },`
	for _, tc := range mapPairs {
		t.Run(tc.decl, func(t *testing.T) {
			p, err := LoadSource("m.lua", []byte(fmt.Sprintf("return { %s map = %s }", parse, tc.decl)))
			if err != nil {
				t.Fatal(err)
			}
			var aggs []string
			for _, o := range p.steps.mapping.outs {
				aggs = append(aggs, fmt.Sprintf("%s = eddy.count_distinct(%q)", o.name, o.name))
			}
			rest := fmt.Sprintf("%s aggregate = { n = eddy.count(), %s },", parse, strings.Join(aggs, ", "))
			decl := fmt.Sprintf("return { %s map = %s }", rest, tc.decl)
			lua := fmt.Sprintf("return { %s map = function(r) return %s end }", rest, tc.lua)
			t.Logf("%d kept of %d", sameOnBothPaths(t, decl, lua, false), len(edgeRecords))
		})
	}
}

// Filter, map, key and event time together on the direct path, the map
// making the key and the event time: the same as the table path, line by
// line over mutatedJSON, with and without the records output.
func TestDirectStepsAgreeWithTable(t *testing.T) {
	for _, src := range []string{
		`return { parse = eddy.json { dev = "string|boolean", port = "string|number", n = "integer?", ts = "any?" },
			filter = eddy.any{ eddy.is_in("port", { "80", 443 }), eddy.gt("n", 2) },
			map = eddy.map{ d = eddy.upper("dev"), "port", n2 = eddy.mul("n", 2), "ts" },
			key = { "d", "port" }, event_time = "ts", window = eddy.tumbling("1m"),
			aggregate = { c = eddy.count(), s = eddy.sum("n2") } }`,
		`return { parse = eddy.json { dev = "any", port = "any", n = "number?" },
			filter = function(r) return r.port ~= "22" end, key = "dev", aggregate = { s = eddy.sum("n"), m = eddy.max("port") } }`,
		// records straight from the spans: no key, no aggregate
		`return { parse = eddy.json { port = "any", dev = "string|boolean", n = "number?" }, filter = eddy.ne("port", "22") }`,
		// a filter function may change a field; the key then reads the change
		`return { parse = eddy.json { dev = "any", port = "any" },
			filter = function(r) r.port = "p" .. tostring(r.port); return true end, key = "port", aggregate = { c = eddy.count() } }`,
	} {
		for _, records := range []bool{false, true} {
			stepsAgree(t, src, records)
		}
	}
}

// stepsAgree runs src on both paths over mutatedJSON, line by line.
func stepsAgree(t *testing.T, src string, records bool) {
	t.Helper()
	drt, trt := recordsRuntime(t, src, true, records), recordsRuntime(t, src, false, records)
	kept := 0
	for _, line := range mutatedJSON() {
		got, want := keyedOutcome(drt, line), keyedOutcome(trt, line)
		if got != want {
			t.Fatalf("%s (records %v)\nline %q: the direct path gives\n%s\nthe table path\n%s", src, records, line, got, want)
		}
		if got != "dropped" && !strings.HasPrefix(got, "error") {
			kept++
		}
	}
	t.Logf("%d records kept", kept)
	if kept < 10 {
		t.Fatalf("only %d records kept: the test compares too little", kept)
	}
}

// A parse function's records are keyed through the record table too, with
// no parsed fields to name a cache after.
func TestKeyOfParseFunction(t *testing.T) {
	rt := pathRuntime(t, `return { parse = function(l) return { k = l } end, key = "k", aggregate = { n = eddy.count() } }`, false)
	for range 3 {
		if got := keyedOutcome(rt, "a"); got != `"a" []interface {}{"a", interface {}(nil)} 0 connectors.Row{Key:"", Fields:[]connectors.Field(nil)}` {
			t.Fatalf("got %s", got)
		}
	}
}

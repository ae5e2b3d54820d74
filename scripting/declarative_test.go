package scripting

import (
	"fmt"
	"strings"
	"testing"
)

// edgeRecords exercise the types a declarative form and its Lua equivalent
// must treat alike: numbers and numeric strings, other strings, booleans,
// missing and null fields, tables, NaN, infinities and -0. The parse
// function below sets the field named by "nan" to 0/0 (JSON has no NaN).
var edgeRecords = []string{
	`{"x":80,"y":"a"}`, `{"x":"80","y":"b"}`, `{"x":443,"y":2}`, `{"x":"443"}`, `{"x":79.5,"y":"c"}`,
	`{"x":"abc","y":"d"}`, `{"x":"m"}`, `{"x":"z","y":"Ab"}`, `{"x":true}`, `{"x":false,"y":1}`,
	`{"y":"e"}`, `{"x":null,"y":null}`, `{"x":[1,2]}`, `{"x":{"a":1}}`, `{"nan":"x","y":"f"}`, `{"nan":"y","x":3}`,
	`{"x":1e400}`, `{"x":-1e400}`, `{"x":-0}`, `{"x":0,"y":0}`, `{"x":" 80 "}`, `{"x":"0x50","y":"0x10"}`,
	`{"x":"1e2","y":"-2.5"}`, `{"x":100,"y":-0.5}`, `{"x":"ÉtÉ","y":"ß"}`, `{"x":"1_000"}`, `{"x":""}`,
	`{"x":-7,"y":3}`, `{"x":7,"y":-3}`, `{"x":7.5,"y":0}`,
	`{"x":"2024-01-02T03:04:05Z","y":1700000000.25}`, `{"x":"2024-01-02T03:04:05.123+02:00","y":"1700000000"}`,
	`{"x":"2024-01-02","y":-1}`,
}

const edgeParse = `function(line)
  local r = json.decode(line)
  if r.nan then r[r.nan] = 0/0; r.nan = nil end
  return r
end`

// outcome is what one record gives: dropped, kept with its fields, or
// failed (a dead letter).
func outcome(t *testing.T, rt *Runtime, line string) string {
	t.Helper()
	_, rec, kept, err := rt.Process([]byte(line))
	switch {
	case err != nil:
		return "error"
	case !kept:
		return "dropped"
	}
	var sb strings.Builder
	for _, f := range rec.Fields {
		fmt.Fprintf(&sb, "%s=%#v ", f.Name, f.Value) // %#v: NaN prints, unlike JSON
	}
	return sb.String()
}

func runtimeOf(t *testing.T, src string) *Runtime {
	t.Helper()
	p, err := LoadSource("pair.lua", []byte(src))
	if err != nil {
		t.Fatalf("%v\n%s", err, src)
	}
	rt, err := p.NewRuntime(true)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rt.Close)
	return rt
}

// samePair runs the pipelines declarative and lua over edgeRecords and
// fails on the first record they treat differently.
func samePair(t *testing.T, declarative, lua string) (errors, kept int) {
	t.Helper()
	d, l := runtimeOf(t, declarative), runtimeOf(t, lua)
	for _, line := range edgeRecords {
		got, want := outcome(t, d, line), outcome(t, l, line)
		if got != want {
			t.Errorf("%s: declarative gives %s, Lua %s", line, got, want)
		}
		switch got {
		case "error":
			errors++
		case "dropped":
		default:
			kept++
		}
	}
	return errors, kept
}

// filterPairs are declarative filters and their Lua expressions of r.
var filterPairs = []struct{ decl, lua string }{
	{`eddy.eq("x", 80)`, `r.x == 80`},
	{`eddy.eq("x", "80")`, `r.x == "80"`},
	{`eddy.eq("x", true)`, `r.x == true`},
	{`eddy.eq("x", 0/0)`, `r.x == 0/0`},
	{`eddy.eq("x", 1/0)`, `r.x == 1/0`},
	{`eddy.eq("x", 0)`, `r.x == 0`},
	{`eddy.ne("x", 80)`, `r.x ~= 80`},
	{`eddy.ne("x", "abc")`, `r.x ~= "abc"`},
	{`eddy.lt("x", 100)`, `r.x < 100`},
	{`eddy.le("x", 80)`, `r.x <= 80`},
	{`eddy.gt("x", 80)`, `r.x > 80`},
	{`eddy.ge("x", 79.5)`, `r.x >= 79.5`},
	{`eddy.lt("x", "m")`, `r.x < "m"`},
	{`eddy.ge("x", "m")`, `r.x >= "m"`},
	{`eddy.gt("x", 0/0)`, `r.x > 0/0`},
	{`eddy.is_in("x", {"80", "443", 80, 443})`, `({["80"]=true, ["443"]=true, [80]=true, [443]=true})[r.x] == true`},
	{`eddy.is_in("x", {0/0, 1/0, false})`, `r.x == 1/0 or r.x == false`},
	{`eddy.has("x")`, `r.x ~= nil`},
	{`eddy.all{ eddy.has("x"), eddy.gt("x", 80) }`, `r.x ~= nil and r.x > 80`},
	{`eddy.any{ eddy.eq("x", "80"), eddy.lt("x", 100) }`, `r.x == "80" or r.x < 100`},
	{`eddy.none{ eddy.eq("x", 80), eddy.eq("x", "80") }`, `not (r.x == 80 or r.x == "80")`},
	{`eddy.all{ eddy.any{ eddy.eq("y", "a"), eddy.eq("y", 2) }, eddy.none{ eddy.has("nan") } }`, `(r.y == "a" or r.y == 2) and not (r.nan ~= nil)`},
	{`eddy.eq(eddy.mod("x", 3), 1)`, `r.x % 3 == 1`},
	{`eddy.gt(eddy.mul("x", "y"), 100)`, `r.x * r.y > 100`},
	{`eddy.is_in(eddy.lower("x"), { "abc", "z" })`, `({ abc = true, z = true })[string.lower(r.x)] == true`},
}

func TestDeclarativeFiltersEqualLua(t *testing.T) {
	for _, tc := range filterPairs {
		t.Run(tc.decl, func(t *testing.T) {
			decl := fmt.Sprintf("return { parse = %s, filter = %s }", edgeParse, tc.decl)
			lua := fmt.Sprintf("return { parse = %s, filter = function(r) return %s end }", edgeParse, tc.lua)
			errs, kept := samePair(t, decl, lua)
			t.Logf("%d errors, %d kept of %d", errs, kept, len(edgeRecords))
		})
	}
}

// mapPairs are declarative maps and the Lua tables they equal.
var mapPairs = []struct{ decl, lua string }{
	{`eddy.map{ "x" }`, `{ x = r.x }`},
	{`eddy.map{ z = "x", "y" }`, `{ z = r.x, y = r.y }`},
	{`eddy.map{ z = eddy.field("x") }`, `{ z = r.x }`},
	{`eddy.map{ p = eddy.mul("x", 0.908) }`, `{ p = r.x * 0.908 }`},
	{`eddy.map{ p = eddy.add("x", "y") }`, `{ p = r.x + r.y }`},
	{`eddy.map{ p = eddy.sub("x", 1) }`, `{ p = r.x - 1 }`},
	{`eddy.map{ p = eddy.div("x", "y") }`, `{ p = r.x / r.y }`},
	{`eddy.map{ p = eddy.mod("x", "y") }`, `{ p = r.x % r.y }`},
	{`eddy.map{ t = eddy.time_parse("x") }`, `{ t = time.parse(r.x) }`},
	{`eddy.map{ t = eddy.time_parse("x", "date") }`, `{ t = time.parse(r.x, "date") }`},
	{`eddy.map{ s = eddy.time_format("y") }`, `{ s = time.format(r.y) }`},
	{`eddy.map{ s = eddy.time_format("y", "2006-01-02 15:04") }`, `{ s = time.format(r.y, "2006-01-02 15:04") }`},
	{`eddy.map{ p = eddy.add(eddy.mul("x", 2), 1), "y" }`, `{ p = r.x * 2 + 1, y = r.y }`},
	{`eddy.map{ s = eddy.concat("x", eddy.const("-"), "y") }`, `{ s = r.x .. "-" .. r.y }`},
	{`eddy.map{ s = eddy.concat("x", 7) }`, `{ s = r.x .. 7 }`},
	{`eddy.map{ s = eddy.lower("x"), u = eddy.upper("y") }`, `{ s = string.lower(r.x), u = string.upper(r.y) }`},
	{`eddy.map{ c = 3, b = false, k = eddy.const("k"), "x" }`, `{ c = 3, b = false, k = "k", x = r.x }`},
	{`eddy.drop{ "y" }`, `(function() local o = {} for k, v in pairs(r) do if k ~= "y" then o[k] = v end end return o end)()`},
}

func TestDeclarativeMapsEqualLua(t *testing.T) {
	for _, tc := range mapPairs {
		t.Run(tc.decl, func(t *testing.T) {
			decl := fmt.Sprintf("return { parse = %s, map = %s }", edgeParse, tc.decl)
			lua := fmt.Sprintf("return { parse = %s, map = function(r) return %s end }", edgeParse, tc.lua)
			errs, kept := samePair(t, decl, lua)
			t.Logf("%d errors, %d kept of %d", errs, kept, len(edgeRecords))
		})
	}
}

// The map's output is what every later step sees: a key on a computed
// field, and records carrying only the mapped fields.
func TestMapShapesLaterSteps(t *testing.T) {
	src := `return {
  parse = eddy.json { type = "string", price = "number", bidder = "string" },
  filter = eddy.eq("type", "bid"),
  map = eddy.map { "bidder", price_eur = eddy.mul("price", 0.5) },
  key = "price_eur",
  aggregate = { n = eddy.count() },
}`
	rt := runtimeOf(t, src)
	k, rec, kept, err := rt.Process([]byte(`{"type":"bid","price":10,"bidder":"b1"}`))
	if err != nil || !kept {
		t.Fatalf("kept %v, err %v", kept, err)
	}
	if k.Key != "5" {
		t.Errorf("key %q, want 5 (price_eur)", k.Key)
	}
	if got := fmt.Sprint(rec.Fields); got != "[{bidder b1} {price_eur 5}]" {
		t.Errorf("record %s, want bidder and price_eur only", got)
	}
	if _, _, kept, _ := rt.Process([]byte(`{"type":"ask","price":10,"bidder":"b1"}`)); kept {
		t.Error("an ask passed the filter")
	}
}

func TestMapLoadErrors(t *testing.T) {
	const parse = `parse = eddy.json { type = "string", price = "number" }`
	tests := []struct{ name, src, errContains string }{
		{"key reads a dropped field", `return { ` + parse + `, map = eddy.map{ "price" }, key = "type", aggregate = { n = eddy.count() } }`,
			`key: field "type" is not one the map makes (it makes price)`},
		{"aggregate reads a dropped field", `return { ` + parse + `, map = eddy.drop{ "price" }, aggregate = { s = eddy.sum("price") } }`,
			`aggregate.s: field "price" is not one the map makes`},
		{"map reads an unparsed field", `return { ` + parse + `, map = eddy.map{ p = eddy.mul("prise", 2) } }`,
			`map.p: field "prise" is not one parse makes (it makes price, type)`},
		{"filter reads an unparsed field", `return { ` + parse + `, filter = eddy.eq("typ", "bid") }`,
			`filter: field "typ" is not one parse makes`},
		{"event time the map drops", `return { ` + parse + `, map = eddy.map{ "price" }, event_time = "type" }`,
			`event_time: field "type" is not one the map makes (it makes price)`},
		{"bad map", `return { map = 3 }`, "map: want eddy.map{…}, eddy.drop{…} or a function(record)"},
		{"bad expression", `return { map = eddy.map{ a = { 1 } } }`, `eddy.map: field "a": want a field name`},
		{"empty map", `return { map = eddy.map{} }`, "eddy.map: want at least one field"},
		{"const of a table", `return { map = eddy.map{ a = eddy.const({}) } }`, "eddy.const: want a string, number or boolean, got table"},
		{"ordering booleans", `return { filter = eddy.lt("x", true) }`, "booleans can't be ordered"},
		{"comparing with nil", `return { filter = eddy.eq("x", nil) }`, "want a number, string or boolean to compare with, got nil (eddy.has tests for a missing field)"},
		{"is_in with a table member", `return { filter = eddy.is_in("x", { {} }) }`, "a table can't be a member"},
		{"empty all", `return { filter = eddy.all{} }`, "eddy.all: want a list of at least one filter"},
		{"not a filter inside any", `return { filter = eddy.any{ eddy.count() } }`, "eddy.any[1]: want eddy.eq"},
		{"having without aggregate", `return { having = eddy.gt("n", 1) }`, "having filters result rows: add an aggregate"},
		{"having on a non-column", `return { key = "k", aggregate = { n = eddy.count() }, having = eddy.gt("m", 1) }`,
			`having: "m" is not a result column (columns: k, n)`},
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

// A pipeline written only in declarative forms never calls into Lua per
// record; one that mixes calls Lua only for its own function.
func TestDeclarativeStepsStayOutOfLua(t *testing.T) {
	const head = `parse = eddy.json { type = "string", price = "number", bidder = "string" },
  filter = eddy.all{ eddy.eq("type", "bid"), eddy.gt("price", 1) },
  map = eddy.map { "bidder", price_eur = eddy.mul("price", 0.908) },
  aggregate = { total = eddy.sum("price_eur") },`
	tests := []struct {
		name, key string
		lua       map[string]bool // hooks that must have run
	}{
		{"declarative only", `key = "bidder",`, map[string]bool{}},
		{"with a key function", `key = function(r) return r.bidder end,`, map[string]bool{"key": true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := LoadSource("steps.lua", []byte("return {\n"+head+"\n"+tc.key+"\n}"))
			if err != nil {
				t.Fatal(err)
			}
			rt, err := p.NewRuntime(true)
			if err != nil {
				t.Fatal(err)
			}
			defer rt.Close()
			for i := 0; i < 20*luaSample; i++ {
				if _, _, kept, err := rt.Process([]byte(`{"type":"bid","price":10,"bidder":"b1"}`)); err != nil || !kept {
					t.Fatalf("kept %v, err %v", kept, err)
				}
			}
			got := p.LuaTime()
			for i, name := range HookNames {
				if ran := got[i] > 0; ran != tc.lua[name] {
					t.Errorf("%s: Lua time %v, want Lua to run: %v", name, got[i], tc.lua[name])
				}
			}
		})
	}
}

// With eddy.json the fields are known, and eddy.drop becomes the map of
// the others (a reused table); it still equals its Lua function.
func TestDropOfParsedFieldsEqualsLua(t *testing.T) {
	const parse = `parse = eddy.json { x = "any?", y = "any?" }`
	samePair(t, `return { `+parse+`, map = eddy.drop{ "y" } }`,
		`return { `+parse+`, map = function(r) return { x = r.x } end }`)
	p, err := LoadSource("drop.lua", []byte(`return { `+parse+`, map = eddy.drop{ "y" } }`))
	if err != nil {
		t.Fatal(err)
	}
	if m := p.steps.mapping; m.drop != nil || len(m.outs) != 1 || m.outs[0].name != "x" {
		t.Errorf("eddy.drop{ \"y\" } of x, y compiled to %+v, want the map of x", m)
	}
}

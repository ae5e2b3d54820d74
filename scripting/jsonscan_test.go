package scripting

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	lua "github.com/yuin/gopher-lua"
)

// The JSON scan decodes every record to the same fields, or fails it with
// the same error, as the fastjson tree it replaces: over hand-made edge
// cases and random mutations of them (bytes dropped, doubled, swapped for
// JSON's own punctuation), both paths agree line by line.
func TestJSONScanAgreesWithTree(t *testing.T) {
	_, rt := loadRuntime(t, "scan.lua", `return { parse = eddy.json {
		dev = "string", port = "string|number", n = "integer?", ok = "boolean?", x = "any?", t = "table?" } }`)
	lines := mutatedJSON()
	scanned := 0
	for _, line := range lines {
		got := decodeString(rt.parseJSON([]byte(line)))
		if scanJSON([]byte(line), rt.names, make([]jsonSpan, len(rt.names))) {
			scanned++
		}
		want := decodeString(rt.parseJSONTree([]byte(line)))
		if got != want {
			t.Fatalf("line %q: the scan gives %s, the tree %s", line, got, want)
		}
	}
	if scanned < len(lines)/10 {
		t.Fatalf("the scan took only %d of %d lines: the test compares too little", scanned, len(lines))
	}
}

// A scan that checks keys against the shape of the records before gives
// what a scan without one gives: each mutated line scanned right after
// the line it was mutated from (whose keys it mostly repeats, or nearly),
// and after the line before it.
func TestJSONScanShapeAgrees(t *testing.T) {
	names := []string{"dev", "port", "n", "ok", "x", "t", "a_longer_key_name", "eight_ch"}
	seeds := mutatedSeeds()
	seeds = append(seeds,
		`{"a_longer_key_name":"v","eight_ch":1,"dev":"a","port":"80"}`,
		`{"a_longer_key_nbme":"v","eight_cH":1,"dev":"a","port":"80"}`,
		`{"eight_ch":1,"a_longer_key_name":"v","dev":"a","port":"80"}`,
		"{\"d\xe9v\":\"a\",\"dev\":\"b\",\"port\":\"80\"}",
		`{"dev":"a","dev":"b","port":"80","port":"81"}`,
		`{"de":"a","dev":"b","port":"80"}`,
		`{"devx":"a","dev":"b","port":"80"}`,
		`{"dev" :"a","port":"80"}`,
	)
	var shape jsonShape
	withShape, without := make([]jsonSpan, len(names)), make([]jsonSpan, len(names))
	lines, hits := mutate(seeds, 20000), 0
	for i, line := range lines {
		for _, before := range []string{seeds[i%len(seeds)], lines[max(i-1, 0)]} {
			scanJSONText([]byte(before), names, withShape, &shape)
			keys := len(shape.keys)
			gotOK, gotPlain := scanJSONText([]byte(line), names, withShape, &shape)
			wantOK, wantPlain := scanJSONText([]byte(line), names, without, nil)
			got, want := fmt.Sprint(gotOK, gotPlain, spansString(withShape)), fmt.Sprint(wantOK, wantPlain, spansString(without))
			if got != want {
				t.Fatalf("line %q after %q: with the shape %s, without %s", line, before, got, want)
			}
			if keys > 0 {
				hits++
			}
		}
	}
	if hits < len(lines) {
		t.Fatalf("a shape was there for only %d of %d scans: the test compares too little", hits, 2*len(lines))
	}
}

func spansString(spans []jsonSpan) string {
	var sb strings.Builder
	for _, sp := range spans {
		fmt.Fprintf(&sb, "%d:%q ", sp.kind, sp.raw)
	}
	return sb.String()
}

// decodeString writes a decoded record (or its error) in one comparable
// line.
func decodeString(t *lua.LTable, err error) string {
	if err != nil {
		return "error " + err.Error()
	}
	if t == nil {
		return "nil"
	}
	var sb strings.Builder
	for _, k := range []string{"dev", "port", "n", "ok", "x", "t"} {
		v := t.RawGetString(k)
		fmt.Fprintf(&sb, "%s=%s:%s ", k, v.Type(), luaString(v))
	}
	return sb.String()
}

func luaString(v lua.LValue) string {
	tb, ok := v.(*lua.LTable)
	if !ok {
		return v.String()
	}
	var sb strings.Builder
	sb.WriteByte('{')
	tb.ForEach(func(k, v lua.LValue) { fmt.Fprintf(&sb, "%s=%s,", k, luaString(v)) })
	sb.WriteByte('}')
	return sb.String()
}

// mutatedJSON is hand-made edge cases of JSON records and random
// mutations of them (bytes dropped, doubled, swapped for JSON's own
// punctuation).
func mutatedJSON() []string {
	return mutate(mutatedSeeds(), 20000)
}

// mutatedSeeds is mutatedJSON's hand-made edge cases.
func mutatedSeeds() []string {
	return []string{
		`{"dev":"a","port":"80","n":4,"ts":"2024-05-01T10:00:00Z"}`,
		`{"dev":"a","port":"80","ts":1714557600.5}`,
		`{"dev":"a","port":"80","ts":"yesterday"}`,
		`{"dev":"a","port":"80","ts":true}`,
		`{"dev":"a","port":"80","ts":null}`,
		`{"dev":true,"port":"80","ts":"2024-05-01T10:00:00Z"}`,
		`{"dev":"Comp1","port":"80"}`,
		` { "dev" : "Comp1" , "port" : 443 , "n" : 3 } `,
		`{"port":80,"dev":"a","n":2.5}`,
		`{"dev":"a","port":1e3,"n":-0,"ok":true,"x":null}`,
		`{"dev":"a","port":"80","dev":"b"}`,
		`{"dev":"a\"b","port":"80"}`,
		`{"dev":"a\\","port":"80"}`,
		`{"d\u0065v":"a","port":"80"}`,
		`{"dev":"a","port":"80","other":{"k":[1,2,{"z":"\"}"}],"e":{}},"arr":[]}`,
		`{"dev":"a","port":"80","t":{"k":1},"x":[1,"2"]}`,
		`{"dev":"a","port":NaN}`,
		`{"dev":"a","port":-Inf}`,
		`{"dev":"a","port":"80","n":null}`,
		`{"dev":null,"port":"80"}`,
		`{"dev":"a","port":+1}`,
		`{"dev":"a","port":1.2.3}`,
		`{"dev":"a","port":"80","ok":false}`,
		`{"dev":"a","port":"80"} x`,
		`{"dev":"a","port":"80",}`,
		`{"dev":"a" "port":"80"}`,
		`{"dev":"a","port":"8`,
		`[1,2,3]`,
		`"str"`,
		``,
		`{}`,
		`{"dev":tru,"port":"80"}`,
		`{"dev":"a","port":"80","z":[1,,2]}`,
		"{\"dev\":\"a\xffb\",\"port\":\"80\"}",
		"{\"dev\":\"a\",\"port\":\"80\",\"o\":\"\x01\"}",
		`{"dev":"a","port":"80","deep":` + strings.Repeat("[", 70) + strings.Repeat("]", 70) + `}`,
	}
}

// mutate is seeds and n random mutations of them (bytes dropped, doubled,
// swapped for JSON's own punctuation).
func mutate(seeds []string, n int) []string {
	punct := []byte(`{}[]:,"\ 0e-.tnu`)
	rnd := rand.New(rand.NewPCG(1, 2))
	lines := append([]string(nil), seeds...)
	for range n {
		b := []byte(seeds[rnd.IntN(len(seeds))])
		for range 1 + rnd.IntN(3) {
			if len(b) == 0 {
				break
			}
			i := rnd.IntN(len(b))
			switch rnd.IntN(3) {
			case 0:
				b = append(b[:i:i], b[i+1:]...)
			case 1:
				b = append(b[:i+1:i+1], b[i:]...)
			default:
				b[i] = punct[rnd.IntN(len(punct))]
			}
		}
		lines = append(lines, string(b))
	}
	return lines
}

// The direct path keys a record exactly as the table path does, or fails
// it with the same error, line by line over mutatedJSON: plain, event-time
// and multi-column keys, every built-in aggregate's argument.
func TestDirectAgreesWithTable(t *testing.T) {
	for _, src := range []string{
		`return { parse = eddy.json { dev = "string|boolean", port = "string|number", n = "integer?" }, key = "dev",
			aggregate = { c = eddy.count(), s = eddy.sum("n"), m = eddy.max("port"), t = eddy.top(2, "dev", "n") } }`,
		`return { parse = eddy.json { dev = "any", port = "any", ts = "any?", n = "number?" }, key = { "dev", "port" },
			event_time = "ts", window = eddy.tumbling("1m"), aggregate = { a = eddy.avg("n"), d = eddy.count_distinct("port") } }`,
	} {
		direct, err := LoadSource("d.lua", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		table, err := LoadSource("d.lua", []byte(src))
		if err != nil {
			t.Fatal(err)
		}
		if !direct.direct {
			t.Fatalf("%s: not on the direct path", src)
		}
		table.direct = false
		drt, err := direct.NewRuntime(false)
		if err != nil {
			t.Fatal(err)
		}
		defer drt.Close()
		trt, err := table.NewRuntime(false)
		if err != nil {
			t.Fatal(err)
		}
		defer trt.Close()
		kept := 0
		for _, line := range mutatedJSON() {
			dk, _, dok, derr := drt.ProcessAt([]byte(line), 1)
			tk, _, tok, terr := trt.ProcessAt([]byte(line), 1)
			got := fmt.Sprintf("%v %q %#v %d %v", dok, dk.Key, keyedVals(drt, dk), dk.Time, derr)
			want := fmt.Sprintf("%v %q %#v %d %v", tok, tk.Key, keyedVals(trt, tk), tk.Time, terr)
			if got != want {
				t.Fatalf("%s\nline %q: the direct path gives\n%s\nthe table path\n%s", src, line, got, want)
			}
			if dok {
				kept++
			}
		}
		t.Logf("%d records kept", kept)
		if kept < 50 {
			t.Fatalf("only %d records kept: the test compares too little", kept)
		}
	}
}

// A field's kinds take a scanned value when one of its types does, as
// spanTypeOK (below) reads the types one by one.
func TestSpanKindsAsTypes(t *testing.T) {
	types := []string{"any", "string", "number", "integer", "boolean", "table"}
	spans := []jsonSpan{{kind: jsonNull}, {kind: jsonTrue}, {kind: jsonFalse}, {kind: jsonString, raw: []byte("7")},
		{kind: jsonNumber, raw: []byte("7")}, {kind: jsonNumber, raw: []byte("7.5")}, {kind: jsonNumber, raw: []byte("-1e3")}}
	for set := 1; set < 1<<len(types); set++ {
		var ts []string
		for i, ty := range types {
			if set&(1<<i) != 0 {
				ts = append(ts, ty)
			}
		}
		k := kindsOf(ts)
		for _, sp := range spans {
			if got, want := k.ok(&sp), spanTypeOK(&sp, ts); got != want {
				t.Errorf("types %v, %s %q: kinds say %v, the types %v", ts, spanTypeName(sp.kind), sp.raw, got, want)
			}
		}
	}
}

// spanTypeOK is typeOK for a scanned value, a type at a time.
func spanTypeOK(sp *jsonSpan, types []string) bool {
	for _, t := range types {
		switch t {
		case "any":
			return true
		case "string":
			if sp.kind == jsonString {
				return true
			}
		case "number":
			if sp.kind == jsonNumber {
				return true
			}
		case "integer":
			if sp.kind == jsonNumber {
				if f := parseNumber(sp.raw); f == float64(int64(f)) {
					return true
				}
			}
		case "boolean":
			if sp.kind == jsonTrue || sp.kind == jsonFalse {
				return true
			}
		}
	}
	return false
}

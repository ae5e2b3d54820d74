package connectors

import (
	"encoding/json"
	"math"
	"strings"
	"testing"
	"time"
)

func TestAppendValue(t *testing.T) {
	tests := []struct {
		name string
		v    any
		want string
	}{
		{"nil", nil, `null`},
		{"true", true, `true`},
		{"false", false, `false`},
		{"int64", int64(-42), `-42`},
		{"int64 max", int64(math.MaxInt64), `9223372036854775807`},
		{"int64 min", int64(math.MinInt64), `-9223372036854775808`},
		{"int", 7, `7`},
		{"int32", int32(-7), `-7`},
		{"uint64", uint64(math.MaxUint64), `18446744073709551615`},
		{"float integral", 14199.0, `14199`},
		{"float zero", 0.0, `0`},
		{"float negative zero", math.Copysign(0, -1), `0`},
		{"float negative integral", -3.0, `-3`},
		{"float fraction", 1.5, `1.5`},
		{"float shortest", 0.1, `0.1`},
		{"float third", 1.0 / 3, `0.3333333333333333`},
		{"float tiny", 1e-7, `1e-07`},
		{"float 2^53", 9007199254740992.0, `9007199254740992`},
		{"float -2^63 in range", -9223372036854775808.0, `-9223372036854775808`},
		{"float 2^63 out of range", 9223372036854775808.0, `9.223372036854776e+18`},
		{"float huge", 1e300, `1e+300`},
		{"float32", float32(2.5), `2.5`},
		{"float32 integral", float32(3), `3`},
		{"NaN", math.NaN(), `null`},
		{"+Inf", math.Inf(1), `null`},
		{"-Inf", math.Inf(-1), `null`},
		{"string", "hello", `"hello"`},
		{"empty string", "", `""`},
		{"quote and backslash", `a"b\c`, `"a\"b\\c"`},
		{"newline tab cr", "a\nb\tc\rd", `"a\nb\tc\rd"`},
		{"backspace formfeed", "\b\f", `"\b\f"`},
		{"control chars", "\x00\x01\x1f", `"\u0000\u0001\u001f"`},
		{"DEL is raw", "\x7f", "\"\x7f\""},
		{"html stays", "<a&b>", `"<a&b>"`},
		{"unicode", "héllo → 世界", `"héllo → 世界"`},
		{"emoji", "🙂", `"🙂"`},
		{"invalid utf8", "a\xffb", `"a\ufffdb"`},
		{"truncated utf8", "a\xe2\x86", `"a\ufffd\ufffd"`},
		{"line separators", "a\u2028b\u2029c", `"a\u2028b\u2029c"`},
		{"slice", []any{int64(1), "x", nil, true, 2.5}, `[1,"x",null,true,2.5]`},
		{"empty slice", []any{}, `[]`},
		{"nested slice", []any{[]any{int64(1)}, []any{}}, `[[1],[]]`},
		{"string slice", []string{"a", "b"}, `["a","b"]`},
		{"map sorted", map[string]any{"b": int64(2), "a": "x", "c": nil}, `{"a":"x","b":2,"c":null}`},
		{"empty map", map[string]any{}, `{}`},
		{"nil map", map[string]any(nil), `null`},
		{"big map sorted", bigMap(20), bigMapWant(20)},
		{"map key escaped", map[string]any{"a\"b": int64(1)}, `{"a\"b":1}`},
		{"row nested", Row{Fields: []Field{{"z", int64(1)}, {"a", "b"}}}, `{"z":1,"a":"b"}`},
		{"row pointer", &Row{Fields: []Field{{"x", 1.0}}}, `{"x":1}`},
		{"nil row pointer", (*Row)(nil), `null`},
		{"map in slice in row", Row{Fields: []Field{{"l", []any{map[string]any{"k": 1.25}}}}}, `{"l":[{"k":1.25}]}`},
		{"time", time.Date(2026, 11, 25, 8, 0, 0, 5, time.UTC), `"2026-11-25T08:00:00.000000005Z"`},
		{"raw message", json.RawMessage(`{"a":1}`), `{"a":1}`},
		{"bytes as string", []byte("ab"), `"ab"`},
		{"fallback struct", struct{ A int }{3}, `{"A":3}`},
		{"fallback unencodable", make(chan int), ``},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(AppendValue(nil, tt.v))
			if tt.name == "fallback unencodable" {
				if !strings.HasPrefix(got, `"0x`) {
					t.Fatalf("got %s, want a quoted pointer", got)
				}
				return
			}
			if got != tt.want {
				t.Fatalf("got  %s\nwant %s", got, tt.want)
			}
			if !json.Valid([]byte(got)) {
				t.Fatalf("%s is not valid JSON", got)
			}
		})
	}
}

func bigMap(n int) map[string]any {
	m := map[string]any{}
	for i := range n {
		m[string(rune('a'+i))] = int64(i)
	}
	return m
}

func bigMapWant(n int) string {
	var b strings.Builder
	b.WriteByte('{')
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`"` + string(rune('a'+i)) + `":` + itoa(int64(i)))
	}
	b.WriteByte('}')
	return b.String()
}

func TestAppendJSON(t *testing.T) {
	tests := []struct {
		name string
		row  Row
		want string
	}{
		{"empty", Row{}, `{}`},
		{"order kept", Row{Fields: []Field{{"dstdevice", "Comp576843"}, {"count", 14199.0}}}, `{"dstdevice":"Comp576843","count":14199}`},
		{"key not written", Row{Key: "k", Fields: []Field{{"a", int64(1)}}}, `{"a":1}`},
		{"escaped name", Row{Fields: []Field{{"a\nb", false}}}, `{"a\nb":false}`},
		{"appends", Row{Fields: []Field{{"x", nil}}}, `{"x":null}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := string(AppendJSON([]byte("prefix "), tt.row))
			if got != "prefix "+tt.want {
				t.Fatalf("got  %s\nwant prefix %s", got, tt.want)
			}
		})
	}
}

// TestAppendStringMatchesEncodingJSON checks every single byte and a few
// multi-byte sequences decode back to what encoding/json makes of them.
func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for c := range 256 {
		s := "x" + string([]byte{byte(c)}) + "y"
		got := AppendValue(nil, s)
		var back string
		if err := json.Unmarshal(got, &back); err != nil {
			t.Fatalf("byte %#x: %s does not decode: %v", c, got, err)
		}
		want, _ := json.Marshal(s)
		var wantBack string
		_ = json.Unmarshal(want, &wantBack)
		if back != wantBack {
			t.Fatalf("byte %#x: decodes to %q, encoding/json gives %q", c, back, wantBack)
		}
	}
}

func TestAppendJSONAllocs(t *testing.T) {
	row := benchRow()
	buf := make([]byte, 0, 4096)
	n := testing.AllocsPerRun(100, func() { buf = AppendJSON(buf[:0], row) })
	if n != 0 {
		t.Fatalf("AppendJSON allocates %v times per row, want 0", n)
	}
}

func benchRow() Row {
	return Row{Key: "EnterpriseAppServer", Fields: []Field{
		{"dstdevice", "EnterpriseAppServer"},
		{"count", 14199.0},
		{"ratio", 0.125},
		{"port", int64(443)},
		{"ok", true},
		{"note", "tab\there \"quoted\" → ü"},
		{"tags", []any{"web", "tls"}},
		{"meta", map[string]any{"b": int64(2), "a": "x"}},
	}}
}

func BenchmarkAppendJSON(b *testing.B) {
	row := benchRow()
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendJSON(buf[:0], row)
	}
	b.SetBytes(int64(len(buf)))
}

// BenchmarkEncodingJSON is the plain-Go baseline: the same row as a
// map through encoding/json (which loses the field order).
func BenchmarkEncodingJSON(b *testing.B) {
	row := benchRow()
	m := map[string]any{}
	for _, f := range row.Fields {
		m[f.Name] = f.Value
	}
	b.ReportAllocs()
	var n int
	for b.Loop() {
		out, _ := json.Marshal(m)
		n = len(out)
	}
	b.SetBytes(int64(n))
}

package scripting

import (
	"math/rand/v2"
	"strings"
	"testing"
)

// A key or aggregate on a field the parser never passes on is refused at
// load (issue 12: eddy.sum("nosuch") printed 0 for every row); where a Lua
// function could add the field, the pipeline loads.
func TestLoadRefusesUnparsedFields(t *testing.T) {
	tests := []struct{ name, src, errContains string }{
		{"sum of a field json does not project",
			`return { parse = eddy.json { dev = "string", bytes = "number" }, key = "dev", aggregate = { b = eddy.sum("nosuch") } }`,
			`aggregate.b: field "nosuch" is not one eddy.json passes on (it parses bytes, dev)`},
		{"top by a field csv does not have",
			`return { parse = eddy.csv { fields = { "dev", "n" } }, key = "dev", aggregate = { t = eddy.top(3, "n", "nope") } }`,
			`aggregate.t: field "nope" is not one eddy.csv passes on (it parses dev, n)`},
		{"key field json does not project",
			`return { parse = eddy.json { "a" }, key = { "a", "b" }, aggregate = { n = eddy.count() } }`,
			`key: field "b" is not one eddy.json passes on (it parses a)`},
		{"unknown eddy.json option",
			`return { parse = eddy.json({ a = "string" }, { invalid_utf = "keep" }) }`,
			"eddy.json: unknown option invalid_utf (known: invalid_utf8)"},
		{"bad invalid_utf8",
			`return { parse = eddy.json({ a = "string" }, { invalid_utf8 = "fix" }) }`,
			`eddy.json: invalid_utf8 = "fix": want "reject"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := LoadSource("bad.lua", []byte(tc.src))
			if err == nil || !strings.Contains(err.Error(), tc.errContains) {
				t.Fatalf("error %v, want it to contain %q", err, tc.errContains)
			}
		})
	}
	for _, ok := range []string{
		// A Lua parse makes whatever fields it likes.
		`return { parse = function(l) return { x = 1 } end, key = "k", aggregate = { s = eddy.sum("x") } }`,
		// eddy.lines' table is the script's to extend in filter.
		`return { parse = eddy.lines(), filter = function(r) r.n = #r.line return true end, key = "line", aggregate = { s = eddy.sum("n") } }`,
		// A key function reads what it likes.
		`return { parse = eddy.json { v = "number" }, key = function(r) return "all" end, aggregate = { s = eddy.sum("v") } }`,
	} {
		if _, err := LoadSource("ok.lua", []byte(ok)); err != nil {
			t.Errorf("%s: %v", ok, err)
		}
	}
}

// Invalid UTF-8 and raw control bytes inside JSON strings make the record
// a dead letter naming the byte offset (issue 12: they were counted as
// good records), unless eddy.json's invalid_utf8 = "keep" lets them in.
func TestJSONInvalidStrings(t *testing.T) {
	tests := []struct{ name, line, errContains string }{
		{"invalid UTF-8", "{\"dev\":\"ab\xffcd\",\"n\":1}", "parse: invalid UTF-8 (byte 0xff) at byte 10, inside a JSON string"},
		{"truncated UTF-8", "{\"dev\":\"\xc3\",\"n\":1}", "invalid UTF-8 (byte 0xc3) at byte 8"},
		{"raw NUL", "{\"dev\":\"a\x00b\",\"n\":1}", "parse: a raw control byte 0x00 at byte 9"},
		{"raw tab", "{\"dev\":\"a\tb\",\"n\":1}", "a raw control byte 0x09 at byte 9"},
		{"in a field not projected", "{\"dev\":\"a\",\"n\":1,\"x\":\"\xfe\"}", "invalid UTF-8 (byte 0xfe) at byte 22"},
		{"escaped is fine", `{"dev":"a\u0000\t\"é","n":1}`, ""},
		{"tab between tokens is fine", "{\"dev\":\t\"é\",\"n\":1}", ""},
	}
	for _, keep := range []bool{false, true} {
		opts := ""
		if keep {
			opts = `, { invalid_utf8 = "keep" }`
		}
		p, err := LoadSource("j.lua", []byte(`return { parse = eddy.json({ dev = "string", n = "number" }`+opts+`), key = "dev", aggregate = { n = eddy.sum("n") } }`))
		if err != nil {
			t.Fatal(err)
		}
		rt, err := p.NewRuntime(false)
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range tests {
			_, _, kept, err := rt.Process([]byte(tc.line))
			if tc.errContains == "" || keep {
				if err != nil || !kept {
					t.Errorf("keep=%v %s: kept %v, %v", keep, tc.name, kept, err)
				}
				continue
			}
			if err == nil || !strings.Contains(err.Error(), tc.errContains) {
				t.Errorf("%s: error %v, want it to contain %q", tc.name, err, tc.errContains)
			}
		}
		rt.Close()
	}
}

// printableASCII, eight bytes at a time, agrees with a byte by byte look
// at every length and at every position of a byte out of its range.
func TestPrintableASCII(t *testing.T) {
	byByte := func(b []byte) bool {
		for _, c := range b {
			if c < 0x20 || c >= 0x80 {
				return false
			}
		}
		return true
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for n := 0; n < 40; n++ {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(0x20 + rng.IntN(0x60))
		}
		if !printableASCII(b) {
			t.Fatalf("%q: printable ASCII refused", b)
		}
		for i := range b {
			for _, c := range []byte{0x00, 0x09, 0x1f, 0x80, 0xc3, 0xff} {
				was := b[i]
				b[i] = c
				if got, want := printableASCII(b), byByte(b); got != want {
					t.Fatalf("%q (0x%02x at %d): got %v, want %v", b, c, i, got, want)
				}
				b[i] = was
			}
		}
	}
}

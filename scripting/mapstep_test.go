package scripting

import (
	"strings"
	"testing"
)

// A reload may change the map, the declarative filter and having freely,
// except where the map changes a field the state is built from (a key
// column, an aggregate's field, the event-time field).
func TestCheckReloadOfSteps(t *testing.T) {
	const base = `return {
		parse = eddy.json { dev = "string", port = "integer", bytes = "integer" },
		filter = eddy.eq("port", 80),
		map = eddy.map { "dev", kb = eddy.div("bytes", 1000), port = "port" },
		key = "dev",
		aggregate = { kb = eddy.sum("kb") },
		having = eddy.gt("kb", 1),
	}`
	tests := []struct {
		name, from, to, errContains string
	}{
		{"the filter changes", `eddy.eq("port", 80)`, `eddy.is_in("port", { 80, 443 })`, ""},
		{"having changes", `eddy.gt("kb", 1)`, `function(row) return row.kb > 2 end`, ""},
		{"a field nothing keeps changes", `port = "port"`, `port = eddy.add("port", 1)`, ""},
		{"a field added", `port = "port"`, `port = "port", p2 = "port"`, ""},
		{"the map goes, the key field stays the parsed one", `map = eddy.map { "dev", kb = eddy.div("bytes", 1000), port = "port" },`,
			`map = eddy.map { "dev", kb = eddy.div("bytes", 1000) },`, ""},
		{"an aggregated field's expression", `eddy.div("bytes", 1000)`, `eddy.div("bytes", 1024)`,
			`the map's field "kb", which the state is built from, changed from div("bytes", 1000) to div("bytes", 1024)`},
		{"the key field renamed from another", `"dev", kb`, `dev = "port", kb`,
			`the map's field "dev", which the state is built from, changed from the parsed field to "port"`},
		{"a map function instead", `map = eddy.map { "dev", kb = eddy.div("bytes", 1000), port = "port" }`,
			`map = function(r) return { dev = r.dev, kb = r.bytes / 1000 } end`, `changed from the parsed field to a Lua function's`},
	}
	old, err := LoadSource("flows.lua", []byte(base))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := strings.Replace(base, tc.from, tc.to, 1)
			if src == base {
				t.Fatalf("the test changes nothing: %q is not in the script", tc.from)
			}
			next, err := LoadSource("flows.lua", []byte(src))
			if err != nil {
				t.Fatal(err)
			}
			err = CheckReload(old, next)
			switch {
			case tc.errContains == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.errContains != "" && (err == nil || !strings.Contains(err.Error(), tc.errContains)):
				t.Fatalf("error %v, want it to contain %q", err, tc.errContains)
			}
		})
	}
}

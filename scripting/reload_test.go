package scripting

import (
	"strings"
	"testing"
)

func TestCheckReload(t *testing.T) {
	const base = `return {
		name = "flows",
		parse = eddy.json { dev = "string", port = "integer", bytes = "integer" },
		filter = function(r) return r.port == 80 end,
		key = "dev",
		aggregate = { count = eddy.count(), bytes = eddy.sum("bytes") },
	}`
	tests := []struct {
		name, from, to, errContains string
	}{
		{"the filter changes", `r.port == 80`, `r.port == 443 or r.port == 8080`, ""},
		{"the parse changes", `port = "integer"`, `port = "integer", extra = "string?"`, ""},
		{"an aggregate's function", `count = eddy.count()`, `count = eddy.sum("bytes")`, `aggregate "count" changed from count() to sum("bytes")`},
		{"an aggregate's field", `bytes = eddy.sum("bytes")`, `bytes = eddy.sum("port")`, `aggregate "bytes" changed from sum("bytes") to sum("port")`},
		{"an aggregate added", `bytes = eddy.sum("bytes")`, `bytes = eddy.sum("bytes"), top = eddy.top(3, "port")`, "the aggregates changed from (bytes, count) to (bytes, count, top)"},
		{"the key", `key = "dev"`, `key = { "dev", "port" }`, "the key columns changed from (dev) to (dev, port)"},
		{"the name", `name = "flows"`, `name = "flows2"`, `the pipeline's name changed from "flows" to "flows2"`},
		{"a window", `key = "dev",`, `key = "dev", event_time = "t", window = eddy.tumbling("1m"),`, "changed from none to"},
		{"the sinks", `key = "dev",`, `key = "dev", sinks = { results = "file:/tmp/x.jsonl" },`, "the sinks changed from {} to {results=file:/tmp/x.jsonl}"},
		{"the emit mode", `key = "dev",`, `key = "dev", emit = "complete",`, "the emit mode changed from update to complete"},
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
			if next.Hash == old.Hash {
				t.Fatalf("two sources have the same hash %s", old.Hash)
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

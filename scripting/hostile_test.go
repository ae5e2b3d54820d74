package scripting

import (
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

// TestHostileScripts runs every script of testdata/hostile: its record
// "bomb" must fail with the limit named, within a bound, the runtime must
// take the next record, and the process heap must stay bounded through
// all of them.
func TestHostileScripts(t *testing.T) {
	const (
		memLimit = 16 << 20
		// timeLimit is the limit of the cases that test it; the others get
		// a generous one, so on a slow machine (or under -race) their
		// memory limit is still what stops them.
		timeLimit  = time.Second
		otherLimit = 30 * time.Second
		// heapBound is how far the heap may grow over the whole corpus: a
		// few times the limit for what a bomb built before it was caught.
		heapBound = 512 << 20
	)
	tests := []struct {
		file, errContains string
	}{
		{"concat_doubling", "concat_doubling.lua:6: memory limit of 16 MiB exceeded (string concat of 16 MiB while the state holds 8.0 MiB)"},
		{"format_doubling", "format_doubling.lua:6: memory limit of 16 MiB exceeded (string.format of 16.0 MiB while the state holds 8.0 MiB)"},
		{"format_width", "format_width.lua:5: memory limit of 16 MiB exceeded (string.format of 953.7 MiB)"},
		{"gsub_big_replacement", "gsub_big_replacement.lua:6: memory limit of 16 MiB exceeded (string.gsub result of "},
		{"gsub_callback", "gsub_callback.lua:5: memory limit of 16 MiB exceeded (string"},
		{"table_growth", "memory limit of 16 MiB exceeded (tables and strings of"},
		{"global_growth", "memory limit of 16 MiB exceeded (tables and strings of"},
		{"string_char_many", "string_char_many.lua:8: unpack: 200000 results is over the limit of 8000 values a call may return"},
		{"time_parse_huge", "time_parse_huge.lua:5: bad argument #1 to parse (time.parse: a text of 6000000 bytes is longer than any time or layout (at most 256))"},
		{"time_format_layout", "time_format_layout.lua:5: bad argument #2 to format (time.format: a text of 4000000 bytes is longer than any time or layout (at most 256))"},
		{"pattern_find", "pattern_find.lua: call stopped after the 1s time limit at pattern_find.lua:5"},
		{"pattern_match", "pattern_match.lua: call stopped after the 1s time limit at pattern_match.lua:5"},
		{"pattern_gmatch", "pattern_gmatch.lua: call stopped after the 1s time limit at pattern_gmatch.lua:5"},
		{"pattern_gsub", "pattern_gsub.lua: call stopped after the 1s time limit at pattern_gsub.lua:5"},
		{"unpack_huge", "unpack_huge.lua:5: unpack: 100000000 results is over the limit of 8000 values a call may return"},
		{"endless_loop", "endless_loop.lua: call stopped after the 1s time limit at endless_loop.lua:5"},
		{"deep_recursion", "stack overflow"},
		{"index_loop", "stack overflow"},
		{"index_table_loop", "index_table_loop.lua:8: too many recursions in gettable"},
		{"json_nested", "json_nested.lua:5: json.decode: cannot parse JSON: too big depth for the nested JSON; it exceeds 300"},
		{"json_encode_huge", "json_encode_huge.lua:7: memory limit of 16 MiB exceeded (json.encode of"},
		{"json_huge", "json_huge.lua:5: memory limit of 16 MiB exceeded (json.decode of 679.0 MiB while the state holds 7.7 MiB)"},
		{"pcall_swallow", "pcall_swallow.lua:7: memory limit of 16 MiB exceeded (string concat of 16 MiB while the state holds 8.0 MiB)"},
		{"pcall_timeout", "pcall_timeout.lua: call stopped after the 1s time limit at pcall_timeout.lua:5"},
		{"error_huge", "error_huge.lua:5: xxxxxxxx"},
		{"loadstring_concat", `<string>:1: memory limit of 16 MiB exceeded (string concat of 16 MiB while the state holds 8.0 MiB)`},
		{"coroutines", "coroutines.lua:5: attempt to index a non-table object(nil) with key 'wrap'"},
		{"rep_huge", "rep_huge.lua:5: memory limit of 16 MiB exceeded (string.rep of 953.7 MiB)"},
		{"table_concat_huge", "table_concat_huge.lua:8: memory limit of 16 MiB exceeded (table.concat of 95.4 MiB)"},
		{"upper_kept", "upper_kept.lua:7: memory limit of 16 MiB exceeded (string.upper of 1.9 MiB"},
		{"byte_all", "byte_all.lua:5: string.byte: 10000000 results is over the limit of 8000 values a call may return"},
		{"concat_metamethod", "concat_metamethod.lua:6: memory limit of 16 MiB exceeded (string concat of 16 MiB while the state holds 8.0 MiB)"},
	}
	var before runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			limit := otherLimit
			if strings.Contains(tc.errContains, "time limit") {
				limit = timeLimit
			}
			p, err := Load(filepath.Join("testdata", "hostile", tc.file+".lua"), WithMemoryLimit(memLimit), WithCallTimeout(limit))
			if err != nil {
				t.Fatal(err)
			}
			rt, err := p.NewRuntime(true)
			if err != nil {
				t.Fatal(err)
			}
			defer rt.Close()
			start := time.Now()
			_, _, _, err = rt.Process([]byte("bomb"))
			if took := time.Since(start); took > limit+time.Minute {
				t.Errorf("the bomb took %v, a minute past its time limit", took)
			}
			if err == nil || !strings.Contains(err.Error(), tc.errContains) {
				t.Fatalf("error %v, want it to contain %q", shortError(errString(err)), tc.errContains)
			}
			if len(err.Error()) > 2*maxErrorBytes {
				t.Errorf("an error of %d bytes, over %d", len(err.Error()), 2*maxErrorBytes)
			}
			_, rec, kept, err := rt.Process([]byte("fine"))
			if v, _ := rec.Get("line"); err != nil || !kept || v != "fine" {
				t.Fatalf("the record after the bomb: kept=%v err=%v record %+v", kept, err, rec)
			}
			var now runtime.MemStats
			runtime.ReadMemStats(&now)
			if grew := int64(now.HeapSys) - int64(before.HeapSys); grew > heapBound {
				t.Fatalf("the heap grew by %s, over %s", sizeString(grew), sizeString(heapBound))
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return "<nil>"
	}
	return err.Error()
}

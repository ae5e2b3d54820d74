package scripting

import (
	"fmt"
	"testing"
)

// BenchmarkAdd folds readings into 10k windows' count, avg, min and max, as
// the windows benchmark's script does. Each op is one record.
func BenchmarkAdd(b *testing.B) {
	_, rt := loadRuntime(b, "add.lua", `return {
		parse = eddy.json { sensor = "string", temp = "number" },
		key = "sensor",
		aggregate = { n = eddy.count(), avg = eddy.avg("temp"), min = eddy.min("temp"), max = eddy.max("temp") },
	}`)
	windows := make([][]any, 10_000)
	for i := range windows {
		var err error
		if windows[i], err = rt.NewAccs(); err != nil {
			b.Fatal(err)
		}
	}
	args := make([][]any, 64)
	for i := range args {
		t := any(20 + float64(i)/8)
		args[i] = []any{nil, t, t, t}
	}
	i := 0
	for b.Loop() {
		if err := rt.Add(windows[i%len(windows)], args[i%len(args)]); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkCheckEntry checks a count_ids.lua entry as a lazy restore does
// for each key it keeps encoded; BenchmarkDecodeEntry decodes it, as an
// eager restore does. Each op is one entry.
func BenchmarkCheckEntry(b *testing.B)  { benchEntry(b, true) }
func BenchmarkDecodeEntry(b *testing.B) { benchEntry(b, false) }

func benchEntry(b *testing.B, check bool) {
	_, rt := loadRuntime(b, "count_ids.lua", `return {
		parse = eddy.json { id = "string" },
		key = "id",
		aggregate = { count = eddy.count() },
	}`)
	entry := []byte(`[["id-0001234567"],[1]]`)
	b.ReportAllocs()
	for b.Loop() {
		var err error
		if check {
			err = rt.CheckEntry(entry)
		} else {
			_, _, err = rt.DecodeEntry(entry)
		}
		if err != nil {
			b.Fatal(err)
		}
	}
}

// Keys' accumulators cut from entry blocks are each their own: folding
// records into one key leaves its neighbours in the block slab at zero,
// and a key's slots can't be appended into the next key's.
func TestEntryBlocksAreSeparate(t *testing.T) {
	p, rt := loadRuntime(t, "blocks.lua", `return {
		parse = eddy.json { sensor = "string", temp = "number" },
		key = "sensor",
		aggregate = { n = eddy.count(), avg = eddy.avg("temp"), lo = eddy.min("temp"), hi = eddy.max("temp"), total = eddy.sum("temp") },
	}`)
	if rt.blocks == nil {
		t.Fatal("built-in aggregates do not take entry blocks")
	}
	keys := make([][]any, 3*accSlabSize)
	for i := range keys {
		var err error
		if keys[i], err = rt.NewAccs(); err != nil {
			t.Fatal(err)
		}
		if len(keys[i]) != 5 || cap(keys[i]) != 5 {
			t.Fatalf("key %d: %d slots, capacity %d, want 5 and 5", i, len(keys[i]), cap(keys[i]))
		}
	}
	args := make([]any, 5)
	for i := range args {
		args[i] = 21.5
	}
	for i := 0; i < len(keys); i += 2 {
		for range i + 1 {
			if err := rt.Add(keys[i], args); err != nil {
				t.Fatal(err)
			}
		}
	}
	for i, accs := range keys {
		res, err := rt.Results(accs)
		if err != nil {
			t.Fatal(err)
		}
		var n int64 // records folded into key i
		if i%2 == 0 {
			n = int64(i + 1)
		}
		want := make([]any, len(p.Aggregates))
		for j, a := range p.Aggregates {
			switch {
			case a.Func == "count":
				want[j] = n
			case a.Func == "sum" && n == 0:
				want[j] = int64(0)
			case a.Func == "sum":
				want[j] = 21.5 * float64(n)
			case n > 0:
				want[j] = 21.5
			}
		}
		if got, want := fmt.Sprint(res), fmt.Sprint(want); got != want {
			t.Fatalf("key %d: results %s, want %s (in aggregate order %v)", i, got, want, p.Aggregates)
		}
	}
}

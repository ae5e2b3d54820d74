package scripting

import "testing"

// BenchmarkAdd folds readings into 10k windows' count, avg, min and max, as
// the windows benchmark's script does. Each op is one record.
func BenchmarkAdd(b *testing.B) {
	p, err := LoadSource("add.lua", []byte(`return {
		parse = eddy.json { sensor = "string", temp = "number" },
		key = "sensor",
		aggregate = { n = eddy.count(), avg = eddy.avg("temp"), min = eddy.min("temp"), max = eddy.max("temp") },
	}`))
	if err != nil {
		b.Fatal(err)
	}
	rt, err := p.NewRuntime(false)
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close()
	windows := make([][]any, 10_000)
	for i := range windows {
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
	p, err := LoadSource("count_ids.lua", []byte(`return {
		parse = eddy.json { id = "string" },
		key = "id",
		aggregate = { count = eddy.count() },
	}`))
	if err != nil {
		b.Fatal(err)
	}
	rt, err := p.NewRuntime(false)
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close()
	entry := []byte(`[["id-0001234567"],[1]]`)
	b.ReportAllocs()
	for b.Loop() {
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

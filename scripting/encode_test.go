package scripting

import "testing"

// TestCheckpointEncodingIsStable: the built-in accumulators' checkpoint
// bytes are the format older checkpoints hold (EncodeAccs writes them in
// place rather than through boxed values; the bytes must not change).
func TestCheckpointEncodingIsStable(t *testing.T) {
	src := `return {
		parse = eddy.json { k = "string", v = "number", s = "string", w = "number?", u = "number?" },
		key = "k",
		aggregate = { n = eddy.count(), total = eddy.sum("v"), whole = eddy.sum("w"), lo = eddy.min("v"), hi = eddy.max("s"),
			mean = eddy.avg("v"), none = eddy.min("u") },
	}`
	p, rt := loadRuntime(t, "enc.lua", src)
	accs, err := rt.NewAccs()
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{`{"k":"a","v":3,"s":"x","w":2}`, `{"k":"a","v":1.25,"s":"y"}`, `{"k":"a","v":-1e21,"s":"b"}`, `{"k":"a","v":0.1,"s":"x"}`} {
		k, _, _, err := rt.Process([]byte(l))
		if err != nil {
			t.Fatal(err)
		}
		if err := rt.Add(accs, k.Vals[len(p.KeyColumns):]); err != nil {
			t.Fatal(err)
		}
	}
	enc, err := rt.EncodeEntry(nil, []any{"a", int64(1700000000000), false}, accs)
	if err != nil {
		t.Fatal(err)
	}
	want := `[["a",1700000000000,false],[["y"],[-1e+21],[-1e+21,4],4,[],[-1e+21],2]]`
	if string(enc) != want {
		t.Errorf("encoded %s\n   want %s", enc, want)
	}
}

// TestWindowEntryEncoding: a window's entry is its key columns' values
// then start, end and fired, as EncodeEntry writes them.
func TestWindowEntryEncoding(t *testing.T) {
	_, rt := loadRuntime(t, "enc.lua", `return { parse = eddy.json { k = "string", v = "number" }, key = "k", aggregate = { n = eddy.count(), s = eddy.sum("v") } }`)
	accs, _ := rt.NewAccs()
	for _, kv := range [][]any{nil, {"a"}, {"a", int64(3)}} {
		want, err := rt.EncodeEntry(nil, append(append([]any(nil), kv...), int64(-60000), int64(0), true), accs)
		if err != nil {
			t.Fatal(err)
		}
		got, err := rt.EncodeWindowEntry(nil, kv, -60000, 0, true, accs)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("key %v: window entry %s, want %s", kv, got, want)
		}
	}
}

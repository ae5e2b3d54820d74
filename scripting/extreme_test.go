package scripting

import (
	"fmt"
	"testing"
)

// TestExtremesAcrossTypesAndCheckpoints: min and max of numbers given as
// float64 and int64 in turn, through a checkpoint's encoding and back,
// equal a plain reference that compares by value and keeps the earlier
// of equal values. (An accumulator holding a float64 compares with its
// copy of it, not with the value it holds: the copy must follow every
// change, whatever type set it.)
func TestExtremesAcrossTypesAndCheckpoints(t *testing.T) {
	p, rt := loadRuntime(t, "ext.lua", `return {
		parse = eddy.json { k = "string", v = "number" }, key = "k",
		aggregate = { lo = eddy.min("v"), hi = eddy.max("v") },
	}`)
	lo, hi := -1, -1
	for i, a := range p.Aggregates {
		switch a.Name {
		case "lo":
			lo = i
		case "hi":
			hi = i
		}
	}
	// (a float64 after an int64 that changed the value, and after the
	// restore, compares with the int64's value)
	before := []any{5.5, int64(7), 6.0, 3.25, int64(3), 3.1, 2.0, int64(2), 6.5}
	after := []any{6.5, int64(1), 1.5, 1.0}
	var wantLo, wantHi any
	num := func(v any) float64 {
		if i, ok := v.(int64); ok {
			return float64(i)
		}
		return v.(float64)
	}
	fold := func(accs []any, vals []any) {
		for _, v := range vals {
			args := make([]any, len(p.Aggregates))
			args[lo], args[hi] = v, v
			if err := rt.Add(accs, args); err != nil {
				t.Fatal(err)
			}
			if wantLo == nil || num(v) < num(wantLo) {
				wantLo = v
			}
			if wantHi == nil || num(v) > num(wantHi) {
				wantHi = v
			}
		}
	}
	check := func(when string, accs []any) {
		t.Helper()
		res, err := rt.Results(accs)
		if err != nil {
			t.Fatal(err)
		}
		// (by value: a checkpoint keeps 2.0 as 2)
		if got, want := fmt.Sprintf("%v, %v", num(res[lo]), num(res[hi])), fmt.Sprintf("%v, %v", num(wantLo), num(wantHi)); got != want {
			t.Errorf("%s: min, max = %s, want %s", when, got, want)
		}
	}
	accs, err := rt.NewAccs()
	if err != nil {
		t.Fatal(err)
	}
	fold(accs, before)
	check("before the checkpoint", accs)
	enc, err := rt.EncodeEntry(nil, []any{"a"}, accs)
	if err != nil {
		t.Fatal(err)
	}
	_, restored, err := rt.DecodeEntry(enc)
	if err != nil {
		t.Fatal(err)
	}
	check("restored", restored)
	fold(restored, after)
	check("after the checkpoint", restored)
}

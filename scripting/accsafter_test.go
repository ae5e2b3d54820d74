package scripting

import (
	"reflect"
	"testing"
	"unsafe"
)

// NewAccsAfter's head lies before the key's accumulators in one
// allocation, zero, and each key's accumulators are its own: what one
// key folds the next key's don't show.
func TestNewAccsAfter(t *testing.T) {
	p, rt := loadRuntime(t, "after.lua", `return {
		parse = eddy.json { sensor = "string", temp = "number" },
		key = "sensor",
		aggregate = { n = eddy.count(), avg = eddy.avg("temp"), lo = eddy.min("temp"), hi = eddy.max("temp"), total = eddy.sum("temp") },
	}`)
	type head struct {
		a, b int64
		s    string
	}
	var keys [3][]any
	for i := range keys {
		p, accs, ok := rt.NewAccsAfter(reflect.TypeFor[head]())
		if !ok {
			t.Fatal("built-in aggregates have no block")
		}
		if h := (*head)(p); *h != (head{}) {
			t.Fatalf("key %d: head %+v, want zero", i, *h)
		}
		if len(accs) != 5 || cap(accs) != 5 {
			t.Fatalf("key %d: %d slots, capacity %d, want 5 and 5", i, len(accs), cap(accs))
		}
		for j, acc := range accs {
			off := uintptr(reflect.ValueOf(acc).UnsafePointer()) - uintptr(p)
			if off < unsafe.Sizeof(head{}) || off > 512 {
				t.Fatalf("key %d: accumulator %d at %d bytes from the head, want after it in its allocation", i, j, off)
			}
		}
		keys[i] = accs
	}
	args := make([]any, len(p.Aggregates))
	empty, folded := make([]any, len(args)), make([]any, len(args)) // results of no record and of four
	for j, a := range p.Aggregates {
		switch a.Func {
		case "count":
			empty[j], folded[j] = int64(0), int64(4)
		case "sum":
			args[j], empty[j], folded[j] = 20.5, int64(0), 82.0
		default:
			args[j], folded[j] = 20.5, 20.5
		}
	}
	for range 4 {
		if err := rt.Add(keys[1], args); err != nil {
			t.Fatal(err)
		}
	}
	for i, accs := range keys {
		res, err := rt.Results(accs)
		if err != nil {
			t.Fatal(err)
		}
		want := empty
		if i == 1 {
			want = folded
		}
		if !reflect.DeepEqual(res, want) {
			t.Errorf("key %d: results %#v, want %#v", i, res, want)
		}
	}
	_, lua := loadRuntime(t, "after_lua.lua", `return {
		parse = eddy.json { sensor = "string" },
		key = "sensor",
		aggregate = { n = { init = function() return 0 end, add = function(a) return a + 1 end, merge = function(a, b) return a + b end, result = function(a) return a end } },
	}`)
	if _, _, ok := lua.NewAccsAfter(reflect.TypeFor[head]()); ok {
		t.Error("a Lua aggregate's accumulator in a block")
	}
}

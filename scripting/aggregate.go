package scripting

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/eddy-stream/eddy/connectors"

	"github.com/valyala/fastjson"
	lua "github.com/yuin/gopher-lua"
)

// Accumulators: a key's aggregate state is one value per aggregate column.
// Built-ins are Go values; a Lua aggregate's accumulator is a lua.LValue
// while it lives in the runtime that made it and a plain Go value (Portable)
// when it travels to another actor or into a checkpoint.

type countAcc struct{ n int64 }

type sumAcc struct {
	i     int64
	f     float64
	float bool // a non-integral value was added: the sum is f
}

type extremeAcc struct {
	v any
	// f is v when v is a float64 (fv), the usual case: a record's number
	// is compared with f, not with what v's box holds. The box is the
	// value of the record that set it, long out of cache (a miss a record
	// for each min and max). hold keeps the two together.
	f       float64
	set, fv bool
}

// hold makes v the accumulator's value.
func (e *extremeAcc) hold(v any) {
	e.v, e.set = v, true
	e.f, e.fv = v.(float64)
}

type avgAcc struct {
	sum float64
	n   int64
}

type distinctAcc struct{ seen map[string]struct{} }

type topEntry struct{ v, by any }

type topAcc struct{ items []topEntry }

// luaAcc is a Lua aggregate's accumulator inside its runtime.
type luaAcc struct{ v lua.LValue }

// goAcc is a Lua aggregate's accumulator as a plain Go value.
type goAcc struct{ v any }

// NewAccs returns fresh accumulators for one key.
func (rt *Runtime) NewAccs() ([]any, error) {
	if rt.blocks != nil {
		return rt.blocks.cut(), nil
	}
	accs := rt.accs.accSlots(len(rt.p.Aggregates))
	for i, a := range rt.p.Aggregates {
		switch a.Func {
		case "count":
			accs[i] = cut(&rt.accs.counts)
		case "sum":
			accs[i] = cut(&rt.accs.sums)
		case "min", "max":
			accs[i] = cut(&rt.accs.extremes)
		case "avg":
			accs[i] = cut(&rt.accs.avgs)
		case "count_distinct":
			accs[i] = &distinctAcc{seen: map[string]struct{}{}}
		case "top":
			accs[i] = &topAcc{}
		case "lua":
			if err := rt.call(rt.aggs[i].init, 1); err != nil {
				return nil, fmt.Errorf("aggregate %s: init: %w", a.Name, err)
			}
			accs[i] = &luaAcc{v: rt.sb.L.Get(-1)}
			rt.sb.L.Pop(1)
		}
	}
	return accs, nil
}

// Add folds one record's aggregate arguments (Keyed.Vals after the key
// columns) into accs. It is all or nothing: when any aggregate rejects the
// record (a value of the wrong type, a Lua error), accs are unchanged, so a
// record that goes to the dead letters is counted nowhere.
func (rt *Runtime) Add(accs []any, args []any) error {
	aggs := rt.p.Aggregates
	for i := range aggs {
		if err := check(&aggs[i], accs[i], args[i]); err != nil {
			return fmt.Errorf("aggregate %s: %w", aggs[i].Name, err)
		}
	}
	var luaNew []lua.LValue
	if rt.luaAggs {
		var err error
		if luaNew, err = rt.addLua(accs, args); err != nil {
			return err
		}
	}
	for i := range aggs {
		v := args[i]
		switch acc := accs[i].(type) {
		case *countAcc:
			acc.n++
		case *sumAcc:
			if v != nil {
				_ = acc.add(v)
			}
		case *extremeAcc:
			if v != nil {
				_ = acc.add(v, aggs[i].Func == "max")
			}
		case *avgAcc:
			if f, ok := toFloat(v); ok {
				acc.sum += f
				acc.n++
			}
		case *distinctAcc:
			if v != nil {
				acc.seen[string(connectors.AppendValue(nil, v))] = struct{}{}
			}
		case *topAcc:
			if e := topOf(&aggs[i], v); e.by != nil {
				acc.push(e, aggs[i].N)
			}
		case *luaAcc:
			acc.v = luaNew[i]
		case *goAcc:
			accs[i] = &luaAcc{v: luaNew[i]}
		}
	}
	return nil
}

// addLua runs the Lua aggregates' add functions and returns their new
// accumulators, by aggregate, leaving accs unchanged.
func (rt *Runtime) addLua(accs []any, args []any) ([]lua.LValue, error) {
	luaNew := make([]lua.LValue, len(accs))
	for i := range rt.p.Aggregates {
		if rt.p.Aggregates[i].Func != "lua" {
			continue
		}
		// A *goAcc (restored from a checkpoint, or merged) is added to
		// like a *luaAcc: skipping it would keep its old value.
		if err := rt.call(rt.aggs[i].add, 1, rt.luaValue(accs[i]), toLua(rt.sb.L, args[i])); err != nil {
			return nil, fmt.Errorf("aggregate %s: add: %w", rt.p.Aggregates[i].Name, err)
		}
		luaNew[i] = rt.sb.L.Get(-1)
		rt.sb.L.Pop(1)
	}
	return luaNew, nil
}

// check says whether v can be added to acc, without changing it.
func check(a *AggSpec, acc any, v any) error {
	if f, ok := v.(float64); ok && !math.IsNaN(f) && numeric(acc) {
		return nil // the usual case: a number to a numeric accumulator
	}
	switch acc := acc.(type) {
	case *sumAcc, *avgAcc:
		if _, ok := toFloat(v); !ok && v != nil {
			return fmt.Errorf("field %q is a %s, want a number", a.Field, goType(v))
		}
	case *extremeAcc:
		if v == nil {
			return nil
		}
		if _, num := toFloat(v); !num {
			if _, str := v.(string); !str {
				return fmt.Errorf("field %q is a %s, want a number or string", a.Field, goType(v))
			}
		}
		if acc.set {
			if _, ok := compare(v, acc.v); !ok {
				return fmt.Errorf("field %q is a %s, earlier values were a %s", a.Field, goType(v), goType(acc.v))
			}
		}
	case *topAcc:
		by := topOf(a, v).by
		if by == nil {
			return nil
		}
		if _, num := toFloat(by); !num {
			if _, str := by.(string); !str {
				return fmt.Errorf("ranking value is a %s, want a number or string", goType(by))
			}
		}
		for _, e := range acc.items {
			if _, ok := compare(by, e.by); !ok {
				return fmt.Errorf("ranking value is a %s, earlier ones were a %s", goType(by), goType(e.by))
			}
		}
	}
	return nil
}

// numeric reports whether any number can be added to acc: a count, sum or
// average, or a min or max that holds a number or nothing yet.
func numeric(acc any) bool {
	switch acc := acc.(type) {
	case *countAcc, *sumAcc, *avgAcc:
		return true
	case *extremeAcc:
		if !acc.set || acc.fv {
			return true
		}
		_, num := toFloat(acc.v)
		return num
	}
	return false
}

// topOf splits a top aggregate's argument into its value and ranking value.
func topOf(a *AggSpec, v any) topEntry {
	if a.By != "" {
		if pair, ok := v.([]any); ok && len(pair) == 2 {
			return topEntry{v: pair[0], by: pair[1]}
		}
	}
	return topEntry{v: v, by: v}
}

func (s *sumAcc) add(v any) error {
	switch x := v.(type) {
	case int64:
		if !s.float {
			s.i += x
			return nil
		}
		s.f += float64(x)
	case float64:
		if !s.float {
			s.float, s.f = true, float64(s.i)
		}
		s.f += x
	default:
		return fmt.Errorf("is a %s, want a number", goType(v))
	}
	return nil
}

func (e *extremeAcc) add(v any, max bool) error {
	if f, ok := v.(float64); ok && e.fv {
		// (as compare does: neither is NaN, which check refuses)
		if max && f > e.f || !max && f < e.f {
			e.v, e.f = v, f
		}
		return nil
	}
	if !e.set {
		e.hold(v)
		return nil
	}
	c, ok := compare(v, e.v)
	if !ok {
		return fmt.Errorf("is a %s, earlier values were a %s", goType(v), goType(e.v))
	}
	if (max && c > 0) || (!max && c < 0) {
		e.hold(v)
	}
	return nil
}

func (t *topAcc) push(e topEntry, n int) {
	t.items = append(t.items, e)
	sort.SliceStable(t.items, func(i, j int) bool { return topLess(t.items[i], t.items[j]) })
	if len(t.items) > n {
		t.items = t.items[:n]
	}
}

// topLess orders by the ranking value descending, then the value ascending,
// so ties resolve the same way on every run.
func topLess(a, b topEntry) bool {
	if c, _ := compare(a.by, b.by); c != 0 {
		return c > 0
	}
	c, _ := compare(a.v, b.v)
	return c < 0
}

// Merge folds src's accumulators into dst's (partial results of one key
// from different partitions). src is left unchanged.
func (rt *Runtime) Merge(dst, src []any) error {
	for i, a := range rt.p.Aggregates {
		switch d := dst[i].(type) {
		case *countAcc:
			d.n += src[i].(*countAcc).n
		case *sumAcc:
			s := src[i].(*sumAcc)
			if s.float {
				_ = d.add(s.f)
			} else {
				_ = d.add(s.i)
			}
		case *extremeAcc:
			if s := src[i].(*extremeAcc); s.set {
				if err := d.add(s.v, a.Func == "max"); err != nil {
					return fmt.Errorf("aggregate %s: merge: %w", a.Name, err)
				}
			}
		case *avgAcc:
			s := src[i].(*avgAcc)
			d.sum += s.sum
			d.n += s.n
		case *distinctAcc:
			for k := range src[i].(*distinctAcc).seen {
				d.seen[k] = struct{}{}
			}
		case *topAcc:
			for _, e := range src[i].(*topAcc).items {
				d.push(e, a.N)
			}
		default:
			x, y := rt.luaValue(dst[i]), rt.luaValue(src[i])
			if err := rt.call(rt.aggs[i].merge, 1, x, y); err != nil {
				return fmt.Errorf("aggregate %s: merge: %w", a.Name, err)
			}
			dst[i] = &luaAcc{v: rt.sb.L.Get(-1)}
			rt.sb.L.Pop(1)
		}
	}
	return nil
}

func (rt *Runtime) luaValue(acc any) lua.LValue {
	switch a := acc.(type) {
	case *luaAcc:
		return a.v
	case *goAcc:
		return toLua(rt.sb.L, a.v)
	}
	return lua.LNil
}

// Results computes the aggregate columns' values.
func (rt *Runtime) Results(accs []any) ([]any, error) {
	out := make([]any, len(accs))
	for i, a := range rt.p.Aggregates {
		switch acc := accs[i].(type) {
		case *countAcc:
			out[i] = acc.n
		case *sumAcc:
			if acc.float {
				out[i] = acc.f
			} else {
				out[i] = acc.i
			}
		case *extremeAcc:
			out[i] = acc.v
		case *avgAcc:
			if acc.n > 0 {
				out[i] = acc.sum / float64(acc.n)
			}
		case *distinctAcc:
			out[i] = int64(len(acc.seen))
		case *topAcc:
			list := make([]any, len(acc.items))
			for j, e := range acc.items {
				if a.By != "" {
					list[j] = map[string]any{a.Field: e.v, a.By: e.by}
				} else {
					list[j] = e.v
				}
			}
			out[i] = list
		default:
			if err := rt.call(rt.aggs[i].result, 1, rt.luaValue(acc)); err != nil {
				return nil, fmt.Errorf("aggregate %s: result: %w", a.Name, err)
			}
			v, err := toGo(rt.sb.L.Get(-1))
			rt.sb.L.Pop(1)
			if err != nil {
				return nil, fmt.Errorf("aggregate %s: result: %w", a.Name, err)
			}
			out[i] = v
		}
	}
	return out, nil
}

// Portable copies accs so another actor (with its own runtime) can use
// them: built-ins are deep-copied, Lua accumulators become Go values.
func (rt *Runtime) Portable(accs []any) ([]any, error) {
	out := rt.accs.accSlots(len(accs))
	for i, acc := range accs {
		switch a := acc.(type) {
		case *countAcc:
			c := cut(&rt.accs.counts)
			*c, out[i] = *a, c
		case *sumAcc:
			c := cut(&rt.accs.sums)
			*c, out[i] = *a, c
		case *extremeAcc:
			c := cut(&rt.accs.extremes)
			*c, out[i] = *a, c
		case *avgAcc:
			c := cut(&rt.accs.avgs)
			*c, out[i] = *a, c
		case *distinctAcc:
			c := &distinctAcc{seen: make(map[string]struct{}, len(a.seen))}
			for k := range a.seen {
				c.seen[k] = struct{}{}
			}
			out[i] = c
		case *topAcc:
			out[i] = &topAcc{items: append([]topEntry(nil), a.items...)}
		case *luaAcc:
			v, err := toGo(a.v)
			if err != nil {
				return nil, fmt.Errorf("aggregate %s: accumulator: %w", rt.p.Aggregates[i].Name, err)
			}
			out[i] = &goAcc{v: v}
		case *goAcc:
			out[i] = a
		}
	}
	return out, nil
}

// EncodeAccs appends accs as a JSON array: the checkpoint format.
func (rt *Runtime) EncodeAccs(dst []byte, accs []any) ([]byte, error) {
	dst = append(dst, '[')
	for i, acc := range accs {
		if i > 0 {
			dst = append(dst, ',')
		}
		switch a := acc.(type) {
		// (numbers and the arrays around them are written in place:
		// boxing them cost allocations per entry at every checkpoint)
		case *countAcc:
			dst = strconv.AppendInt(dst, a.n, 10)
		case *sumAcc:
			if a.float {
				dst = append(connectors.AppendFloat(append(dst, '['), a.f), ']')
			} else {
				dst = strconv.AppendInt(dst, a.i, 10)
			}
		case *extremeAcc:
			if a.set {
				dst = append(connectors.AppendValue(append(dst, '['), a.v), ']')
			} else {
				dst = append(dst, "[]"...)
			}
		case *avgAcc:
			dst = append(dst, '[')
			dst = append(connectors.AppendFloat(dst, a.sum), ',')
			dst = append(strconv.AppendInt(dst, a.n, 10), ']')
		case *distinctAcc:
			keys := make([]string, 0, len(a.seen))
			for k := range a.seen {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			dst = append(dst, '[')
			dst = append(dst, strings.Join(keys, ",")...)
			dst = append(dst, ']')
		case *topAcc:
			list := make([]any, len(a.items))
			for j, e := range a.items {
				list[j] = []any{e.v, e.by}
			}
			dst = connectors.AppendValue(dst, list)
		default:
			p, err := rt.Portable([]any{acc})
			if err != nil {
				return nil, err
			}
			dst = connectors.AppendValue(dst, p[0].(*goAcc).v)
		}
	}
	return append(dst, ']'), nil
}

// EncodeEntry appends a key's checkpoint record: its key columns' values
// and its accumulators.
func (rt *Runtime) EncodeEntry(dst []byte, keyVals, accs []any) ([]byte, error) {
	dst = append(appendValues(append(dst, '[', '['), keyVals), ']', ',')
	dst, err := rt.EncodeAccs(dst, accs)
	return append(dst, ']'), err
}

// EncodeWindowEntry is EncodeEntry of a window's entry, whose key columns'
// values are followed by the window's start, end and whether it fired.
func (rt *Runtime) EncodeWindowEntry(dst []byte, keyVals []any, start, end int64, fired bool, accs []any) ([]byte, error) {
	dst = appendValues(append(dst, '[', '['), keyVals)
	if len(keyVals) > 0 {
		dst = append(dst, ',')
	}
	dst = append(strconv.AppendInt(dst, start, 10), ',')
	dst = append(strconv.AppendInt(dst, end, 10), ',')
	dst = append(strconv.AppendBool(dst, fired), ']', ',')
	dst, err := rt.EncodeAccs(dst, accs)
	return append(dst, ']'), err
}

// appendValues appends vs as AppendValue would the elements of a JSON
// array, without boxing the slice.
func appendValues(dst []byte, vs []any) []byte {
	for i, v := range vs {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = connectors.AppendValue(dst, v)
	}
	return dst
}

// DecodeEntry reads what EncodeEntry wrote.
func (rt *Runtime) DecodeEntry(b []byte) (keyVals, accs []any, err error) {
	keys, accVals, err := rt.entryParts(b)
	if err != nil {
		return nil, nil, err
	}
	for _, kv := range keys {
		keyVals = append(keyVals, jsonToGo(kv))
	}
	return keyVals, rt.accsOf(accVals), nil
}

// CheckEntry tells whether DecodeEntry would decode b, without decoding
// it (and without allocating): a restore that keeps entries encoded
// finds a damaged one as it loads it, as one that decodes would.
func (rt *Runtime) CheckEntry(b []byte) error {
	_, _, err := rt.entryParts(b)
	return err
}

// entryParts splits an encoded entry into its key values and its
// accumulators, checking its shape: everything DecodeEntry can refuse.
func (rt *Runtime) entryParts(b []byte) (keys, accs []*fastjson.Value, err error) {
	v, err := rt.dp.ParseBytes(b)
	if err != nil {
		return nil, nil, fmt.Errorf("checkpointed entry: %w", err)
	}
	parts := v.GetArray()
	if len(parts) != 2 || parts[0].Type() != fastjson.TypeArray {
		return nil, nil, fmt.Errorf("checkpointed entry: want [keys, accumulators], got %.100s", b)
	}
	accs, err = rt.accValues(parts[1])
	return parts[0].GetArray(), accs, err
}

// DecodeAccs reads what EncodeAccs wrote.
func (rt *Runtime) DecodeAccs(b []byte) ([]any, error) {
	v, err := rt.dp.ParseBytes(b)
	if err != nil {
		return nil, fmt.Errorf("checkpointed accumulators: %w", err)
	}
	return rt.decodeAccs(v)
}

func (rt *Runtime) decodeAccs(v *fastjson.Value) ([]any, error) {
	arr, err := rt.accValues(v)
	if err != nil {
		return nil, err
	}
	return rt.accsOf(arr), nil
}

// accValues is v's accumulators, one a pipeline aggregate.
func (rt *Runtime) accValues(v *fastjson.Value) ([]*fastjson.Value, error) {
	arr, err := v.Array()
	if err != nil || len(arr) != len(rt.p.Aggregates) {
		return nil, fmt.Errorf("checkpointed accumulators: want %d values, got %.100s (was the pipeline's aggregate changed since the checkpoint?)", len(rt.p.Aggregates), v)
	}
	return arr, nil
}

// accsOf decodes accumulators of the shape accValues checked; it cannot
// fail (a value of the wrong kind reads as its zero).
func (rt *Runtime) accsOf(arr []*fastjson.Value) []any {
	accs := make([]any, len(arr))
	for i, a := range rt.p.Aggregates {
		x := arr[i]
		switch a.Func {
		case "count":
			accs[i] = &countAcc{n: x.GetInt64()}
		case "sum":
			if x.Type() == fastjson.TypeArray {
				accs[i] = &sumAcc{float: true, f: x.GetFloat64("0")}
			} else {
				accs[i] = &sumAcc{i: x.GetInt64()}
			}
		case "min", "max":
			e := &extremeAcc{}
			if vs := x.GetArray(); len(vs) == 1 {
				e.hold(jsonToGo(vs[0]))
			}
			accs[i] = e
		case "avg":
			accs[i] = &avgAcc{sum: x.GetFloat64("0"), n: x.GetInt64("1")}
		case "count_distinct":
			d := &distinctAcc{seen: map[string]struct{}{}}
			for _, k := range x.GetArray() {
				d.seen[string(connectors.AppendValue(nil, jsonToGo(k)))] = struct{}{}
			}
			accs[i] = d
		case "top":
			t := &topAcc{}
			for _, e := range x.GetArray() {
				pair := e.GetArray()
				if len(pair) == 2 {
					t.items = append(t.items, topEntry{v: jsonToGo(pair[0]), by: jsonToGo(pair[1])})
				}
			}
			accs[i] = t
		default:
			accs[i] = &goAcc{v: jsonToGo(x)}
		}
	}
	return accs
}

// Compare orders two row values: nil first, then numbers, then strings,
// then booleans. ok is false for values of different kinds.
func Compare(a, b any) int { c, _ := compare(a, b); return c }

func compare(a, b any) (int, bool) {
	if a == nil || b == nil {
		switch {
		case a == nil && b == nil:
			return 0, true
		case a == nil:
			return -1, false
		default:
			return 1, false
		}
	}
	if x, ok := toFloat(a); ok {
		if y, ok := toFloat(b); ok {
			if ai, ok := a.(int64); ok {
				if bi, ok := b.(int64); ok {
					return cmp3(ai < bi, ai > bi), true
				}
			}
			return cmp3(x < y, x > y), true
		}
		return -1, false
	}
	if x, ok := a.(string); ok {
		if y, ok := b.(string); ok {
			return strings.Compare(x, y), true
		}
		if _, num := toFloat(b); num {
			return 1, false
		}
		return -1, false
	}
	if x, ok := a.(bool); ok {
		if y, ok := b.(bool); ok {
			return cmp3(!x && y, x && !y), true
		}
	}
	return strings.Compare(goType(a), goType(b)), false
}

func cmp3(less, more bool) int {
	switch {
	case less:
		return -1
	case more:
		return 1
	}
	return 0
}

func toFloat(v any) (float64, bool) {
	switch x := v.(type) {
	case int64:
		return float64(x), true
	case float64:
		return x, !math.IsNaN(x)
	case int:
		return float64(x), true
	}
	return 0, false
}

func goType(v any) string {
	switch v.(type) {
	case nil:
		return "nil"
	case bool:
		return "boolean"
	case int64, float64, int:
		return "number"
	case string:
		return "string"
	case []any, map[string]any:
		return "table"
	}
	return fmt.Sprintf("%T", v)
}

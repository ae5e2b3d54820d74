package scripting

import (
	"unsafe"

	lua "github.com/yuin/gopher-lua"
)

// Declarative filters on the direct path: a comparison or is_in of a
// field reads the field's span in place, so testing a record makes no
// Lua value (a string field would cost two allocations, a number one).
// Whatever this does not cover — an expression rather than a field, a
// comparison Lua would raise an error on, a boolean or missing field —
// goes to the predicate's own test on the spans' Lua values, which gives
// the same answer and the same error (TestDeclarativeFiltersEqualLuaDirect).

// testFilterSpans is testFilter on the scanned record.
func (rt *Runtime) testFilterSpans() (bool, error) {
	if rt.p.steps.filter == nil {
		return true, nil
	}
	if ok, done := rt.spanTest(rt.p.steps.filter); done {
		return ok, nil
	}
	return rt.testFilter(spanRecord{rt})
}

// spanTest tests pred on the spans; done is false when it can't say
// without Lua values (the caller then runs pred.test).
func (rt *Runtime) spanTest(pred predicate) (ok, done bool) {
	switch p := pred.(type) {
	case *presence:
		i := fieldIndex(rt.names, p.field)
		return i >= 0 && rt.spans[i].kind != jsonMissing, i >= 0
	case *membership:
		sp := rt.fieldSpan(p.x)
		if sp == nil {
			return false, false
		}
		switch sp.kind {
		case jsonString:
			return p.hasString(spanString(sp)), true
		case jsonNumber:
			_, ok = p.numbers[parseNumber(sp.raw)]
			return ok, true
		}
	case *comparison:
		if sp := rt.fieldSpan(p.x); sp != nil {
			return compareSpan(p, sp)
		}
	case *combination:
		return rt.spanCombination(p)
	}
	return false, false
}

// spanCombination is combination.test on the spans, stopping where it
// stops; done is false as soon as a part can't be told, so the caller's
// pred.test raises whatever error that part raises, in order.
func (rt *Runtime) spanCombination(c *combination) (ok, done bool) {
	for _, part := range c.parts {
		ok, done := rt.spanTest(part)
		if !done {
			return false, false
		}
		switch {
		case c.kind == "all" && !ok:
			return false, true
		case c.kind != "all" && ok:
			return c.kind == "any", true
		}
	}
	return c.kind != "any", true
}

// fieldSpan is the span of the field x names, nil when x is an expression
// or its field was not scanned.
func (rt *Runtime) fieldSpan(x expr) *jsonSpan {
	f, ok := x.(fieldRef)
	if !ok {
		return nil
	}
	if i := fieldIndex(rt.names, f.name); i >= 0 {
		return &rt.spans[i]
	}
	return nil
}

// compareSpan is comparison.test of a string or number span; done is
// false for the comparisons Lua raises an error on, and for other spans.
func compareSpan(c *comparison, sp *jsonSpan) (ok, done bool) {
	switch sp.kind {
	case jsonString:
		v, same := c.value.(lua.LString)
		return compareOrdered(c.op, spanString(sp), string(v), same)
	case jsonNumber:
		v, same := c.value.(lua.LNumber)
		return compareOrdered(c.op, parseNumber(sp.raw), float64(v), same)
	}
	return false, false
}

// compareOrdered is Lua's x op y for values of one type (same) or of two
// (where only eq and ne answer).
func compareOrdered[T string | float64](op string, x, y T, same bool) (ok, done bool) {
	switch op {
	case "eq":
		return same && x == y, true
	case "ne":
		return !same || x != y, true
	}
	if !same {
		return false, false
	}
	switch op {
	case "lt":
		return x < y, true
	case "le":
		return x <= y, true
	case "gt":
		return y < x, true
	}
	return y <= x, true // ge
}

// spanString is a string span's text, in place: it must not outlive the
// record.
func spanString(sp *jsonSpan) string {
	return unsafe.String(unsafe.SliceData(sp.raw), len(sp.raw))
}

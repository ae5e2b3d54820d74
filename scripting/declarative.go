package scripting

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// Declarative filters: eddy.eq, eddy.ne, eddy.lt, eddy.le, eddy.gt,
// eddy.ge, eddy.is_in, eddy.has and their combinations eddy.all, eddy.any
// and eddy.none. They are tests of named fields evaluated in Go, so a
// pipeline whose filter is one never calls into Lua for it. Each gives
// exactly what its Lua expression gives — eddy.lt("bytes", 10) is
// r.bytes < 10, including the error Lua raises comparing a number with a
// string or nil, which sends the record to the dead letters — so moving
// between the two forms never changes a result (declarative_test.go runs
// each pair over the same records).

// fields is what a predicate or a map expression reads: a record table,
// or a result row (rowFields).
type fields interface {
	RawGetString(name string) lua.LValue
}

// predicate is a compiled declarative filter.
type predicate interface {
	test(r fields) (bool, error)
	// describe writes the predicate as the script calls it, for errors
	// and CheckReload.
	describe() string
	// reads calls f with each field the predicate reads.
	reads(f func(string))
}

// comparison is eq, ne, lt, le, gt or ge of a field (or an expression of
// mapstep.go, such as eddy.mod("auction", 123)) and a constant.
type comparison struct {
	op    string
	x     expr
	value lua.LValue
}

func (c *comparison) test(r fields) (bool, error) {
	v, err := c.x.eval(r)
	if err != nil {
		return false, err
	}
	switch c.op {
	case "eq":
		return luaEqual(v, c.value), nil
	case "ne":
		return !luaEqual(v, c.value), nil
	case "lt":
		return luaLess(v, c.value, false, c.x)
	case "le":
		return luaLess(v, c.value, true, c.x)
	case "gt":
		return luaLess(c.value, v, false, c.x)
	default: // ge
		return luaLess(c.value, v, true, c.x)
	}
}

func (c *comparison) describe() string {
	return fmt.Sprintf("%s(%s, %s)", c.op, c.x.describe(), describeValue(c.value))
}

func (c *comparison) reads(f func(string)) { c.x.reads(f) }

// luaEqual is Lua's == for the scalars a constant may be: values of
// different types are never equal, numbers compare as floats (so NaN
// equals nothing), strings byte by byte.
func luaEqual(a, b lua.LValue) bool {
	switch a := a.(type) {
	case lua.LNumber:
		b, ok := b.(lua.LNumber)
		return ok && a == b
	case lua.LString:
		b, ok := b.(lua.LString)
		return ok && a == b
	case lua.LBool:
		b, ok := b.(lua.LBool)
		return ok && a == b
	}
	return false
}

// luaLess is Lua's a < b (a <= b with orEqual): numbers with numbers,
// strings with strings byte by byte; anything else is the error Lua
// raises.
func luaLess(a, b lua.LValue, orEqual bool, x expr) (bool, error) {
	switch x := a.(type) {
	case lua.LNumber:
		if y, ok := b.(lua.LNumber); ok {
			if orEqual {
				return x <= y, nil
			}
			return x < y, nil
		}
	case lua.LString:
		if y, ok := b.(lua.LString); ok {
			if orEqual {
				return x <= y, nil
			}
			return x < y, nil
		}
	}
	what := x.describe()
	if _, ok := x.(fieldRef); ok {
		what = "field " + what
	}
	return false, fmt.Errorf("%s: attempt to compare %s with %s", what, a.Type(), b.Type())
}

// membership is eddy.is_in(field, { values }): the field's value is one
// of the values, compared as == compares them (80 is not "80").
type membership struct {
	x       expr
	strings map[string]struct{}
	// few is strings' members when they are few (fewMembers at most): a
	// span is looked for among them, not hashed for the map
	few     []string
	numbers map[float64]struct{}
	bools   [2]bool
	list    string
}

// fewMembers bounds the string members a set looks through one by one:
// a short list beats hashing, most of all when lengths differ.
const fewMembers = 8

func (m *membership) test(r fields) (bool, error) {
	v, err := m.x.eval(r)
	if err != nil {
		return false, err
	}
	switch v := v.(type) {
	case lua.LString:
		_, ok := m.strings[string(v)]
		return ok, nil
	case lua.LNumber:
		_, ok := m.numbers[float64(v)] // NaN is never a map key that matches
		return ok, nil
	case lua.LBool:
		if v {
			return m.bools[1], nil
		}
		return m.bools[0], nil
	}
	return false, nil
}

func (m *membership) describe() string { return fmt.Sprintf("is_in(%s, %s)", m.x.describe(), m.list) }

func (m *membership) reads(f func(string)) { m.x.reads(f) }

// presence is eddy.has(field): r.field ~= nil.
type presence struct{ field string }

func (p *presence) test(r fields) (bool, error) { return r.RawGetString(p.field) != lua.LNil, nil }
func (p *presence) describe() string            { return fmt.Sprintf("has(%q)", p.field) }
func (p *presence) reads(f func(string))        { f(p.field) }

// combination is eddy.all (and), eddy.any (or) or eddy.none (not any),
// evaluated left to right and stopping as Lua's and/or stop, so a
// comparison after a deciding one raises no error.
type combination struct {
	kind  string
	parts []predicate
}

func (c *combination) test(r fields) (bool, error) {
	for _, p := range c.parts {
		ok, err := p.test(r)
		if err != nil {
			return false, err
		}
		switch {
		case c.kind == "all" && !ok:
			return false, nil
		case c.kind != "all" && ok:
			return c.kind == "any", nil
		}
	}
	return c.kind != "any", nil
}

func (c *combination) describe() string {
	parts := make([]string, len(c.parts))
	for i, p := range c.parts {
		parts[i] = p.describe()
	}
	return c.kind + "{" + strings.Join(parts, ", ") + "}"
}

func (c *combination) reads(f func(string)) {
	for _, p := range c.parts {
		p.reads(f)
	}
}

func describeValue(v lua.LValue) string {
	if s, ok := v.(lua.LString); ok {
		return strconv.Quote(string(s))
	}
	if n, ok := v.(lua.LNumber); ok && math.IsNaN(float64(n)) {
		return "0/0"
	}
	return v.String()
}

// installPredicates adds the declarative filter constructors to eddy.
func installPredicates(L *lua.LState, mod *lua.LTable) {
	spec := func(kind string, set func(L *lua.LState, t *lua.LTable)) {
		L.SetField(mod, kind, L.NewFunction(func(L *lua.LState) int {
			t := L.NewTable()
			t.RawSetString(specKind, lua.LString(kind))
			set(L, t)
			L.Push(t)
			return 1
		}))
	}
	for _, op := range []string{"eq", "ne", "lt", "le", "gt", "ge"} {
		spec(op, func(L *lua.LState, t *lua.LTable) {
			t.RawSetString("field", L.CheckAny(1))
			t.RawSetString("value", L.CheckAny(2))
		})
	}
	spec("is_in", func(L *lua.LState, t *lua.LTable) {
		t.RawSetString("field", L.CheckAny(1))
		t.RawSetString("values", L.CheckTable(2))
	})
	spec("has", func(L *lua.LState, t *lua.LTable) {
		t.RawSetString("field", lua.LString(L.CheckString(1)))
	})
	for _, kind := range []string{"all", "any", "none"} {
		spec(kind, func(L *lua.LState, t *lua.LTable) {
			t.RawSetString("parts", L.CheckTable(1))
		})
	}
}

// isPredicate says whether v is a table an eddy.* filter constructor made.
func isPredicate(v lua.LValue) bool {
	t, ok := v.(*lua.LTable)
	if !ok {
		return false
	}
	switch lua.LVAsString(t.RawGetString(specKind)) {
	case "eq", "ne", "lt", "le", "gt", "ge", "is_in", "has", "all", "any", "none":
		return true
	}
	return false
}

// readPredicate compiles a declarative filter made by the constructors.
func readPredicate(v lua.LValue) (predicate, error) {
	if !isPredicate(v) {
		return nil, fmt.Errorf("want eddy.eq, eddy.ne, eddy.lt, eddy.le, eddy.gt, eddy.ge, eddy.is_in, eddy.has, eddy.all, eddy.any or eddy.none, got %s", v.Type())
	}
	t := v.(*lua.LTable)
	kind := lua.LVAsString(t.RawGetString(specKind))
	switch kind {
	case "has":
		return &presence{field: lua.LVAsString(t.RawGetString("field"))}, nil
	case "all", "any", "none":
		return readCombination(kind, t.RawGetString("parts").(*lua.LTable))
	}
	x, err := readTested(t.RawGetString("field"))
	if err != nil {
		return nil, fmt.Errorf("eddy.%s: %w", kind, err)
	}
	field := x.describe()
	if kind == "is_in" {
		return readMembership(x, t.RawGetString("values").(*lua.LTable))
	}
	value := t.RawGetString("value")
	switch value.(type) {
	case lua.LNumber, lua.LString:
	case lua.LBool:
		if kind != "eq" && kind != "ne" {
			return nil, fmt.Errorf("eddy.%s(%s, %s): booleans can't be ordered (Lua raises an error comparing them); use eddy.eq or eddy.ne", kind, field, value)
		}
	default:
		return nil, fmt.Errorf("eddy.%s(%s, …): want a number, string or boolean to compare with, got %s (eddy.has tests for a missing field)", kind, field, value.Type())
	}
	return &comparison{op: kind, x: x, value: value}, nil
}

// readTested reads what a comparison or is_in tests: a field name, or an
// expression such as eddy.mod("auction", 123).
func readTested(v lua.LValue) (expr, error) {
	switch v := v.(type) {
	case lua.LString:
		return fieldRef{string(v)}, nil
	case *lua.LTable:
		return readExprSpec(v)
	}
	return nil, fmt.Errorf("want a field name or an eddy.* expression to test, got %s", v.Type())
}

func readMembership(x expr, values *lua.LTable) (predicate, error) {
	field := x.describe()
	m := &membership{x: x, strings: map[string]struct{}{}, numbers: map[float64]struct{}{}}
	var list []string
	var err error
	values.ForEach(func(k, v lua.LValue) {
		if _, ok := k.(lua.LNumber); !ok && err == nil {
			err = fmt.Errorf("eddy.is_in(%s, …): want a list of values, got the key %s", field, k)
		}
		switch v := v.(type) {
		case lua.LString:
			m.strings[string(v)] = struct{}{}
		case lua.LNumber:
			m.numbers[float64(v)] = struct{}{}
		case lua.LBool:
			m.bools[boolIndex(bool(v))] = true
		default:
			if err == nil {
				err = fmt.Errorf("eddy.is_in(%s, …): a %s can't be a member (want numbers, strings or booleans)", field, v.Type())
			}
		}
		list = append(list, describeValue(v))
	})
	sort.Strings(list)
	m.list = "{" + strings.Join(list, ", ") + "}"
	if len(m.strings) <= fewMembers {
		for s := range m.strings {
			m.few = append(m.few, s)
		}
	}
	return m, err
}

// hasString says whether s is one of the set's strings.
func (m *membership) hasString(s string) bool {
	if len(m.strings) > fewMembers {
		_, ok := m.strings[s]
		return ok
	}
	for _, f := range m.few {
		if f == s {
			return true
		}
	}
	return false
}

func boolIndex(b bool) int {
	if b {
		return 1
	}
	return 0
}

func readCombination(kind string, parts *lua.LTable) (predicate, error) {
	c := &combination{kind: kind}
	for i := 1; i <= parts.Len(); i++ {
		p, err := readPredicate(parts.RawGetInt(i))
		if err != nil {
			return nil, fmt.Errorf("eddy.%s[%d]: %w", kind, i, err)
		}
		c.parts = append(c.parts, p)
	}
	if len(c.parts) == 0 {
		return nil, fmt.Errorf("eddy.%s: want a list of at least one filter", kind)
	}
	return c, nil
}

// passes runs the pipeline's filter on r: the declarative one in Go, a
// function in Lua, none keeps every record.
func (rt *Runtime) passes(r *lua.LTable) (bool, error) {
	if rt.p.steps.filter != nil || !rt.p.hasFilter {
		return rt.testFilter(r)
	}
	if err := rt.call(rt.filter, 1, r); err != nil {
		return false, fmt.Errorf("filter: %w", err)
	}
	L := rt.sb.L
	keep := lua.LVAsBool(L.Get(-1))
	L.Pop(1)
	return keep, nil
}

// testFilter runs the pipeline's declarative filter on r; without one it
// keeps every record.
func (rt *Runtime) testFilter(r fields) (bool, error) {
	pred := rt.p.steps.filter
	if pred == nil {
		return true, nil
	}
	ok, err := pred.test(r)
	if err != nil {
		return false, fmt.Errorf("filter: %s: %w", pred.describe(), err)
	}
	return ok, nil
}

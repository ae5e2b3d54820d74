package scripting

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	lua "github.com/yuin/gopher-lua"
)

// The map step shapes each record after the filter and before the key:
// every later step — key, event_time, aggregates, hooks, route and the
// records output — sees the fields the map makes and no others. It is a
// function(record) returning the new record (or nil to drop it), or one
// of two declarative forms evaluated in Go:
//
//	eddy.map{ "bidder", price_eur = eddy.mul("price", 0.908), buyer = "bidder2" }
//	eddy.drop{ "type" }
//
// eddy.map lists the output fields: a bare name keeps the field, name =
// "other" copies (renames) a field, name = 3 or eddy.const(…) is a
// constant, and name = eddy.add/sub/mul/div/concat/lower/upper(…) is
// computed. Each expression gives exactly what its Lua equivalent gives
// (mapstep_test.go runs both): eddy.mul("price", 0.908) is
// r.price * 0.908, with Lua's conversion of numeric strings and its error
// on a missing operand.

// steps holds the pipeline's declarative steps and which steps are Lua
// functions; nil or false when a step is not used.
type steps struct {
	filter    predicate // declarative.go
	mapping   *mapping
	luaMap    bool
	having    predicate // having.go
	luaHaving bool
}

// mapping is a compiled eddy.map or eddy.drop.
type mapping struct {
	outs []mapOut        // eddy.map's fields, by name
	drop map[string]bool // eddy.drop's fields; nil for eddy.map
}

type mapOut struct {
	name string
	expr expr
}

// expr is one computed field of eddy.map.
type expr interface {
	eval(r fields) (lua.LValue, error)
	describe() string
	reads(f func(string))
}

type fieldRef struct{ name string }

func (e fieldRef) eval(r fields) (lua.LValue, error) { return r.RawGetString(e.name), nil }
func (e fieldRef) describe() string                  { return strconv.Quote(e.name) }
func (e fieldRef) reads(f func(string))              { f(e.name) }

type constant struct{ v lua.LValue }

func (e constant) eval(fields) (lua.LValue, error) { return e.v, nil }
func (e constant) describe() string {
	if _, ok := e.v.(lua.LString); ok {
		return "const(" + describeValue(e.v) + ")" // a bare string names a field
	}
	return describeValue(e.v)
}
func (e constant) reads(func(string)) {}

// arith is + - * / as Lua computes them: on numbers, and on strings Lua
// converts to numbers; anything else is Lua's error.
type arith struct {
	op   string // add, sub, mul, div, mod
	a, b expr
}

func (e arith) eval(r fields) (lua.LValue, error) {
	a, err := e.a.eval(r)
	if err != nil {
		return nil, err
	}
	b, err := e.b.eval(r)
	if err != nil {
		return nil, err
	}
	x, okx := arithOperand(a)
	y, oky := arithOperand(b)
	if !okx || !oky {
		bad, which := a, e.a
		if okx {
			bad, which = b, e.b
		}
		return nil, fmt.Errorf("%s: %s is a %s, want a number", e.describe(), which.describe(), bad.Type())
	}
	switch e.op {
	case "add":
		return x + y, nil
	case "sub":
		return x - y, nil
	case "mul":
		return x * y, nil
	case "mod":
		return luaModulo(x, y), nil
	}
	return x / y, nil
}

func (e arith) describe() string { return e.op + "(" + e.a.describe() + ", " + e.b.describe() + ")" }
func (e arith) reads(f func(string)) {
	e.a.reads(f)
	e.b.reads(f)
}

// luaModulo is Lua's a % b: the remainder takes the divisor's sign.
func luaModulo(a, b lua.LNumber) lua.LNumber {
	v := math.Mod(float64(a), float64(b))
	if b > 0 && v < 0 || b < 0 && v > 0 {
		v += float64(b)
	}
	return lua.LNumber(v)
}

// arithOperand converts v as Lua's arithmetic does: a number, or a string
// holding one (gopher-lua's parseNumber: trimmed, an integer in any Go
// base prefix, else a float).
func arithOperand(v lua.LValue) (lua.LNumber, bool) {
	switch v := v.(type) {
	case lua.LNumber:
		return v, true
	case lua.LString:
		s := strings.Trim(string(v), " \t\n")
		if n, err := strconv.ParseInt(s, 0, 64); err == nil {
			return lua.LNumber(n), true
		}
		if f, err := strconv.ParseFloat(s, 64); err == nil {
			return lua.LNumber(f), true
		}
	}
	return 0, false
}

// concat is Lua's a .. b .. …: strings and numbers, numbers written as Lua
// writes them.
type concat struct{ parts []expr }

func (e concat) eval(r fields) (lua.LValue, error) {
	var sb strings.Builder
	for _, p := range e.parts {
		v, err := p.eval(r)
		if err != nil {
			return nil, err
		}
		if !lua.LVCanConvToString(v) {
			return nil, fmt.Errorf("%s: %s is a %s, want a string or number", e.describe(), p.describe(), v.Type())
		}
		sb.WriteString(lua.LVAsString(v))
	}
	return lua.LString(sb.String()), nil
}

func (e concat) describe() string {
	parts := make([]string, len(e.parts))
	for i, p := range e.parts {
		parts[i] = p.describe()
	}
	return "concat(" + strings.Join(parts, ", ") + ")"
}

func (e concat) reads(f func(string)) {
	for _, p := range e.parts {
		p.reads(f)
	}
}

// casing is string.lower or string.upper.
type casing struct {
	upper bool
	x     expr
}

func (e casing) eval(r fields) (lua.LValue, error) {
	v, err := e.x.eval(r)
	if err != nil {
		return nil, err
	}
	if !lua.LVCanConvToString(v) {
		return nil, fmt.Errorf("%s: %s is a %s, want a string", e.describe(), e.x.describe(), v.Type())
	}
	if e.upper {
		return lua.LString(strings.ToUpper(lua.LVAsString(v))), nil
	}
	return lua.LString(strings.ToLower(lua.LVAsString(v))), nil
}

func (e casing) describe() string {
	if e.upper {
		return "upper(" + e.x.describe() + ")"
	}
	return "lower(" + e.x.describe() + ")"
}

func (e casing) reads(f func(string)) { e.x.reads(f) }

// installMap adds eddy.map, eddy.drop and the expression constructors.
func installMap(L *lua.LState, mod *lua.LTable) {
	spec := func(kind string, set func(L *lua.LState, t *lua.LTable)) {
		L.SetField(mod, kind, L.NewFunction(func(L *lua.LState) int {
			t := L.NewTable()
			t.RawSetString(specKind, lua.LString(kind))
			set(L, t)
			L.Push(t)
			return 1
		}))
	}
	spec("map", func(L *lua.LState, t *lua.LTable) { t.RawSetString("fields", L.CheckTable(1)) })
	spec("drop", func(L *lua.LState, t *lua.LTable) { t.RawSetString("fields", L.CheckTable(1)) })
	spec("field", func(L *lua.LState, t *lua.LTable) { t.RawSetString("name", lua.LString(L.CheckString(1))) })
	spec("const", func(L *lua.LState, t *lua.LTable) { t.RawSetString("value", L.CheckAny(1)) })
	for _, op := range []string{"add", "sub", "mul", "div", "mod"} {
		spec(op, func(L *lua.LState, t *lua.LTable) {
			t.RawSetString("a", L.CheckAny(1))
			t.RawSetString("b", L.CheckAny(2))
		})
	}
	spec("concat", func(L *lua.LState, t *lua.LTable) {
		parts := L.NewTable()
		for i := 1; i <= L.GetTop(); i++ {
			parts.Append(L.CheckAny(i))
		}
		t.RawSetString("parts", parts)
	})
	for _, c := range []string{"lower", "upper"} {
		spec(c, func(L *lua.LState, t *lua.LTable) { t.RawSetString("x", L.CheckAny(1)) })
	}
	installMapTime(L, mod)
}

// readMap reads the pipeline's map field.
func (p *Pipeline) readMap(v lua.LValue) error {
	switch v := v.(type) {
	case *lua.LNilType:
	case *lua.LFunction:
		p.steps.luaMap = true
	case *lua.LTable:
		kind := lua.LVAsString(v.RawGetString(specKind))
		if kind != "map" && kind != "drop" {
			return fmt.Errorf("map: want eddy.map{…}, eddy.drop{…} or a function(record) returning the new record, got a table")
		}
		m, err := readMapping(kind, v.RawGetString("fields").(*lua.LTable))
		if err != nil {
			return fmt.Errorf("map: %w", err)
		}
		p.steps.mapping = m
	default:
		return fmt.Errorf("map: want eddy.map{…}, eddy.drop{…} or a function(record) returning the new record, got %s", v.Type())
	}
	return p.checkMapReads()
}

func readMapping(kind string, t *lua.LTable) (*mapping, error) {
	m := &mapping{}
	if kind == "drop" {
		m.drop = map[string]bool{}
	}
	// gopher-lua puts a call that ends a table constructor in the list part
	// too, even after name = (in { "a", b = eddy.mul(…) } the spec is also
	// entry 2): such an entry is the keyed one, not a field to keep.
	keyed := map[lua.LValue]bool{}
	t.ForEach(func(k, v lua.LValue) {
		if _, ok := k.(lua.LString); ok {
			keyed[v] = true
		}
	})
	var err error
	t.ForEach(func(k, v lua.LValue) {
		if err != nil {
			return
		}
		switch k := k.(type) {
		case lua.LNumber:
			if _, isTable := v.(*lua.LTable); isTable && keyed[v] {
				return
			}
			name, ok := v.(lua.LString)
			if !ok || !validName(string(name)) {
				err = fmt.Errorf("eddy.%s: entry %v: want a field name, got %s", kind, k, v)
			} else if m.drop != nil {
				m.drop[string(name)] = true
			} else {
				m.outs = append(m.outs, mapOut{name: string(name), expr: fieldRef{string(name)}})
			}
		case lua.LString:
			if m.drop != nil {
				err = fmt.Errorf("eddy.drop: want a list of field names, got the key %q", string(k))
				return
			}
			var e expr
			if e, err = readExpr(v); err != nil {
				err = fmt.Errorf("eddy.map: field %q: %w", string(k), err)
				return
			}
			m.outs = append(m.outs, mapOut{name: string(k), expr: e})
		default:
			err = fmt.Errorf("eddy.%s: keys are field names, got %s", kind, k.Type())
		}
	})
	if err != nil {
		return nil, err
	}
	sort.Slice(m.outs, func(i, j int) bool { return m.outs[i].name < m.outs[j].name })
	for i := 1; i < len(m.outs); i++ {
		if m.outs[i].name == m.outs[i-1].name {
			return nil, fmt.Errorf("eddy.map: field %q is listed twice", m.outs[i].name)
		}
	}
	if m.drop == nil && len(m.outs) == 0 {
		return nil, fmt.Errorf("eddy.map: want at least one field")
	}
	return m, nil
}

// readExpr reads one output field of eddy.map: a field name, a constant
// number or boolean, or an eddy.* expression.
func readExpr(v lua.LValue) (expr, error) {
	switch v := v.(type) {
	case lua.LString:
		return fieldRef{string(v)}, nil
	case lua.LNumber, lua.LBool:
		return constant{v}, nil
	case *lua.LTable:
		return readExprSpec(v)
	}
	return nil, fmt.Errorf("want a field name, a number, a boolean or an eddy.* expression, got %s", v.Type())
}

func readExprSpec(t *lua.LTable) (expr, error) {
	kind := lua.LVAsString(t.RawGetString(specKind))
	switch kind {
	case "field":
		return fieldRef{lua.LVAsString(t.RawGetString("name"))}, nil
	case "const":
		switch v := t.RawGetString("value").(type) {
		case lua.LString, lua.LNumber, lua.LBool:
			return constant{v}, nil
		default:
			return nil, fmt.Errorf("eddy.const: want a string, number or boolean, got %s", v.Type())
		}
	case "add", "sub", "mul", "div", "mod":
		a, err := readExpr(t.RawGetString("a"))
		if err != nil {
			return nil, fmt.Errorf("eddy.%s: %w", kind, err)
		}
		b, err := readExpr(t.RawGetString("b"))
		if err != nil {
			return nil, fmt.Errorf("eddy.%s: %w", kind, err)
		}
		return arith{op: kind, a: a, b: b}, nil
	case "concat":
		parts := t.RawGetString("parts").(*lua.LTable)
		var c concat
		for i := 1; i <= parts.Len(); i++ {
			e, err := readExpr(parts.RawGetInt(i))
			if err != nil {
				return nil, fmt.Errorf("eddy.concat: argument %d: %w", i, err)
			}
			c.parts = append(c.parts, e)
		}
		if len(c.parts) == 0 {
			return nil, fmt.Errorf("eddy.concat: want at least one argument")
		}
		return c, nil
	case "time_parse", "time_format":
		return readTimeConv(kind, t)
	case "lower", "upper":
		x, err := readExpr(t.RawGetString("x"))
		if err != nil {
			return nil, fmt.Errorf("eddy.%s: %w", kind, err)
		}
		return casing{upper: kind == "upper", x: x}, nil
	}
	return nil, fmt.Errorf("want a field name, a number, a boolean or an eddy.* expression (field, const, add, sub, mul, div, mod, concat, lower, upper, time_parse, time_format), got a table")
}

// parsedFields lists the fields parse makes, when its spec says (JSON and
// CSV; lines make "line"); known is false for a parse function.
func (p *Pipeline) parsedFields() (names []string, known bool) {
	switch p.Format {
	case "json", "csv":
		for _, f := range p.Fields {
			names = append(names, f.Name)
		}
		return names, true
	case "lines":
		return []string{"line"}, true
	}
	return nil, false
}

// recordFields lists the fields the steps after map see; known is false
// when a function decides them.
func (p *Pipeline) recordFields() (names []string, known bool) {
	switch m := p.steps.mapping; {
	case p.steps.luaMap:
		return nil, false
	case m == nil:
		return p.parsedFields()
	case m.drop != nil:
		parsed, known := p.parsedFields()
		for _, n := range parsed {
			if !m.drop[n] {
				names = append(names, n)
			}
		}
		return names, known
	default:
		for _, o := range m.outs {
			names = append(names, o.name)
		}
		return names, true
	}
}

// checkMapReads refuses a declarative map, or a declarative filter before
// it, that reads a field parse does not make: a misspelt name would
// otherwise give nil for every record.
func (p *Pipeline) checkMapReads() error {
	parsed, known := p.parsedFields()
	if !known {
		return nil
	}
	has := map[string]bool{}
	for _, n := range parsed {
		has[n] = true
	}
	var err error
	check := func(where string) func(string) {
		return func(name string) {
			if err == nil && !has[name] {
				err = fmt.Errorf("%s: field %q is not one parse makes (it makes %s)", where, name, strings.Join(parsed, ", "))
			}
		}
	}
	if p.steps.filter != nil {
		p.steps.filter.reads(check("filter"))
	}
	if m := p.steps.mapping; m != nil {
		for _, o := range m.outs {
			o.expr.reads(check("map." + o.name))
		}
		for name := range m.drop {
			check("map (eddy.drop)")(name)
		}
	}
	return err
}

// checkMapMakesEventTime refuses an event-time field a declarative map
// does not make: every record would fail.
func (p *Pipeline) checkMapMakesEventTime() error {
	if p.steps.mapping == nil || p.EventTime == nil || p.EventTime.Field == "" {
		return nil
	}
	names, known := p.recordFields()
	if !known {
		return nil
	}
	for _, n := range names {
		if n == p.EventTime.Field {
			return nil
		}
	}
	return fmt.Errorf("event_time: field %q is not one the map makes (it makes %s): add it to the map or fix the name", p.EventTime.Field, strings.Join(names, ", "))
}

// mapRecord runs the map step on r; nil means a map function dropped the
// record. Without a map, r is the record.
func (rt *Runtime) mapRecord(r *lua.LTable) (*lua.LTable, error) {
	switch {
	case rt.p.steps.luaMap:
		return rt.luaMap(r)
	case rt.p.steps.mapping == nil:
		return r, nil
	case rt.p.steps.mapping.drop != nil:
		return rt.dropFields(r), nil
	}
	out := rt.mapped
	for _, o := range rt.p.steps.mapping.outs {
		v, err := o.expr.eval(r)
		if err != nil {
			return nil, fmt.Errorf("map: field %q: %w", o.name, err)
		}
		out.RawSetString(o.name, v)
	}
	return out, nil
}

func (rt *Runtime) luaMap(r *lua.LTable) (*lua.LTable, error) {
	L := rt.sb.L
	if err := rt.call(rt.mapFn, 1, r); err != nil {
		return nil, fmt.Errorf("map: %w", err)
	}
	v := L.Get(-1)
	L.Pop(1)
	switch v := v.(type) {
	case *lua.LTable:
		return v, nil
	case *lua.LNilType:
		return nil, nil
	}
	return nil, fmt.Errorf("map: %s: the map function returned a %s, want the new record (a table) or nil to drop it", rt.p.Script, v.Type())
}

// dropFields copies r without eddy.drop's fields, into a new table: the
// fields a parse function makes may differ from record to record.
func (rt *Runtime) dropFields(r *lua.LTable) *lua.LTable {
	out := rt.sb.L.CreateTable(0, 8)
	r.ForEach(func(k, v lua.LValue) {
		if s, ok := k.(lua.LString); ok && rt.p.steps.mapping.drop[string(s)] {
			return
		}
		out.RawSetH(k, v)
	})
	return out
}

// bindSteps picks up the map and having functions of the pipeline table
// and makes the table a declarative map fills.
func (rt *Runtime) bindSteps(tbl *lua.LTable) {
	rt.mapFn, rt.havingFn = tbl.RawGetString("map"), tbl.RawGetString("having")
	if m := rt.p.steps.mapping; m != nil && m.drop == nil {
		rt.mapped = lockedRecord(rt.sb.L, len(m.outs))
	}
}

// lockedRecord makes a record table that is reused from record to record:
// a metatable stops the script adding fields, which would leak into the
// next record.
func lockedRecord(L *lua.LState, n int) *lua.LTable {
	t := L.CreateTable(0, n)
	meta := L.NewTable()
	meta.RawSetString("__newindex", L.NewFunction(func(L *lua.LState) int {
		L.RaiseError("can't add field %s to the record: parse and map decide its fields, filter and key only read them", L.ToStringMeta(L.Get(2)))
		return 0
	}))
	L.SetMetatable(t, meta)
	return t
}

// describeMapField writes how the map makes the field name, as
// CheckReload compares it.
func (p *Pipeline) describeMapField(name string) string {
	switch m := p.steps.mapping; {
	case p.steps.luaMap:
		return "a Lua function's"
	case m == nil:
		return "the parsed field"
	case m.drop != nil:
		if m.drop[name] {
			return "dropped"
		}
		return "the parsed field"
	default:
		for _, o := range m.outs {
			if f, ok := o.expr.(fieldRef); ok && o.name == name && f.name == name {
				return "the parsed field"
			}
			if o.name == name {
				return o.expr.describe()
			}
		}
		return "absent"
	}
}

// checkMapReload refuses a reload whose map changes a field the state is
// built from: a key column, an aggregate's field or the event-time field.
// The state would mix values of two definitions. A change to a map
// function can't be seen, and is the author's to keep compatible, as a
// change to a key or parse function is.
func checkMapReload(old, next *Pipeline) error {
	for _, name := range stateFields(old) {
		if a, b := old.describeMapField(name), next.describeMapField(name); a != b {
			return fmt.Errorf("the map's field %q, which the state is built from, changed from %s to %s", name, a, b)
		}
	}
	return nil
}

// stateFields lists the record fields the kept state is built from.
func stateFields(p *Pipeline) []string {
	var names []string
	if !p.keyFunc {
		names = append(names, p.KeyColumns...)
	}
	for _, a := range p.Aggregates {
		for _, f := range []string{a.Field, a.By} {
			if f != "" {
				names = append(names, f)
			}
		}
	}
	if p.EventTime != nil && p.EventTime.Field != "" {
		names = append(names, p.EventTime.Field)
	}
	return names
}

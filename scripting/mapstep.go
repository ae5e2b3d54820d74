package scripting

import (
	"fmt"
	"sort"
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
// constant, and name = eddy.add(…) and the other expressions of
// mapexpr.go and maptime.go is computed. Each expression gives exactly
// what its Lua equivalent gives (declarative_test.go runs both): eddy.mul("price", 0.908) is
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
	if err := p.checkMapReads(); err != nil {
		return err
	}
	p.dropToKeep()
	return nil
}

// dropToKeep turns an eddy.drop into the eddy.map of the other fields
// when parse says which fields there are, so the output table is reused
// rather than made for every record.
func (p *Pipeline) dropToKeep() {
	m := p.steps.mapping
	parsed, known := p.parsedFields()
	if m == nil || m.drop == nil || !known {
		return
	}
	keep := &mapping{}
	for _, name := range parsed {
		if !m.drop[name] {
			keep.outs = append(keep.outs, mapOut{name: name, expr: fieldRef{name}})
		}
	}
	sort.Slice(keep.outs, func(i, j int) bool { return keep.outs[i].name < keep.outs[j].name })
	p.steps.mapping = keep
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

// parsedFields lists the fields parse makes, when its spec says (JSON and
// CSV; lines make "line"), and those the lookup step adds after it;
// known is false for a parse function.
func (p *Pipeline) parsedFields() (names []string, known bool) {
	switch p.Format {
	case "json", "csv":
		for _, f := range p.Fields {
			names = append(names, f.Name)
		}
		return append(names, p.lookupFields()...), true
	case "lines":
		return append([]string{"line"}, p.lookupFields()...), true
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
	return rt.mapFields(r)
}

// mapFields runs eddy.map on r into the reused output table.
func (rt *Runtime) mapFields(r fields) (*lua.LTable, error) {
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

package scripting

import (
	"fmt"
	"slices"
	"strings"

	"github.com/eddy-stream/eddy/connectors"
	lua "github.com/yuin/gopher-lua"
)

// The lookup step joins each record to a row of one of the pipeline's
// lookups (a MySQL table or a compacted Kafka topic), in Go, right after
// parse, so the filter, map, key and aggregates see the row's fields:
//
//	lookup = eddy.lookup{ table = "users", key = "user", select = { "name", "tier as user_tier" } }
//
// key names the record's field whose value is the table's key; select the
// row's fields the record gains ("field" or "field as name"). kind =
// "inner" (the default) drops a record whose key has no row, or whose key
// field is nil; kind = "left" keeps it, with the selected fields nil. A row
// is the table as it is when the record is processed (lookup.go for MySQL,
// connectors/kafka/table.go for Kafka).

// lookupStep is a compiled eddy.lookup.
type lookupStep struct {
	table string
	key   string
	left  bool
	outs  []lookupOut
	// checkEach is set when parse is a function: the record's fields are
	// known only when it runs.
	checkEach bool
}

// lookupOut is one selected field: the row's field from, named name in
// the record.
type lookupOut struct{ from, name string }

// installLookupStep adds eddy.lookup.
func installLookupStep(L *lua.LState, mod *lua.LTable) {
	L.SetField(mod, "lookup", L.NewFunction(func(L *lua.LState) int {
		t := L.CheckTable(1)
		t.RawSetString(specKind, lua.LString("lookup"))
		L.Push(t)
		return 1
	}))
}

// readLookupStep reads the pipeline's lookup field, after parse.
func (p *Pipeline) readLookupStep(v lua.LValue) error {
	if v == lua.LNil {
		return nil
	}
	const want = `want eddy.lookup{ table = NAME, key = FIELD, select = { "field", "field as name" }, kind = "inner" or "left" }`
	t, ok := v.(*lua.LTable)
	if !ok || lua.LVAsString(t.RawGetString(specKind)) != "lookup" {
		return fmt.Errorf("lookup: %s, got %s", want, v.Type())
	}
	if p.HasSources() {
		return fmt.Errorf("lookup: not yet with several sources: call lookup(name, key) in a source's parse or map function")
	}
	s, err := readLookupFields(t, want)
	if err != nil {
		return fmt.Errorf("lookup: %w", err)
	}
	if _, ok := p.lookups[s.table]; !ok {
		return fmt.Errorf("lookup: table %q is not one of the pipeline's lookups (lookups: %s)", s.table, p.lookupNames())
	}
	if err := p.checkLookupStepFields(s); err != nil {
		return fmt.Errorf("lookup: %w", err)
	}
	p.lookupStep = s
	return nil
}

// readLookupFields reads eddy.lookup's table.
func readLookupFields(t *lua.LTable, want string) (*lookupStep, error) {
	var err error
	t.ForEach(func(k, _ lua.LValue) {
		switch lua.LVAsString(k) {
		case specKind, "table", "key", "select", "kind":
		default:
			err = fmt.Errorf("unknown field %s (known: key, kind, select, table)", k)
		}
	})
	if err != nil {
		return nil, err
	}
	s := &lookupStep{table: lua.LVAsString(t.RawGetString("table")), key: lua.LVAsString(t.RawGetString("key"))}
	if s.table == "" || s.key == "" {
		return nil, fmt.Errorf("%s: table and key are required", want)
	}
	switch kind := t.RawGetString("kind"); kind {
	case lua.LNil, lua.LString("inner"):
	case lua.LString("left"):
		s.left = true
	default:
		return nil, fmt.Errorf("kind: want \"inner\" or \"left\", got %s", kind)
	}
	sel, ok := t.RawGetString("select").(*lua.LTable)
	if !ok || sel.Len() == 0 {
		return nil, fmt.Errorf("select: want the row's fields the record gains, such as { \"name\", \"tier as user_tier\" }")
	}
	for i := 1; i <= sel.Len(); i++ {
		o, err := readLookupOut(sel.RawGetInt(i))
		if err != nil {
			return nil, fmt.Errorf("select[%d]: %w", i, err)
		}
		if slices.ContainsFunc(s.outs, func(x lookupOut) bool { return x.name == o.name }) {
			return nil, fmt.Errorf("select: field %q is selected twice", o.name)
		}
		s.outs = append(s.outs, o)
	}
	return s, nil
}

// readLookupOut reads "field" or "field as name".
func readLookupOut(v lua.LValue) (lookupOut, error) {
	s, ok := v.(lua.LString)
	if !ok {
		return lookupOut{}, fmt.Errorf("want \"field\" or \"field as name\", got %s", v.Type())
	}
	parts := strings.Fields(string(s))
	switch {
	case len(parts) == 1:
		return lookupOut{from: parts[0], name: parts[0]}, nil
	case len(parts) == 3 && parts[1] == "as":
		return lookupOut{from: parts[0], name: parts[2]}, nil
	}
	return lookupOut{}, fmt.Errorf("want \"field\" or \"field as name\", got %q", s)
}

// checkLookupStepFields refuses, when parse says which fields there are, a
// key field parse does not make and a selected name it already makes (the
// row's value would silently replace the record's).
func (p *Pipeline) checkLookupStepFields(s *lookupStep) error {
	parsed, known := p.parsedFields()
	if !known {
		s.checkEach = true
		return nil
	}
	if !slices.Contains(parsed, s.key) {
		return fmt.Errorf("key: field %q is not one parse makes (it makes %s)", s.key, strings.Join(parsed, ", "))
	}
	for _, o := range s.outs {
		if slices.Contains(parsed, o.name) {
			return fmt.Errorf("select: the record already has a field %q: name the row's field otherwise (\"%s as other\")", o.name, o.from)
		}
	}
	return nil
}

// lookupFields lists the fields the lookup step adds, for parsedFields.
func (p *Pipeline) lookupFields() []string {
	if p.lookupStep == nil {
		return nil
	}
	names := make([]string, len(p.lookupStep.outs))
	for i, o := range p.lookupStep.outs {
		names[i] = o.name
	}
	return names
}

// lookupRecord runs the lookup step on r: r with the selected fields of its
// row, or nil when an inner lookup finds none.
func (rt *Runtime) lookupRecord(r *lua.LTable) (*lua.LTable, error) {
	s := rt.p.lookupStep
	if s == nil {
		return r, nil
	}
	row, err := rt.lookupRow(s, r)
	if err != nil || (row == nil && !s.left) {
		return nil, err
	}
	for _, o := range s.outs {
		if row == nil {
			r.RawSetString(o.name, lua.LNil)
			continue
		}
		r.RawSetString(o.name, toLua(rt.sb.L, row[o.from]))
	}
	return r, nil
}

// lookupRow finds r's row; nil without one (a nil key has none).
func (rt *Runtime) lookupRow(s *lookupStep, r *lua.LTable) (map[string]any, error) {
	if rt.p.lookups[s.table] == nil {
		return nil, fmt.Errorf("lookup: no lookup named %q", s.table)
	}
	kv := r.RawGetString(s.key)
	if kv == lua.LNil {
		return nil, nil
	}
	k, err := toGo(kv)
	if err != nil {
		return nil, fmt.Errorf("lookup %s: key field %q: %w", s.table, s.key, err)
	}
	if _, isMap := k.(map[string]any); isMap {
		return nil, fmt.Errorf("lookup %s: key field %q is a table, want a string or number", s.table, s.key)
	}
	if err := rt.checkNoSelectedField(s, r); err != nil {
		return nil, err
	}
	row, found, err := rt.p.lookups[s.table].get(rt.sb.goCtx, connectors.LookupKey(k))
	if err != nil || !found {
		return nil, err
	}
	return row, nil
}

// checkNoSelectedField fails a record (of a parse function, whose fields
// are known only now) that already has a field the lookup would set.
func (rt *Runtime) checkNoSelectedField(s *lookupStep, r *lua.LTable) error {
	if !s.checkEach {
		return nil // checked at load
	}
	for _, o := range s.outs {
		if r.RawGetString(o.name) != lua.LNil {
			return fmt.Errorf("lookup %s: the record already has a field %q, which select sets from the row: name it otherwise (\"%s as other\")", s.table, o.name, o.from)
		}
	}
	return nil
}

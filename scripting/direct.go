package scripting

import (
	"fmt"
	"sort"
	"strings"
	"unsafe"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/valyala/fastjson/fastfloat"
	lua "github.com/yuin/gopher-lua"
)

// The direct path: a pipeline whose records need no Lua table (eddy.json
// parse, a declarative filter and map or none, a key of fields, built-in
// aggregates, an event time field or the source's time) runs its steps
// straight on the JSON scan's spans: no Lua values made and read back,
// each field converted to Go once. One that mixes in a filter function
// fills the record table for that function alone, and its later steps
// read the table, as the table path's do. It gives the same Keyed and the
// same errors as the table path (TestDirectAgreesWithTable,
// TestDeclarativeFiltersEqualLua); records the scan leaves to fastjson
// take the table path.

// directFields are the pipeline table's fields the direct path serves. A
// pipeline with any other (a route function, hooks, stages, or a field
// added later) takes the table path, so what the direct path does not
// know of it never skips.
var directFields = map[string]bool{
	"name": true, "source": true, "sinks": true, "sink": true, "parse": true, "key": true,
	"aggregate": true, "columns": true, "order_by": true, "limit": true, "emit": true, "tests": true,
	"call_timeout": true, "memory_limit": true, "event_time": true, "watermark": true, "window": true,
	"allowed_lateness": true, "filter": true, "map": true, "having": true,
}

// canGoDirect says whether the pipeline table t, once read into p, can
// take the direct path.
func (p *Pipeline) canGoDirect(t *lua.LTable) bool {
	if p.Format != "json" || p.keyFunc || p.hasRoute || p.HasKeyHooks() || len(p.Fields) == 0 {
		return false
	}
	if p.steps.luaMap || p.steps.mapping != nil && p.steps.mapping.drop != nil {
		return false
	}
	if p.EventTime != nil && p.EventTime.Func {
		return false
	}
	for _, a := range p.Aggregates {
		if a.Func == "lua" {
			return false
		}
	}
	ok := true
	t.ForEach(func(k, _ lua.LValue) {
		if ks, isStr := k.(lua.LString); !isStr || !directFields[string(ks)] {
			ok = false
		}
	})
	return ok
}

// processDirect is ProcessAt for a direct pipeline's record, setting *k
// and *rec; handled is false when the scan left the record to fastjson
// (ProcessAt then takes the table path).
func (rt *Runtime) processDirect(raw []byte, sourceMs int64, k *Keyed, rec *connectors.Row) (kept, handled bool, err error) {
	rt.ensureSpans()
	ok, plain := scanJSONText(raw, rt.names, rt.spans, &rt.shape)
	if !ok {
		return false, false, nil
	}
	if err := rt.checkSpans(raw, plain); err != nil {
		return false, true, err
	}
	tbl, kept, err := rt.directSteps()
	if err != nil || !kept {
		return false, true, err
	}
	if err = rt.directKeyed(tbl, sourceMs, k); err != nil {
		return false, true, err
	}
	if rt.records {
		if tbl == nil {
			*rec = rt.spanRow(k.Key)
		} else if *rec, err = rowOf(tbl, k.Key); err != nil {
			return false, true, fmt.Errorf("record: %w", err)
		}
	}
	return true, true, nil
}

// directKeyed keys the record and reads its event time into *k, from the
// record table tbl or, when nil, the spans.
func (rt *Runtime) directKeyed(tbl *lua.LTable, sourceMs int64, k *Keyed) (err error) {
	if rt.p.HasAggregate() || len(rt.p.KeyColumns) > 0 {
		var fs recordFields = spanFields{rt}
		if tbl != nil {
			fs = tableFields{rt, tbl}
		}
		if *k, err = rt.keyedBy(fs); err != nil {
			return err
		}
	}
	if rt.p.EventTime != nil {
		if tbl != nil {
			k.Time, err = rt.eventTime(tbl, sourceMs)
		} else {
			k.Time, err = rt.directTime(sourceMs)
		}
		if err != nil {
			return err
		}
		if limit := rt.futureLimit(); k.Time > limit {
			return fmt.Errorf("event time %s is more than watermark.max_future (%v) ahead of the clock", FormatTime(k.Time), rt.p.Watermark.MaxFuture)
		}
	}
	return nil
}

// spanRow is rowOf for the spans: the present fields in name order.
func (rt *Runtime) spanRow(key string) connectors.Row {
	row := connectors.Row{Key: key, Fields: make([]connectors.Field, 0, len(rt.names))}
	for _, i := range rt.byName {
		if rt.spans[i].kind == jsonMissing {
			continue
		}
		v, _ := spanFields{rt}.value(rt.names[i])
		row.Fields = append(row.Fields, connectors.Field{Name: rt.names[i], Value: v})
	}
	return row
}

// checkSpans checks a scanned record's fields against parse's types, as
// parseJSON does; plain says the scan found only printable ASCII in the
// record's strings (nothing checkJSONStrings could refuse).
func (rt *Runtime) checkSpans(raw []byte, plain bool) error {
	if !plain {
		if err := rt.checkJSONStrings(raw); err != nil {
			return err
		}
	}
	for i := range rt.p.Fields {
		f, sp := &rt.p.Fields[i], &rt.spans[i]
		rt.goVals[i], rt.goValid[i] = nil, false
		if sp.kind == jsonMissing || sp.kind == jsonNull {
			if !f.Optional {
				return fmt.Errorf("parse: field %q is %s", f.Name, spanTypeName(sp.kind))
			}
			sp.kind = jsonMissing // a null reads as nil, as in Lua
			continue
		}
		if !rt.kinds[i].ok(sp) {
			return fmt.Errorf("parse: field %q is a %s, want %s", f.Name, spanTypeName(sp.kind), strings.Join(f.Types, " or "))
		}
	}
	return nil
}

// directSteps runs the filter and the map on the scanned record. tbl is
// the record table the later steps read, nil while they can read the
// spans: a filter function gets the record table (and may change its
// fields, as in the table path), and a declarative map makes its own.
func (rt *Runtime) directSteps() (tbl *lua.LTable, kept bool, err error) {
	var r fields = spanRecord{rt}
	if rt.p.hasFilter && rt.p.steps.filter == nil {
		tbl = rt.fillRecord()
		r = tbl
		kept, err = rt.passes(tbl)
	} else {
		kept, err = rt.testFilterSpans()
	}
	if err != nil || !kept {
		return nil, false, err
	}
	if rt.p.steps.mapping != nil {
		if tbl, err = rt.mapFields(r); err != nil {
			return nil, false, err
		}
	}
	return tbl, true, nil
}

// fillRecord sets the record table's fields from the checked spans.
func (rt *Runtime) fillRecord() *lua.LTable {
	t := rt.rec
	for i := range rt.p.Fields {
		t.RawSetString(rt.names[i], rt.spanLua(i))
	}
	return t
}

// spanRecord reads the checked spans as the record table would hold
// them, for declarative filters and maps.
type spanRecord struct{ rt *Runtime }

func (s spanRecord) RawGetString(name string) lua.LValue {
	i := fieldIndex(s.rt.names, name)
	if i < 0 {
		return lua.LNil
	}
	return s.rt.spanLua(i)
}

// spanLua is the checked span i's Lua value: its string, number or
// boolean.
func (rt *Runtime) spanLua(i int) lua.LValue {
	switch sp := &rt.spans[i]; sp.kind {
	case jsonString:
		return rt.caches[i].luaString(sp.raw)
	case jsonNumber:
		return rt.caches[i].luaNumber(sp.raw)
	case jsonTrue:
		return lua.LTrue
	case jsonFalse:
		return lua.LFalse
	}
	return lua.LNil
}

func (rt *Runtime) ensureSpans() {
	if len(rt.spans) == len(rt.p.Fields) {
		return
	}
	n := len(rt.p.Fields)
	rt.names, rt.spans = make([]string, n), make([]jsonSpan, n)
	rt.goVals, rt.goValid = make([]any, n), make([]bool, n)
	rt.caches = make([]valueCache, n+1)
	rt.kinds = make([]spanKinds, n)
	for i, f := range rt.p.Fields {
		rt.names[i] = f.Name
		rt.kinds[i] = kindsOf(f.Types)
	}
	rt.byName = make([]int, n)
	for i := range rt.byName {
		rt.byName[i] = i
	}
	sort.Slice(rt.byName, func(a, b int) bool { return rt.names[rt.byName[a]] < rt.names[rt.byName[b]] })
}

// spanKinds is a parsed field's types as the scan's kinds they take:
// typeOK's answer for a scanned value without comparing type names for
// every record.
type spanKinds struct {
	set     uint8 // 1<<kind for each kind a type takes whatever its value
	integer bool  // and numbers that are integers
}

func kindsOf(types []string) spanKinds {
	var k spanKinds
	for _, t := range types {
		switch t {
		case "any":
			k.set |= 1<<jsonNull | 1<<jsonTrue | 1<<jsonFalse | 1<<jsonString | 1<<jsonNumber
		case "string":
			k.set |= 1 << jsonString
		case "number":
			k.set |= 1 << jsonNumber
		case "integer":
			k.integer = true
		case "boolean":
			k.set |= 1<<jsonTrue | 1<<jsonFalse
		}
	}
	return k
}

// ok says whether the present value sp is of one of the types k was
// made of.
func (k spanKinds) ok(sp *jsonSpan) bool {
	if k.set&(1<<sp.kind) != 0 {
		return true
	}
	if k.integer && sp.kind == jsonNumber {
		f := parseNumber(sp.raw)
		return f == float64(int64(f))
	}
	return false
}

// parseNumber reads a scanned number as fastjson's GetFloat64 does.
func parseNumber(raw []byte) float64 {
	return fastfloat.ParseBestEffort(unsafe.String(unsafe.SliceData(raw), len(raw)))
}

// directTime is eventTime on the spans.
func (rt *Runtime) directTime(sourceMs int64) (int64, error) {
	et := rt.p.EventTime
	if et.Source {
		if sourceMs == 0 {
			return 0, fmt.Errorf("event time: the source gives this record no timestamp")
		}
		return sourceMs, nil
	}
	i := fieldIndex(rt.names, et.Field)
	if i < 0 {
		return 0, fmt.Errorf("event time: field %q is missing", et.Field)
	}
	switch sp := &rt.spans[i]; sp.kind {
	case jsonString:
		// parsed in place: the text outlives the call only in an error,
		// which copies it
		s := unsafe.String(unsafe.SliceData(sp.raw), len(sp.raw))
		ms, err := rfc3339Millis(s)
		if err != nil {
			return 0, fmt.Errorf("event time: field %q is %q, not an RFC 3339 time", et.Field, shorten(strings.Clone(s)))
		}
		return ms, nil
	case jsonNumber:
		return secondsToMillis(parseNumber(sp.raw))
	case jsonMissing:
		return 0, fmt.Errorf("event time: field %q is missing", et.Field)
	default:
		return 0, fmt.Errorf("event time: field %q is a %s, want an RFC 3339 string or Unix seconds", et.Field, "boolean")
	}
}

func fieldIndex(names []string, name string) int {
	for i, n := range names {
		if n == name {
			return i
		}
	}
	return -1
}

// recordFields is where keyedBy reads a record's fields: the Lua record
// table, or the JSON scan's spans.
type recordFields interface {
	// scalar is a key column's value; tables and missing fields can't be
	// keys.
	scalar(name string) (any, error)
	// value is an aggregate's argument, nil for a missing field.
	value(name string) (any, error)
}

type tableFields struct {
	rt *Runtime
	r  *lua.LTable
}

func (t tableFields) scalar(name string) (any, error) {
	v := t.r.RawGetString(name)
	if s, ok := v.(lua.LString); ok {
		return t.rt.fieldCache(name).goString(string(s)), nil
	}
	return scalar(v)
}

func (t tableFields) value(name string) (any, error) {
	v := t.r.RawGetString(name)
	if s, ok := v.(lua.LString); ok {
		return t.rt.fieldCache(name).goString(string(s)), nil
	}
	return toGo(v)
}

// spanFields reads the spans of processDirect's record, converting each
// field to Go once.
type spanFields struct{ rt *Runtime }

func (s spanFields) value(name string) (any, error) {
	rt := s.rt
	i := fieldIndex(rt.names, name)
	if i < 0 {
		return nil, nil
	}
	if !rt.goValid[i] {
		rt.goVals[i], rt.goValid[i] = rt.spanGo(i), true
	}
	return rt.goVals[i], nil
}

// keyString is the string field name as a key, with ok false when it is
// not a string. Keys are not looked up in the field's cache, as values
// are: the lookup was a fifth of a parse worker's time in bench-windows
// (a cache miss a record among 10,000 sensors), and the shard that folds
// the record looks its key up anyway. Its text is copied to the key
// slab instead (keyString), and the shard clones it when it keeps it.
func (s spanFields) keyString(name string) (string, bool) {
	rt := s.rt
	i := fieldIndex(rt.names, name)
	if i < 0 || rt.spans[i].kind != jsonString {
		return "", false
	}
	return rt.keyString(rt.spans[i].raw), true
}

// keyString copies raw to the runtime's key slab and returns it as a
// string. A slab is only appended to, and a full one is left to the
// strings cut from it, so they never change.
func (rt *Runtime) keyString(raw []byte) string {
	if len(raw) == 0 {
		return ""
	}
	if len(rt.keyText)+len(raw) > cap(rt.keyText) {
		rt.keyText = make([]byte, 0, max(keySlab, len(raw)))
	}
	start := len(rt.keyText)
	rt.keyText = append(rt.keyText, raw...)
	return unsafe.String(&rt.keyText[start], len(raw))
}

// keySlab is the bytes of one key slab: a few hundred records' keys.
const keySlab = 4096

func (s spanFields) scalar(name string) (any, error) {
	v, _ := s.value(name)
	if v == nil {
		return nil, fmt.Errorf("is missing")
	}
	return v, nil
}

// spanGo is toGo of the span i's Lua value.
func (rt *Runtime) spanGo(i int) any {
	switch sp := &rt.spans[i]; sp.kind {
	case jsonString:
		return rt.caches[i].goBytes(sp.raw)
	case jsonNumber:
		return rt.caches[i].goNumber(sp.raw)
	case jsonTrue:
		return true
	case jsonFalse:
		return false
	}
	return nil
}

package scripting

import (
	"encoding/csv"
	"fmt"
	"strings"
	"time"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/valyala/fastjson"
	lua "github.com/yuin/gopher-lua"
)

// Runtime runs one pipeline's functions in one sandboxed LState. It
// belongs to one actor and must not be used from two goroutines.
type Runtime struct {
	p      *Pipeline
	sb     *sandbox
	parse  lua.LValue
	filter lua.LValue
	key    lua.LValue
	route  lua.LValue
	routes []string // of the last record Process kept
	// the map step and having (mapstep.go, having.go)
	mapFn, havingFn lua.LValue
	mapped          *lua.LTable
	// event time and per-key hooks (eventtime.go, hooks.go)
	eventFn                     lua.LValue
	onRecord, onWindow, onTimer lua.LValue
	hooks                       *hookContext
	// the max_future bound, recomputed once a watchdog tick rather than
	// calling the clock for every record
	limit, limitTick int64
	aggs             []luaAgg
	luaAggs          bool // some aggregate is written in Lua (aggs)
	jp               fastjson.Parser
	// names and spans serve the JSON scan (jsonscan.go): the fields
	// parse names, and where the last record had them.
	names []string
	spans []jsonSpan
	shape jsonShape   // the keys of the records scanned before
	kinds []spanKinds // each field's types (checkSpans)
	// byName lists the indexes of names in name order (a record's row).
	byName []int
	// goVals are the direct path's fields in Go, converted on first use
	// (goValid) for each record (direct.go).
	goVals  []any
	goValid []bool
	// caches keep the Lua and Go values of field texts seen before, one
	// per parsed field and one for the rest (intern.go).
	caches []valueCache
	// vals is the slab newVals cuts Keyed.Vals from, keyText the one
	// keyString cuts keys from.
	vals    []any
	keyText []byte
	// accs is the slab Portable cut accumulators from, and NewAccs when
	// blocks can't hold the pipeline's aggregates.
	accs accSlab
	// blocks: where NewAccs cuts a key's accumulators, nil when some
	// aggregate is not a built-in one of a field
	blocks *entryBlocks
	// dp parses checkpointed entries and key states (DecodeEntry): one
	// parser reused, as fastjson.ParseBytes allocates one a call.
	dp fastjson.Parser
	// records says whether Process must return the record as a Row.
	records bool
	// rec is the record table reused for every JSON or CSV record: a new
	// table per record costs gopher-lua three maps. A metatable stops the
	// script from adding fields, which would leak into the next record.
	rec *lua.LTable
	// rnd picks the calls whose time is measured (luatime.go)
	rnd uint32
	// subs run each named source's parse, filter, map and event time, in
	// this runtime's sandbox; parent is the runtime a sub belongs to
	// (sources.go).
	subs   map[string]*Runtime
	parent *Runtime
}

// luaAgg holds a Lua aggregate's functions; nil entries for built-ins.
type luaAgg struct{ init, add, merge, result *lua.LFunction }

// NewRuntime runs the pipeline script in a fresh sandbox. With records set,
// Process also returns each kept record as a Row.
func (p *Pipeline) NewRuntime(records bool) (*Runtime, error) {
	sb, tbl, err := p.instantiate()
	if err != nil {
		return nil, err
	}
	// (A join's records output has the joined rows, not the sources'.)
	rt := &Runtime{p: p, records: records && !p.HasJoin()}
	rt.bind(sb, tbl)
	return rt, nil
}

// bind makes the runtime run the pipeline table tbl in sb.
func (rt *Runtime) bind(sb *sandbox, tbl *lua.LTable) {
	p := rt.p
	rt.sb = sb
	rt.parse, rt.filter, rt.key = tbl.RawGetString("parse"), tbl.RawGetString("filter"), tbl.RawGetString("key")
	rt.route, rt.eventFn = tbl.RawGetString("route"), tbl.RawGetString("event_time")
	rt.onRecord, rt.onWindow, rt.onTimer = tbl.RawGetString("on_record"), tbl.RawGetString("on_window"), tbl.RawGetString("on_timer")
	if p.HasKeyHooks() {
		rt.hooks = newHookContext(rt)
	}
	if p.Format == "json" || p.Format == "csv" {
		L := sb.L
		rt.rec = L.CreateTable(0, len(p.Fields))
		meta := L.NewTable()
		meta.RawSetString("__newindex", L.NewFunction(func(L *lua.LState) int {
			L.RaiseError("can't add field %s to the record: parse decides its fields, filter and key only read them", L.ToStringMeta(L.Get(2)))
			return 0
		}))
		L.SetMetatable(rt.rec, meta)
	}
	rt.bindSteps(tbl)
	if rt.parent == nil {
		rt.bindSources(tbl)
	}
	rt.aggs = make([]luaAgg, len(p.Aggregates))
	rt.blocks = newEntryBlocks(p.Aggregates)
	if at, ok := tbl.RawGetString("aggregate").(*lua.LTable); ok {
		for i, a := range p.Aggregates {
			if a.Func != "lua" {
				continue
			}
			rt.luaAggs = true
			t := at.RawGetString(a.Name).(*lua.LTable)
			rt.aggs[i] = luaAgg{
				init:   t.RawGetString("init").(*lua.LFunction),
				add:    t.RawGetString("add").(*lua.LFunction),
				merge:  t.RawGetString("merge").(*lua.LFunction),
				result: t.RawGetString("result").(*lua.LFunction),
			}
		}
	}
}

// call runs one of the script's functions (see sandbox.call). When a call
// over the memory limit left the state holding more than the limit (a
// global table it filled), the runtime starts over in a fresh state, with
// a warning: every later call would fail the same way.
func (rt *Runtime) call(fn lua.LValue, nret int, args ...lua.LValue) error {
	var err error
	if rt.sampled() {
		start := time.Now()
		err = rt.sb.call(fn, nret, args...)
		rt.p.luaTime.nanos[rt.hookOf(fn)].Add(int64(time.Since(start)) * luaSample)
	} else {
		err = rt.sb.call(fn, nret, args...)
	}
	if err != nil && rt.sb.spoiled && rt.parent != nil {
		// A source's runtime shares its pipeline's sandbox: the pipeline's
		// starts afresh, with new runtimes for its sources.
		rt = rt.parent
	}
	if err != nil && rt.sb.spoiled {
		sb, tbl, ierr := rt.p.instantiate()
		if ierr != nil {
			return fmt.Errorf("%w; starting the script afresh failed too: %v", err, ierr)
		}
		rt.p.logger.Warn("the script's state held more than its memory limit after a call failed; it starts afresh, losing what its globals held",
			"script", rt.p.Script, "limit", sizeString(rt.p.MemoryLimit), "error", err)
		rt.sb.close()
		rt.bind(sb, tbl)
	}
	return err
}

// Pipeline returns the pipeline the runtime runs.
func (rt *Runtime) Pipeline() *Pipeline { return rt.p }

// Close releases the LState.
func (rt *Runtime) Close() { rt.sb.close() }

// Keyed is one processed record on its way to aggregation: its key and the
// values the aggregates need.
type Keyed struct {
	// Key is the canonical key: the key field's value, the key fields'
	// values joined by \x1f, or what the key function returned.
	Key string
	// Vals holds the key columns' values then one argument per aggregate.
	// Many records' Vals share one allocation (Runtime.newVals): keeping
	// them past the record's batch means copying them (KeyVals). A single
	// key column whose value is a string read from the record's JSON is
	// nil here: its value is Key, which lies in memory many records'
	// keys share (Runtime.keyString): a key kept past its batch is cloned.
	Vals []any
	// Time is the record's event time in Unix milliseconds, 0 without
	// event time. Watermark is its partition's watermark just before it,
	// set by the engine in source order, so every record is judged (late
	// or not) and every timer fires at the same point of the stream on
	// every run, however records were batched.
	Time, Watermark int64
	// Rec is the whole record, for on_record; nil without it.
	Rec map[string]any
}

// KeyVals returns a copy of the record's n key columns' values, key
// standing for the value Vals leaves out (the Key, as the caller keeps
// it).
func (k *Keyed) KeyVals(n int, key string) []any {
	vals := append([]any(nil), k.Vals[:n]...)
	if n == 1 && vals[0] == nil {
		vals[0] = key
	}
	return vals
}

// Shard maps a key (as a string or its bytes, the same shard for both) to
// one of n shards. The hash (FNV-1a) is fixed, so every process and every
// run agrees on it.
func Shard[K string | []byte](key K, n int) int {
	if n <= 1 {
		return 0
	}
	h := uint64(14695981039346656037)
	for i := 0; i < len(key); i++ {
		h ^= uint64(key[i])
		h *= 1099511628211
	}
	return int(h % uint64(n))
}

// Process parses, filters and keys one raw record. kept is false when the
// filter dropped it (or a parse function returned nil). rec is filled when
// the runtime was made with records set. An error means the record is bad:
// it goes to the dead-letter output; the runtime stays usable.
func (rt *Runtime) Process(raw []byte) (k Keyed, rec connectors.Row, kept bool, err error) {
	return rt.ProcessAt(raw, 0)
}

// ProcessAt is Process for a record the source timestamped at sourceMs
// (Unix milliseconds; 0 for none), which eddy.source_time() event times use.
func (rt *Runtime) ProcessAt(raw []byte, sourceMs int64) (k Keyed, rec connectors.Row, kept bool, err error) {
	kept, err = rt.ProcessInto(raw, sourceMs, &k, &rec)
	return k, rec, kept, err
}

// ProcessInto is ProcessAt that sets *k and *rec (which must be zero)
// instead of returning them: a parse worker's way, as the two (a dozen
// words) were copied through the results of each call down to the
// record's keying, which cost about a tenth of the direct path's CPU a
// record on netflow's.
func (rt *Runtime) ProcessInto(raw []byte, sourceMs int64, k *Keyed, rec *connectors.Row) (kept bool, err error) {
	if rt.p.rowInput {
		*k, *rec, kept, err = rt.processRow(raw)
		return kept, err
	}
	if rt.subs != nil {
		return false, fmt.Errorf("%s reads several sources: a record must say which (ProcessSource)", rt.p.Script)
	}
	if rt.p.direct {
		var handled bool
		if kept, handled, err = rt.processDirect(raw, sourceMs, k, rec); handled {
			return kept, err
		}
	}
	*k, *rec, kept, err = rt.process(rt, "", raw, sourceMs)
	return kept, err
}

// process runs in's parse, filter, map and event time (a named source's,
// or the pipeline's own), then the pipeline's key, hooks and route.
func (rt *Runtime) process(in *Runtime, source string, raw []byte, sourceMs int64) (k Keyed, rec connectors.Row, kept bool, err error) {
	r, err := in.parseRecord(raw)
	if err != nil || r == nil {
		return k, rec, false, err
	}
	if r, err = in.lookupRecord(r); err != nil || r == nil {
		return k, rec, false, err
	}
	if keep, err := in.passes(r); err != nil || !keep {
		return k, rec, false, err
	}
	if r, err = in.mapRecord(r); err != nil || r == nil {
		return k, rec, false, err
	}
	if source != "" {
		r.RawSetString(SourceField, lua.LString(source))
	}
	switch {
	case rt.p.Join != nil:
		if k.Key, err = rt.joinKey(r, source); err != nil {
			return k, rec, false, err
		}
	case rt.p.HasAggregate() || len(rt.p.KeyColumns) > 0:
		if k, err = rt.keyed(r); err != nil {
			return k, rec, false, err
		}
	}
	if in.p.EventTime != nil {
		if k.Time, err = in.eventTime(r, sourceMs); err != nil {
			return k, rec, false, err
		}
		if limit := rt.futureLimit(); k.Time > limit {
			return k, rec, false, fmt.Errorf("event time %s is more than watermark.max_future (%v) ahead of the clock", FormatTime(k.Time), rt.p.Watermark.MaxFuture)
		}
	}
	if rt.p.onRecord || rt.p.Join != nil {
		if k.Rec, err = recordMap(r); err != nil {
			return k, rec, false, fmt.Errorf("on_record: %w", err)
		}
	}
	if rt.records {
		if rt.p.hasRoute {
			if err := rt.routeOf(r); err != nil {
				return k, rec, false, err
			}
		}
		if rec, err = rowOf(r, k.Key); err != nil {
			return k, rec, false, fmt.Errorf("record: %w", err)
		}
	}
	return k, rec, true, nil
}

// futureLimit is the latest event time (Unix ms) a record may carry:
// the clock plus watermark.max_future, within a watchdog tick.
func (rt *Runtime) futureLimit() int64 {
	if t := dog.ticks.Load(); t != rt.limitTick || rt.limit == 0 {
		rt.limit, rt.limitTick = time.Now().Add(rt.p.Watermark.MaxFuture).UnixMilli(), t
	}
	return rt.limit
}

// Routes names the sinks the last record Process kept goes to; nil means
// the default, "records". Valid until the next Process.
func (rt *Runtime) Routes() []string { return rt.routes }

func (rt *Runtime) routeOf(r *lua.LTable) error {
	L := rt.sb.L
	if err := rt.call(rt.route, 1, r); err != nil {
		return fmt.Errorf("route: %w", err)
	}
	v := L.Get(-1)
	L.Pop(1)
	rt.routes = rt.routes[:0]
	switch v := v.(type) {
	case lua.LString:
		rt.routes = append(rt.routes, string(v))
	case *lua.LTable:
		for i := 1; i <= v.Len(); i++ {
			s, ok := v.RawGetInt(i).(lua.LString)
			if !ok {
				return fmt.Errorf("route: %s: entry %d of the returned list is a %s, want a sink name", rt.p.Script, i, v.RawGetInt(i).Type())
			}
			rt.routes = append(rt.routes, string(s))
		}
	case *lua.LNilType:
	default:
		return fmt.Errorf("route: %s: the route function returned a %s, want a sink name or a list of them", rt.p.Script, v.Type())
	}
	return nil
}

func (rt *Runtime) parseRecord(raw []byte) (*lua.LTable, error) {
	L := rt.sb.L
	switch rt.p.Format {
	case "json":
		return rt.parseJSON(raw)
	case "csv":
		return rt.parseCSV(raw)
	case "lua":
		if err := rt.call(rt.parse, 1, lua.LString(raw)); err != nil {
			return nil, fmt.Errorf("parse: %w", err)
		}
		v := L.Get(-1)
		L.Pop(1)
		switch v := v.(type) {
		case *lua.LNilType:
			return nil, nil
		case *lua.LTable:
			return v, nil
		default:
			return nil, fmt.Errorf("parse: %s: the parse function returned a %s, want a table (or nil to skip the line)", rt.p.Script, v.Type())
		}
	default:
		t := L.CreateTable(0, 1)
		t.RawSetString("line", lua.LString(raw))
		return t, nil
	}
}

func (rt *Runtime) parseJSON(raw []byte) (*lua.LTable, error) {
	rt.ensureSpans()
	ok, plain := scanJSONText(raw, rt.names, rt.spans, &rt.shape)
	if !ok {
		return rt.parseJSONTree(raw)
	}
	if err := rt.checkSpans(raw, plain); err != nil {
		return nil, err
	}
	return rt.fillRecord(), nil
}

// parseJSONTree is parseJSON by a whole fastjson tree, for the records
// the scan leaves to fastjson (jsonscan.go).
func (rt *Runtime) parseJSONTree(raw []byte) (*lua.LTable, error) {
	L := rt.sb.L
	v, err := rt.jp.ParseBytes(raw)
	if err != nil {
		return nil, fmt.Errorf("parse: not JSON: %s", shortJSONError(err))
	}
	if v.Type() != fastjson.TypeObject {
		return nil, fmt.Errorf("parse: a JSON %s, want an object", typeName(v))
	}
	if err := rt.checkJSONStrings(raw); err != nil {
		return nil, err
	}
	t := rt.rec
	for i := range rt.p.Fields {
		f := &rt.p.Fields[i]
		fv := v.Get(f.Name)
		if fv == nil || fv.Type() == fastjson.TypeNull {
			if !f.Optional {
				what := "missing"
				if fv != nil {
					what = "null"
				}
				return nil, fmt.Errorf("parse: field %q is %s", f.Name, what)
			}
			t.RawSetString(f.Name, lua.LNil)
			continue
		}
		if !typeOK(fv, f.Types) {
			return nil, fmt.Errorf("parse: field %q is a %s, want %s", f.Name, typeName(fv), strings.Join(f.Types, " or "))
		}
		t.RawSetString(f.Name, jsonToLua(L, fv))
	}
	return t, nil
}

func typeOK(v *fastjson.Value, types []string) bool {
	for _, t := range types {
		switch t {
		case "any":
			return true
		case "string":
			if v.Type() == fastjson.TypeString {
				return true
			}
		case "number":
			if v.Type() == fastjson.TypeNumber {
				return true
			}
		case "integer":
			if v.Type() == fastjson.TypeNumber {
				if f := v.GetFloat64(); f == float64(int64(f)) {
					return true
				}
			}
		case "boolean":
			if v.Type() == fastjson.TypeTrue || v.Type() == fastjson.TypeFalse {
				return true
			}
		case "table":
			if v.Type() == fastjson.TypeObject || v.Type() == fastjson.TypeArray {
				return true
			}
		}
	}
	return false
}

func (rt *Runtime) parseCSV(raw []byte) (*lua.LTable, error) {
	r := csv.NewReader(strings.NewReader(string(raw)))
	r.Comma = rt.p.csvSep
	r.FieldsPerRecord = -1
	cells, err := r.Read()
	if err != nil {
		return nil, fmt.Errorf("parse: not CSV: %v", err)
	}
	if rt.p.csvHeader && len(cells) == len(rt.p.Fields) {
		header := true
		for i, f := range rt.p.Fields {
			if cells[i] != f.Name {
				header = false
			}
		}
		if header {
			return nil, nil
		}
	}
	if len(cells) != len(rt.p.Fields) {
		return nil, fmt.Errorf("parse: %d CSV columns, want %d (%s)", len(cells), len(rt.p.Fields), fieldNames(rt.p.Fields))
	}
	t := rt.rec
	for i, c := range cells {
		t.RawSetString(rt.p.Fields[i].Name, lua.LString(c))
	}
	return t, nil
}

func fieldNames(fs []FieldSpec) string {
	names := make([]string, len(fs))
	for i, f := range fs {
		names[i] = f.Name
	}
	return strings.Join(names, ", ")
}

func (rt *Runtime) keyed(r *lua.LTable) (Keyed, error) {
	p := rt.p
	if !p.keyFunc {
		return rt.keyedBy(tableFields{rt, r})
	}
	k := Keyed{Vals: rt.newVals(len(p.KeyColumns) + len(p.Aggregates))}
	if err := rt.call(rt.key, 1, r); err != nil {
		return k, fmt.Errorf("key: %w", err)
	}
	v := rt.sb.L.Get(-1)
	rt.sb.L.Pop(1)
	switch v := v.(type) {
	case lua.LString:
		k.Key, k.Vals[0] = string(v), string(v)
	case lua.LNumber:
		k.Key, k.Vals[0] = lua.LVAsString(v), number(float64(v))
	default:
		return k, fmt.Errorf("key: %s: the key function returned a %s, want a string or number", p.Script, v.Type())
	}
	return k, rt.aggregateArgs(&k, tableFields{rt, r}, r)
}

// newVals returns n zeroed values for one record's Keyed.Vals, cut from a
// slab many records share: one allocation for hundreds of records. The
// slab is only ever appended to, so what was handed out stays the
// record's; whoever keeps a record's Vals past its batch (a new state
// entry) copies them, or would keep the whole slab alive.
func (rt *Runtime) newVals(n int) []any {
	if len(rt.vals)+n > cap(rt.vals) {
		rt.vals = make([]any, 0, valsSlab*max(n, 1))
	}
	start := len(rt.vals)
	rt.vals = rt.vals[:start+n]
	vals := rt.vals[start : start+n : start+n]
	clear(vals) // (a slab given to UseVals holds an earlier batch's)
	return vals
}

// UseVals has the records processed next cut their Vals from slab (its
// whole capacity) rather than from the runtime's own slabs, for a caller
// that reuses a batch's memory once nothing reads its records; nil goes
// back to the runtime's own. Those records' Vals are the caller's to keep
// alive and to reuse.
func (rt *Runtime) UseVals(slab []any) { rt.vals = slab[:0] }

// valsSlab is the records one newVals slab serves.
const valsSlab = 256

// keyedBy keys a record by its key columns, read from fs.
func (rt *Runtime) keyedBy(fs recordFields) (Keyed, error) {
	p := rt.p
	k := Keyed{Vals: rt.newVals(len(p.KeyColumns) + len(p.Aggregates))}
	if len(p.KeyColumns) == 1 {
		if sf, ok := fs.(spanFields); ok {
			if key, ok := sf.keyString(p.KeyColumns[0]); ok {
				k.Key = key // (and Vals[0] left nil: see Keyed.Vals)
				return k, rt.aggregateArgs(&k, fs, nil)
			}
		}
		v, err := fs.scalar(p.KeyColumns[0])
		if err != nil {
			return k, fmt.Errorf("key: field %q %w", p.KeyColumns[0], err)
		}
		k.Vals[0] = v
		if s, ok := v.(string); ok {
			k.Key = s
		} else {
			k.Key = string(connectors.AppendValue(nil, v))
		}
	} else if len(p.KeyColumns) > 1 {
		var sb strings.Builder
		for i, col := range p.KeyColumns {
			v, err := fs.scalar(col)
			if err != nil {
				return k, fmt.Errorf("key: field %q %w", col, err)
			}
			k.Vals[i] = v
			if i > 0 {
				sb.WriteByte(0x1f)
			}
			if s, ok := v.(string); ok {
				sb.WriteString(s)
			} else {
				sb.Write(connectors.AppendValue(nil, v))
			}
		}
		k.Key = sb.String()
	}
	var r *lua.LTable
	if t, ok := fs.(tableFields); ok {
		r = t.r
	}
	return k, rt.aggregateArgs(&k, fs, r)
}

// aggregateArgs sets each aggregate's argument in k.Vals from fs (a Lua
// aggregate's is the whole record table r).
func (rt *Runtime) aggregateArgs(k *Keyed, fs recordFields, r *lua.LTable) error {
	p := rt.p
	base := len(p.KeyColumns)
	for i, a := range p.Aggregates {
		var err error
		switch a.Func {
		case "count":
		case "lua":
			k.Vals[base+i], err = toGo(r)
		case "top":
			var v, by any
			if v, err = fs.value(a.Field); err == nil && a.By != "" {
				by, err = fs.value(a.By)
				v = []any{v, by}
			}
			k.Vals[base+i] = v
		default:
			k.Vals[base+i], err = fs.value(a.Field)
		}
		if err != nil {
			return fmt.Errorf("aggregate %s: %w", a.Name, err)
		}
	}
	return nil
}

// scalar converts a key field's value; tables and missing fields can't be
// keys.
func scalar(v lua.LValue) (any, error) {
	switch v := v.(type) {
	case lua.LString:
		return string(v), nil
	case lua.LNumber:
		return number(float64(v)), nil
	case lua.LBool:
		return bool(v), nil
	case *lua.LNilType:
		return nil, fmt.Errorf("is missing")
	}
	return nil, fmt.Errorf("is a %s, want a string, number or boolean", v.Type())
}

func recordMap(r *lua.LTable) (map[string]any, error) {
	g, err := toGo(r)
	if err != nil {
		return nil, err
	}
	m, ok := g.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("a record must be a table of named fields")
	}
	return m, nil
}

// rowOf turns a record table into a Row with its fields in name order.
func rowOf(r *lua.LTable, key string) (connectors.Row, error) {
	g, err := toGo(r)
	if err != nil {
		return connectors.Row{}, err
	}
	m, ok := g.(map[string]any)
	if !ok {
		return connectors.Row{}, fmt.Errorf("a record must be a table of named fields")
	}
	row := connectors.Row{Key: key, Fields: make([]connectors.Field, 0, len(m))}
	for _, name := range sortedKeys(m) {
		row.Fields = append(row.Fields, connectors.Field{Name: name, Value: m[name]})
	}
	return row, nil
}

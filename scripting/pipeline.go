package scripting

import (
	"crypto/sha256"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	lua "github.com/yuin/gopher-lua"
)

// Emit modes, as Spark's output modes.
const (
	EmitUpdate   = "update"   // rows whose value changed, at every trigger
	EmitComplete = "complete" // the whole result table, at every trigger
	EmitFinal    = "final"    // the whole result table once, when the input ends
)

// DefaultCallTimeout is how long one call into the script may run.
const DefaultCallTimeout = 2 * time.Second

// Pipeline is what a pipeline file asks for, validated. It is immutable and
// safe to share; each actor makes its own Runtime from it.
type Pipeline struct {
	// Name is the pipeline's name (the table's name field, or the file's).
	Name string
	// File is the path the pipeline was loaded from; Script its base name,
	// which errors use ("netflow.lua:14: …").
	File, Script string
	// Hash is the SHA-256 of the script's source, in hex: which version
	// of the file runs.
	Hash string
	// Source is the URI of the source, "" when the script names none.
	Source string
	// Sinks maps outputs ("results", "records", "dead_letter") to URIs.
	Sinks map[string]string
	// Format is the parse format: "json", "csv", "lines" or "lua".
	Format string
	// Fields are the JSON or CSV fields the script projects.
	Fields []FieldSpec
	// KeyColumns name the result's key columns: the key fields, or "key"
	// when a function computes the key. Empty for a global aggregate.
	KeyColumns []string
	// Aggregates are the result's aggregate columns, in output order.
	Aggregates []AggSpec
	// OrderBy and Limit shape the result table (complete and final emits).
	OrderBy []Order
	Limit   int
	// Emit is the emit mode, one of the Emit constants.
	Emit string
	// CallTimeout bounds each call into the script.
	CallTimeout time.Duration
	// MemoryLimit bounds what each of the pipeline's Lua states holds, in
	// bytes.
	MemoryLimit int64
	// Tests are the inline tests.
	Tests []Test
	// EventTime, Watermark, Window and AllowedLateness configure event
	// time (eventtime.go); nil EventTime and Window when unused.
	EventTime       *EventTime
	Watermark       Watermark
	Window          *Window
	AllowedLateness time.Duration
	// Sources are the named sources of a pipeline that reads several
	// (sources.go), sorted by name; Join joins two of them (join.go).
	Sources []NamedSource
	Join    *Join
	// Stages are the aggregations after the first (stages.go), each reading
	// the rows of the one before; empty for a one-stage pipeline.
	Stages []*Pipeline

	stage                        int      // a later stage's number in stages; 0 otherwise
	input                        []string // a later stage's input columns
	rowInput                     bool     // a later stage run on its own, over rows as JSON (stageinput.go)
	hasFilter, keyFunc, hasRoute bool
	steps                        steps // declarative filter, map and having (mapstep.go)
	direct                       bool  // records take the direct path (direct.go)
	onRecord, onWindow, onTimer  bool
	csvHeader                    bool
	jsonKeepInvalid              bool // eddy.json's invalid_utf8 = "keep"
	csvSep                       rune
	proto                        *lua.FunctionProto
	logger                       *slog.Logger
	lookups                      map[string]*lookupTable // lookup.go
	lookupStep                   *lookupStep             // lookup_step.go
	intr                         *interrupts             // limits.go
	fixed                        fixedLimits             // limits.go
	luaTime                      *luaTimes               // luatime.go
}

// FieldSpec is one projected field and the types it may have.
type FieldSpec struct {
	Name     string
	Types    []string // "string", "number", "integer", "boolean", "table", "any"
	Optional bool     // missing or null is allowed
}

// AggSpec is one aggregate column.
type AggSpec struct {
	Name  string
	Func  string // count, sum, min, max, avg, count_distinct, top, lua
	Field string
	By    string
	N     int
}

// Order is one sort key of the result table.
type Order struct {
	Column string
	Desc   bool
}

// Test is one inline test of a pipeline.
type Test struct {
	Name  string
	Input []string
	// Inputs are the lines of each named source, for a pipeline with
	// several (input = { person = { … }, auction = { … } }).
	Inputs map[string][]string
	// Want are the result rows a final emit gives, in order; WantRecords
	// the records output; WantOutputs the rows of named sinks a route
	// function picks. Nil means not checked.
	Want, WantRecords []map[string]any
	WantOutputs       map[string][]map[string]any
	// DeadLetters is the number of records expected to fail, Late the
	// number expected after their window closed; -1 unchecked.
	DeadLetters, Late int
}

// HasAggregate says whether the pipeline keeps a result table.
func (p *Pipeline) HasAggregate() bool { return len(p.Aggregates) > 0 }

// Columns lists the result table's columns: key columns, the window's
// start and end for windowed pipelines, then aggregates.
func (p *Pipeline) Columns() []string {
	cols := append([]string(nil), p.KeyColumns...)
	if p.Window != nil {
		cols = append(cols, WindowColumns...)
	}
	for _, a := range p.Aggregates {
		cols = append(cols, a.Name)
	}
	return cols
}

// LoadOption adjusts how a pipeline loads.
type LoadOption func(*Pipeline)

// WithLogger sends the script's log calls and print to l.
func WithLogger(l *slog.Logger) LoadOption { return func(p *Pipeline) { p.logger = l } }

// Load reads, compiles and validates a pipeline file.
func Load(path string, opts ...LoadOption) (*Pipeline, error) {
	src, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("pipeline: %w", err)
	}
	return LoadSource(path, src, opts...)
}

// LoadSource is Load for a script already in memory; path names it.
func LoadSource(path string, src []byte, opts ...LoadOption) (*Pipeline, error) {
	script := filepath.Base(path)
	p := &Pipeline{File: path, Script: script, Hash: fmt.Sprintf("%x", sha256.Sum256(src)), CallTimeout: DefaultCallTimeout, MemoryLimit: DefaultMemoryLimit,
		logger: slog.Default(), intr: newInterrupts(), luaTime: &luaTimes{}}
	for _, o := range opts {
		o(p)
	}
	if err := p.checkLimits(); err != nil {
		return nil, fmt.Errorf("%s: %w", script, err)
	}
	var err error
	if p.proto, err = compile(src, script); err != nil {
		return nil, err
	}
	sb, tbl, err := p.instantiate()
	if err != nil {
		return nil, err
	}
	defer sb.close()
	if err := p.read(tbl); err != nil {
		return nil, fmt.Errorf("%s: pipeline table: %w", script, err)
	}
	return p, nil
}

// instantiate runs the compiled chunk in a new sandbox and returns the
// pipeline table it returns.
func (p *Pipeline) instantiate() (*sandbox, *lua.LTable, error) {
	sb := newSandbox(p)
	installLookup(sb, p)
	if err := sb.call(sb.L.NewFunctionFromProto(p.proto), 1); err != nil {
		sb.close()
		return nil, nil, err
	}
	ret := sb.L.Get(-1)
	sb.L.Pop(1)
	tbl, ok := ret.(*lua.LTable)
	if !ok {
		sb.close()
		return nil, nil, fmt.Errorf("%s: the script must return a pipeline table, it returned %s", p.Script, ret.Type())
	}
	tbl, err := p.stageTable(tbl)
	if err != nil {
		sb.close()
		return nil, nil, err
	}
	return sb, tbl, nil
}

var knownFields = map[string]bool{
	"name": true, "source": true, "sinks": true, "sink": true, "parse": true, "filter": true, "key": true,
	"aggregate": true, "columns": true, "order_by": true, "limit": true, "emit": true, "tests": true,
	"call_timeout": true, "memory_limit": true, "route": true, "event_time": true, "watermark": true, "window": true,
	"allowed_lateness": true, "on_record": true, "on_window": true, "on_timer": true,
	"lookups": true, "lookup": true, "map": true, "having": true, "sources": true, "join": true, "stages": true,
}

func (p *Pipeline) read(t *lua.LTable) error {
	var errs []string
	t.ForEach(func(k, _ lua.LValue) {
		if ks, ok := k.(lua.LString); !ok || !knownFields[string(ks)] {
			errs = append(errs, fmt.Sprintf("unknown field %s (known: %s)", k, strings.Join(sortedKeys(knownFields), ", ")))
		}
	})
	if len(errs) > 0 {
		sort.Strings(errs)
		return fmt.Errorf("%s", errs[0])
	}
	p.Name = strings.TrimSuffix(p.Script, filepath.Ext(p.Script))
	if v := t.RawGetString("name"); v != lua.LNil {
		s, ok := v.(lua.LString)
		if !ok || s == "" {
			return fmt.Errorf("name: want a non-empty string, got %s", v.Type())
		}
		p.Name = string(s)
	}
	if v := t.RawGetString("source"); v != lua.LNil {
		s, ok := v.(lua.LString)
		if !ok {
			return fmt.Errorf("source: want a URI string, got %s", v.Type())
		}
		p.Source = string(s)
	}
	if err := p.readSources(t); err != nil {
		return err
	}
	if err := p.readSinks(t); err != nil {
		return err
	}
	if err := p.readLookups(t.RawGetString("lookups")); err != nil {
		return err
	}
	if err := p.readLimits(t); err != nil {
		return err
	}
	if !p.HasSources() {
		if err := p.readParse(t.RawGetString("parse")); err != nil {
			return fmt.Errorf("parse: %w", err)
		}
	}
	if err := p.readLookupStep(t.RawGetString("lookup")); err != nil {
		return err
	}
	switch v := t.RawGetString("filter"); v.(type) {
	case *lua.LNilType:
	case *lua.LFunction:
		p.hasFilter = true
	default:
		pred, err := readPredicate(v)
		if err != nil {
			return fmt.Errorf("filter: want a function(record) returning true to keep it, or a declarative filter: %w", err)
		}
		p.steps.filter = pred
	}
	if err := p.readMap(t.RawGetString("map")); err != nil {
		return err
	}
	switch v := t.RawGetString("route"); v.(type) {
	case *lua.LNilType:
	case *lua.LFunction:
		p.hasRoute = true
	default:
		return fmt.Errorf("route: want a function(record) returning the name of a sink (or a list of names), got %s", v.Type())
	}
	if err := p.readKey(t.RawGetString("key")); err != nil {
		return fmt.Errorf("key: %w", err)
	}
	if err := p.readAggregates(t.RawGetString("aggregate"), t.RawGetString("columns")); err != nil {
		return err
	}
	if err := p.checkProjected(); err != nil {
		return err
	}
	if err := p.readEventTime(t); err != nil {
		return err
	}
	if err := p.checkMapMakesEventTime(); err != nil {
		return err
	}
	p.shareWatermark()
	if err := p.readJoin(t); err != nil {
		return err
	}
	if !p.hasRoute && !p.HasKeyHooks() {
		for _, name := range sortedKeys(p.Sinks) {
			switch name {
			case "results", "records", "dead_letter", "main", "late":
			default:
				return fmt.Errorf("sinks.%s: nothing sends records there (the outputs are results, records, late and dead_letter; a route function or ctx.emit in on_record, on_window or on_timer sends to named sinks)", name)
			}
		}
	}
	if err := p.readResultShape(t); err != nil {
		return err
	}
	if err := p.readHaving(t.RawGetString("having")); err != nil {
		return err
	}
	if err := p.readStages(t); err != nil {
		return err
	}
	p.direct = p.canGoDirect(t)
	return p.readTests(t.RawGetString("tests"))
}

func (p *Pipeline) readSinks(t *lua.LTable) error {
	p.Sinks = map[string]string{}
	if v := t.RawGetString("sink"); v != lua.LNil {
		s, ok := v.(lua.LString)
		if !ok {
			return fmt.Errorf("sink: want a URI string, got %s", v.Type())
		}
		p.Sinks["main"] = string(s)
	}
	v := t.RawGetString("sinks")
	if v == lua.LNil {
		return nil
	}
	st, ok := v.(*lua.LTable)
	if !ok {
		return fmt.Errorf("sinks: want a table such as { results = \"stdout\" }, got %s", v.Type())
	}
	var err error
	st.ForEach(func(k, u lua.LValue) {
		name, _ := k.(lua.LString)
		if !validName(string(name)) || name == "main" {
			err = fmt.Errorf("sinks: %s is not a sink name: use letters, digits and _ (results, records, dead_letter, or a name route returns)", k)
			return
		}
		s, ok := u.(lua.LString)
		if !ok {
			err = fmt.Errorf("sinks.%s: want a URI string, got %s", name, u.Type())
			return
		}
		p.Sinks[string(name)] = string(s)
	})
	return err
}

// parseExample shows each parse constructor called, for the refusal of an
// uncalled one.
var parseExample = map[string]string{
	"json":  `eddy.json{ dstdevice = "string" }`,
	"csv":   `eddy.csv{ fields = { "time", "sensor", "value" } }`,
	"lines": "eddy.lines()",
}

var typeNames = map[string]bool{"string": true, "number": true, "integer": true, "boolean": true, "table": true, "any": true}

func (p *Pipeline) readParse(v lua.LValue) error {
	switch v := v.(type) {
	case *lua.LNilType:
		p.Format = "lines"
		return nil
	case *lua.LFunction:
		if kind, ok := constructorOf(v); ok {
			return fmt.Errorf("eddy.%s is a constructor: call it, as in %s", kind, parseExample[kind])
		}
		p.Format = "lua"
		return nil
	case *lua.LTable:
		kind, _ := v.RawGetString(specKind).(lua.LString)
		switch kind {
		case "lines":
			p.Format = "lines"
			return nil
		case "json":
			p.Format = "json"
			fields, err := readFieldSpecs(v.RawGetString("fields").(*lua.LTable))
			p.Fields = fields
			if err != nil {
				return err
			}
			return p.readJSONOptions(v.RawGetString("options"))
		case "csv":
			p.Format = "csv"
			return p.readCSV(v.RawGetString("options").(*lua.LTable))
		}
	}
	return fmt.Errorf("want eddy.json{...}, eddy.csv{...}, eddy.lines() or a function(line), got %s", v.Type())
}

// readFieldSpecs accepts { "a", "b" } (any type) or { a = "string", b =
// "string|number?" }.
func readFieldSpecs(t *lua.LTable) ([]FieldSpec, error) {
	var out []FieldSpec
	var err error
	t.ForEach(func(k, v lua.LValue) {
		if err != nil {
			return
		}
		switch k := k.(type) {
		case lua.LNumber:
			name, ok := v.(lua.LString)
			if !ok {
				err = fmt.Errorf("field list entry %v: want a field name, got %s", k, v.Type())
				return
			}
			out = append(out, FieldSpec{Name: string(name), Types: []string{"any"}, Optional: true})
		case lua.LString:
			ts, ok := v.(lua.LString)
			if !ok {
				err = fmt.Errorf("field %q: want a type such as \"string\" or \"string|number?\", got %s", string(k), v.Type())
				return
			}
			f := FieldSpec{Name: string(k)}
			spec := string(ts)
			if strings.HasSuffix(spec, "?") {
				f.Optional, spec = true, strings.TrimSuffix(spec, "?")
			}
			for _, tn := range strings.Split(spec, "|") {
				if !typeNames[tn] {
					err = fmt.Errorf("field %q: unknown type %q (known: %s)", string(k), tn, strings.Join(sortedKeys(typeNames), ", "))
					return
				}
				f.Types = append(f.Types, tn)
			}
			out = append(out, f)
		}
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	for i := 1; i < len(out) && err == nil; i++ {
		if out[i].Name == out[i-1].Name {
			// both in the list and with a type: the second would unset the
			// first in the record
			err = fmt.Errorf("field %q is listed twice", out[i].Name)
		}
	}
	if err == nil && len(out) == 0 {
		err = fmt.Errorf("eddy.json needs the fields to project, such as eddy.json{ dstdevice = \"string\" }")
	}
	return out, err
}

func (p *Pipeline) readCSV(o *lua.LTable) error {
	p.csvSep = ','
	if s, ok := o.RawGetString("sep").(lua.LString); ok {
		if len([]rune(string(s))) != 1 {
			return fmt.Errorf("eddy.csv: sep must be one character, got %q", string(s))
		}
		p.csvSep = []rune(string(s))[0]
	}
	p.csvHeader = lua.LVAsBool(o.RawGetString("header"))
	ft, ok := o.RawGetString("fields").(*lua.LTable)
	if !ok {
		return fmt.Errorf("eddy.csv: want fields = { \"name\", … } in column order")
	}
	for i := 1; i <= ft.Len(); i++ {
		name, ok := ft.RawGetInt(i).(lua.LString)
		if !ok {
			return fmt.Errorf("eddy.csv: fields[%d] is not a name", i)
		}
		p.Fields = append(p.Fields, FieldSpec{Name: string(name), Types: []string{"string"}, Optional: true})
	}
	if len(p.Fields) == 0 {
		return fmt.Errorf("eddy.csv: fields is empty")
	}
	return nil
}

func (p *Pipeline) readKey(v lua.LValue) error {
	switch v := v.(type) {
	case *lua.LNilType:
	case lua.LString:
		p.KeyColumns = []string{string(v)}
	case *lua.LFunction:
		p.keyFunc = true
		p.KeyColumns = []string{"key"}
	case *lua.LTable:
		for i := 1; i <= v.Len(); i++ {
			s, ok := v.RawGetInt(i).(lua.LString)
			if !ok {
				return fmt.Errorf("key[%d]: want a field name", i)
			}
			p.KeyColumns = append(p.KeyColumns, string(s))
		}
		if len(p.KeyColumns) == 0 {
			return fmt.Errorf("want a field name, a list of them, or a function(record)")
		}
	default:
		return fmt.Errorf("want a field name, a list of them, or a function(record), got %s", v.Type())
	}
	return nil
}

func (p *Pipeline) readAggregates(v, cols lua.LValue) error {
	if v == lua.LNil {
		return nil
	}
	t, ok := v.(*lua.LTable)
	if !ok {
		return fmt.Errorf("aggregate: want a table such as { count = eddy.count() }, got %s", v.Type())
	}
	var err error
	t.ForEach(func(k, a lua.LValue) {
		if err != nil {
			return
		}
		name, ok := k.(lua.LString)
		if !ok {
			err = fmt.Errorf("aggregate: keys are column names, got %s", k.Type())
			return
		}
		var spec AggSpec
		spec, err = readAgg(string(name), a)
		p.Aggregates = append(p.Aggregates, spec)
	})
	if err != nil {
		return fmt.Errorf("aggregate.%w", err)
	}
	sort.Slice(p.Aggregates, func(i, j int) bool { return p.Aggregates[i].Name < p.Aggregates[j].Name })
	if cols == lua.LNil {
		return nil
	}
	ct, ok := cols.(*lua.LTable)
	if !ok || ct.Len() != len(p.Aggregates) {
		return fmt.Errorf("columns: want the %d aggregate names in output order", len(p.Aggregates))
	}
	ordered := make([]AggSpec, 0, len(p.Aggregates))
	for i := 1; i <= ct.Len(); i++ {
		name := lua.LVAsString(ct.RawGetInt(i))
		found := false
		for _, a := range p.Aggregates {
			if a.Name == name {
				ordered, found = append(ordered, a), true
			}
		}
		if !found {
			return fmt.Errorf("columns[%d]: %q is not an aggregate", i, name)
		}
	}
	p.Aggregates = ordered
	return nil
}

func readAgg(name string, v lua.LValue) (AggSpec, error) {
	spec := AggSpec{Name: name}
	t, ok := v.(*lua.LTable)
	if !ok {
		return spec, fmt.Errorf("%s: want eddy.count(), eddy.sum(\"field\"), … or a table with init/add/merge/result functions, got %s", name, v.Type())
	}
	if kind, ok := t.RawGetString(specKind).(lua.LString); ok {
		spec.Func = string(kind)
		spec.Field = lua.LVAsString(t.RawGetString("field"))
		spec.By = lua.LVAsString(t.RawGetString("by"))
		if n, ok := t.RawGetString("n").(lua.LNumber); ok {
			spec.N = int(n)
			if spec.N < 1 {
				return spec, fmt.Errorf("%s: eddy.top needs n >= 1, got %d", name, spec.N)
			}
		}
		switch spec.Func {
		case "count", "sum", "min", "max", "avg", "count_distinct", "top":
			return spec, nil
		}
		return spec, fmt.Errorf("%s: eddy.%s is not an aggregate", name, spec.Func)
	}
	for _, fn := range []string{"init", "add", "merge", "result"} {
		if _, ok := t.RawGetString(fn).(*lua.LFunction); !ok {
			return spec, fmt.Errorf("%s: a Lua aggregate needs an %s function", name, fn)
		}
	}
	spec.Func = "lua"
	return spec, nil
}

func (p *Pipeline) readResultShape(t *lua.LTable) error {
	p.Emit = EmitUpdate
	if p.AggregatesJoin() && p.Window != nil {
		p.Emit = EmitFinal // (readJoinAggregate refused any other)
	}
	if v := t.RawGetString("emit"); v != lua.LNil {
		if err := p.SetEmit(lua.LVAsString(v)); err != nil {
			return err
		}
	}
	if v := t.RawGetString("limit"); v != lua.LNil {
		n, ok := v.(lua.LNumber)
		if !ok || n < 1 || float64(n) != float64(int(n)) {
			return fmt.Errorf("limit: want a whole number >= 1, got %s", v)
		}
		p.Limit = int(n)
	}
	if v := t.RawGetString("order_by"); v != lua.LNil {
		ot, ok := v.(*lua.LTable)
		if !ok {
			return fmt.Errorf("order_by: want a list such as { \"count desc\", \"dstdevice\" }, got %s", v.Type())
		}
		cols := map[string]bool{}
		for _, c := range p.Columns() {
			cols[c] = true
		}
		for i := 1; i <= ot.Len(); i++ {
			words := strings.Fields(lua.LVAsString(ot.RawGetInt(i)))
			if len(words) == 0 || len(words) > 2 || (len(words) == 2 && words[1] != "asc" && words[1] != "desc") {
				return fmt.Errorf("order_by[%d]: want \"column\", \"column asc\" or \"column desc\"", i)
			}
			if !cols[words[0]] {
				return fmt.Errorf("order_by[%d]: %q is not a result column (columns: %s)", i, words[0], strings.Join(p.Columns(), ", "))
			}
			p.OrderBy = append(p.OrderBy, Order{Column: words[0], Desc: len(words) == 2 && words[1] == "desc"})
		}
	}
	if !p.HasAggregate() && (p.Limit > 0 || len(p.OrderBy) > 0) {
		return fmt.Errorf("order_by and limit shape a result table: add an aggregate")
	}
	return nil
}

func validName(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// Outputs names the sinks kept records go to: the names in sinks other
// than results and dead_letter, and "records" (the default route).
func (p *Pipeline) Outputs() []string {
	out := []string{}
	seen := map[string]bool{}
	for _, name := range append([]string{"records"}, sortedKeys(p.Sinks)...) {
		if name == "results" || name == "dead_letter" || name == "main" || name == "late" || seen[name] {
			continue
		}
		seen[name] = true
		out = append(out, name)
	}
	return out
}

// HasRoute says whether a route function picks each record's sinks.
func (p *Pipeline) HasRoute() bool { return p.hasRoute }

// SetEmit overrides the emit mode (the --emit flag): the last stage's.
func (p *Pipeline) SetEmit(mode string) error {
	if len(p.Stages) > 0 {
		return p.setLastEmit(mode)
	}
	switch mode {
	case EmitUpdate, EmitComplete, EmitFinal:
		p.Emit = mode
		return nil
	}
	return fmt.Errorf("emit: want update, complete or final, got %q", mode)
}

func (p *Pipeline) readTests(v lua.LValue) error {
	if v == lua.LNil {
		return nil
	}
	tt, ok := v.(*lua.LTable)
	if !ok {
		return fmt.Errorf("tests: want a list of tests, got %s", v.Type())
	}
	for i := 1; i <= tt.Len(); i++ {
		t, ok := tt.RawGetInt(i).(*lua.LTable)
		if !ok {
			return fmt.Errorf("tests[%d]: want a table with name, input and want", i)
		}
		tc := Test{Name: lua.LVAsString(t.RawGetString("name")), DeadLetters: -1, Late: -1}
		if tc.Name == "" {
			tc.Name = fmt.Sprintf("test %d", i)
		}
		in, ok := t.RawGetString("input").(*lua.LTable)
		if !ok {
			return fmt.Errorf("tests[%d] (%s): input: want a list of lines", i, tc.Name)
		}
		var err error
		if p.HasSources() {
			if tc.Inputs, err = p.readSourceInputs(in); err != nil {
				return fmt.Errorf("tests[%d] (%s): input: %w", i, tc.Name, err)
			}
		}
		for j := 1; j <= in.Len(); j++ {
			tc.Input = append(tc.Input, lua.LVAsString(in.RawGetInt(j)))
		}
		if tc.Want, err = readRows(t.RawGetString("want")); err != nil {
			return fmt.Errorf("tests[%d] (%s): want: %w", i, tc.Name, err)
		}
		if tc.WantRecords, err = readRows(t.RawGetString("want_records")); err != nil {
			return fmt.Errorf("tests[%d] (%s): want_records: %w", i, tc.Name, err)
		}
		if wo, ok := t.RawGetString("want_outputs").(*lua.LTable); ok {
			tc.WantOutputs = map[string][]map[string]any{}
			wo.ForEach(func(k, v lua.LValue) {
				if err != nil {
					return
				}
				var rows []map[string]any
				if rows, err = readRows(v); err == nil {
					tc.WantOutputs[lua.LVAsString(k)] = rows
				}
			})
			if err != nil {
				return fmt.Errorf("tests[%d] (%s): want_outputs: %w", i, tc.Name, err)
			}
		}
		if n, ok := t.RawGetString("dead_letters").(lua.LNumber); ok {
			tc.DeadLetters = int(n)
		}
		if n, ok := t.RawGetString("late").(lua.LNumber); ok {
			tc.Late = int(n)
		}
		p.Tests = append(p.Tests, tc)
	}
	return nil
}

func readRows(v lua.LValue) ([]map[string]any, error) {
	if v == lua.LNil {
		return nil, nil
	}
	g, err := toGo(v)
	if err != nil {
		return nil, err
	}
	if m, ok := g.(map[string]any); ok && len(m) == 0 {
		return []map[string]any{}, nil
	}
	list, ok := g.([]any)
	if !ok {
		return nil, fmt.Errorf("want a list of rows")
	}
	rows := make([]map[string]any, len(list))
	for i, r := range list {
		m, ok := r.(map[string]any)
		if !ok {
			return nil, fmt.Errorf("row %d is not a table of fields", i+1)
		}
		rows[i] = m
	}
	return rows, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

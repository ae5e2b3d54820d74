package scripting

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/eddy-stream/eddy/connectors"
	lua "github.com/yuin/gopher-lua"
)

// Several sources. A pipeline may read several named sources instead of
// one:
//
//	sources = {
//	  person  = { uri = "file:persons.json", parse = eddy.json{…}, event_time = "date_time" },
//	  auction = { uri = "file:auctions.json", parse = eddy.json{…}, filter = …, map = …, event_time = … },
//	}
//
// Each source parses, filters, maps and stamps event time on its own
// records; what follows (key, aggregate, route, or a join) sees every
// source's records, each tagged with its source's name in the field
// SourceField. The watermark is the minimum over the sources.

// SourceField is the field naming the source a record came from, in a
// pipeline with several sources.
const SourceField = "_source"

// NamedSource is one of a pipeline's several sources.
type NamedSource struct {
	Name string
	// URI is where it reads, "" when the script leaves it to --source.
	URI string
	sub *Pipeline // its parse, filter, map and event time
}

// Fields lists the fields the source's records have after its map (nil
// when a function decides them).
func (s NamedSource) Fields() []string {
	names, _ := s.sub.recordFields()
	return names
}

var knownSourceFields = map[string]bool{"uri": true, "parse": true, "filter": true, "map": true, "event_time": true}

// HasSources says whether the pipeline reads several named sources.
func (p *Pipeline) HasSources() bool { return len(p.Sources) > 0 }

// SourceNames lists the named sources, sorted.
func (p *Pipeline) SourceNames() []string {
	out := make([]string, len(p.Sources))
	for i, s := range p.Sources {
		out[i] = s.Name
	}
	return out
}

// source returns the named source, nil when there is none.
func (p *Pipeline) source(name string) *NamedSource {
	for i := range p.Sources {
		if p.Sources[i].Name == name {
			return &p.Sources[i]
		}
	}
	return nil
}

// readSources reads the sources table. A pipeline with one refuses the
// single-source fields, which would leave it unclear which source they
// apply to.
func (p *Pipeline) readSources(t *lua.LTable) error {
	v := t.RawGetString("sources")
	if v == lua.LNil {
		return nil
	}
	st, ok := v.(*lua.LTable)
	if !ok {
		return fmt.Errorf("sources: want a table such as { bid = { uri = \"file:bids.json\", parse = eddy.json{…} } }, got %s", v.Type())
	}
	for _, f := range []string{"source", "parse", "filter", "map", "event_time"} {
		if t.RawGetString(f) != lua.LNil {
			return fmt.Errorf("%s: with sources, each source has its own %s: move it into sources.NAME", f, f)
		}
	}
	var err error
	st.ForEach(func(k, sv lua.LValue) {
		if err != nil {
			return
		}
		name, _ := k.(lua.LString)
		if !validName(string(name)) {
			err = fmt.Errorf("sources: %s is not a source name: use letters, digits and _", k)
			return
		}
		tbl, ok := sv.(*lua.LTable)
		if !ok {
			err = fmt.Errorf("sources.%s: want a table with uri, parse, filter, map and event_time, got %s", name, sv.Type())
			return
		}
		var s NamedSource
		if s, err = p.readSource(string(name), tbl); err == nil {
			p.Sources = append(p.Sources, s)
		}
	})
	if err != nil {
		return err
	}
	if len(p.Sources) == 0 {
		return fmt.Errorf("sources: name at least one source")
	}
	sort.Slice(p.Sources, func(i, j int) bool { return p.Sources[i].Name < p.Sources[j].Name })
	p.Format = "sources"
	return p.sourcesEventTime()
}

// readSource reads one named source with the same code that reads a
// one-source pipeline's parse, filter, map and event time.
func (p *Pipeline) readSource(name string, t *lua.LTable) (NamedSource, error) {
	s := NamedSource{Name: name}
	var err error
	t.ForEach(func(k, _ lua.LValue) {
		if ks, ok := k.(lua.LString); err == nil && (!ok || !knownSourceFields[string(ks)]) {
			err = fmt.Errorf("sources.%s: unknown field %s (known: %s)", name, k, strings.Join(sortedKeys(knownSourceFields), ", "))
		}
	})
	if err != nil {
		return s, err
	}
	if v := t.RawGetString("uri"); v != lua.LNil {
		u, ok := v.(lua.LString)
		if !ok || u == "" {
			return s, fmt.Errorf("sources.%s.uri: want a URI string, got %s", name, v.Type())
		}
		s.URI = string(u)
	}
	sub := &Pipeline{Name: p.Name, File: p.File, Script: p.Script, Hash: p.Hash, CallTimeout: p.CallTimeout, MemoryLimit: p.MemoryLimit,
		logger: p.logger, intr: p.intr, luaTime: p.luaTime, lookups: p.lookups, proto: p.proto, fixed: p.fixed}
	wrap := func(err error) error { return fmt.Errorf("sources.%s.%w", name, err) }
	if err := sub.readParse(t.RawGetString("parse")); err != nil {
		return s, wrap(fmt.Errorf("parse: %w", err))
	}
	switch v := t.RawGetString("filter"); v.(type) {
	case *lua.LNilType:
	case *lua.LFunction:
		sub.hasFilter = true
	default:
		pred, err := readPredicate(v)
		if err != nil {
			return s, wrap(fmt.Errorf("filter: want a function(record) returning true to keep it, or a declarative filter: %w", err))
		}
		sub.steps.filter = pred
	}
	if err := sub.readMap(t.RawGetString("map")); err != nil {
		return s, wrap(err)
	}
	if err := sub.readEventTime(t); err != nil {
		return s, wrap(err)
	}
	if err := sub.checkMapMakesEventTime(); err != nil {
		return s, wrap(err)
	}
	for _, f := range sub.Fields {
		if f.Name == SourceField {
			return s, wrap(fmt.Errorf("parse: field %q is the one eddy tags each record with its source's name: rename it in a map", SourceField))
		}
	}
	s.sub = sub
	return s, nil
}

// sourcesEventTime: either every source has event time or none does.
func (p *Pipeline) sourcesEventTime() error {
	var with, without []string
	for _, s := range p.Sources {
		if s.sub.EventTime != nil {
			with = append(with, s.Name)
		} else {
			without = append(without, s.Name)
		}
	}
	if len(with) > 0 && len(without) > 0 {
		return fmt.Errorf("sources: %s have event_time and %s don't: the watermark is the minimum over the sources, so give each source an event_time",
			strings.Join(with, ", "), strings.Join(without, ", "))
	}
	if len(with) > 0 {
		et := *p.Sources[0].sub.EventTime
		p.EventTime = &et // (each source's own stamps its records)
	}
	return nil
}

// shareWatermark gives the sources the pipeline's watermark settings,
// which the record checks (max_future) use.
func (p *Pipeline) shareWatermark() {
	for _, s := range p.Sources {
		s.sub.Watermark = p.Watermark
	}
}

// SetSourceURI overrides one named source's URI (--source NAME=URI).
func (p *Pipeline) SetSourceURI(name, uri string) error {
	s := p.source(name)
	if s == nil {
		return fmt.Errorf("--source %s=%s: %s has no source named %q (sources: %s)", name, uri, p.Script, name, strings.Join(p.SourceNames(), ", "))
	}
	s.URI = uri
	return nil
}

// bindSources makes a runtime for each source inside the pipeline's own
// sandbox, bound to the source's table.
func (rt *Runtime) bindSources(tbl *lua.LTable) {
	if !rt.p.HasSources() {
		return
	}
	st := tbl.RawGetString("sources").(*lua.LTable)
	rt.subs = map[string]*Runtime{}
	for _, s := range rt.p.Sources {
		sub := &Runtime{p: s.sub, parent: rt}
		sub.bind(rt.sb, st.RawGetString(s.Name).(*lua.LTable))
		rt.subs[s.Name] = sub
	}
}

// ProcessSource is ProcessAt for a record of the named source.
func (rt *Runtime) ProcessSource(source string, raw []byte, sourceMs int64) (k Keyed, rec connectors.Row, kept bool, err error) {
	sub := rt.subs[source]
	if sub == nil {
		return k, rec, false, fmt.Errorf("%s has no source named %q (sources: %s)", rt.p.Script, source, strings.Join(rt.p.SourceNames(), ", "))
	}
	return rt.process(sub, source, raw, sourceMs)
}

// joinKey is the value of the record's join field, as a key.
func (rt *Runtime) joinKey(r *lua.LTable, source string) (string, error) {
	j := rt.p.Join
	field := j.RightKey
	switch source {
	case j.Left:
		field = j.LeftKey
	case j.Right:
	default:
		return "", fmt.Errorf("join: sources.%s is neither side of the join", source)
	}
	v, err := scalar(r.RawGetString(field))
	if err != nil {
		return "", fmt.Errorf("join: sources.%s field %q %w", source, field, err)
	}
	if s, ok := v.(string); ok {
		return s, nil
	}
	return string(connectors.AppendValue(nil, v)), nil
}

// readSourceInputs reads an inline test's input = { NAME = { lines… }, … }.
func (p *Pipeline) readSourceInputs(in *lua.LTable) (map[string][]string, error) {
	out := map[string][]string{}
	var err error
	in.ForEach(func(k, v lua.LValue) {
		if err != nil {
			return
		}
		name := lua.LVAsString(k)
		lines, ok := v.(*lua.LTable)
		if _, isName := k.(lua.LString); !isName || p.source(name) == nil || !ok {
			err = fmt.Errorf("want the lines of each source by name, such as { %s = { \"…\" } } (sources: %s), got key %s", p.Sources[0].Name, strings.Join(p.SourceNames(), ", "), k)
			return
		}
		list := []string{}
		for j := 1; j <= lines.Len(); j++ {
			list = append(list, lua.LVAsString(lines.RawGetInt(j)))
		}
		out[name] = list
	})
	return out, err
}

// describeSources renders the named sources for reload errors.
func describeSources(p *Pipeline) string {
	parts := make([]string, len(p.Sources))
	for i, s := range p.Sources {
		parts[i] = s.Name + "=" + strconv.Quote(s.URI)
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

package scripting

import (
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/valyala/fastjson"
	lua "github.com/yuin/gopher-lua"

	"github.com/eddy-stream/eddy/connectors"
)

// Joins. A pipeline with several sources may join two of them on a key:
//
//	join = eddy.join{ left = "auction", right = "person", on = { "seller", "id" },
//	                  window = eddy.tumbling("10s"), kind = "inner" }
//	join = eddy.join{ left = "search", right = "purchase", on = "user",
//	                  window = eddy.session("30s") }
//	join = eddy.join{ left = "person", right = "auction", on = { "id", "seller" },
//	                  retention = "forever" }
//	join = eddy.interval_join{ left = "auction", right = "bid", on = { "id", "auction" },
//	                  before = "0s", after = "10s", kind = "left" }
//	join = eddy.interval_join{ left = "auction", right = "bid", on = { "id", "auction" },
//	                  ends_at = "expires" }
//
// A window join pairs the records of one key that fall in the same window
// (a session window's pairs come out when it closes: joinsession.go);
// a regular join (eddy.join with retention, no window) pairs every two
// records of a key that are both kept: for ever, or while their times are
// at most retention apart; an interval join pairs a left record at time t
// with the right records from t-before to t+after, or to the time in the
// left record's ends_at field. Each side waits in the key's state
// (checkpointed with the rest of it) until the watermark says no partner
// can come, then is dropped; a left, right or full join then emits the
// records of its outer side(s) that found none. Joined rows go to the
// records output as they are made, each pair once.

// Join is a pipeline's join, validated.
type Join struct {
	Left, Right       string
	LeftKey, RightKey string
	// Window pairs records in the same window; nil for an interval join,
	// which pairs right records from Before before a left one to After
	// after it.
	Window        *Window
	Before, After time.Duration
	// EndsAt names the left records' field whose time ends their interval
	// (in place of t+After); "" for a fixed interval.
	EndsAt string
	// Regular: no window and no interval; records are kept Retention after
	// their time, or for ever.
	Regular   bool
	Retention time.Duration
	Forever   bool
	// Kind is "inner", "left", "right", "full" (the pairs, and the records
	// of the outer side(s) that found no partner, at their expiry) or
	// "semi" (each left record once, with its window, when it first finds
	// a partner).
	Kind string
	// Select lists the output columns; nil for every field of both sides.
	Select []JoinColumn
}

// JoinColumn is one output column of a join: a side's field, or the
// window's start or end (Side "").
type JoinColumn struct{ Name, Side, Field string }

// HasJoin says whether the pipeline joins two of its sources.
func (p *Pipeline) HasJoin() bool { return p.Join != nil }

var knownJoinFields = map[string]bool{"left": true, "right": true, "on": true, "window": true, "before": true, "after": true,
	"ends_at": true, "retention": true, "kind": true, "select": true}

// joinKinds are the kinds a join may have, and what each emits.
var joinKinds = map[string]bool{"inner": true, "left": true, "right": true, "full": true, "semi": true}

func installJoin(L *lua.LState, mod *lua.LTable) {
	for _, kind := range []string{"join", "interval_join"} {
		kind := kind
		L.SetField(mod, kind, L.NewFunction(func(L *lua.LState) int {
			t := L.NewTable()
			t.RawSetString(specKind, lua.LString(kind))
			t.RawSetString("spec", L.CheckTable(1))
			L.Push(t)
			return 1
		}))
	}
}

// readJoin reads join = eddy.join{…} or eddy.interval_join{…} from the
// pipeline table t.
func (p *Pipeline) readJoin(pt *lua.LTable) error {
	v := pt.RawGetString("join")
	if v == lua.LNil {
		return nil
	}
	t, ok := v.(*lua.LTable)
	kind := ""
	if ok {
		kind = lua.LVAsString(t.RawGetString(specKind))
	}
	if kind != "join" && kind != "interval_join" {
		return fmt.Errorf("join: want eddy.join{…} or eddy.interval_join{…}, got %s", v.Type())
	}
	if !p.HasSources() {
		return fmt.Errorf("join: joins two of the pipeline's sources: declare them in sources = { NAME = { uri = …, parse = … }, … }")
	}
	spec := t.RawGetString("spec").(*lua.LTable)
	j := &Join{}
	if err := p.readJoinSpec(j, kind, spec); err != nil {
		return fmt.Errorf("join: %w", err)
	}
	p.Join = j
	for _, s := range p.Sources {
		if s.Name != j.Left && s.Name != j.Right {
			return fmt.Errorf("join: sources.%s is neither side of the join (%s, %s): a join pipeline reads just its two sides", s.Name, j.Left, j.Right)
		}
	}
	switch {
	case p.Window != nil:
		return fmt.Errorf("window: a join takes its window in eddy.join{ window = … }")
	case p.HasAggregate() || len(p.KeyColumns) > 0:
		return p.readJoinAggregate(pt)
	case p.hasRoute || p.onRecord || p.onWindow || p.onTimer:
		return fmt.Errorf("join: route and on_record/on_window/on_timer don't see joined rows yet: remove them")
	case p.EventTime == nil:
		return fmt.Errorf("join: a join keeps each side until the watermark passes: give sources.%s and sources.%s an event_time", j.Left, j.Right)
	}
	return nil
}

// readJoinAggregate checks a key and aggregate over a join's rows. They
// are aggregated in the actor that holds the join key's state, so the key
// starts with the left side's join key and goes on with other columns of
// the left side. A window or interval join's rows are aggregated per join
// window (a window join's window, an interval join's left record's
// interval), each window's row emitted once, when the watermark passes its
// end (as emit = "final"), and may feed stages; a regular join's have no
// window, and are aggregated as a plain aggregate's records are, emitted
// as its emit mode says. A left join's lone left rows count in their
// window (or, for a regular join, at their expiry) with no right columns.
func (p *Pipeline) readJoinAggregate(pt *lua.LTable) error {
	j := p.Join
	var col *JoinColumn
	for i := range j.Select {
		if c := &j.Select[i]; c.Side == j.Left && c.Field == j.LeftKey {
			col = c
		}
	}
	switch {
	case p.hasRoute || p.onRecord || p.onWindow || p.onTimer:
		return fmt.Errorf("join: route and on_record/on_window/on_timer don't see joined rows yet: remove them")
	case p.EventTime == nil:
		return fmt.Errorf("join: a join keeps each side until the watermark passes: give sources.%s and sources.%s an event_time", j.Left, j.Right)
	case !p.HasAggregate():
		return fmt.Errorf("key: a key over joined rows groups them for an aggregate: add aggregate = { … }")
	case p.keyFunc:
		return fmt.Errorf("key: a key over joined rows is a list of their columns, not a function")
	case j.isSession():
		return fmt.Errorf("aggregate: an aggregate over a session join's rows is not supported yet (they all come when the session closes): use a tumbling or hopping window")
	case j.Kind == "right" || j.Kind == "full":
		return fmt.Errorf("aggregate: an aggregate over a %s join's rows is not supported: its lone right rows have no left columns to key them by; swap left and right and use kind = \"left\"", j.Kind)
	case j.Select == nil || col == nil:
		return fmt.Errorf("join: select: an aggregate over joined rows reads their columns: name them in select, the join key %s.%s among them", j.Left, j.LeftKey)
	case j.Regular && pt.RawGetString("stages") != lua.LNil:
		return fmt.Errorf("stages: an aggregate over a regular join's rows has no window to close, so its rows change with every pair and a next stage would count each version: use a window or interval join")
	case j.Regular:
		return p.checkJoinAggregateKey(col)
	case p.AllowedLateness > 0:
		return fmt.Errorf("allowed_lateness: an aggregate over joined rows emits each window once, when the watermark passes it: late pairs are not supported yet")
	}
	if err := p.checkJoinAggregateKey(col); err != nil {
		return err
	}
	if v := pt.RawGetString("emit"); v != lua.LNil && lua.LVAsString(v) != EmitFinal {
		return fmt.Errorf("emit: an aggregate over joined rows emits each window once, when the watermark passes its end: emit = \"final\" (or leave it out), got %q", lua.LVAsString(v))
	}
	p.Window = &Window{Kind: "join"}
	p.Emit = EmitFinal
	return nil
}

// checkJoinAggregateKey checks the key and aggregates over a join's rows
// name columns the join selects: the join key (col) first, then the left
// side's.
func (p *Pipeline) checkJoinAggregateKey(col *JoinColumn) error {
	j := p.Join
	if p.KeyColumns[0] != col.Name {
		return fmt.Errorf("key: an aggregate over joined rows is keyed first by the join key (%q), so one key's rows stay together; got %q", col.Name, p.KeyColumns[0])
	}
	side := map[string]string{}
	for _, c := range j.Select {
		side[c.Name] = c.Side
	}
	for _, k := range p.KeyColumns[1:] {
		if side[k] != j.Left {
			return fmt.Errorf("key: %q: after the join key, a key column is a selected column of the left side (%s), constant for each of its records", k, j.Left)
		}
	}
	for _, a := range p.Aggregates {
		for _, name := range []string{a.Field, a.By} {
			if _, ok := side[name]; name != "" && !ok {
				return fmt.Errorf("aggregate.%s: %q is not a column the join selects", a.Name, name)
			}
		}
	}
	return nil
}

// AggregatesJoin says whether the pipeline aggregates its join's rows.
func (p *Pipeline) AggregatesJoin() bool { return p.Join != nil && p.HasAggregate() }

// JoinedKeyed keys a joined row for the aggregate over the join's rows:
// Key is the join key (the row's group within it is its key columns,
// which the engine checks are constant per join key and window), Vals the
// key columns' and aggregates' values read from the row.
func (rt *Runtime) JoinedKeyed(key string, row connectors.Row) (Keyed, error) {
	L := rt.sb.L
	r := L.CreateTable(0, len(row.Fields))
	for _, f := range row.Fields {
		r.RawSetString(f.Name, toLua(L, f.Value))
	}
	k, err := rt.keyedBy(tableFields{rt, r})
	k.Key = key
	return k, err
}

func (p *Pipeline) readJoinSpec(j *Join, kind string, t *lua.LTable) error {
	var err error
	t.ForEach(func(k, _ lua.LValue) {
		if ks, ok := k.(lua.LString); err == nil && (!ok || !knownJoinFields[string(ks)]) {
			err = fmt.Errorf("unknown field %s (known: %s)", k, strings.Join(sortedKeys(knownJoinFields), ", "))
		}
	})
	if err != nil {
		return err
	}
	j.Left, j.Right = lua.LVAsString(t.RawGetString("left")), lua.LVAsString(t.RawGetString("right"))
	for _, side := range []struct{ what, name string }{{"left", j.Left}, {"right", j.Right}} {
		if p.source(side.name) == nil {
			return fmt.Errorf("%s: %q is not one of the sources (%s)", side.what, side.name, strings.Join(p.SourceNames(), ", "))
		}
	}
	if j.Left == j.Right {
		return fmt.Errorf("left and right are both %q: a self-join is not supported", j.Left)
	}
	if err := p.readJoinOn(j, t.RawGetString("on")); err != nil {
		return err
	}
	j.Kind = "inner"
	if v := t.RawGetString("kind"); v != lua.LNil {
		j.Kind = lua.LVAsString(v)
		if !joinKinds[j.Kind] {
			return fmt.Errorf("kind: want \"inner\", \"left\", \"right\", \"full\" (also the records that found no partner) or \"semi\" (each left record once, when it has a partner), got %q", j.Kind)
		}
	}
	switch {
	case kind == "join" && t.RawGetString("window") == lua.LNil && t.RawGetString("retention") != lua.LNil:
		err = readJoinRetention(j, t)
	case kind == "join":
		err = p.readJoinWindow(j, t)
	default:
		err = p.readJoinInterval(j, t)
	}
	if err != nil {
		return err
	}
	return p.readJoinSelect(j, t.RawGetString("select"))
}

// readJoinRetention reads a regular join's retention: "forever", or how
// long after its time a record is kept.
func readJoinRetention(j *Join, t *lua.LTable) error {
	for _, f := range []string{"before", "after", "ends_at"} {
		if t.RawGetString(f) != lua.LNil {
			return fmt.Errorf("%s bounds an eddy.interval_join; eddy.join with retention pairs every two records of a key kept at once", f)
		}
	}
	j.Regular = true
	v := t.RawGetString("retention")
	if s, ok := v.(lua.LString); ok && s == "forever" {
		j.Forever = true
		if j.Kind == "left" || j.Kind == "right" || j.Kind == "full" {
			return fmt.Errorf("kind: a %s join emits the records that found no partner when they expire, and with retention = \"forever\" none ever does: give a retention time", j.Kind)
		}
		return nil
	}
	var err error
	if j.Retention, err = duration("retention", v, false); err != nil {
		return fmt.Errorf("%w (or \"forever\")", err)
	}
	return nil
}

// readJoinOn reads on = "field" (both sides) or { "left field", "right
// field" }, and checks each side makes its field.
func (p *Pipeline) readJoinOn(j *Join, v lua.LValue) error {
	switch v := v.(type) {
	case lua.LString:
		j.LeftKey, j.RightKey = string(v), string(v)
	case *lua.LTable:
		if v.Len() != 2 {
			return fmt.Errorf("on: want { \"%s field\", \"%s field\" }", j.Left, j.Right)
		}
		j.LeftKey, j.RightKey = lua.LVAsString(v.RawGetInt(1)), lua.LVAsString(v.RawGetInt(2))
	default:
		return fmt.Errorf("on: want a field both sides have, or { \"%s field\", \"%s field\" }, got %s", j.Left, j.Right, v.Type())
	}
	for _, side := range []struct{ src, field string }{{j.Left, j.LeftKey}, {j.Right, j.RightKey}} {
		if err := p.checkSourceField(side.src, side.field, "on"); err != nil {
			return err
		}
	}
	return nil
}

// checkSourceField refuses a field the source's records don't have, when
// its parse and map say which they have.
func (p *Pipeline) checkSourceField(src, field, where string) error {
	if field == "" {
		return fmt.Errorf("%s: the field of %s is empty", where, src)
	}
	names, known := p.source(src).sub.recordFields()
	if !known {
		return nil
	}
	for _, n := range names {
		if n == field {
			return nil
		}
	}
	return fmt.Errorf("%s: sources.%s has no field %q (it has %s)", where, src, field, strings.Join(names, ", "))
}

func (p *Pipeline) readJoinWindow(j *Join, t *lua.LTable) error {
	if t.RawGetString("before") != lua.LNil || t.RawGetString("after") != lua.LNil {
		return fmt.Errorf("before and after bound an eddy.interval_join; eddy.join pairs records in the same window")
	}
	if t.RawGetString("ends_at") != lua.LNil {
		return fmt.Errorf("ends_at ends an eddy.interval_join's interval; eddy.join pairs records in the same window")
	}
	wt, ok := t.RawGetString("window").(*lua.LTable)
	if !ok {
		return fmt.Errorf("window: eddy.join needs window = eddy.tumbling(size), eddy.hopping(size, slide) or eddy.session(gap), or retention = \"forever\" or a time (a regular join, keeping each side's records that long)")
	}
	w := &Window{Kind: lua.LVAsString(wt.RawGetString(specKind))}
	var err error
	switch w.Kind {
	case "tumbling":
		w.Size, err = duration("join window size", wt.RawGetString("size"), false)
	case "hopping":
		if w.Size, err = duration("join window size", wt.RawGetString("size"), false); err == nil {
			w.Slide, err = duration("join window slide", wt.RawGetString("slide"), false)
		}
		if err == nil && (w.Slide > w.Size || w.Size%w.Slide != 0) {
			err = fmt.Errorf("window: a hopping window's size (%v) must be a whole multiple of its slide (%v)", w.Size, w.Slide)
		}
	case "session":
		w.Gap, err = duration("join session gap", wt.RawGetString("gap"), false)
	default:
		err = fmt.Errorf("window: want eddy.tumbling(size), eddy.hopping(size, slide) or eddy.session(gap)")
	}
	j.Window = w
	return err
}

func (p *Pipeline) readJoinInterval(j *Join, t *lua.LTable) error {
	for _, f := range []string{"window", "retention"} {
		if t.RawGetString(f) != lua.LNil {
			return fmt.Errorf("%s: eddy.interval_join pairs by before and after (or ends_at); eddy.join takes a %s", f, f)
		}
	}
	before, after, endsAt := t.RawGetString("before"), t.RawGetString("after"), t.RawGetString("ends_at")
	if endsAt != lua.LNil {
		if after != lua.LNil {
			return fmt.Errorf("after and ends_at both end the interval: give one")
		}
		j.EndsAt = lua.LVAsString(endsAt)
		if err := p.checkSourceField(j.Left, j.EndsAt, "ends_at"); err != nil {
			return err
		}
	} else if before == lua.LNil && after == lua.LNil {
		return fmt.Errorf("eddy.interval_join needs before and/or after (or ends_at): it pairs right records from before ahead of a left one to after it (either defaults to \"0s\"), or to the time in the left record's ends_at field")
	}
	var err error
	if before != lua.LNil {
		if j.Before, err = duration("before", before, true); err != nil {
			return err
		}
	}
	if after != lua.LNil {
		if j.After, err = duration("after", after, true); err != nil {
			return err
		}
	}
	return nil
}

// readJoinSelect reads select = { "person.id", "person.name as seller", "window_start" }.
func (p *Pipeline) readJoinSelect(j *Join, v lua.LValue) error {
	if v == lua.LNil {
		return nil
	}
	st, ok := v.(*lua.LTable)
	if !ok || st.Len() == 0 {
		return fmt.Errorf("select: want a list such as { \"%s.%s\", \"%s.name as name\" }", j.Left, j.LeftKey, j.Right)
	}
	seen := map[string]bool{}
	for i := 1; i <= st.Len(); i++ {
		words := strings.Fields(lua.LVAsString(st.RawGetInt(i)))
		if len(words) != 1 && (len(words) != 3 || words[1] != "as") {
			return fmt.Errorf("select[%d]: want \"source.field\", \"source.field as name\" or \"window_start\"", i)
		}
		col := JoinColumn{Name: words[0], Field: words[0]}
		if src, field, dotted := strings.Cut(words[0], "."); dotted {
			if src != j.Left && src != j.Right {
				return fmt.Errorf("select[%d]: %q is not a side of the join (%s, %s)", i, src, j.Left, j.Right)
			}
			if err := p.checkSourceField(src, field, fmt.Sprintf("select[%d]", i)); err != nil {
				return err
			}
			col = JoinColumn{Name: field, Side: src, Field: field}
		} else if (words[0] != "window_start" && words[0] != "window_end") || j.Window == nil {
			return fmt.Errorf("select[%d]: %q: want \"source.field\"%s", i, words[0], map[bool]string{true: " or window_start, window_end", false: ""}[j.Window != nil])
		}
		if len(words) == 3 {
			col.Name = words[2]
		}
		if seen[col.Name] {
			return fmt.Errorf("select[%d]: column %q twice: rename one with \"as\"", i, col.Name)
		}
		seen[col.Name] = true
		j.Select = append(j.Select, col)
	}
	return nil
}

// The join at run time. Each key's state holds both sides' waiting
// records; a timer per expiry time drops them when the watermark passes.

// JoinState is one key's waiting records, left side then right.
type JoinState struct{ Sides [2][]JoinRec }

// JoinRec is one waiting record: its event time, its window's start
// (window joins) or the end of its interval (a left record of an interval
// join with ends_at), whether it found a partner, and its fields.
type JoinRec struct {
	T, W    int64
	Matched bool
	Rec     map[string]any
}

// never is the expiry of a record a regular join keeps for ever.
const never = math.MaxInt64

func (j *Join) side(rec map[string]any) int {
	if rec[SourceField] == j.Left {
		return 0
	}
	return 1
}

// expiry is when a waiting record of side s can find no more partners:
// its window's end, the far end of its interval, or its time plus the
// retention, plus the lateness a partner may have; never for a regular
// join that keeps records for ever.
func (j *Join) expiry(s int, r *JoinRec, lateness int64) int64 {
	switch {
	case j.Window != nil:
		return r.W + j.Window.Size.Milliseconds() + lateness
	case j.Regular && j.Forever:
		return never
	case j.Regular:
		return r.T + j.Retention.Milliseconds() + lateness
	case s == 0 && j.EndsAt != "":
		return r.W + lateness
	case s == 0:
		return r.T + j.After.Milliseconds() + lateness
	default:
		return r.T + j.Before.Milliseconds() + lateness
	}
}

// isLate says whether a new record of side s came too late to wait for
// partners: an interval join's record behind the watermark by more than
// the lateness, a regular join's record already past its retention.
func (j *Join) isLate(s int, r *JoinRec, lateness, watermark int64) bool {
	if j.Regular {
		return j.expiry(s, r, lateness) <= watermark
	}
	return r.T+lateness <= watermark
}

// pairs says whether waiting record o of the other side pairs with r, a
// new record of side s.
func (j *Join) pairs(s int, r, o *JoinRec) bool {
	switch {
	case j.Window != nil:
		return r.W == o.W
	case j.Regular:
		// Two records at most the retention apart: whether the older is
		// still kept when the newer comes depends on the watermark, which
		// no result may.
		return j.Forever || abs(r.T-o.T) <= j.Retention.Milliseconds()
	}
	left, right := r, o
	if s == 1 {
		left, right = o, r
	}
	end := left.T + j.After.Milliseconds()
	if j.EndsAt != "" {
		end = left.W
	}
	return right.T >= left.T-j.Before.Milliseconds() && right.T <= end
}

// window is the window of the pair of r (side s) and o: the join's
// window, or the left record's interval, both ends included.
func (j *Join) window(s int, r, o *JoinRec) [2]int64 {
	if j.Window != nil {
		return [2]int64{r.W, r.W + j.Window.Size.Milliseconds()}
	}
	left := r
	if s == 1 {
		left = o
	}
	if left == nil {
		return [2]int64{} // (a lone right record of an interval join: no interval)
	}
	if j.EndsAt != "" {
		return [2]int64{left.T - j.Before.Milliseconds(), left.W}
	}
	return [2]int64{left.T - j.Before.Milliseconds(), left.T + j.After.Milliseconds()}
}

func abs(x int64) int64 {
	if x < 0 {
		return -x
	}
	return x
}

// outer says whether side s's records that found no partner are emitted
// at their expiry.
func (j *Join) outer(s int) bool {
	return j.Kind == "full" || j.Kind == "left" && s == 0 || j.Kind == "right" && s == 1
}

// newJoinRecs are the waiting records a new record of side s at ms makes
// (one per window it falls in), and how many windows (or, without a
// window, 1 for the record) it came too late for.
func (j *Join) newJoinRecs(s int, rec map[string]any, ms, lateness, watermark int64) (news []JoinRec, late int, err error) {
	if j.Window != nil {
		var buf [4][2]int64
		for _, win := range j.Window.Windows(ms, buf[:0]) {
			if win[1]+lateness <= watermark {
				late++
				continue
			}
			news = append(news, JoinRec{T: ms, W: win[0], Rec: rec})
		}
		return news, late, nil
	}
	r := JoinRec{T: ms, Rec: rec}
	if s == 0 && j.EndsAt != "" {
		if r.W, err = fieldMillis(rec, j.EndsAt); err != nil {
			return nil, 0, fmt.Errorf("join: ends_at: %w", err)
		}
	}
	if j.isLate(s, &r, lateness, watermark) {
		return nil, 1, nil
	}
	return []JoinRec{r}, 0, nil
}

// fieldMillis reads a time field of a record as event_time reads one: an
// RFC 3339 string or Unix seconds.
func fieldMillis(rec map[string]any, field string) (int64, error) {
	switch v := rec[field].(type) {
	case string:
		ms, err := rfc3339Millis(v)
		if err != nil {
			return 0, fmt.Errorf("field %q is %q, not an RFC 3339 time", field, shorten(v))
		}
		return ms, nil
	case float64:
		return secondsToMillis(v)
	case int64:
		return secondsToMillis(float64(v))
	case nil:
		return 0, fmt.Errorf("field %q is missing", field)
	default:
		return 0, fmt.Errorf("field %q is a %T, want an RFC 3339 string or Unix seconds", field, v)
	}
}

// JoinRecord adds a record to its key's join state and emits the rows it
// makes with the other side, each pair once. late counts the windows (or,
// for an interval or regular join, the record) it came too late for. An
// error (an ends_at field that is not a time) leaves the state as it was.
func (rt *Runtime) JoinRecord(ks *KeyState, key string, rec map[string]any, ms, watermark int64) (res HookResult, late int, err error) {
	j := rt.p.Join
	if j.isSession() {
		return rt.joinSessionRecord(ks, rec, ms, watermark)
	}
	lateness := rt.p.AllowedLateness.Milliseconds()
	s := j.side(rec)
	news, late, err := j.newJoinRecs(s, rec, ms, lateness, watermark)
	if err != nil || len(news) == 0 {
		return res, late, err
	}
	if ks.Join == nil {
		ks.Join = &JoinState{}
	}
	other := ks.Join.Sides[1-s]
	for _, r := range news {
		for i := range other {
			if !j.pairs(s, &r, &other[i]) {
				continue
			}
			if j.Kind == "semi" {
				// the left record, once, when it first finds a partner
				left := &r
				if s == 1 {
					left = &other[i]
				}
				if !left.Matched {
					win := j.window(0, left, nil)
					res.Emits = append(res.Emits, Emit{Sink: "records", Row: rt.joined(key, 0, left, nil, win), Window: win})
				}
			} else {
				win := j.window(s, &r, &other[i])
				res.Emits = append(res.Emits, Emit{Sink: "records", Row: rt.joined(key, s, &r, &other[i], win), Window: win})
			}
			r.Matched, other[i].Matched = true, true
		}
		ks.Join.Sides[s] = append(ks.Join.Sides[s], r)
		if at := j.expiry(s, &r, lateness); at != never {
			res.TimersChanged = setExpiryTimer(ks, at) || res.TimersChanged
		}
	}
	return res, late, nil
}

// expiryTimer is the one timer a key's join state has: at the earliest
// expiry of its waiting records. (One timer per expiry time made every
// firing re-queue all of a busy key's others: quadratic in its records.)
const expiryTimer = "x"

// setExpiryTimer moves the key's expiry timer to at when that is sooner,
// and says whether it moved.
func setExpiryTimer(ks *KeyState, at int64) bool {
	if t, ok := ks.Timers[expiryTimer]; ok && t.At <= at {
		return false
	}
	ks.Timers[expiryTimer] = Timer{At: at}
	return true
}

// joinTimer drops the waiting records the watermark has passed the expiry
// of (at, the timer's time), and sets the expiry timer to the next; an outer join emits those of its outer side(s) that found no
// partner.
func (rt *Runtime) joinTimer(ks *KeyState, key string, at int64) HookResult {
	res := HookResult{TimersChanged: true}
	if ks.Join == nil {
		return res
	}
	j := rt.p.Join
	if j.isSession() {
		return rt.sessionTimer(ks, key, at)
	}
	lateness := rt.p.AllowedLateness.Milliseconds()
	for s := range ks.Join.Sides {
		kept := ks.Join.Sides[s][:0]
		for _, r := range ks.Join.Sides[s] {
			if j.expiry(s, &r, lateness) > at {
				kept = append(kept, r)
				continue
			}
			if !r.Matched && j.outer(s) {
				win := j.window(s, &r, nil)
				res.Emits = append(res.Emits, Emit{Sink: "records", Row: rt.joined(key, s, &r, nil, win), Window: win})
			}
		}
		ks.Join.Sides[s] = kept
		for _, r := range kept {
			if e := j.expiry(s, &r, lateness); e != never {
				setExpiryTimer(ks, e)
			}
		}
	}
	if len(ks.Join.Sides[0])+len(ks.Join.Sides[1]) == 0 {
		ks.Join = nil
	}
	return res
}

// joined makes the output row of r (side s) and its partner o (nil for a
// record of an outer side without one, whose row has only its own side's
// columns) in the window win (its start and end columns, for a window
// join).
func (rt *Runtime) joined(key string, s int, r, o *JoinRec, win [2]int64) connectors.Row {
	j := rt.p.Join
	var left, right *JoinRec = r, o
	if s == 1 {
		left, right = o, r
	}
	row := connectors.Row{Key: key}
	if j.Select != nil {
		row.Fields = make([]connectors.Field, 0, len(j.Select))
		for _, c := range j.Select {
			var v any
			switch {
			case c.Side == "" && c.Field == "window_start":
				v = FormatTime(win[0])
			case c.Side == "" && c.Field == "window_end":
				v = FormatTime(win[1])
			case c.Side == j.Left && left != nil:
				v = left.Rec[c.Field]
			case c.Side == j.Right && right != nil:
				v = right.Rec[c.Field]
			default:
				continue
			}
			row.Fields = append(row.Fields, connectors.Field{Name: c.Name, Value: v})
		}
		return row
	}
	var leftRec, rightRec map[string]any
	if left != nil {
		leftRec = left.Rec
	}
	if right != nil {
		rightRec = right.Rec
	}
	if left != nil {
		row.Fields = appendSide(row.Fields, j.Left, leftRec, rightRec)
	}
	if right != nil {
		row.Fields = appendSide(row.Fields, j.Right, rightRec, leftRec)
	}
	if j.Window != nil {
		row.Fields = append(row.Fields, connectors.Field{Name: "window_start", Value: FormatTime(win[0])},
			connectors.Field{Name: "window_end", Value: FormatTime(win[1])})
	}
	return row
}

// appendSide adds a side's fields in name order; a name the other side has
// too is prefixed with the side's source name ("person_id").
func appendSide(dst []connectors.Field, src string, rec, other map[string]any) []connectors.Field {
	names := make([]string, 0, len(rec))
	for n := range rec {
		if n != SourceField {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		name := n
		if _, both := other[n]; both {
			name = src + "_" + n
		}
		dst = append(dst, connectors.Field{Name: name, Value: rec[n]})
	}
	return dst
}

// encodeJoin appends a key's join state as JSON: [[[t, w, matched, rec], …], […]].
func encodeJoin(js *JoinState) any {
	sides := make([]any, 2)
	for s, recs := range js.Sides {
		list := make([]any, len(recs))
		for i, r := range recs {
			list[i] = []any{r.T, r.W, r.Matched, r.Rec}
		}
		sides[s] = list
	}
	return sides
}

func decodeJoin(v *fastjson.Value) (*JoinState, error) {
	sides := v.GetArray()
	if len(sides) != 2 {
		return nil, fmt.Errorf("checkpointed join state: want two sides, got %d", len(sides))
	}
	js := &JoinState{}
	for s, side := range sides {
		for _, e := range side.GetArray() {
			f := e.GetArray()
			if len(f) != 4 || f[3].Type() != fastjson.TypeObject {
				return nil, fmt.Errorf("checkpointed join state: a waiting record is not [t, w, matched, record]")
			}
			rec, _ := jsonToGo(f[3]).(map[string]any)
			js.Sides[s] = append(js.Sides[s], JoinRec{T: f[0].GetInt64(), W: f[1].GetInt64(), Matched: f[2].GetBool(), Rec: rec})
		}
	}
	return js, nil
}

// describeJoin renders a join for reload errors: its waiting records are
// kept for the join that stored them.
func describeJoin(j *Join) string {
	if j == nil {
		return "none"
	}
	return fmt.Sprintf("%s %s ⋈ %s on %s = %s, window %s, before %v, after %v, ends_at %q, retention %v (forever %v), select %v",
		j.Kind, j.Left, j.Right, j.LeftKey, j.RightKey, describeWindow(j.Window), j.Before, j.After, j.EndsAt, j.Retention, j.Forever, j.Select)
}

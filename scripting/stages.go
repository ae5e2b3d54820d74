package scripting

import (
	"fmt"
	"strings"
	"time"

	"github.com/eddy-stream/eddy/connectors"
	lua "github.com/yuin/gopher-lua"
)

// Stages: a pipeline may aggregate the results of another aggregation.
//
//	stages = {
//	  { key = "auction", window = eddy.hopping("10s", "2s"), aggregate = { bids = eddy.count() } },
//	  { key = { "window_start", "window_end" }, aggregate = { most = eddy.max("bids") }, emit = "final" },
//	}
//
// The first stage is the pipeline's own key, window and aggregate: the
// engine runs it as it runs a one-stage pipeline. Each later stage reads
// the rows the stage before it emits, by their column names.
//
// What flows between stages is append-only: a stage that feeds another
// must have a window, and emits each window's row once, when the window
// closes (as emit = "final"). An unwindowed stage's rows change with every
// record, and the next stage would count each version of a row; stopping
// that needs retractions, which eddy does not have, so such pipelines are
// refused. For the same reason only the last stage may say how it emits
// (emit, order_by, limit).
//
// A later stage may have a window too (tumbling or hopping): an input row
// falls in it by the last instant of the row's own window (window_end less
// a millisecond), and it closes when the watermark passes its end. Such a
// stage emits each window once, so it can feed another.

// stageFields are the fields a stage's table may hold; lastOnly those only
// the last stage may.
var (
	stageFields = map[string]bool{"key": true, "window": true, "aggregate": true, "columns": true,
		"order_by": true, "limit": true, "emit": true}
	lastOnly = []string{"emit", "order_by", "limit"}
	// stageLifted: the fields of the first stage the pipeline table gets.
	stageLifted = []string{"key", "window", "aggregate", "columns"}
	// notWithStages: top-level fields that stages replace or that have no
	// meaning with them yet, and why.
	notWithStages = map[string]string{
		"key": "", "window": "", "aggregate": "", "columns": "", "order_by": "", "limit": "", "emit": "",
		"on_record": "per-key hooks keep state per key of one aggregation", "on_window": "per-key hooks keep state per key of one aggregation",
		"on_timer": "per-key hooks keep state per key of one aggregation",
		"having":   "filtering the result rows of a stage is not built yet",
	}
)

// Last is the pipeline whose rows are the results: its last stage, or p
// itself when it has one stage.
func (p *Pipeline) Last() *Pipeline {
	if len(p.Stages) == 0 {
		return p
	}
	return p.Stages[len(p.Stages)-1]
}

// Stage is the stage's number, from 1; 1 for a pipeline without stages.
func (p *Pipeline) Stage() int { return max(p.stage, 1) }

// stageTable is what a runtime of p binds: the pipeline table with its
// first stage's fields in place, or, for a later stage's pipeline, that
// stage's table.
func (p *Pipeline) stageTable(tbl *lua.LTable) (*lua.LTable, error) {
	v := tbl.RawGetString("stages")
	if v == lua.LNil {
		return tbl, nil
	}
	st, ok := v.(*lua.LTable)
	if !ok {
		return nil, fmt.Errorf("%s: stages: want a list of stage tables such as { key = \"k\", aggregate = { n = eddy.count() } }, got %s", p.Script, v.Type())
	}
	if p.stage > 1 {
		s, _ := st.RawGetInt(p.stage).(*lua.LTable)
		if s == nil {
			return nil, fmt.Errorf("%s: stages[%d] is gone (the script changed?)", p.Script, p.stage)
		}
		return s, nil
	}
	if err := checkStageList(st, tbl.RawGetString("join") != lua.LNil); err != nil {
		return nil, fmt.Errorf("%s: pipeline table: %w", p.Script, err)
	}
	if err := checkTopWithStages(tbl); err != nil {
		return nil, fmt.Errorf("%s: pipeline table: %w", p.Script, err)
	}
	first := st.RawGetInt(1).(*lua.LTable)
	for _, f := range stageLifted {
		tbl.RawSetString(f, first.RawGetString(f))
	}
	return tbl, nil
}

// checkStageList checks the shape of stages before the first stage's
// fields are lifted, so each error names the stage. With a join, the first
// stage aggregates the joined rows in the join's windows.
func checkStageList(st *lua.LTable, joined bool) error {
	n := st.Len()
	if n < 2 {
		return fmt.Errorf("stages: want two or more stages (one stage is key, window and aggregate at the top level), got %d", n)
	}
	var err error
	st.ForEach(func(k, _ lua.LValue) {
		if i, ok := k.(lua.LNumber); (!ok || int(i) < 1 || int(i) > n || float64(i) != float64(int(i))) && err == nil {
			err = fmt.Errorf("stages: want a list of stage tables, it has the key %s", k)
		}
	})
	if err != nil {
		return err
	}
	for i := 1; i <= n; i++ {
		if err := checkStageTable(st.RawGetInt(i), i, n, joined && i == 1); err != nil {
			return err
		}
	}
	return nil
}

func checkStageTable(v lua.LValue, i, n int, joinWindow bool) error {
	s, ok := v.(*lua.LTable)
	if !ok {
		return fmt.Errorf("stages[%d]: want a table with key, window and aggregate, got %s", i, v.Type())
	}
	var err error
	s.ForEach(func(k, _ lua.LValue) {
		if ks, ok := k.(lua.LString); (!ok || !stageFields[string(ks)]) && err == nil {
			err = fmt.Errorf("stages[%d]: unknown field %s (known: %s)", i, k, strings.Join(sortedKeys(stageFields), ", "))
		}
	})
	if err != nil {
		return err
	}
	if s.RawGetString("aggregate") == lua.LNil {
		return fmt.Errorf("stages[%d].aggregate: every stage aggregates: add aggregate = { … }", i)
	}
	if i < n {
		for _, f := range lastOnly {
			if s.RawGetString(f) != lua.LNil {
				return fmt.Errorf("stages[%d].%s: only the last stage (stages[%d]) says how results are emitted; a stage that feeds another emits each window once, when it closes", i, f, n)
			}
		}
	}
	if i < n && s.RawGetString("window") == lua.LNil && !joinWindow {
		return fmt.Errorf("stages[%d].window: stages[%d] feeds stages[%d], so it needs a window: its rows go on once, when their window closes (an unwindowed stage's rows change with every record, and stages[%d] would count each version)", i, i, i+1, i+1)
	}
	return nil
}

// readStages reads the later stages, once the top-level table (with the
// first stage's fields) is read.
func (p *Pipeline) readStages(t *lua.LTable) error {
	st, ok := t.RawGetString("stages").(*lua.LTable)
	if !ok {
		return nil
	}
	// The first stage feeds the next: each window once, when it closes.
	p.Emit = EmitFinal
	in := p
	for i := 2; i <= st.Len(); i++ {
		s, err := p.readStage(st.RawGetInt(i).(*lua.LTable), i, in)
		if err != nil {
			return err
		}
		p.Stages = append(p.Stages, s)
		in = s
	}
	return nil
}

// checkTopWithStages refuses top-level fields that stages replace (before
// the first stage's are lifted there).
func checkTopWithStages(t *lua.LTable) error {
	for _, f := range sortedKeys(notWithStages) {
		if t.RawGetString(f) == lua.LNil {
			continue
		}
		if why := notWithStages[f]; why != "" {
			return fmt.Errorf("%s: not available with stages (%s)", f, why)
		}
		return fmt.Errorf("%s: with stages, each stage has its own key, window, aggregate and emit: move %s into a stage", f, f)
	}
	return nil
}

// readStage reads stages[i], whose input is the rows in emits.
func (p *Pipeline) readStage(t *lua.LTable, i int, in *Pipeline) (*Pipeline, error) {
	s := &Pipeline{Name: p.Name, File: p.File, Script: p.Script, Hash: p.Hash, Sinks: p.Sinks,
		CallTimeout: p.CallTimeout, MemoryLimit: p.MemoryLimit, stage: i, input: in.Columns(),
		proto: p.proto, logger: p.logger, lookups: p.lookups, intr: p.intr, fixed: p.fixed, luaTime: p.luaTime}
	where := fmt.Sprintf("stages[%d]", i)
	if _, ok := t.RawGetString("key").(*lua.LFunction); ok {
		return nil, fmt.Errorf("%s.key: a later stage is keyed by columns of its input (%s), not by a function", where, strings.Join(s.input, ", "))
	}
	if err := s.readKey(t.RawGetString("key")); err != nil {
		return nil, fmt.Errorf("%s.key: %w", where, err)
	}
	if err := s.readAggregates(t.RawGetString("aggregate"), t.RawGetString("columns")); err != nil {
		return nil, fmt.Errorf("%s.%w", where, err)
	}
	if err := s.checkInputColumns(where, i); err != nil {
		return nil, err
	}
	if err := s.readStageWindow(t, where); err != nil {
		return nil, err
	}
	if err := s.readResultShape(t); err != nil {
		return nil, fmt.Errorf("%s.%w", where, err)
	}
	if s.Window != nil {
		if t.RawGetString("emit") == lua.LNil {
			s.Emit = EmitFinal
		}
		if err := s.checkWindowedEmit(s.Emit); err != nil {
			return nil, fmt.Errorf("%s.%w", where, err)
		}
	}
	return s, nil
}

// readStageWindow reads a later stage's window. Its input rows fall in it
// by their own window's last instant (window_end less a millisecond), and
// it closes when the watermark passes its end, as the first stage's do.
func (s *Pipeline) readStageWindow(t *lua.LTable, where string) error {
	w, err := readWindow(t.RawGetString("window"))
	if err != nil {
		return fmt.Errorf("%s.%w", where, err)
	}
	if w == nil {
		return nil
	}
	if w.Kind == "session" {
		return fmt.Errorf("%s.window: session windows are for the first stage; a later one takes eddy.tumbling or eddy.hopping", where)
	}
	for _, k := range s.KeyColumns {
		if k == WindowColumns[0] || k == WindowColumns[1] {
			return fmt.Errorf("%s.key: %q names this stage's own window once it has one: key by other columns", where, k)
		}
	}
	if t.RawGetString("limit") != lua.LNil {
		return fmt.Errorf("%s.limit: a windowed stage emits every window that closes; limit is for unwindowed last stages", where)
	}
	s.Window = w
	return nil
}

// checkWindowedEmit: a windowed later stage emits final rows only.
func (s *Pipeline) checkWindowedEmit(mode string) error {
	if s.Window != nil && mode != EmitFinal {
		return fmt.Errorf("emit: stages[%d] has a window: it emits each window once, when it closes (final), not %q", s.stage, mode)
	}
	return nil
}

// ParseTime reads a window_start or window_end value (FormatTime's form)
// back as Unix ms.
func ParseTime(v any) (int64, error) {
	str, ok := v.(string)
	if !ok {
		return 0, fmt.Errorf("want a time such as \"2024-01-01T00:00:00.000Z\", got %v", v)
	}
	t, err := time.Parse(timeLayout, str)
	if err != nil {
		return 0, err
	}
	return t.UnixMilli(), nil
}

// checkInputColumns: every column a stage reads is one its input has.
func (s *Pipeline) checkInputColumns(where string, i int) error {
	has := map[string]bool{}
	for _, c := range s.input {
		has[c] = true
	}
	bad := func(what, col string) error {
		return fmt.Errorf("%s.%s: %q is not a column of stages[%d] (its columns: %s)", where, what, col, i-1, strings.Join(s.input, ", "))
	}
	for _, k := range s.KeyColumns {
		if !has[k] {
			return bad("key", k)
		}
	}
	for _, a := range s.Aggregates {
		for _, f := range []string{a.Field, a.By} {
			if f != "" && !has[f] {
				return bad("aggregate."+a.Name, f)
			}
		}
	}
	return nil
}

// setLastEmit sets the last stage's emit mode on a copy of it, so a
// copy of p (pipetest's) does not change p's.
func (p *Pipeline) setLastEmit(mode string) error {
	n := len(p.Stages)
	last := *p.Stages[n-1]
	if err := last.checkWindowedEmit(mode); err != nil {
		return err
	}
	if err := last.SetEmit(mode); err != nil {
		return err
	}
	p.Stages = append(p.Stages[:n-1:n-1], &last)
	return nil
}

// RowShard is the shard of a later stage's n that keys row (0 when the
// row lacks a key column: that shard sends it to the dead letters).
func (p *Pipeline) RowShard(row connectors.Row, n int) int {
	key, err := p.rowKey(row, make([]any, len(p.KeyColumns)))
	if err != nil {
		return 0
	}
	return Shard(key, n)
}

// rowKey is a later stage's key of row, as Process writes keys; the key
// columns' values go in vals.
func (p *Pipeline) rowKey(row connectors.Row, vals []any) (string, error) {
	var key []byte
	for i, col := range p.KeyColumns {
		v, ok := row.Get(col)
		if !ok || v == nil {
			return "", fmt.Errorf("stages[%d].key: column %q is missing", p.stage, col)
		}
		vals[i] = v
		if i > 0 {
			key = append(key, 0x1f)
		}
		if s, ok := v.(string); ok {
			key = append(key, s...)
		} else {
			key = connectors.AppendValue(key, v)
		}
	}
	return string(key), nil
}

// KeyRow is Process for a later stage: it keys a row the stage before
// emitted, and picks the values its aggregates take, all in Go.
func (rt *Runtime) KeyRow(row connectors.Row) (Keyed, error) {
	p := rt.p
	k := Keyed{Vals: make([]any, len(p.KeyColumns)+len(p.Aggregates))}
	var err error
	if k.Key, err = p.rowKey(row, k.Vals); err != nil {
		return k, err
	}
	base := len(p.KeyColumns)
	for i, a := range p.Aggregates {
		switch a.Func {
		case "count":
		case "lua":
			m := make(map[string]any, len(row.Fields))
			for _, f := range row.Fields {
				m[f.Name] = f.Value
			}
			k.Vals[base+i] = m
		case "top":
			v, _ := row.Get(a.Field)
			if a.By != "" {
				by, _ := row.Get(a.By)
				v = []any{v, by}
			}
			k.Vals[base+i] = v
		default:
			k.Vals[base+i], _ = row.Get(a.Field)
		}
	}
	return k, nil
}

// checkStagesReload refuses a reload of a pipeline whose later stages run
// Lua aggregates: their shards keep the runtime they started with, so the
// new script's functions would not run there.
func checkStagesReload(old *Pipeline) error {
	for _, s := range old.Stages {
		for _, a := range s.Aggregates {
			if a.Func == "lua" {
				return fmt.Errorf("stages[%d].aggregate.%s is a Lua aggregate, which a running later stage can't swap for the new script's yet: restart the run to change the script", s.Stage(), a.Name)
			}
		}
	}
	return nil
}

// describeStages writes the later stages' keys, aggregates and result
// shape, for CheckReload: their tables are checkpointed by that layout.
func describeStages(p *Pipeline) string {
	var sb strings.Builder
	for _, s := range p.Stages {
		fmt.Fprintf(&sb, "stages[%d]{key %s", s.Stage(), columnList(s.KeyColumns))
		for _, a := range s.Aggregates {
			fmt.Fprintf(&sb, ", %s = %s", a.Name, describeAgg(a))
		}
		fmt.Fprintf(&sb, ", emit %s, order_by %v, limit %d} ", s.Emit, s.OrderBy, s.Limit)
	}
	if sb.Len() == 0 {
		return "none"
	}
	return strings.TrimSpace(sb.String())
}

package scripting

import (
	"fmt"
	"strings"

	"github.com/eddy-stream/eddy/connectors"
	lua "github.com/yuin/gopher-lua"
)

// having filters result rows before they are emitted, as SQL's HAVING
// does: a declarative filter (the forms of declarative.go) over the
// result's columns, evaluated in Go, or a function(row) returning true to
// emit the row. It runs at every trigger in every emit mode, before
// order_by and limit. A row that stops passing is not emitted again; in
// update mode nothing retracts the row emitted before (see
// docs/pipelines.md).

// readHaving reads the pipeline's having field; the result columns are
// known by now.
func (p *Pipeline) readHaving(v lua.LValue) error {
	if v != lua.LNil && !p.HasAggregate() {
		return fmt.Errorf("having filters result rows: add an aggregate (filter filters records)")
	}
	switch v := v.(type) {
	case *lua.LNilType:
		return nil
	case *lua.LFunction:
		p.steps.luaHaving = true
	default:
		pred, err := readPredicate(v)
		if err != nil {
			return fmt.Errorf("having: %w", err)
		}
		p.steps.having = pred
		return p.checkHavingReads()
	}
	return nil
}

func (p *Pipeline) checkHavingReads() error {
	cols := p.Columns()
	var err error
	p.steps.having.reads(func(name string) {
		for _, c := range cols {
			if c == name {
				return
			}
		}
		if err == nil {
			err = fmt.Errorf("having: %q is not a result column (columns: %s)", name, strings.Join(cols, ", "))
		}
	})
	return err
}

// HasHaving says whether result rows go through a having filter.
func (p *Pipeline) HasHaving() bool { return p.steps.having != nil || p.steps.luaHaving }

// Having says whether the result row passes the pipeline's having filter
// (true without one). An error is the filter's: the row can be neither
// emitted nor dropped safely, so the caller stops.
func (rt *Runtime) Having(row connectors.Row) (bool, error) {
	if pred := rt.p.steps.having; pred != nil {
		ok, err := pred.test(rowFields(row.Fields))
		if err != nil {
			return false, fmt.Errorf("having: %s: %w", pred.describe(), err)
		}
		return ok, nil
	}
	if !rt.p.steps.luaHaving {
		return true, nil
	}
	L := rt.sb.L
	t := L.CreateTable(0, len(row.Fields))
	for _, f := range row.Fields {
		t.RawSetString(f.Name, toLua(L, f.Value))
	}
	if err := rt.call(rt.havingFn, 1, t); err != nil {
		return false, fmt.Errorf("having: %w", err)
	}
	keep := lua.LVAsBool(L.Get(-1))
	L.Pop(1)
	return keep, nil
}

// rowFields lets a declarative filter read a result row's columns.
type rowFields []connectors.Field

// tableStandIn stands for a list or table value of a row: declarative
// filters only look at its type (a table equals no constant and can't be
// ordered, as in Lua).
var tableStandIn = &lua.LTable{}

func (r rowFields) RawGetString(name string) lua.LValue {
	for _, f := range r {
		if f.Name != name {
			continue
		}
		switch f.Value.(type) {
		case []any, map[string]any:
			return tableStandIn
		}
		return toLua(nil, f.Value)
	}
	return lua.LNil
}

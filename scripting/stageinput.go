package scripting

import (
	"fmt"
	"math"
	"time"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/valyala/fastjson"
)

// Stages on a cluster (eddy run --repartition): the first stage runs as a
// pipeline of its own (FirstStage), its rows written as JSON to a stage
// topic by the next stage's key, and each later stage runs as a pipeline
// of its own over its stage topic (LaterStage): each record is one row of
// the stage before, keyed and aggregated as the in-process stage would
// (KeyRow), and a stage that feeds another writes its rows to the next
// stage topic in turn.

// FirstStage is p without its later stages: its parse, filter, join, key,
// window and aggregate, emitting each window once when it closes, as it
// does for its next stage.
func (p *Pipeline) FirstStage() *Pipeline {
	c := *p
	c.Stages = nil
	return &c
}

// LaterStage is p's stages[n] (n ≥ 2) run as a pipeline of its own whose
// records are the rows of stages[n-1] as JSON objects. A windowed stage's
// event time is each row's window_end less a millisecond (its window's
// last instant, as in-process), and its watermark is the one the stage
// topic's markers carry (stagemarks.go in connectors/kafka): nothing out
// of order beyond it, so no allowance, and no partition is ever idle.
func (p *Pipeline) LaterStage(n int) (*Pipeline, error) {
	if n < 2 || n > len(p.Stages)+1 {
		return nil, fmt.Errorf("%s has no stages[%d] (an eddy bug: please report it)", p.Script, n)
	}
	s := *p.Stages[n-2]
	s.rowInput = true
	if s.Window != nil {
		s.EventTime = &EventTime{Field: WindowColumns[1]}
		// Never idle: every partition of a stage topic gets every marker,
		// rows or not, so none lags the others; one that stopped counting
		// after a minute without rows would, once all had, leave the
		// node's watermark standing still while the markers went on.
		s.Watermark = Watermark{IdleTimeout: time.Duration(math.MaxInt64), MaxFuture: DefaultMaxFuture}
		s.AllowedLateness = 0
	}
	return &s, nil
}

// StageKey is the key a later stage's pipeline (LaterStage, or p.Stages[i])
// groups row by: the partition of a repartition topic it goes to.
func (p *Pipeline) StageKey(row connectors.Row) (string, error) {
	return p.rowKey(row, make([]any, len(p.KeyColumns)))
}

// processRow is Process for a later stage run on its own: raw is a row of
// the stage before, as a JSON object.
func (rt *Runtime) processRow(raw []byte) (k Keyed, rec connectors.Row, kept bool, err error) {
	row, err := rt.decodeRow(raw)
	if err != nil {
		return k, rec, false, err
	}
	k, err = rt.KeyRow(row)
	if err != nil {
		return k, rec, false, err
	}
	if rt.p.Window != nil {
		end, _ := row.Get(WindowColumns[1])
		at, err := ParseTime(end)
		if err != nil {
			return k, rec, false, fmt.Errorf("stages[%d]: the input row's window_end: %w", rt.p.Stage(), err)
		}
		k.Time = at - 1 // the input window's last instant
	}
	return k, rec, true, nil
}

// decodeRow reads a row written as a JSON object (connectors.AppendJSON),
// its fields in order, integral numbers as int64.
func (rt *Runtime) decodeRow(raw []byte) (connectors.Row, error) {
	v, err := rt.dp.ParseBytes(raw)
	if err != nil {
		return connectors.Row{}, fmt.Errorf("stages[%d]: an input row: %w", rt.p.Stage(), err)
	}
	o, err := v.Object()
	if err != nil {
		return connectors.Row{}, fmt.Errorf("stages[%d]: an input row is a JSON %s, want an object", rt.p.Stage(), v.Type())
	}
	row := connectors.Row{Fields: make([]connectors.Field, 0, o.Len())}
	o.Visit(func(key []byte, x *fastjson.Value) {
		row.Fields = append(row.Fields, connectors.Field{Name: string(key), Value: jsonToGo(x)})
	})
	return row, nil
}

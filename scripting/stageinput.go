package scripting

import (
	"fmt"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/valyala/fastjson"
)

// Stages on a cluster (eddy run --repartition): the first stage runs as a
// pipeline of its own (FirstStage), its rows written as JSON to a second
// repartition topic by the next stage's key, and the next stage runs as a
// pipeline of its own over that topic (LaterStage): each record is one
// row of the stage before, keyed and aggregated as the in-process stage
// would (KeyRow).

// FirstStage is p without its later stages: its parse, filter, join, key,
// window and aggregate, emitting each window once when it closes, as it
// does for its next stage.
func (p *Pipeline) FirstStage() *Pipeline {
	c := *p
	c.Stages = nil
	return &c
}

// LaterStage is p's stages[2] run as a pipeline of its own whose records
// are stage 1's rows as JSON objects. It refuses what that can't run yet:
// a third stage, and a windowed second stage (its event time would be its
// input rows' window ends, which the repartition topic does not carry as
// a watermark yet).
func (p *Pipeline) LaterStage() (*Pipeline, error) {
	if len(p.Stages) != 1 {
		return nil, fmt.Errorf("%s has %d stages: through repartition topics eddy runs two stages yet, not more", p.Script, len(p.Stages)+1)
	}
	s := *p.Stages[0]
	if s.Window != nil {
		return nil, fmt.Errorf("%s: stages[2] has a window: through a repartition topic a later stage runs unwindowed yet (its watermark, its input rows' window ends, does not cross the topic)", p.Script)
	}
	s.rowInput = true
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

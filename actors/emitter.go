package actors

import (
	"fmt"
	"sort"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/scripting"
)

// Emitter keeps the result table: for each key, the partial accumulators
// every partition holds, merged into result rows at each trigger as the
// emit mode asks. Its table is derived state: shards resend theirs after a
// restore, so it is never checkpointed.
type Emitter struct {
	e       *engine
	rt      *scripting.Runtime
	table   map[string]*resultEntry
	changed map[string]struct{}
	shards  int
	// drops: windows to forget once this trigger's rows are out
	drops []dropped
	// fired: windows that fired in some partition, by end, for final mode:
	// they are emitted once the pipeline's watermark passes their end, when
	// every partition has fired them.
	fired map[string]int64
}

type dropped struct{ key, partition string }

// forget applies the drops of windows whose last rows are out.
func (em *Emitter) forget() {
	for _, d := range em.drops {
		if en := em.table[d.key]; en != nil {
			delete(en.parts, d.partition)
			if len(en.parts) == 0 {
				delete(em.table, d.key)
			}
		}
	}
	em.drops = nil
}

type resultEntry struct {
	keyVals []any
	parts   map[string][]any // partition → portable accumulators
	firedBy time.Time        // the earliest read that fired it, for FireLatency
}

func newEmitter(e *engine) (*Emitter, error) {
	rt, err := e.cfg.Pipeline.NewRuntime(false)
	if err != nil {
		return nil, err
	}
	return &Emitter{e: e, rt: rt, table: map[string]*resultEntry{}, changed: map[string]struct{}{}, fired: map[string]int64{}, shards: e.cfg.Shards}, nil
}

// Receive implements actor.Actor.
func (em *Emitter) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *resultRows:
		em.update(m)
	case *emitTrigger:
		rows, err := em.rows(m.final, m.watermark)
		if err != nil {
			ctx.Send(em.e.node, &sinkFailed{name: "results", err: err})
			return
		}
		em.forget()
		if len(rows) > 0 {
			ctx.Send(em.e.results, &rowsOut{rows: rows})
		}
		ctx.Send(em.e.results, &flush{seq: m.seq})
	case *actor.Stopping:
		em.rt.Close()
	}
}

func (em *Emitter) update(m *resultRows) {
	if m.reset {
		// A shard (re)started: forget what it sent before.
		for key, en := range em.table {
			if scripting.Shard(groupKey(key), em.shards) == m.shard {
				if _, ok := en.parts[m.partition]; ok {
					delete(en.parts, m.partition)
					if len(en.parts) == 0 {
						delete(em.table, key)
					}
					em.changed[key] = struct{}{}
				}
			}
		}
	}
	for _, key := range m.drop {
		em.drops = append(em.drops, dropped{key: key, partition: m.partition})
	}
	for i, p := range m.rows {
		if m.fired {
			em.fired[p.key] = m.ends[i]
		}
		en := em.table[p.key]
		if en == nil {
			en = &resultEntry{keyVals: p.keyVals, parts: make(map[string][]any, 1)}
			em.table[p.key] = en
		}
		en.parts[m.partition] = p.accs
		em.changed[p.key] = struct{}{}
		if !p.firedBy.IsZero() && (en.firedBy.IsZero() || p.firedBy.Before(en.firedBy)) {
			en.firedBy = p.firedBy
		}
	}
}

// rows builds the rows a trigger emits.
func (em *Emitter) rows(final bool, watermark int64) ([]connectors.Row, error) {
	p := em.e.cfg.Pipeline
	var keys []string
	switch {
	case p.IsWindowed() && p.Emit == scripting.EmitFinal:
		// Each window once, when it fires; nothing is kept after.
		keys = make([]string, 0, len(em.fired))
		for k, end := range em.fired {
			if final || end <= watermark {
				keys = append(keys, k)
			}
		}
		defer func() {
			now := time.Now()
			for _, k := range keys {
				if en := em.table[k]; en != nil && !en.firedBy.IsZero() {
					em.e.cfg.Stats.FireLatency.Observe(now.Sub(en.firedBy))
				}
				delete(em.table, k)
				delete(em.fired, k)
			}
		}()
	case p.Emit == scripting.EmitUpdate:
		keys = make([]string, 0, len(em.changed))
		for k := range em.changed {
			if em.table[k] != nil {
				keys = append(keys, k)
			}
		}
	case p.Emit == scripting.EmitComplete || final:
		keys = make([]string, 0, len(em.table))
		for k := range em.table {
			keys = append(keys, k)
		}
	default: // final mode, not the end yet
		return nil, nil
	}
	em.changed = map[string]struct{}{}
	rows := make([]connectors.Row, 0, len(keys))
	cols := p.Columns()
	for _, k := range keys {
		vals, err := em.result(em.table[k])
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", k, err)
		}
		row := connectors.Row{Key: k, Fields: make([]connectors.Field, len(cols))}
		for i, c := range cols {
			row.Fields[i] = connectors.Field{Name: c, Value: vals[i]}
		}
		rows = append(rows, row)
	}
	sortRows(rows, p.OrderBy)
	if p.Limit > 0 && p.Emit != scripting.EmitUpdate && len(rows) > p.Limit {
		rows = rows[:p.Limit]
	}
	for i := range rows {
		rows[i].Key = groupKey(rows[i].Key) // a window's row is keyed by its key
	}
	return rows, nil
}

// result merges a key's partials and computes its row values.
func (em *Emitter) result(en *resultEntry) ([]any, error) {
	var accs []any
	if len(en.parts) == 1 {
		for _, a := range en.parts {
			accs = a
		}
	} else {
		ids := make([]string, 0, len(en.parts))
		for id := range en.parts {
			ids = append(ids, id)
		}
		sort.Strings(ids)
		var err error
		if accs, err = em.rt.Portable(en.parts[ids[0]]); err != nil {
			return nil, err
		}
		for _, id := range ids[1:] {
			if err := em.rt.Merge(accs, en.parts[id]); err != nil {
				return nil, err
			}
		}
	}
	res, err := em.rt.Results(accs)
	if err != nil {
		return nil, err
	}
	return append(append([]any(nil), en.keyVals...), res...), nil
}

// sortRows orders rows by the pipeline's order_by, then (for windows) by
// window start, then by key, so equal rows come out the same way every run.
func sortRows(rows []connectors.Row, order []scripting.Order) {
	idx := map[string]int{}
	if len(rows) > 0 {
		for i, f := range rows[0].Fields {
			idx[f.Name] = i
		}
	}
	ws, windowed := idx[scripting.WindowColumns[0]]
	sort.SliceStable(rows, func(i, j int) bool {
		for _, o := range order {
			c := scripting.Compare(rows[i].Fields[idx[o.Column]].Value, rows[j].Fields[idx[o.Column]].Value)
			if c != 0 {
				return (c < 0) != o.Desc
			}
		}
		if windowed {
			if c := scripting.Compare(rows[i].Fields[ws].Value, rows[j].Fields[ws].Value); c != 0 {
				return c < 0
			}
		}
		return rows[i].Key < rows[j].Key
	})
}

package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/scripting"
)

// How a trigger's rows travel between the later stages of a multi-stage
// pipeline: from the emitter or a stage's shards to the next stage's
// shards by key, and from the last stage's shards to the collector, which
// sends them to the results sink. Each hop waits for every sender's part of
// a trigger before it goes on.

// stageHop is where a stage's rows go: the next stage's shards, each the
// rows its key hashes to (p is that stage), or the collector (p nil).
type stageHop struct {
	p    *scripting.Pipeline
	pids []*actor.PID
}

// send sends every actor of the hop its part of a trigger's rows (maybe
// none: the trigger goes on all the same).
func (h stageHop) send(ctx actor.Context, t emitTrigger, rows []connectors.Row, read time.Time, changed bool) {
	parts := make([][]connectors.Row, len(h.pids))
	if h.p == nil {
		parts[0] = rows
	} else {
		for _, r := range rows {
			i := h.p.RowShard(r, len(h.pids))
			parts[i] = append(parts[i], r)
		}
	}
	for i, pid := range h.pids {
		ctx.Send(pid, &stageRows{trigger: t, rows: parts[i], read: read, changed: changed})
	}
}

// gather collects a trigger's rows from its senders; it returns them all
// once the last is in, nil before. Each sender sends triggers in order, so
// triggers complete in order.
func gather(arrivals map[uint64]*stageRows, m *stageRows, senders int) *stageRows {
	in := arrivals[m.trigger.seq]
	if in == nil {
		in = &stageRows{trigger: m.trigger}
		arrivals[m.trigger.seq] = in
	}
	in.rows = append(in.rows, m.rows...)
	in.changed = in.changed || m.changed
	if !m.read.IsZero() && (in.read.IsZero() || m.read.Before(in.read)) {
		in.read = m.read
	}
	in.from++
	if in.from < senders {
		return nil
	}
	delete(arrivals, m.trigger.seq)
	return in
}

// stageCollector gathers the last stage's rows of a trigger from its
// shards and sends them to the results sink as the emit mode asks:
// ordered, limited, and numbered for complete emits.
type stageCollector struct {
	e        *engine
	p        *scripting.Pipeline
	senders  int
	arrivals map[uint64]*stageRows
	// tables: the complete-mode tables emitted so far
	tables int64
}

// Receive implements actor.Actor.
func (c *stageCollector) Receive(ctx actor.Context) {
	m, ok := ctx.Message().(*stageRows)
	if !ok {
		return
	}
	in := gather(c.arrivals, m, c.senders)
	if in == nil {
		return
	}
	rows := c.shape(in)
	if len(rows) > 0 {
		ctx.Send(c.e.results, &rowsOut{rows: rows, read: in.read})
	}
	ctx.Send(c.e.results, &flush{seq: in.trigger.seq})
	if c.e.deadLetters != nil {
		// The later stages send a trigger's dead letters before they pass
		// it on, so they are in the writer's mailbox before this flush: the
		// flush (and the checkpoint it completes) covers them.
		ctx.Send(c.e.deadLetters, &flush{seq: in.trigger.seq})
	}
}

func (c *stageCollector) shape(in *stageRows) []connectors.Row {
	complete := c.p.Emit == scripting.EmitComplete
	if complete && !in.changed {
		return nil // the table is the one last emitted
	}
	rows := in.rows
	sortRows(rows, c.p.OrderBy)
	if c.p.Emit != scripting.EmitUpdate && c.p.Limit > 0 && len(rows) > c.p.Limit {
		rows = rows[:c.p.Limit]
	}
	if complete && len(rows) > 0 {
		c.tables++
		for i := range rows {
			rows[i].Fields = append(rows[i].Fields, connectors.Field{Name: TriggerColumn, Value: c.tables})
		}
	}
	return rows
}

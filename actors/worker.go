package actors

import (
	"fmt"
	"strings"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/scripting"
)

// ParseWorker runs parse/filter/key over whole batches in its own LState,
// so one partition's script work spreads over the cores. Its supervisor
// hands batches out in turn and puts the results back in source order
// before anything moves on, so workers change nothing but speed.
type ParseWorker struct {
	e         *engine
	partition string
	shards    int
	rt        *scripting.Runtime
	// sizes: how many rows each shard got from the last batch, to size
	// the next batch's slices (growing them cost more than the filling)
	sizes []int
}

func newParseWorker(e *engine, partition string, shards int) *ParseWorker {
	return &ParseWorker{e: e, partition: partition, shards: shards}
}

// Receive implements actor.Actor.
func (w *ParseWorker) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		p := w.e.pipeline()
		rt, err := p.NewRuntime(w.e.outputs["records"] != nil || p.HasRoute())
		if err != nil {
			panic(fmt.Errorf("parse worker of %s: %w", w.partition, err))
		}
		w.rt = rt
	case *actor.Stopping, *actor.Restarting:
		if w.rt != nil {
			w.rt.Close()
			w.rt = nil
		}
	case *work:
		ctx.Send(ctx.Parent(), w.process(m))
	}
}

func (w *ParseWorker) process(m *work) *worked {
	b := m.batch
	out := &worked{gen: m.gen, seq: m.seq}
	if w.shards > 0 {
		w.useBufs(out, m.bufs, len(b.Records))
		defer w.rt.UseVals(nil) // (the batch's slab is not the runtime's)
	}
	for i := range b.Records {
		if err := b.Records[i].Err; err != nil {
			out.dead = append(out.dead, deadLetter(w.partition, b, i, err))
			continue
		}
		var srcMs int64
		if t := b.Records[i].Time; !t.IsZero() {
			srcMs = t.UnixMilli()
		}
		var k scripting.Keyed
		var rec connectors.Row
		var ok bool
		var err error
		if b.Source != "" {
			k, rec, ok, err = w.rt.ProcessSource(b.Source, b.Records[i].Value, srcMs)
		} else {
			ok, err = w.rt.ProcessInto(b.Records[i].Value, srcMs, &k, &rec)
		}
		if interrupted(err) {
			// Not the record's fault: it stays unprocessed (and
			// unacknowledged), never a dead letter.
			return &worked{gen: m.gen, seq: m.seq, interrupted: true}
		}
		if err != nil {
			out.dead = append(out.dead, deadLetter(w.partition, b, i, err))
			continue
		}
		if !ok {
			continue
		}
		if rec.Fields != nil {
			if err := w.route(out, rec); err != nil {
				out.dead = append(out.dead, deadLetter(w.partition, b, i, err))
				continue
			}
		}
		out.kept++
		if w.e.cfg.Pipeline.HasEventTime() && (!out.timed || k.Time > out.maxTime) {
			out.maxTime, out.timed = k.Time, true
		}
		if out.perShard != nil {
			sh := scripting.Shard(k.Key, w.shards)
			out.perShard[sh] = append(out.perShard[sh], k)
			out.perIdx[sh] = append(out.perIdx[sh], i)
		}
	}
	for sh := range out.perShard {
		w.sizes[sh] = len(out.perShard[sh])
	}
	return out
}

// useBufs fills out's per-shard slices and its records' values into bufs,
// an earlier batch's (or new ones, each shard's a little larger than the
// last batch needed), for a batch of n records.
func (w *ParseWorker) useBufs(out *worked, bufs *batchBufs, n int) {
	if w.sizes == nil {
		w.sizes = make([]int, w.shards)
	}
	p := w.e.cfg.Pipeline
	out.bufs = bufs.prepare(n, len(p.KeyColumns)+len(p.Aggregates), w.shards, w.sizes)
	out.perShard, out.perIdx = out.bufs.perShard, out.bufs.perIdx
	w.rt.UseVals(out.bufs.vals)
}

// route files a record under the sinks the script's route function named
// (the "records" output by default).
func (w *ParseWorker) route(out *worked, rec connectors.Row) error {
	routes := w.rt.Routes()
	if routes == nil {
		routes = []string{"records"}
	}
	for _, name := range routes {
		if _, ok := w.e.outputs[name]; !ok && name != "records" {
			return fmt.Errorf("route: no sink named %q (sinks: %s)", name, strings.Join(w.e.outputNames(), ", "))
		}
	}
	if out.outputs == nil {
		out.outputs = map[string][]connectors.Row{}
	}
	for _, name := range routes {
		if _, ok := w.e.outputs[name]; ok {
			out.outputs[name] = append(out.outputs[name], rec)
		}
	}
	return nil
}

// deadLetter describes a failed record for the dead-letter output.
func deadLetter(partition string, b *connectors.Batch, i int, err error) connectors.Row {
	return connectors.Row{Fields: []connectors.Field{
		{Name: "error", Value: err.Error() + " (" + b.Locate(i) + ")"},
		{Name: "partition", Value: partition},
		{Name: "source", Value: b.Locate(i)},
		{Name: "record", Value: string(b.Records[i].Value)},
	}}
}

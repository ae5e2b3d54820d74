package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/eddy-stream/eddy/connectors"
)

// SinkWriter feeds one output's connectors.Sink. It is where the engine's
// output I/O happens, one actor per sink, so a slow sink holds back only
// its own mailbox.
type SinkWriter struct {
	e    *engine
	name string
	sink connectors.Sink
	err  error
	st   *SinkStats
}

func newSinkWriter(e *engine, name string, s connectors.Sink) *SinkWriter {
	return &SinkWriter{e: e, name: name, sink: s, st: e.cfg.Stats.addSink(name, s)}
}

// Receive implements actor.Actor.
func (w *SinkWriter) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *rowsOut:
		if w.err != nil {
			return
		}
		if w.name == "dead_letter" {
			w.e.recent.dead(m.rows)
		}
		if err := w.sink.Write(w.e.ctx, m.rows); err != nil {
			w.err = err
			w.st.Errors.Add(1)
			ctx.Send(w.e.node, &sinkFailed{name: w.name, err: err})
			return
		}
		w.st.Rows.Add(int64(len(m.rows)))
		if !m.read.IsZero() {
			w.st.EndToEnd.Observe(time.Since(m.read))
		}
	case *flush:
		err := w.err
		if err == nil {
			err = w.timed(func() error { return w.sink.Flush(w.e.ctx) })
		}
		ctx.Send(w.e.node, &sinkFlushed{seq: m.seq, name: w.name, err: err})
	case *commit:
		err := w.err
		if err == nil {
			err = w.timed(func() error { return w.sink.(connectors.Transactional).Commit(w.e.ctx, m.cp) })
		}
		ctx.Send(w.e.node, &sinkFlushed{seq: m.seq, name: w.name, err: err})
	case *abortTx:
		if err := w.sink.(connectors.Transactional).Abort(w.e.ctx); err != nil {
			w.st.Errors.Add(1)
			ctx.Send(w.e.node, &sinkFailed{name: w.name, err: err})
		}
	}
}

// timed runs a flush or commit, counting its time and its failure.
func (w *SinkWriter) timed(f func() error) error {
	start := time.Now()
	err := f()
	if err != nil {
		w.st.Errors.Add(1)
		return err
	}
	w.st.Flush.Observe(time.Since(start))
	return nil
}

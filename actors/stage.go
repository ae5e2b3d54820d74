package actors

import (
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/scripting"
)

// StageAggregator runs one later stage of a multi-stage pipeline
// (scripting/stages.go). At each trigger it folds in the rows the stage
// before emitted, keyed by its own key, writes its table at the trigger's
// checkpoint, and emits what its emit mode asks: to the next stage, or to
// the results sink.
//
// The emitter (stage 1) sends it a trigger's rows before its flush, so a
// checkpoint covers exactly the windows stage 1 emitted up to it: those
// are in this stage's table at that version, the rest are still in stage
// 1's state. Its input is append-only (each window once), so a row never
// has to be taken back out.
//
// A windowed stage fires its windows as the trigger's watermark passes
// their end, emits each once and forgets it, so it can feed another stage.
//
// A stage is sharded by its key like the first stage's aggregators
// (Config.Shards actors, each with the keys that hash to it); each shard
// waits for a trigger's rows from every sender of the stage before (the
// emitter, or that stage's shards) and then sends its own rows on to the
// next stage's shards by their key, or to the stageCollector. The stage
// runs in-process, only where no partition moves to another node (no
// changelog).
type StageAggregator struct {
	e     *engine
	p     *scripting.Pipeline
	shard int
	// shards: the stage's shard count; senders: how many actors send it
	// each trigger's rows
	shards, senders int
	next            stageHop
	arrivals        map[uint64]*stageRows // by trigger seq, until all senders' are in
	rt              *scripting.Runtime
	table           map[string]*stageEntry
	// changed: keys changed since the last trigger (update and complete
	// emits)
	changed map[string]struct{}
	// dirty: keys changed (or deleted) since the last save; pending: the
	// keys each save wrote, until a checkpoint at or after it completes.
	dirty   map[string]struct{}
	pending map[uint64]map[string]struct{}
	// watermark: windows ending at or before it have fired (windowed
	// stages)
	watermark int64
}

// stageEntry is one key's accumulators; in a windowed stage, one key's in
// one window, at state key key␞start.
type stageEntry struct {
	keyVals, accs []any
	start, end    int64
}

// Store keys: one prefix per stage.
func stageKey(stage int, key string) []byte { return append(stagePrefix(stage), key...) }
func stagePrefix(stage int) []byte          { return []byte("stage/" + strconv.Itoa(stage) + "\x00") }

// spawnStages spawns the later stages' shards and the collector, last
// first, so each knows where its rows go.
func (e *engine) spawnStages(spawn func(name string, a actor.Actor) *actor.PID) error {
	stages := e.cfg.Pipeline.Stages
	if len(stages) == 0 {
		return nil
	}
	shards := max(e.cfg.Shards, 1)
	last := stages[len(stages)-1]
	next := stageHop{pids: []*actor.PID{spawn("the stages' collector", &stageCollector{e: e, p: last, senders: shards, arrivals: map[uint64]*stageRows{}})}}
	for i := len(stages) - 1; i >= 0; i-- {
		senders := shards
		if i == 0 {
			senders = 1 // the emitter
		}
		hop := stageHop{p: stages[i]}
		for shard := range shards {
			s, err := newStage(e, stages[i], shard, shards, senders, next)
			if err != nil {
				return fmt.Errorf("stages[%d]: %w", stages[i].Stage(), err)
			}
			hop.pids = append(hop.pids, spawn(fmt.Sprintf("stages[%d] shard %d", stages[i].Stage(), shard), s))
		}
		next = hop
	}
	e.firstStage = next
	return nil
}

func newStage(e *engine, p *scripting.Pipeline, shard, shards, senders int, next stageHop) (*StageAggregator, error) {
	rt, err := p.NewRuntime(false)
	if err != nil {
		return nil, err
	}
	s := &StageAggregator{e: e, p: p, shard: shard, shards: shards, senders: senders, next: next, arrivals: map[uint64]*stageRows{},
		rt: rt, table: map[string]*stageEntry{}, changed: map[string]struct{}{},
		dirty: map[string]struct{}{}, pending: map[uint64]map[string]struct{}{},
		watermark: math.MinInt64}
	if err := s.restore(); err != nil {
		rt.Close()
		return nil, fmt.Errorf("restore: %w", err)
	}
	return s, nil
}

// restore reads the shard's keys of the last checkpoint.
func (s *StageAggregator) restore() error {
	cp, err := s.e.cfg.Store.Last()
	if err != nil {
		return nil // no checkpoint: an empty table
	}
	prefix := stagePrefix(s.p.Stage())
	return s.e.cfg.Store.Scan(cp.ID, prefix, func(k, v []byte) error {
		if scripting.Shard(groupKey(string(k[len(prefix):])), s.shards) != s.shard {
			return nil
		}
		keyVals, accs, err := s.rt.DecodeEntry(v)
		if err != nil {
			return fmt.Errorf("key %q: %w", k[len(prefix):], err)
		}
		en := &stageEntry{keyVals: keyVals, accs: accs}
		if s.p.IsWindowed() {
			// Windowed entries carry start and end after the key.
			n := len(keyVals) - 2
			if n < 0 {
				return fmt.Errorf("key %q: a window entry without its window", k[len(prefix):])
			}
			en.start, _ = keyVals[n].(int64)
			en.end, _ = keyVals[n+1].(int64)
			en.keyVals = keyVals[:n:n]
		}
		s.table[string(k[len(prefix):])] = en
		return nil
	})
}

// toResults sends a trigger's rows from stage 1 on: to the results sink
// and its flush, or to the next stage.
func (e *engine) toResults(ctx actor.Context, t *emitTrigger, rows []connectors.Row, read time.Time) {
	if e.firstStage.pids != nil {
		e.firstStage.send(ctx, *t, rows, read, false)
		return
	}
	if len(rows) > 0 {
		ctx.Send(e.results, &rowsOut{rows: rows, read: read})
	}
	ctx.Send(e.results, &flush{seq: t.seq})
}

// Receive implements actor.Actor.
func (s *StageAggregator) Receive(ctx actor.Context) {
	// Like the emitter, a stage has no checkpoint to restart from alone: a
	// failure ends the run with its cause (the next run resumes from the
	// last checkpoint).
	defer func() {
		if r := recover(); r != nil {
			s.failed(ctx, fmt.Errorf("an engine bug (please report it): %v", r))
		}
	}()
	switch m := ctx.Message().(type) {
	case *stageRows:
		if in := gather(s.arrivals, m, s.senders); in != nil {
			s.trigger(ctx, in)
		}
	case *actor.Stopping:
		s.rt.Close()
	}
}

// trigger folds in a trigger's rows, checkpoints, and passes the
// trigger on.
func (s *StageAggregator) trigger(ctx actor.Context, m *stageRows) {
	s.fold(ctx, m.rows)
	var rows []connectors.Row
	var err error
	changed := len(s.changed) > 0
	if s.p.IsWindowed() {
		rows, err = s.fire(m.trigger.watermark, m.trigger.final)
	} else {
		rows, err = s.rows(m.trigger.final)
	}
	if err != nil {
		s.failed(ctx, err)
		return
	}
	// The checkpoint holds the table as this trigger leaves it: what it
	// emitted is downstream, at the same checkpoint.
	if m.trigger.epoch > 0 {
		if err := s.save(m.trigger.epoch); err != nil {
			s.failed(ctx, fmt.Errorf("checkpoint %d: %w", m.trigger.epoch, err))
			return
		}
	}
	s.next.send(ctx, m.trigger, rows, m.read, changed)
}

// failed ends the run: the results sink reports the stage's failure.
func (s *StageAggregator) failed(ctx actor.Context, err error) {
	ctx.Send(s.e.node, &sinkFailed{name: "results", err: fmt.Errorf("stages[%d]: %w", s.p.Stage(), err)})
}

// fold adds rows to the table. A row the stage can't take (a missing key
// column, a value of the wrong type) goes to the dead letters.
func (s *StageAggregator) fold(ctx actor.Context, rows []connectors.Row) {
	for _, row := range rows {
		if err := s.add(row); err != nil {
			s.deadLetter(ctx, row, err)
		}
	}
}

func (s *StageAggregator) add(row connectors.Row) error {
	k, err := s.rt.KeyRow(row)
	if err != nil {
		return err
	}
	if !s.p.IsWindowed() {
		return s.addTo(k.Key, &k, 0, 0)
	}
	end, _ := row.Get(scripting.WindowColumns[1])
	at, err := scripting.ParseTime(end)
	if err != nil {
		return fmt.Errorf("stages[%d]: the input row's window_end: %w", s.p.Stage(), err)
	}
	at-- // the input window's last instant
	for _, w := range s.p.Window.Windows(at, nil) {
		if s.closed(w[1]) {
			return fmt.Errorf("stages[%d]: a row for the window %s–%s, which has closed (an engine bug: please report it)",
				s.p.Stage(), scripting.FormatTime(w[0]), scripting.FormatTime(w[1]))
		}
	}
	for _, w := range s.p.Window.Windows(at, nil) {
		if err := s.addTo(windowKey(k.Key, w[0]), &k, w[0], w[1]); err != nil {
			return err
		}
	}
	return nil
}

// addTo folds k into the entry at state key sk, making it if need be.
func (s *StageAggregator) addTo(sk string, k *scripting.Keyed, start, end int64) error {
	nk := len(s.p.KeyColumns)
	en := s.table[sk]
	if en == nil {
		accs, err := s.rt.NewAccs()
		if err != nil {
			return fmt.Errorf("stages[%d]: %w", s.p.Stage(), err)
		}
		en = &stageEntry{keyVals: k.Vals[:nk:nk], accs: accs, start: start, end: end}
	}
	if err := s.rt.Add(en.accs, k.Vals[nk:]); err != nil {
		return fmt.Errorf("stages[%d]: %w", s.p.Stage(), err)
	}
	s.table[sk] = en
	s.changed[sk] = struct{}{}
	s.dirty[sk] = struct{}{}
	return nil
}

// closed says whether a window ending at end has fired.
func (s *StageAggregator) closed(end int64) bool { return end <= s.watermark }

// fire emits and forgets the windows the watermark has passed (all of
// them at the end of the input).
func (s *StageAggregator) fire(watermark int64, final bool) ([]connectors.Row, error) {
	if final {
		watermark = math.MaxInt64
	}
	s.watermark = max(s.watermark, watermark)
	var keys []string
	for sk, en := range s.table {
		if s.closed(en.end) {
			keys = append(keys, sk)
		}
	}
	rows, err := s.shape(keys)
	for _, sk := range keys {
		delete(s.table, sk)
		s.dirty[sk] = struct{}{}
	}
	s.changed = map[string]struct{}{}
	return rows, err
}

func (s *StageAggregator) deadLetter(ctx actor.Context, row connectors.Row, err error) {
	s.e.cfg.Stats.Failed.Add(1)
	msg := err.Error() // it names the stage
	if s.e.deadLetters != nil {
		in := connectors.AppendJSON(nil, row)
		ctx.Send(s.e.deadLetters, &rowsOut{rows: []connectors.Row{{Fields: []connectors.Field{
			{Name: "error", Value: msg}, {Name: "row", Value: string(in)},
		}}}})
	}
	ctx.Send(s.e.node, &failed{n: 1, last: msg})
}

// save writes the keys changed since the last complete checkpoint at
// epoch: those changed since the last save, and those earlier saves wrote
// at epochs that never completed (completing this one hides what they
// wrote: state.Complete). Checkpoints are one at a time, so an epoch
// before this one is complete or abandoned by now.
func (s *StageAggregator) save(epoch uint64) error {
	var last uint64
	if cp, err := s.e.cfg.Store.Last(); err == nil {
		last = cp.ID
	}
	keys := s.dirty
	for ep, written := range s.pending {
		if ep <= last {
			delete(s.pending, ep)
			continue
		}
		for k := range written {
			keys[k] = struct{}{}
		}
	}
	wb := s.e.cfg.Store.Batch(epoch)
	if err := s.write(wb, keys); err != nil {
		wb.Cancel()
		return err
	}
	if err := wb.Commit(); err != nil {
		return err
	}
	s.pending[epoch] = keys
	s.dirty = map[string]struct{}{}
	return nil
}

// write puts keys into wb as the table has them: written, or deleted when
// the table no longer has them (windows that fired).
func (s *StageAggregator) write(wb batchWriter, keys map[string]struct{}) error {
	var buf []byte
	var err error
	for key := range keys {
		en := s.table[key]
		if en == nil {
			if err := wb.Delete(stageKey(s.p.Stage(), key)); err != nil {
				return err
			}
			continue
		}
		keyVals := en.keyVals
		if s.p.IsWindowed() {
			keyVals = append(append(make([]any, 0, len(keyVals)+2), keyVals...), en.start, en.end)
		}
		if buf, err = s.rt.EncodeEntry(buf[:0], keyVals, en.accs); err != nil {
			return fmt.Errorf("key %q: %w", key, err)
		}
		if err := wb.Set(stageKey(s.p.Stage(), key), buf); err != nil {
			return err
		}
	}
	return nil
}

// rows builds what a trigger emits, as the emit mode asks (the collector
// orders, limits and numbers them).
func (s *StageAggregator) rows(final bool) ([]connectors.Row, error) {
	var keys []string
	switch {
	case s.p.Emit == scripting.EmitUpdate:
		keys = make([]string, 0, len(s.changed))
		for k := range s.changed {
			keys = append(keys, k)
		}
	case s.p.Emit == scripting.EmitComplete, final && s.p.Emit == scripting.EmitFinal:
		keys = make([]string, 0, len(s.table))
		for k := range s.table {
			keys = append(keys, k)
		}
	}
	s.changed = map[string]struct{}{}
	return s.shape(keys)
}

// shape builds the rows of keys.
func (s *StageAggregator) shape(keys []string) ([]connectors.Row, error) {
	cols := s.p.Columns()
	rows := make([]connectors.Row, 0, len(keys))
	for _, k := range keys {
		en := s.table[k]
		res, err := s.rt.Results(en.accs)
		if err != nil {
			return nil, fmt.Errorf("key %q: %w", k, err)
		}
		vals := append([]any(nil), en.keyVals...)
		if s.p.IsWindowed() {
			vals = append(vals, scripting.FormatTime(en.start), scripting.FormatTime(en.end))
		}
		vals = append(vals, res...)
		row := connectors.Row{Key: groupKey(k), Fields: make([]connectors.Field, len(cols))}
		for i, c := range cols {
			row.Fields[i] = connectors.Field{Name: c, Value: vals[i]}
		}
		rows = append(rows, row)
	}
	return rows, nil
}

// CheckStages refuses a multi-stage pipeline where its later stages would
// see part of the input: on a Kafka consumer group each node reads some
// partitions, and the rows of one stage would have to reach the node that
// owns their key in the next through a repartition topic (eddy run
// --repartition runs each stage as an engine of its own for that). eddy
// run reads such a source as one partition of all (connectors.Merged),
// which this accepts: the stages run in one process.
func (c *Config) CheckStages() error {
	if len(c.Pipeline.Stages) == 0 {
		return nil
	}
	if _, group := c.Source.(connectors.ChangelogSource); group || c.Changelog != nil {
		return fmt.Errorf("pipeline %s has %d stages: multi-stage pipelines read a Kafka consumer group's partitions as one (connectors.Merged) in one process; over the group's partitions one by one each node would aggregate stages[2] over its own partitions only; run it with --repartition to bring each key's rows together through repartition topics",
			c.Pipeline.Name, len(c.Pipeline.Stages)+1)
	}
	return nil
}

// stagesNoRestart is why a multi-stage run ends when a partition fails
// rather than restarting it alone: the partition would emit again windows
// that the later stages have already counted.
func stagesNoRestart(id string, cause error) error {
	return fmt.Errorf("partition %s failed: %w; a multi-stage pipeline does not restart one partition from the last checkpoint (its windows would reach the later stages twice): run it again to resume from the last checkpoint", id, cause)
}

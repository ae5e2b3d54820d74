package actors

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/scripting"
)

// maxInFlight bounds the batches a supervisor has sent a shard that the
// shard has not processed yet: the backpressure between them.
const maxInFlight = 4

// PartitionSupervisor owns one source partition: a reader goroutine, the
// ParseWorkers that run parse/filter/key, and the KeyedAggregator shards
// of the partition's state. When it or a child fails, it restarts from the
// last complete checkpoint: state restored, partition rewound.
type PartitionSupervisor struct {
	e    *engine
	part connectors.Partition
	id   string
	// restart is set on every incarnation after the first; stale, until
	// the node has heard of the restart (restartNoted): barriers before
	// it were sent to the predecessor, and the node aborted them.
	restart, stale bool
	// retired is set once this incarnation is restarting or stopping
	// (retire).
	retired bool

	workers []*actor.PID
	shards  []*actor.PID
	// gen tells this incarnation's reader batches from a dead one's.
	gen uint64

	// reader
	permits    chan struct{}
	stopReader context.CancelFunc
	readerDone sync.WaitGroup
	requested  bool // a read permit is outstanding

	// Batches are numbered as they are read and delivered downstream in
	// that order, whatever order the workers finish in.
	nextSeq, delivered uint64
	batches            map[uint64]*sourceBatch
	done               map[uint64]*worked
	// barriers wait here until every batch read before them is delivered.
	waiting []pendingBarrier
	// lent: per shard, the delivered batches sent to it that it has not
	// processed yet, oldest first; holders counts the shards holding each.
	// A batch no shard holds goes back to its source (release).
	lent    [][]*sourceBatch
	holders map[*sourceBatch]int
	// spare: released batches' worker memory, for the workers to reuse
	spare spareBufs
	// stamps: stampWatermarks' scratch, by record of a batch
	stamps struct {
		times, marks []int64
		has          []bool
	}

	pos      connectors.Position // after the last delivered batch
	lastSent int64               // the last watermark sent to the shards
	bwm      int64               // the watermark the barrier in flight took to the shards
	// bfired: the watermark the shards fire windows by at the barrier in
	// flight (a marked partition's own, when behind the node's)
	bfired int64
	// restoredWM: the watermark the partition's state was restored with
	// (nil: not restored); a marked partition's own watermark starts there
	restoredWM *int64
	inFlight   []int // per shard
	paused     bool  // at a trigger boundary
	status     partitionStatus
	// stopping: the run stops; nothing more is read or delivered, and
	// barriers pass at once, at what was delivered.
	stopping bool

	// Rows for the records and dead-letter sinks produced after a barrier
	// wait here until the node has settled it, so a sink's flush (or
	// transaction) at that barrier holds exactly the rows before it.
	holding     bool
	heldOut     map[string][]connectors.Row
	heldDead    []connectors.Row
	heldBatches int
	heldRead    time.Time // when the oldest held batch left its source

	// plan0: how this incarnation restored; stopRestore stops its
	// changelog reader.
	plan0       restorePlan
	stopRestore context.CancelFunc

	// the barrier being passed through the shards
	barrier *barrier
	bpos    connectors.Position
	acked   map[int]*shardBarrierAck
	// srcTimes: each named source's event time, when the partition reads
	// several (sources.go)
	srcTimes *sourceTimes
}

type pendingBarrier struct {
	b     *barrier
	after uint64 // batches read before it
}

// generations counts supervisor incarnations process-wide, so a restarted
// supervisor ignores its predecessor's in-flight reader batches.
var generations atomic.Uint64

func newSupervisor(e *engine, p connectors.Partition, restart bool) *PartitionSupervisor {
	return &PartitionSupervisor{e: e, part: p, id: p.ID(), restart: restart, stale: restart}
}

// Receive implements actor.Actor.
func (s *PartitionSupervisor) Receive(ctx actor.Context) {
	if s.retired && !isLifecycle(ctx.Message()) {
		return
	}
	switch m := ctx.Message().(type) {
	case *actor.Started:
		if err := s.start(ctx); err != nil {
			ctx.Send(s.e.node, &partitionFailed{id: s.id, err: err})
		}
	case *actor.Restarting:
		s.retire(ctx)
	case *actor.Stopping:
		s.retire(ctx)
		// The partition leaves this node and its state goes with it
		// (through the changelog): so do its rows of the result table. (A
		// restart resends them instead. Without a changelog the state
		// stays, and the table keeps what this node counted.)
		if s.e.emitter != nil && s.e.cfg.Changelog != nil {
			for i := range s.shards {
				ctx.Send(s.e.emitter, &resultRows{partition: s.id, shard: i, reset: true})
			}
			ctx.Send(s.e.emitter, &partitionMoved{partition: s.id})
		}
	case *restoreDone:
		if m.gen == s.gen {
			s.onRestored(ctx, m)
		}
	case *stopReading:
		s.stop(ctx)
	case *sourceBatch:
		if m.gen == s.gen && !s.stopping {
			s.onBatch(ctx, m)
		}
	case *worked:
		switch {
		case m.gen != s.gen || s.stopping:
		case m.interrupted:
			s.stop(ctx) // an interrupted batch is incomplete: deliver nothing more
		default:
			s.done[m.seq] = m
			s.deliver(ctx)
		}
	case *shardProcessed:
		if m.gen == s.gen {
			s.inFlight[m.shard]--
			s.returned(m.shard)
			s.request()
		}
	case *barrier:
		if s.stale {
			// Its watermark is where the predecessor had read to: the
			// shards, reading again from the checkpoint, would count
			// what they read as late.
			return
		}
		s.waiting = append(s.waiting, pendingBarrier{b: m, after: s.nextSeq})
		s.passBarriers(ctx)
	case *restartNoted:
		s.stale = false
	case *shardBarrierAck:
		if m.gen == s.gen {
			s.onShardAck(ctx, m)
		}
	case *checkpointDone, *checkpointAborted:
		for _, sh := range s.shards {
			ctx.Send(sh, m)
		}
	case *settled:
		s.release(ctx)
		for _, sh := range s.shards {
			ctx.Send(sh, m)
		}
	}
}

// retire ends this incarnation's part in the run: its reader stops, and it
// takes no more messages. A restart or stop does not suspend its mailbox,
// and it lives on until its workers and shards have stopped (a worker may
// be in a script call): meanwhile it must not pass a barrier sent since
// (its position is ahead of the checkpoint its successor restarts from),
// nor release on a settle the rows it held since the last one (a reload's
// restart drops them as the old script's), nor report to the node. Those
// messages are its successor's: a barrier it drops is aborted by the
// successor's partitionRestarted.
func (s *PartitionSupervisor) retire(ctx actor.Context) {
	s.retired = true
	s.stopReading(ctx)
}

// isLifecycle says whether m is one of protoactor's messages about the
// actor's own life (Started, Restarting, Stopping, Stopped).
func isLifecycle(m any) bool {
	switch m.(type) {
	case actor.AutoReceiveMessage, actor.SystemMessage:
		return true
	}
	return false
}

func (s *PartitionSupervisor) start(ctx actor.Context) error {
	s.gen = generations.Add(1)
	s.batches, s.done = map[uint64]*sourceBatch{}, map[uint64]*worked{}
	// Restore: the last complete checkpoint's position and state, and with
	// a changelog what it has that the checkpoint lacks.
	plan, err := s.plan()
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	s.plan0 = plan
	s.pos = plan.pos
	if err := s.seekPlanned(plan); err != nil {
		return err
	}
	s.spawnWorkers(ctx, s.spawnShards(ctx, plan))
	if s.restart { // the node drops the barrier in flight
		ctx.Send(s.e.node, &partitionRestarted{id: s.id, epoch: plan.epoch})
	}
	cfg := s.e.cfg
	holds := s.e.emitter != nil && cfg.Changelog != nil && cfg.Pipeline.IsWindowed() && cfg.Pipeline.Emit == scripting.EmitFinal
	if plan.from >= 0 {
		s.restoreFromChangelog(plan, ctx.Self(), holds)
		return nil
	}
	if holds {
		ctx.Send(s.e.emitter, &loadHeld{partition: s.id, load: plan.load})
	}
	if plan.wipe {
		for _, sh := range s.shards {
			ctx.Send(sh, &restored{gen: s.gen, watermark: plan.watermark})
		}
	}
	if plan.wipe || plan.load {
		wm := plan.watermark
		s.restoredWM = &wm
	}
	s.run(ctx, false)
	return nil
}

// seekPlanned points the partition where its restore plan starts it:
// after the checkpoint's position, else where its source starts it. One
// restored from the changelog is pointed when that is read (onRestored).
func (s *PartitionSupervisor) seekPlanned(plan restorePlan) error {
	switch {
	case plan.from >= 0:
	case plan.pos != nil:
		if err := s.part.Seek(plan.pos); err != nil {
			return fmt.Errorf("restore: seek to checkpoint %d: %w", plan.epoch, err)
		}
	case s.restart:
		// No checkpoint has this partition: read it again from its start.
		if err := s.part.Seek(nil); err != nil {
			return fmt.Errorf("restart: rewind: %w", err)
		}
	default:
		if err := s.seekStart(); err != nil {
			return fmt.Errorf("start: %w", err)
		}
	}
	return nil
}

// spawnShards starts the partition's shards, when its pipeline keeps
// state, each restoring as plan says, and returns how many.
func (s *PartitionSupervisor) spawnShards(ctx actor.Context, plan restorePlan) int {
	cfg := s.e.cfg
	if !cfg.Pipeline.HasAggregate() && !cfg.Pipeline.HasKeyHooks() {
		return 0
	}
	nshards := cfg.Shards
	s.shards = make([]*actor.PID, nshards)
	s.inFlight = make([]int, nshards)
	s.lent, s.holders = make([][]*sourceBatch, nshards), map[*sourceBatch]int{}
	epoch := uint64(0)
	if plan.load {
		epoch = plan.epoch
	}
	fromLog := plan.from >= 0 || plan.wipe
	for i := range s.shards {
		s.shards[i] = ctx.Spawn(actor.PropsFromProducer(func() actor.Actor {
			a := newAggregator(s.e, s.id, i, nshards, epoch, s.gen)
			if fromLog {
				a.fromLog = newShardRestore(plan, nshards, a.lazyEntries())
			}
			if s.marked() {
				a.ownWatermark = &plan.watermark
			}
			return a
		}))
	}
	return nshards
}

// spawnWorkers starts the partition's parse workers, which hand their
// records to nshards shards.
func (s *PartitionSupervisor) spawnWorkers(ctx actor.Context, nshards int) {
	s.workers = make([]*actor.PID, s.e.cfg.Workers)
	for i := range s.workers {
		s.workers[i] = ctx.Spawn(actor.PropsFromProducer(func() actor.Actor { return newParseWorker(s.e, s.id, nshards) }))
	}
}

// restoreFromChangelog reads the partition's changelog from plan.from on
// a goroutine of its own, which tells self when it is done (onRestored);
// holds: the emitter keeps the partition's held windows, which come first.
func (s *PartitionSupervisor) restoreFromChangelog(plan restorePlan, self *actor.PID, holds bool) {
	s.e.cfg.Logger.Info("restoring a partition from the changelog", "partition", s.id, "from", plan.from, "to", plan.end, "local_checkpoint", plan.load)
	rctx, cancel := context.WithCancel(s.e.ctx)
	s.stopRestore = cancel
	s.readerDone.Add(1)
	go func() {
		defer s.readerDone.Done()
		if holds {
			// from this goroutine, so it reaches the emitter before
			// the changelog's held windows
			s.e.system.Root.Send(s.e.emitter, &loadHeld{partition: s.id, load: plan.load, restoring: true})
		}
		s.readChangelog(rctx, self, plan.from)
	}()
}

// run starts reading once the partition's state is in place (unless the
// run is stopping). fresh: the state came from the changelog and is not
// in the store yet (partitionReady).
func (s *PartitionSupervisor) run(ctx actor.Context, fresh bool) {
	s.status = partitionStatus{id: s.id, active: time.Now()}
	s.lastSent = math.MinInt64
	if s.marked() && s.restoredWM != nil {
		s.lastSent = *s.restoredWM
	}
	if s.e.stopping.Load() {
		s.stopping = true
	} else {
		s.startReader(ctx)
	}
	s.report(ctx, 0) // where it starts, for status
	if s.e.cfg.Changelog != nil {
		ctx.Send(s.e.node, &partitionReady{id: s.id, fresh: fresh})
	}
}

// startReader runs the partition's blocking reads on a goroutine of their
// own; the actor hands it one permit per batch it is ready for.
func (s *PartitionSupervisor) startReader(ctx actor.Context) {
	rctx, cancel := context.WithCancel(s.e.ctx)
	s.stopReader = cancel
	s.permits = make(chan struct{}, 1)
	self, root, gen, part := ctx.Self(), s.e.system.Root, s.gen, s.part
	permits := s.permits
	s.readerDone.Add(1)
	go func() {
		defer s.readerDone.Done()
		for {
			select {
			case <-rctx.Done():
				return
			case <-permits:
			}
			b, err := part.Read(rctx)
			if rctx.Err() != nil {
				return
			}
			root.Send(self, &sourceBatch{gen: gen, batch: b, err: err, at: time.Now()})
			if err != nil {
				return
			}
		}
	}()
	s.request()
}

// readerStopTimeout bounds the wait for a reader to return from Read once
// cancelled.
const readerStopTimeout = 5 * time.Second

// stopReading stops the reader (or changelog reader) and waits for it, so
// a restarted incarnation never reads the partition beside it. A reader
// that does not return within readerStopTimeout fails the run: going on
// would read the partition twice at once.
func (s *PartitionSupervisor) stopReading(ctx actor.Context) {
	if s.stopRestore == nil && s.stopReader == nil {
		return
	}
	if s.stopRestore != nil {
		s.stopRestore()
		s.stopRestore = nil
	}
	if s.stopReader != nil {
		s.stopReader()
		s.stopReader = nil
	}
	stopped := make(chan struct{})
	go func() {
		s.readerDone.Wait()
		close(stopped)
	}()
	select {
	case <-stopped:
	case <-time.After(readerStopTimeout):
		ctx.Send(s.e.node, &partitionFailed{id: s.id, err: fmt.Errorf("its reader did not return within %v of being stopped", readerStopTimeout)})
	}
}

// stop: the run is stopping. Read no more, and drop the batches read but
// not delivered: no checkpoint covers them, so a restart reads them
// again. The barriers waiting for them pass at once.
func (s *PartitionSupervisor) stop(ctx actor.Context) {
	if s.stopping {
		return
	}
	s.stopping = true
	if s.stopReader != nil {
		s.stopReader() // (the reader's goroutine is waited for at Stopping)
	}
	clear(s.batches)
	clear(s.done)
	s.passBarriers(ctx)
}

// request gives the reader a permit unless paused, ended, or the workers
// or shards are behind.
func (s *PartitionSupervisor) request() {
	if s.requested || s.paused || s.status.ended || s.stopReader == nil || s.stopping {
		return
	}
	if s.nextSeq-s.delivered >= uint64(2*len(s.workers)) || s.heldBatches >= 4*len(s.workers) {
		return
	}
	for _, n := range s.inFlight {
		if n >= maxInFlight {
			return
		}
	}
	s.requested = true
	s.permits <- struct{}{}
}

func (s *PartitionSupervisor) onBatch(ctx actor.Context, m *sourceBatch) {
	s.requested = false
	switch {
	case errors.Is(m.err, connectors.ErrEndOfInput):
		s.status.ended = true
		s.e.cfg.Stats.Ended.Add(1)
		s.report(ctx, 0)
		return
	case m.err != nil:
		ctx.Send(s.e.node, &partitionFailed{id: s.id, err: m.err})
		return
	}
	seq := s.nextSeq
	s.nextSeq++
	s.batches[seq] = m
	if m.batch.Boundary {
		s.paused = true // read no further until a trigger has passed
	}
	if len(m.batch.Records) == 0 {
		s.done[seq] = &worked{gen: s.gen, seq: seq}
		s.deliver(ctx)
	} else {
		ctx.Send(s.workers[seq%uint64(len(s.workers))], &work{gen: s.gen, seq: seq, batch: &m.batch, bufs: s.spare.take()})
	}
	s.request()
}

// deliver moves processed batches downstream in source order. Each batch
// in turn: its records are stamped with the partition's watermark, its
// keyed rows go to the shards and its other rows to the sinks, it is
// counted, the partition's position moves past it, and the barriers that
// waited for it pass.
func (s *PartitionSupervisor) deliver(ctx actor.Context) {
	for {
		m, w, ok := s.nextInOrder()
		if !ok {
			break
		}
		var after int64
		if (m.batch.Source != "" || m.batch.Stream != "" || m.batch.Marks != nil) && s.e.cfg.Pipeline.HasEventTime() {
			after = s.stampSources(w, &m.batch) // (sources.go)
		} else {
			after = s.watermarkAfter(w, len(m.batch.Records))
		}
		m.bufs = w.bufs
		s.toShards(ctx, m, w, after)
		s.output(ctx, w.outputs, w.dead, m.at)
		s.count(ctx, w, len(m.batch.Records))
		s.advance(ctx, &m.batch)
		s.passBarriers(ctx)
		if s.holders[m] == 0 {
			s.giveBack(m)
		}
	}
	s.request()
}

// returned: shard has processed the oldest batch it was sent; the batch
// goes back to its source once no other shard holds it.
func (s *PartitionSupervisor) returned(shard int) {
	if len(s.lent[shard]) == 0 {
		return
	}
	m := s.lent[shard][0]
	s.lent[shard][0] = nil
	s.lent[shard] = s.lent[shard][1:]
	if s.holders[m]--; s.holders[m] == 0 {
		delete(s.holders, m)
		s.giveBack(m)
	}
}

// giveBack gives a batch's memory back to its source, and its worker's
// memory to the spares: nothing reads either any more (its worker is
// done, and so is every shard it was sent to).
func (s *PartitionSupervisor) giveBack(m *sourceBatch) {
	if m.batch.Release != nil {
		m.batch.Release()
	}
	s.spare.put(m.bufs)
	m.bufs = nil
}

// nextInOrder takes the next batch in source order, once its worker is
// done with it.
func (s *PartitionSupervisor) nextInOrder() (*sourceBatch, *worked, bool) {
	w, ok := s.done[s.delivered]
	if !ok {
		return nil, nil, false
	}
	m := s.batches[s.delivered]
	delete(s.done, s.delivered)
	delete(s.batches, s.delivered)
	s.delivered++
	return m, w, true
}

// watermarkAfter stamps each keyed record of w (n records) with the
// partition's watermark just before it, and returns the watermark after
// the batch: math.MinInt64 without event time or before the first.
func (s *PartitionSupervisor) watermarkAfter(w *worked, n int) int64 {
	p := s.e.cfg.Pipeline
	if !p.HasEventTime() {
		return math.MinInt64
	}
	s.stampWatermarks(w, n)
	if !s.status.timed && !w.timed {
		return math.MinInt64
	}
	mt := w.maxTime
	if s.status.timed && (!w.timed || s.status.maxTime > mt) {
		mt = s.status.maxTime
	}
	return mt - p.Watermark.OutOfOrder.Milliseconds()
}

// toShards sends each shard its keyed rows of the batch. With event time
// every shard hears of a new watermark, rows or not, so its windows and
// timers fire in step.
func (s *PartitionSupervisor) toShards(ctx actor.Context, m *sourceBatch, w *worked, after int64) {
	eventTime := s.e.cfg.Pipeline.HasEventTime()
	for sh, rows := range w.perShard {
		if len(rows) > 0 || eventTime && after > s.lastSent {
			s.inFlight[sh]++
			s.lent[sh] = append(s.lent[sh], m)
			s.holders[m]++
			ctx.Send(s.shards[sh], &keyedBatch{rows: rows, src: &m.batch, idx: w.perIdx[sh], read: m.at, watermark: after})
		}
	}
	s.lastSent = max(s.lastSent, after)
	if w.perShard == nil && len(m.batch.Records) > 0 {
		// No shards: the batch is done here.
		s.e.cfg.Stats.BatchLatency.Observe(time.Since(m.at))
	}
}

// count adds a batch of n records to the run's counters and the
// partition's status, and tells the node of its failed records (for
// --max-errors).
func (s *PartitionSupervisor) count(ctx actor.Context, w *worked, n int) {
	st := s.e.cfg.Stats
	if len(w.dead) > 0 {
		st.Failed.Add(int64(len(w.dead)))
		last, _ := w.dead[len(w.dead)-1].Get("error")
		ctx.Send(s.e.node, &failed{n: int64(len(w.dead)), last: fmt.Sprint(last)})
	}
	st.Kept.Add(w.kept)
	if w.timed && (!s.status.timed || w.maxTime > s.status.maxTime) {
		s.status.maxTime, s.status.timed = w.maxTime, true
	}
	if w.kept > 0 {
		s.status.active = time.Now()
	}
	st.Read.Add(int64(n))
}

// advance moves the partition's position past a delivered batch and
// reports where it stands.
func (s *PartitionSupervisor) advance(ctx actor.Context, b *connectors.Batch) {
	s.pos = b.End
	s.status.caughtUp = b.CaughtUp
	s.status.boundary = b.Boundary || (s.status.boundary && s.paused)
	s.report(ctx, int64(len(b.Records)))
}

// output sends rows to the records and dead-letter sinks, or holds them
// while a barrier this partition passed is not settled. read is when the
// rows' batch left its source (the oldest of them, for held rows).
func (s *PartitionSupervisor) output(ctx actor.Context, outputs map[string][]connectors.Row, dead []connectors.Row, read time.Time) {
	if s.holding {
		if len(outputs)+len(dead) > 0 {
			if s.heldOut == nil {
				s.heldOut = map[string][]connectors.Row{}
			}
			for name, rows := range outputs {
				s.heldOut[name] = append(s.heldOut[name], rows...)
			}
			s.heldDead = append(s.heldDead, dead...)
			if s.heldBatches == 0 {
				s.heldRead = read
			}
			s.heldBatches++
		}
		return
	}
	for name, rows := range outputs {
		ctx.Send(s.e.outputs[name], &rowsOut{rows: rows, read: read})
	}
	if len(dead) > 0 && s.e.deadLetters != nil {
		ctx.Send(s.e.deadLetters, &rowsOut{rows: dead, read: read})
	}
}

func (s *PartitionSupervisor) release(ctx actor.Context) {
	if !s.holding {
		return
	}
	s.holding = false
	outputs, dead := s.heldOut, s.heldDead
	s.heldOut, s.heldDead, s.heldBatches = nil, nil, 0
	s.output(ctx, outputs, dead, s.heldRead)
	s.request()
}

// stampWatermarks gives each keyed record the partition's watermark as it
// stood just before that record in source order: the latest event time
// before it, less the allowed disorder.
func (s *PartitionSupervisor) stampWatermarks(w *worked, n int) {
	if cap(s.stamps.times) < n {
		s.stamps.times, s.stamps.has, s.stamps.marks = make([]int64, n), make([]bool, n), make([]int64, n)
	}
	times, has, marks := s.stamps.times[:n], s.stamps.has[:n], s.stamps.marks[:n]
	clear(has)
	for sh, rows := range w.perShard {
		for j := range rows {
			times[w.perIdx[sh][j]], has[w.perIdx[sh][j]] = rows[j].Time, true
		}
	}
	ooo := s.e.cfg.Pipeline.Watermark.OutOfOrder.Milliseconds()
	latest, timed := s.status.maxTime, s.status.timed
	for i, t := range times {
		marks[i] = math.MinInt64
		if timed {
			marks[i] = latest - ooo
		}
		if has[i] && (!timed || t > latest) {
			latest, timed = t, true
		}
	}
	for sh, rows := range w.perShard {
		for j := range rows {
			rows[j].Watermark = marks[w.perIdx[sh][j]]
		}
	}
}

func (s *PartitionSupervisor) report(ctx actor.Context, records int64) {
	st := s.status
	st.records = records
	st.pos = s.pos
	ctx.Send(s.e.node, &st)
}

// passBarriers forwards the waiting barriers whose preceding batches have
// all been delivered, one at a time.
func (s *PartitionSupervisor) passBarriers(ctx actor.Context) {
	for len(s.waiting) > 0 && s.barrier == nil && (s.waiting[0].after <= s.delivered || s.stopping) {
		b := s.waiting[0].b
		s.waiting = s.waiting[1:]
		// The trigger a boundary waited for: read on.
		s.paused = false
		s.status.boundary = false
		s.barrier, s.bpos, s.acked = b, s.barrierPos(), map[int]*shardBarrierAck{}
		s.holding = len(s.e.outputs) > 0 || s.e.deadLetters != nil
		toShards := s.ownWatermark(b)
		s.bwm = max(toShards.watermark, s.lastSent) // what the shards have seen
		s.bfired = toShards.watermark
		for _, sh := range s.shards {
			ctx.Send(sh, toShards)
		}
		if len(s.shards) == 0 {
			s.ackBarrier(ctx)
		}
	}
	s.request()
}

// seekStart points a partition without a position at where its source
// starts it (a Kafka partition: the group's offset) now, before any
// barrier, if the source can say where that was (Start): a marker then
// keeps that place, not "nowhere" (barrierPos). Other partitions start
// on their first Read, as before.
func (s *PartitionSupervisor) seekStart() error {
	if _, ok := s.part.(interface{ Start() connectors.Position }); !ok {
		return nil
	}
	return s.part.Seek(nil)
}

// barrierPos is where the partition's state stands at a barrier: after
// its last delivered batch, else (nothing delivered since it started)
// where its source started it, if the source can say. A marker without a
// position sends the partition's next owner to where the source starts
// it then (a Kafka partition: the group's offset), which a later
// checkpoint, whose marker that owner may not see yet, can have moved
// past this state.
func (s *PartitionSupervisor) barrierPos() connectors.Position {
	if s.pos != nil {
		return s.pos
	}
	if st, ok := s.part.(interface{ Start() connectors.Position }); ok {
		return st.Start()
	}
	return nil
}

// ownWatermark is the barrier b as this partition's shards get it. The
// barrier carries the node's watermark, which moves an idle partition's
// windows on; but a partition whose streams are marked (a repartition
// topic's, sources.go) is never idle, and may have come to this node
// behind it (moved from another node, its upstreams slower): its shards go
// by its own watermark, or its records would be late here and on time on
// the node it came from.
func (s *PartitionSupervisor) ownWatermark(b *barrier) *barrier {
	if b.final || b.watermark <= s.lastSent || !s.marked() {
		return b
	}
	own := *b
	own.watermark = s.lastSent
	return &own
}

func (s *PartitionSupervisor) onShardAck(ctx actor.Context, m *shardBarrierAck) {
	if s.barrier == nil || m.seq != s.barrier.seq {
		return
	}
	s.acked[m.shard] = m
	if len(s.acked) == len(s.shards) {
		s.ackBarrier(ctx)
		s.passBarriers(ctx)
	}
}

func (s *PartitionSupervisor) ackBarrier(ctx actor.Context) {
	a := &partitionAck{seq: s.barrier.seq, id: s.id, pos: s.bpos, own: s.marked(), watermark: s.bwm, fired: s.bfired}
	var errs []error
	for _, sa := range s.acked {
		if sa.err != nil {
			errs = append(errs, sa.err)
		}
		a.clog = append(a.clog, sa.clog...)
		if sa.writing {
			a.writing++
		}
	}
	a.err = errors.Join(errs...)
	s.barrier = nil
	ctx.Send(s.e.node, a)
}

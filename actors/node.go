package actors

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/state"
)

// node is the root of a run's tree: it turns source assignments into
// PartitionSupervisors and coordinates triggers and checkpoints.
type node struct {
	e    *engine
	done chan<- result

	parts map[string]*partState
	// positions: where each partition's reading stands (for status)
	positions map[string]connectors.Position
	// the barrier in flight, if any
	inflight *inflight
	seq      uint64
	// lastCheckpoint is when the last checkpoint began.
	lastCheckpoint time.Time
	// pending revokes waiting for the next barrier.
	revokes []*revoke
	// losses waiting for the answer to the commit of the checkpoint in
	// flight, which covers their partitions (see lose).
	losses []*revoke
	// restarts waiting for the answer to the commit of the checkpoint in
	// flight (see partitionRestarted).
	restarts []*partitionRestarted
	// tainted: partitions whose rows since the last checkpoint an abort
	// dropped from a transactional sink that can't redo them, while they
	// read on (taint.go); the value says which abort.
	tainted map[string]string

	failedTotal  int64
	ownerWritten bool
	// watermark is the pipeline's event-time watermark (Unix ms): the
	// minimum over active partitions of their latest event time less the
	// allowed disorder; it goes back only to the last checkpoint's when a
	// partition restarts from it (rewindWatermark). lastWatermark is the one the
	// last barrier carried.
	watermark, lastWatermark int64
	stopping                 bool // shutdown asked: stop at the next barrier
	finished                 bool
	summary                  Summary
	script                   scriptState
}

type partState struct {
	pid    *actor.PID
	part   connectors.Partition
	status partitionStatus
	// records processed since the last barrier began
	since int64
	// restoring: reading its changelog, out of barriers until ready;
	// restored and toRestore are its progress
	restoring           bool
	restored, toRestore int64
	// fresh: restored, but what it restored is not in the store yet
	// (partitionReady)
	fresh bool
	// down: it failed and waits for its restart; restarts counts its
	// restarts since a failure more than restartWindow after the one
	// before, lastFailure is when it last failed.
	down        bool
	restarts    int
	lastFailure time.Time
}

type inflight struct {
	b       barrier
	waiting map[string]bool // partitions that have not acknowledged
	sinks   map[string]bool // sinks that have not flushed (or committed)
	acks    map[string]*partitionAck
	started time.Time
	// standby: the standby keeper has not passed the barrier
	standby bool
	// held: partitions (and the standby keeper) that get the barrier once
	// the fresh partitions have passed it (trigger)
	held        []string
	heldStandby bool
	// committing: transactional sinks are committing the checkpoint;
	// logged: the changelog is committing (or committed) it, and clog are
	// the changelog offsets after each partition's marker.
	committing, logged bool
	clog               map[string]int64
	// written counts, by partition, its shards' checkpoint writes in the
	// store (a shardWritten may come before its partition's ack, which
	// says how many to wait for); afterWrites is what waits for them.
	written     map[string]int
	afterWrites func(actor.Context)
	// begun: the checkpoint's epoch is durably begun (or it has none)
	begun bool
	// owner: the pipeline's name (ownerKey) is being written at the
	// checkpoint's epoch (writeOwner)
	owner bool
}

// writesDone: the epoch is durably begun and every partition that passed
// the barrier has its shards' writes in the store.
func (in *inflight) writesDone() bool {
	if !in.begun || in.owner {
		return false
	}
	for id, a := range in.acks {
		if in.written[id] < a.writing {
			return false
		}
	}
	return true
}

func newNode(e *engine, done chan<- result) *node {
	return &node{e: e, done: done, parts: map[string]*partState{}, positions: map[string]connectors.Position{}, lastCheckpoint: time.Now(), tainted: map[string]string{},
		watermark: math.MinInt64, lastWatermark: math.MinInt64, script: scriptState{loadedAt: time.Now()}}
}

// Receive implements actor.Actor.
func (n *node) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		n.start(ctx)
	// the source
	case *assign:
		n.assign(ctx, m.p)
	case *revoke:
		n.revoke(ctx, m)
	case *partitionFailed:
		n.finish(fmt.Errorf("reading %s: %w", m.id, m.err))
	// the partitions
	case *partitionStatus:
		n.partitionStatus(ctx, m)
	case *partitionCrashed:
		n.partitionCrashed(ctx, m)
	case *restartPartitions:
		n.restartPartitions(m)
	case *partitionRestarted:
		n.partitionRestarted(ctx, m)
	case *partitionReady:
		n.partitionReady(ctx, m)
	case *restoreProgress:
		n.restoreProgress(m)
	case *failed:
		n.failed(m)
	// triggers and checkpoints
	case *tick:
		n.maybeTrigger(ctx, true)
	case *partitionAck:
		n.partitionAck(ctx, m)
	case *shardWritten:
		n.shardWritten(ctx, m)
	case *epochBegun:
		n.epochBegun(ctx, m)
	case *ownerStored:
		n.ownerStored(ctx, m)
	case *standbyAck:
		n.standbyAck(ctx, m)
	case *sinkFlushed:
		n.sinkFlushed(ctx, m)
	case *changelogCommitted:
		n.changelogCommitted(ctx, m)
	case *sinkFailed:
		n.fail(fmt.Errorf("sink %s: %w", m.name, m.err))
	// stopping, status
	case *shutdown:
		if m.giveUp > 0 {
			n.giveUpStop(fmt.Sprintf("the stop checkpoint did not complete within %v", m.giveUp))
			return
		}
		n.stop(ctx)
	case *statusQuery:
		n.status(ctx)
	case *Reload:
		n.reloadScript(ctx, m)
	}
}

// revoke: a lost partition stops at once; a revoked one at the next
// checkpoint, which it asks for.
func (n *node) revoke(ctx actor.Context, m *revoke) {
	if m.lost {
		n.lose(ctx, m)
		return
	}
	n.revokes = append(n.revokes, m)
	n.maybeTrigger(ctx, true)
}

// partitionStatus notes where a partition's reading stands; a barrier may
// be due.
func (n *node) partitionStatus(ctx actor.Context, m *partitionStatus) {
	if m.pos != nil {
		n.positions[m.id] = m.pos
	}
	if p := n.parts[m.id]; p != nil {
		p.since += m.records
		p.status = *m
		n.maybeTrigger(ctx, false)
	}
}

// partitionRestarted: a restarted partition rewound to the last
// checkpoint, so the barrier in flight can't complete; with a changelog it
// restores first.
//
// When that barrier's commit is under way already, it may land (an abort
// does not undo the changelog's commit): the barrier waits for its
// answer, as for a loss. If the checkpoint completes, the partition, which
// planned its start from the one before, starts again from it; a refused
// one is aborted. Aborted while its changelog commit went on, the
// checkpoint landed there with the partition's state at its position,
// and the partition's next owner restored that state with a later marker
// behind it, where the new incarnation stood: it counted the records in
// between twice.
func (n *node) partitionRestarted(ctx actor.Context, m *partitionRestarted) {
	p := n.parts[m.id]
	if p != nil && n.completedSince(m.epoch) {
		// (A checkpoint completed while it planned its start.)
		ctx.(actor.Supervisor).RestartChildren(p.pid) // its successor reports again
		return
	}
	if p != nil {
		if n.e.cfg.Changelog != nil {
			n.setRestoring(p, true)
		}
		if err := n.rewindWatermark(p); err != nil {
			n.finish(fmt.Errorf("partition %s restarted: %w", m.id, err))
			return
		}
		ctx.Send(p.pid, &restartNoted{})
	}
	switch in := n.inflight; {
	case in == nil:
	case in.logged || in.committing:
		n.e.cfg.Logger.Info(fmt.Sprintf("partition %s restarted while checkpoint %d commits: the checkpoint waits for the commit's answer", m.id, in.b.epoch))
		n.restarts = append(n.restarts, m)
	default:
		n.abort(ctx, fmt.Sprintf("partition %s restarted", m.id))
	}
}

// completedSince says whether a checkpoint later than epoch is complete in
// the store.
func (n *node) completedSince(epoch uint64) bool {
	cp, err := n.e.cfg.Store.Last()
	return err == nil && cp.ID > epoch
}

// restartAgain restarts the partitions that restarted while the commit of
// the checkpoint just completed was under way: they started from the one
// before.
func (n *node) restartAgain(ctx actor.Context) {
	again := map[string]bool{}
	for _, m := range n.restarts {
		if p := n.parts[m.id]; p != nil && !again[m.id] && n.completedSince(m.epoch) {
			again[m.id] = true
			ctx.(actor.Supervisor).RestartChildren(p.pid)
		}
	}
	n.restarts = nil
}

// rewindWatermark: a restarted partition reads again from the last
// checkpoint, and its shards start from that checkpoint's watermark. The
// pipeline's goes back there: the barriers carry it to the shards, which
// would otherwise count the records read again as late, and fire their
// windows without them. Until it reports, the partition holds the
// watermark back as a new one does.
func (n *node) rewindWatermark(p *partState) error {
	if !n.e.cfg.Pipeline.HasEventTime() {
		return nil
	}
	wm := int64(math.MinInt64)
	if cp, err := n.e.cfg.Store.Last(); err == nil {
		v, ok, err := n.e.cfg.Store.Get(cp.ID, watermarkKey)
		if err != nil {
			return fmt.Errorf("the watermark of checkpoint %d: %w", cp.ID, err)
		}
		if ok {
			if wm, err = strconv.ParseInt(string(v), 10, 64); err != nil {
				return fmt.Errorf("the watermark of checkpoint %d: %w", cp.ID, err)
			}
		}
	}
	if wm < n.watermark {
		n.watermark, n.lastWatermark = wm, wm
		n.e.cfg.Stats.Watermark.Store(wm)
	}
	p.status = newPartState(p.part).status
	return nil
}

// partitionReady: a partition restored its state; barriers include it.
func (n *node) partitionReady(ctx actor.Context, m *partitionReady) {
	if p := n.parts[m.id]; p != nil {
		n.setRestoring(p, false)
		p.fresh = m.fresh
		n.maybeTrigger(ctx, false)
	}
}

func (n *node) restoreProgress(m *restoreProgress) {
	if p := n.parts[m.id]; p != nil && p.restoring {
		st := n.e.cfg.Stats
		st.RestoreDone.Add(m.done - p.restored)
		st.RestoreTotal.Add(m.total - p.toRestore)
		p.restored, p.toRestore = m.done, m.total
	}
}

// failed counts failed records against --max-errors.
func (n *node) failed(m *failed) {
	n.failedTotal += m.n
	if max := n.e.cfg.MaxErrors; max >= 0 && n.failedTotal > max {
		n.finish(fmt.Errorf("%w: %d records failed, more than --max-errors %d allows; the last: %s", ErrTooManyErrors, n.failedTotal, max, m.last))
	}
}

// setRestoring moves a partition in or out of restoring.
func (n *node) setRestoring(p *partState, on bool) {
	if p.restoring == on {
		return
	}
	st := n.e.cfg.Stats
	p.restoring = on
	p.fresh = false
	if on {
		st.Restoring.Add(1)
		return
	}
	st.Restoring.Add(-1)
	st.RestoreDone.Add(-p.restored)
	st.RestoreTotal.Add(-p.toRestore)
	p.restored, p.toRestore = 0, 0
}

func (n *node) start(ctx actor.Context) {
	n.e.node = ctx.Self()
	select {
	case <-n.e.ready:
	default:
		close(n.e.ready)
	}
	if cp, err := n.e.cfg.Store.Last(); err == nil {
		if v, ok, _ := n.e.cfg.Store.Get(cp.ID, watermarkKey); ok {
			n.watermark, _ = strconv.ParseInt(string(v), 10, 64)
			n.lastWatermark = n.watermark
		}
	}
	self := ctx.Self()
	root := n.e.system.Root
	go func() {
		if err := n.e.cfg.Source.Start(n.e.ctx, listener{ctx: n.e.ctx, root: root, node: self}); err != nil {
			root.Send(self, &partitionFailed{id: "source", err: err})
		}
	}()
}

// listener forwards the source's assignments to the node's mailbox. A
// revoke waits for the node to hand the partition back, or for the run to
// end.
type listener struct {
	ctx  context.Context
	root interface {
		Send(*actor.PID, interface{})
	}
	node *actor.PID
}

func (l listener) Assign(p connectors.Partition) { l.root.Send(l.node, &assign{p: p}) }

func (l listener) Revoke(id string) {
	done := make(chan struct{})
	l.root.Send(l.node, &revoke{id: id, done: done})
	select {
	case <-done:
	case <-l.ctx.Done():
	}
}

func (l listener) Lose(id string) {
	done := make(chan struct{})
	l.root.Send(l.node, &revoke{id: id, lost: true, done: done})
	select {
	case <-done:
	case <-l.ctx.Done():
	}
}

// lose stops a partition without a checkpoint: the group has given it to
// another node, or may have. No checkpoint of it may commit from now on,
// since what it holds is older than the next owner's: a barrier in flight
// that covers it (the partition has passed it or not) is dropped, and the
// next one checkpoints the partitions that remain. When that barrier's
// commit is under way already, the loss waits for its answer (settle or
// abort ends it): Lose returns only then, and the source rejoins the
// group only after Lose, so the group judges the commit by the member
// the node was, which it dropped.
//
// With a transactional sink that can't redo rows (taint.go) any barrier
// in flight is dropped, covering the partition or not: the open
// transaction loses the partition's rows, and no checkpoint may commit
// the others' that stayed in it.
func (n *node) lose(ctx actor.Context, r *revoke) {
	if in := n.inflight; in != nil && (in.covers(r.id) || len(n.rowSinks()) > 0) {
		if in.logged || in.committing {
			n.losses = append(n.losses, r)
			return
		}
		n.abort(ctx, "partition "+r.id+" lost")
	}
	n.dropLost(ctx, r)
}

// dropLost stops a lost partition's supervisor and forgets it.
func (n *node) dropLost(ctx actor.Context, r *revoke) {
	if p := n.parts[r.id]; p != nil {
		n.stopPartition(ctx, p) // Lose returns once it reads no more
		n.setRestoring(p, false)
		delete(n.parts, r.id)
		n.owns(ctx, r.id, false)
		n.e.cfg.Stats.Partitions.Add(-1)
		n.dropRowsOf(ctx, r.id)
	}
	close(r.done)
}

// dropLosses completes the losses that waited for the barrier that just
// ended.
func (n *node) dropLosses(ctx actor.Context) {
	losses := n.losses
	n.losses = nil
	for _, r := range losses {
		n.dropLost(ctx, r)
	}
}

// covers says whether the barrier's checkpoint would commit partition id.
func (in *inflight) covers(id string) bool {
	return in.waiting[id] || in.acks[id] != nil
}

func (n *node) assign(ctx actor.Context, p connectors.Partition) {
	id := p.ID()
	if _, dup := n.parts[id]; dup {
		n.finish(fmt.Errorf("source assigned partition %s twice", id))
		return
	}
	incarnations := 0
	props := actor.PropsFromProducer(func() actor.Actor {
		incarnations++
		return newSupervisor(n.e, p, incarnations > 1)
	},
		actor.WithSupervisor(actor.NewOneForOneStrategy(0, 0, func(any) actor.Directive { return actor.EscalateDirective })))
	n.owns(ctx, id, true) // before its supervisor plans its restore
	ps := newPartState(p)
	if n.e.cfg.Changelog != nil {
		n.setRestoring(ps, true) // until its supervisor says it's ready
	}
	ps.pid = ctx.Spawn(props)
	n.parts[id] = ps
	n.e.cfg.Stats.Partitions.Add(1)
}

// newPartState is a partition just assigned: active from now on, so until
// its supervisor reports it holds the watermark back as one with no event
// time yet (its records may be older than the other partitions'), and
// stops holding it only after the idle timeout.
func newPartState(p connectors.Partition) *partState {
	return &partState{part: p, status: partitionStatus{id: p.ID(), active: time.Now()}}
}

// maybeTrigger starts a barrier when one is due: on the timer when anything
// happened or a checkpoint is due, at once when every partition waits at a
// trigger boundary or the input is over.
func (n *node) maybeTrigger(ctx actor.Context, timer bool) {
	if n.inflight != nil || n.finished {
		return
	}
	var since int64
	allQuiet, allDone, allEnded := true, true, true
	for _, p := range n.parts {
		since += p.since
		if p.restoring {
			allQuiet, allDone, allEnded = false, false, false
			continue
		}
		s := p.status
		if !s.caughtUp && !s.boundary && !s.ended {
			allQuiet = false
		}
		if !(s.caughtUp || s.ended) || s.boundary {
			allDone = false
		}
		if !s.ended {
			allEnded = false
		}
	}
	if len(n.parts) == 0 {
		allQuiet, allDone, allEnded = false, false, false
	}
	checkpointDue := time.Since(n.lastCheckpoint) >= n.e.cfg.CheckpointInterval || n.anyFresh()
	n.advanceWatermark()
	advanced := n.watermark > n.lastWatermark
	switch {
	case n.stopping && n.nothingToCheckpoint():
		n.summary.Interrupted = true
		n.finish(nil)
	case n.stopping || len(n.revokes) > 0 || n.script.pending != nil && !n.anyDown() && !n.nothingToCheckpoint():
		// (A reload waits for a checkpoint, and takes over with a restart
		// of every partition: not while one waits for its own restart.)
		n.trigger(ctx, true, false)
	case allEnded || (n.e.cfg.UntilIdle && allDone):
		n.trigger(ctx, true, true)
	case allQuiet && since > 0:
		n.trigger(ctx, checkpointDue, false)
	case timer && (since > 0 || checkpointDue || advanced || n.e.cfg.Pipeline.HasKeyHooks()):
		// (Hooks may have processing-time timers, which shards check at
		// barriers: a quiet pipeline with hooks still gets its triggers.)
		n.trigger(ctx, checkpointDue, false)
	}
}

// nothingToCheckpoint: no partition is assigned and there is no
// changelog. Without one a checkpoint is the only record of where each
// partition stands, and one taken before the source assigned any (a
// group join slower than the checkpoint interval, a stop in a run's first
// seconds) would be the last: the partitions, finding no position in it,
// would start afresh, their state wiped and their input read again.
func (n *node) nothingToCheckpoint() bool {
	return len(n.parts) == 0 && n.e.cfg.Changelog == nil
}

// advanceWatermark recomputes the watermark from the partitions' latest
// event times. A partition that delivered nothing for the idle timeout, or
// has ended, no longer holds it back; while every partition is idle it
// stays where it is.
func (n *node) advanceWatermark() {
	p := n.e.cfg.Pipeline
	if !p.HasEventTime() {
		return
	}
	ooo, idle := p.Watermark.OutOfOrder.Milliseconds(), p.Watermark.IdleTimeout
	wm, any := int64(math.MaxInt64), false
	for _, ps := range n.parts {
		s := ps.status
		if !ps.restoring && (s.ended || time.Since(s.active) > idle) {
			continue
		}
		any = true
		if ps.restoring || !s.timed {
			// (A partition restoring its state has records of unknown
			// event time ahead: it holds the watermark back until it
			// reads them.)
			wm = math.MinInt64 // active, but no event time yet
			continue
		}
		wm = min(wm, s.maxTime-ooo)
	}
	if any && wm > n.watermark {
		n.watermark = wm
		n.e.cfg.Stats.Watermark.Store(wm)
	}
}

func (n *node) trigger(ctx actor.Context, persist, final bool) {
	n.seq++
	b := barrier{seq: n.seq, final: final, watermark: n.watermark}
	if final {
		b.watermark = math.MaxInt64 // the input is over: every window fires
	}
	n.lastWatermark = b.watermark
	if persist && n.nothingToCheckpoint() {
		persist = false
	}
	if persist {
		// The epoch's record must be durable before anything is written
		// at its version: the store holds the epoch's batches until it
		// is, and the node waits for it (epochBegun) before it makes the
		// checkpoint durable anywhere else. Meanwhile the barrier passes
		// and the shards encode their changes.
		epoch, err := n.e.cfg.Store.BeginAsync()
		if err != nil {
			n.finish(fmt.Errorf("checkpoint: %w", err))
			return
		}
		b.epoch = epoch
		n.lastCheckpoint = time.Now()
		n.awaitBegun(ctx, b.seq, epoch)
	}
	n.e.cfg.Logger.Debug("barrier", "seq", b.seq, "epoch", b.epoch, "final", b.final, "watermark", b.watermark)
	in := &inflight{b: b, waiting: map[string]bool{}, sinks: map[string]bool{}, acks: map[string]*partitionAck{}, written: map[string]int{}, started: time.Now(),
		begun: b.epoch == 0}
	// A fresh partition's first checkpoint writes what it restored to the
	// store (millions of keys may take a minute on a loaded machine), and
	// the others get the barrier only after it: their changelog writes
	// open the checkpoint's transaction, which must not wait through that
	// write (the broker aborts a transaction past its timeout).
	fresh := b.epoch > 0 && n.anyFresh()
	for id, p := range n.parts {
		if p.restoring || p.fresh && b.epoch == 0 {
			continue // not reading yet: in the next checkpoint after it's ready
		}
		in.waiting[id] = true
		p.since = 0
		switch {
		case !fresh:
			ctx.Send(p.pid, &b)
		case p.fresh:
			first := b
			first.storeFirst = true
			ctx.Send(p.pid, &first)
		default:
			in.held = append(in.held, id)
		}
	}
	if n.e.standby != nil && b.epoch > 0 {
		in.standby = true
		if in.heldStandby = fresh; !fresh {
			ctx.Send(n.e.standby, &b)
		}
	}
	n.inflight = in
	if b.epoch > 0 && !n.ownerWritten {
		n.writeOwner(ctx, in)
	}
	n.sendHeld(ctx, in)
	if len(in.waiting) == 0 && !in.standby {
		n.allAcked(ctx)
	}
}

// anyFresh: a partition waits for the checkpoint that stores what it
// restored.
func (n *node) anyFresh() bool {
	for _, p := range n.parts {
		if p.fresh && !p.restoring {
			return true
		}
	}
	return false
}

// sendHeld sends the barrier in flight to the partitions (and the standby
// keeper) it was held back from, once no fresh partition has yet to pass
// it.
func (n *node) sendHeld(ctx actor.Context, in *inflight) {
	if len(in.held) == 0 && !in.heldStandby {
		return
	}
	for id := range in.waiting {
		if p := n.parts[id]; p != nil && p.fresh {
			return
		}
	}
	for _, id := range in.held {
		if p := n.parts[id]; p != nil && in.waiting[id] {
			ctx.Send(p.pid, &in.b)
		}
	}
	if in.heldStandby {
		ctx.Send(n.e.standby, &in.b)
	}
	in.held, in.heldStandby = nil, false
}

func (n *node) partitionAck(ctx actor.Context, m *partitionAck) {
	in := n.inflight
	if in == nil || m.seq != in.b.seq {
		return
	}
	if m.err != nil {
		n.fail(fmt.Errorf("checkpoint of %s: %w", m.id, m.err))
		return
	}
	delete(in.waiting, m.id)
	in.acks[m.id] = m
	for _, w := range m.clog {
		// (here, not on the shards' goroutines: an ack of a checkpoint
		// aborted meanwhile must not write into the next transaction)
		n.e.cfg.Changelog.Write(m.id, w.key, w.value)
	}
	n.e.cfg.Logger.Debug("partition passed barrier", "seq", m.seq, "partition", m.id)
	n.sendHeld(ctx, in)
	if len(in.waiting) == 0 && !in.standby {
		n.allAcked(ctx)
	}
}

// shardWritten: a shard's write of the checkpoint in flight is in the
// store; after the last, what waited for them goes on.
func (n *node) shardWritten(ctx actor.Context, m *shardWritten) {
	in := n.inflight
	if in == nil || m.seq != in.b.seq {
		return
	}
	if m.err != nil {
		n.fail(fmt.Errorf("checkpoint of %s: shard %d: %w", m.partition, m.shard, m.err))
		return
	}
	in.written[m.partition]++
	n.writesIn(ctx, in)
}

// writeOwner writes the pipeline's name (ownerKey) at the epoch of
// checkpoint in, the first this process makes, beside the shards' writes
// (written after them, it was one more commit and sync between the end
// of the input and the final checkpoint's completion); ownerStored
// tells the node it is in. It counts as one of the checkpoint's writes
// (writesDone). The name is known written once the checkpoint completes:
// an aborted checkpoint's writes are hidden, and the next one writes it
// again.
func (n *node) writeOwner(ctx actor.Context, in *inflight) {
	in.owner = true
	store, name, epoch := n.e.cfg.Store, n.e.cfg.Pipeline.Name, in.b.epoch
	root, self, seq := n.e.system.Root, ctx.Self(), in.b.seq
	writes := &n.e.storeWrites.running // (the run ends once it has)
	writes.Add(1)
	go func() {
		defer writes.Done()
		wb := store.Batch(epoch)
		err := wb.Set(ownerKey, []byte(name))
		if err == nil {
			err = wb.Commit()
		} else {
			wb.Cancel()
		}
		root.Send(self, &ownerStored{seq: seq, err: err})
	}()
}

// ownerStored: the pipeline's name is in the store at the epoch of the
// checkpoint in flight.
func (n *node) ownerStored(ctx actor.Context, m *ownerStored) {
	in := n.inflight
	if in == nil || m.seq != in.b.seq {
		return
	}
	if m.err != nil {
		n.fail(fmt.Errorf("checkpoint %d: the pipeline's name: %w", in.b.epoch, m.err))
		return
	}
	in.owner = false
	n.writesIn(ctx, in)
}

// awaitBegun tells the node (epochBegun) once the record of checkpoint
// seq's epoch is durable.
func (n *node) awaitBegun(ctx actor.Context, seq, epoch uint64) {
	root, self, store := n.e.system.Root, ctx.Self(), n.e.cfg.Store
	go func() { root.Send(self, &epochBegun{seq: seq, err: store.Begun(epoch)}) }()
}

// epochBegun: the epoch of the checkpoint in flight is durably begun, or
// failed to be (which ends the run, as a failed Begin always has).
func (n *node) epochBegun(ctx actor.Context, m *epochBegun) {
	in := n.inflight
	if in == nil || m.seq != in.b.seq {
		return
	}
	if m.err != nil {
		n.finish(fmt.Errorf("checkpoint: %w", m.err))
		return
	}
	in.begun = true
	n.writesIn(ctx, in)
}

// writesIn runs what waited for the checkpoint's writes once they are all
// in (writesDone).
func (n *node) writesIn(ctx actor.Context, in *inflight) {
	if next := in.afterWrites; next != nil && in.writesDone() {
		in.afterWrites = nil
		next(ctx)
	}
}

// whenWritten runs next once the epoch of the checkpoint in flight is
// durably begun and every shard's write of it is in the store (at once
// when they are): nothing makes the checkpoint durable elsewhere or
// complete before.
func (n *node) whenWritten(ctx actor.Context, next func(actor.Context)) {
	in := n.inflight
	if !in.writesDone() {
		in.afterWrites = next
		if hook := testHookAwaitWrites.Load(); hook != nil {
			(*hook)(in.b.epoch)
		}
		return
	}
	next(ctx)
}

// testHookAwaitWrites, when a test sets it, runs when the node has
// flushed the sinks of checkpoint epoch and waits for its shards' writes.
var testHookAwaitWrites atomic.Pointer[func(epoch uint64)]

func (n *node) standbyAck(ctx actor.Context, m *standbyAck) {
	in := n.inflight
	if in == nil || m.seq != in.b.seq || !in.standby {
		return
	}
	if m.err != nil {
		n.finish(fmt.Errorf("checkpoint %d: standby copies: %w", in.b.epoch, m.err))
		return
	}
	in.standby = false
	if len(in.waiting) == 0 {
		n.allAcked(ctx)
	}
}

// owns tells the standby keeper this node reads (or no longer reads) a
// partition: it keeps no copy of it meanwhile.
func (n *node) owns(ctx actor.Context, id string, owned bool) {
	if n.e.standby != nil {
		ctx.Send(n.e.standby, &standbyOwned{id: id, owned: owned})
	}
}

// allAcked: every partition passed the barrier. Emit, then flush sinks.
func (n *node) allAcked(ctx actor.Context) {
	in := n.inflight
	e := n.e
	if e.emitter != nil {
		in.sinks["results"] = true
		ctx.Send(e.emitter, &emitTrigger{seq: in.b.seq, epoch: in.b.epoch, final: in.b.final, watermark: in.b.watermark})
	}
	for name := range e.cfg.sinks() {
		if name == "results" {
			continue
		}
		in.sinks[name] = true
		if name == "dead_letter" && e.firstStage.pids != nil {
			continue // the later stages' collector flushes it after their dead letters (stage_flow.go)
		}
		ctx.Send(e.writer(name), &flush{seq: in.b.seq})
	}
	if len(in.sinks) == 0 {
		n.whenWritten(ctx, n.settle)
	}
}

func (n *node) sinkFlushed(ctx actor.Context, m *sinkFlushed) {
	in := n.inflight
	if in == nil || m.seq != in.b.seq {
		return
	}
	if m.err != nil && (!in.committing || len(n.e.transactional) == 1) && errors.Is(m.err, connectors.ErrNotMember) {
		// A flush, or the one transactional sink's commit, was refused
		// before anything committed: the group dropped this node (a
		// broker restart, a pause) and its partitions were lost (their
		// next owner may have fenced the transaction). As for a
		// changelog's refusal, the checkpoint is aborted and the run goes
		// on with the partitions the group assigns next, from their
		// committed offsets.
		n.outOfGroup(ctx, m.err)
		return
	}
	if m.err != nil {
		n.fail(fmt.Errorf("sink %s: flush: %w", m.name, m.err))
		return
	}
	delete(in.sinks, m.name)
	n.e.cfg.Logger.Debug("sink flushed", "seq", m.seq, "sink", m.name)
	if len(in.sinks) > 0 {
		return
	}
	n.whenWritten(ctx, n.flushed)
}

// flushed: every sink has flushed the barrier in flight, and every
// shard's write of it is in the store. A checkpoint commits the
// changelog, then the transactional sinks, then settles.
func (n *node) flushed(ctx actor.Context) {
	in := n.inflight
	if in.b.epoch > 0 && !in.logged && !in.committing {
		if err := n.taintErr(); err != nil {
			n.e.cfg.Stats.CheckpointsFailed.Add(1)
			n.finish(fmt.Errorf("checkpoint %d: %w", in.b.epoch, err))
			return
		}
	}
	if cl := n.e.cfg.Changelog; cl != nil && in.b.epoch > 0 && !in.logged {
		in.logged = true
		markers := map[string]connectors.ChangelogMarker{}
		for id, a := range in.acks {
			m := connectors.ChangelogMarker{Checkpoint: in.b.epoch, Position: a.pos, Node: n.e.cfg.Node}
			if n.e.cfg.Pipeline.HasEventTime() {
				m.Watermark = a.markerWatermark(in.b.watermark)
			}
			markers[id] = m
		}
		marker, marks := n.stageMarks(in)
		// Off the node's goroutine: a commit is a round trip or two.
		root, self, seq, ectx := n.e.system.Root, ctx.Self(), in.b.seq, n.e.ctx
		go func() {
			if len(marks) > 0 {
				if err := marker.MarkWatermarks(ectx, marks); err != nil {
					root.Send(self, &changelogCommitted{seq: seq, err: fmt.Errorf("watermark markers: %w", err)})
					return
				}
			}
			offsets, err := cl.Commit(ectx, markers)
			root.Send(self, &changelogCommitted{seq: seq, offsets: offsets, err: err})
		}()
		return
	}
	if in.b.epoch > 0 && !in.committing && len(n.e.transactional) > 0 {
		// Every sink has flushed: commit the transactional ones with the
		// checkpoint. Their commit is the point of no return.
		in.committing = true
		cp := connectors.Checkpoint{ID: in.b.epoch, Positions: in.positions()}
		for name, pid := range n.e.transactional {
			in.sinks[name] = true
			ctx.Send(pid, &commit{seq: in.b.seq, cp: cp})
		}
		return
	}
	n.settle(ctx)
}

// stageMarks are the watermark markers a checkpoint adds to its
// transaction, after its rows, when the results go on to another stage
// (connectors.WatermarkMarker): for each partition that passed the
// barrier, the watermark up to which its windows are all out.
func (n *node) stageMarks(in *inflight) (connectors.WatermarkMarker, map[string]int64) {
	marker, ok := n.e.cfg.Results.(connectors.WatermarkMarker)
	if !ok || !marker.CarriesWatermarks() || !n.e.cfg.Pipeline.IsWindowed() || in.b.final {
		// (The end of the input fires every window, and the next stage,
		// run to its end too, fires all of its own: a marker at the end of
		// time would make any later input's rows late there.)
		return nil, nil
	}
	marks := map[string]int64{}
	for id, a := range in.acks {
		if a == nil {
			continue
		}
		if m := a.stageMark(in.b.watermark); m > math.MinInt64 {
			marks[id] = m
		}
	}
	return marker, marks
}

func (n *node) changelogCommitted(ctx actor.Context, m *changelogCommitted) {
	in := n.inflight
	if in == nil || m.seq != in.b.seq {
		return
	}
	if errors.Is(m.err, connectors.ErrNotMember) {
		n.outOfGroup(ctx, m.err)
		return
	}
	if m.err != nil {
		n.e.cfg.Stats.CheckpointsFailed.Add(1)
		n.finish(fmt.Errorf("checkpoint %d: changelog: %w", in.b.epoch, m.err))
		return
	}
	in.clog = m.offsets
	n.flushed(ctx)
}

// outOfGroup aborts the checkpoint in flight, whose changelog commit the
// group refused: the node was away (paused, cut off) past its session and
// its partitions have moved, which the source reports as lost next. The
// run goes on and gets partitions again when the node rejoins the group.
func (n *node) outOfGroup(ctx actor.Context, err error) {
	n.inflight.logged = false // not committed: abort aborts the changelog's transaction
	n.abort(ctx, err.Error())
}

func (in *inflight) positions() map[string]connectors.Position {
	pos := map[string]connectors.Position{}
	for id, a := range in.acks {
		if a.pos != nil {
			pos[id] = a.pos
		}
	}
	return pos
}

// settle completes the barrier in flight, in this order: a checkpoint is
// made complete in the store and announced; the partitions release the
// rows they held back since passing the barrier; partitions revoked before
// a checkpoint are handed back; and the run ends after a final barrier or
// a stop's checkpoint, or goes on to the next barrier.
func (n *node) settle(ctx actor.Context) {
	in := n.inflight
	n.inflight = nil
	if in.b.epoch > 0 {
		if err := n.complete(in); err != nil {
			n.e.cfg.Stats.CheckpointsFailed.Add(1)
			n.finish(fmt.Errorf("checkpoint %d: %w", in.b.epoch, err))
			return
		}
		n.ownerWritten = true // (writeOwner wrote it in this checkpoint, or one before)
		n.announce(ctx, in)
		for id := range in.acks {
			if p := n.parts[id]; p != nil {
				p.fresh = false // what it restored is in the store now
			}
		}
	}
	if n.reloadDue(in) {
		n.applyReload(ctx, in)
		n.restarts = nil // (every partition starts again from in)
	} else {
		for _, p := range n.parts {
			ctx.Send(p.pid, &settled{seq: in.b.seq})
		}
	}
	if in.b.epoch > 0 {
		// Only a checkpoint covers what a revoked partition read; after a
		// plain trigger the revokes wait for the next barrier, which
		// maybeTrigger makes a checkpoint.
		n.settleRevokes(ctx, in)
	}
	n.dropLosses(ctx)
	if in.b.final || n.stopping && in.b.epoch > 0 {
		n.summary.Interrupted = !in.b.final
		n.finish(nil)
		return
	}
	n.restartAgain(ctx)
	n.maybeTrigger(ctx, false) // (stopping after a plain trigger: the stop checkpoint)
}

// complete writes checkpoint in's metadata at its version (the pipeline
// that owns the directory, the watermark, the changelog offsets), then the
// store's marker that makes it complete, with the partitions' positions.
func (n *node) complete(in *inflight) error {
	if err := n.writeMeta(in); err != nil {
		return err
	}
	cp := state.Checkpoint{ID: in.b.epoch, Time: time.Now().UTC(), Positions: map[string][]byte{}}
	for id, pos := range in.positions() {
		cp.Positions[id] = pos
	}
	return n.e.cfg.Store.Complete(cp)
}

func (n *node) writeMeta(in *inflight) error {
	eventTime := n.e.cfg.Pipeline.HasEventTime()
	if !eventTime && len(in.clog) == 0 {
		return nil
	}
	wb := n.e.cfg.Store.Batch(in.b.epoch)
	if eventTime {
		wb.Set(watermarkKey, []byte(strconv.FormatInt(in.b.watermark, 10)))
	}
	for id, off := range in.clog {
		a := in.acks[id]
		ce := clogEntry{Offset: off, Watermark: a.markerWatermark(in.b.watermark)}
		if a != nil {
			ce.Position = a.pos
		}
		v, _ := json.Marshal(ce)
		wb.Set(clogKey(id), v)
	}
	return wb.Commit()
}

// announce tells of a complete checkpoint: the counters, the source (which
// may record it: Kafka commits its offsets), the log, and the partitions
// and the standby keeper, which forget what they kept to redo it.
func (n *node) announce(ctx actor.Context, in *inflight) {
	st, id := n.e.cfg.Stats, in.b.epoch
	st.Checkpoints.Add(1)
	st.CheckpointLatency.Observe(time.Since(in.started))
	st.LastCheckpoint.Store(id)
	if obs, ok := n.e.cfg.Source.(connectors.CheckpointObserver); ok {
		ccp := connectors.Checkpoint{ID: id, Positions: in.positions()}
		go func() {
			if err := obs.Checkpointed(n.e.ctx, ccp); err != nil {
				n.e.cfg.Logger.Warn("source could not record the checkpoint", "id", ccp.ID, "err", err)
			}
		}()
	}
	cp := state.Checkpoint{ID: id}
	if last, err := n.e.cfg.Store.Last(); err == nil {
		cp = last // with the counts Complete filled in
	}
	n.e.cfg.Logger.Debug("checkpoint complete", "id", cp.ID, "keys", cp.Keys, "changed", cp.Changed, "took", time.Since(in.started))
	n.e.recent.checkpoints.put(CheckpointRecord{ID: cp.ID, Time: cp.Time, Duration: time.Since(in.started), Keys: cp.Keys, Changed: cp.Changed})
	for _, p := range n.parts {
		ctx.Send(p.pid, &checkpointDone{epoch: id})
	}
	if n.e.standby != nil {
		ctx.Send(n.e.standby, &checkpointDone{epoch: id})
	}
}

// settleRevokes hands back the partitions revoked before checkpoint in:
// the source hears of the checkpoint first (Kafka commits the offsets the
// next owner starts from), then each supervisor is stopped, and only then
// does Revoke return. Blocking the node here is fine: revokes are rare.
func (n *node) settleRevokes(ctx actor.Context, in *inflight) {
	if len(n.revokes) == 0 {
		return
	}
	if obs, ok := n.e.cfg.Source.(connectors.CheckpointObserver); ok {
		cp := connectors.Checkpoint{ID: in.b.epoch, Positions: map[string]connectors.Position{}}
		for _, r := range n.revokes {
			if pos := in.positions()[r.id]; pos != nil {
				cp.Positions[r.id] = pos
			}
		}
		if err := obs.Checkpointed(n.e.ctx, cp); err != nil {
			n.e.cfg.Logger.Warn("source could not record the checkpoint of revoked partitions", "id", cp.ID, "err", err)
		}
	}
	for _, r := range n.revokes {
		if p := n.parts[r.id]; p != nil {
			n.stopPartition(ctx, p)
			n.setRestoring(p, false)
			delete(n.parts, r.id)
			n.owns(ctx, r.id, false)
			n.e.cfg.Stats.Partitions.Add(-1)
		}
		close(r.done)
	}
	n.revokes = nil
}

// abort drops the barrier in flight: its writes stay invisible (it is never
// completed) and shards keep its keys dirty for the next checkpoint.
func (n *node) abort(ctx actor.Context, why string) {
	in := n.inflight
	n.inflight = nil
	n.e.cfg.Logger.Warn("checkpoint aborted", "seq", in.b.seq, "epoch", in.b.epoch, "why", why)
	if in.b.epoch > 0 {
		n.e.cfg.Stats.CheckpointsFailed.Add(1)
	}
	for name, pid := range n.e.transactional {
		// The checkpoint does not commit: drop the uncommitted output.
		if name == "results" && n.e.emitsResults() {
			ctx.Send(n.e.emitter, &resultsAborted{})
			continue
		}
		ctx.Send(pid, &abortTx{})
	}
	n.taint("checkpoint aborted: " + why)
	if cl := n.e.cfg.Changelog; cl != nil && !n.e.cfg.ChangelogShared && in.b.epoch > 0 && !in.logged {
		// The shards redo what they wrote at the next checkpoint, whose
		// writes must not land in the aborted transaction: wait for it.
		if err := cl.Abort(n.e.ctx); err != nil {
			n.finish(fmt.Errorf("checkpoint %d: changelog: abort: %w", in.b.epoch, err))
		}
	}
	if n.e.standby != nil && in.b.epoch > 0 {
		ctx.Send(n.e.standby, &checkpointAborted{epoch: in.b.epoch})
	}
	for _, p := range n.parts {
		if in.b.epoch > 0 {
			ctx.Send(p.pid, &checkpointAborted{epoch: in.b.epoch})
		}
		ctx.Send(p.pid, &settled{seq: in.b.seq})
	}
	n.dropLosses(ctx)
	n.restarts = nil // (they started from the last complete checkpoint)
}

// stopPartition stops a partition's supervisor and waits (protoactor's
// StopFuture bounds the wait at 10s) until it reads no more.
func (n *node) stopPartition(ctx actor.Context, p *partState) {
	if err := ctx.StopFuture(p.pid).Wait(); err != nil {
		n.e.cfg.Logger.Warn("a partition did not stop in time", "partition", p.part.ID(), "err", err)
	}
}

// fail ends the run with err, unless err is a script call the stop
// interrupted: then the stop goes without its checkpoint.
func (n *node) fail(err error) {
	if n.stopping && interrupted(err) {
		n.giveUpStop(err.Error())
		return
	}
	n.finish(err)
}

func (n *node) finish(err error) {
	if n.finished {
		return
	}
	n.finished = true
	if m := n.script.pending; m != nil {
		n.e.cfg.Logger.Warn("reload not applied: the run ended before its checkpoint", "why", m.Why, "hash", short(m.Pipeline.Hash))
	}
	st := n.e.cfg.Stats
	n.summary.Read, n.summary.Kept, n.summary.Failed = st.Read.Load(), st.Kept.Load(), st.Failed.Load()
	n.summary.Checkpoints, n.summary.LastCheckpoint = st.Checkpoints.Load(), st.LastCheckpoint.Load()
	n.done <- result{summary: n.summary, err: err}
}

// anyDown says whether a partition waits for its restart.
func (n *node) anyDown() bool {
	for _, p := range n.parts {
		if p.down {
			return true
		}
	}
	return false
}

// partitionIDs lists the assigned partitions, sorted.
func (n *node) partitionIDs() []string {
	ids := make([]string, 0, len(n.parts))
	for id := range n.parts {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return ids
}

package actors

import (
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
)

// How a run ends early: a partition that keeps failing stops it with the
// cause, and a stop (ctx cancelled) checkpoints what is complete and no
// more.

// restartWindow: a partition that fails more than this long after its
// last failure starts its count of restarts over.
const restartWindow = time.Minute

// maxRestartBackoff caps the doubling wait before a restart.
const maxRestartBackoff = 10 * time.Second

// restartBackoff is the wait before a partition's restart number n (from 1).
func restartBackoff(first time.Duration, n int) time.Duration {
	d := first
	for i := 1; i < n && d < maxRestartBackoff; i++ {
		d *= 2
	}
	return min(d, maxRestartBackoff)
}

// HandleFailure implements actor.SupervisorStrategy: the node supervises
// its partitions itself. It runs on the node's goroutine, among the
// system messages; the decision is taken in Receive, where the node can
// send (the failed partition stays suspended meanwhile).
func (n *node) HandleFailure(_ *actor.ActorSystem, sup actor.Supervisor, child *actor.PID, _ *actor.RestartStatistics, reason, _ any) {
	n.e.system.Root.Send(n.e.node, &partitionCrashed{pid: child, sup: sup, cause: asError(reason)})
}

// partitionCrashed restarts a failed partition from the last checkpoint
// after a backoff, or ends the run with the cause: past Config.MaxRestarts,
// in a multi-stage pipeline, or with a transactional sink.
func (n *node) partitionCrashed(ctx actor.Context, m *partitionCrashed) {
	p := n.partOf(m.pid)
	switch {
	case p == nil || n.finished:
		m.sup.StopChildren(m.pid)
		return
	case p.down:
		return // a second failure of the same incarnation (another shard)
	case n.stopping:
		m.sup.StopChildren(m.pid)
		n.giveUpStop(fmt.Sprintf("partition %s failed: %v", p.part.ID(), m.cause))
		return
	}
	if len(n.e.cfg.Pipeline.Stages) > 0 {
		m.sup.StopChildren(m.pid)
		n.finish(stagesNoRestart(p.part.ID(), m.cause))
		return
	}
	if len(n.e.transactional) > 0 {
		m.sup.StopChildren(m.pid)
		n.finish(transactionalNoRestart(p.part.ID(), m.cause))
		return
	}
	id, log, max := p.part.ID(), n.e.cfg.Logger, n.e.cfg.MaxRestarts
	if time.Since(p.lastFailure) > restartWindow {
		p.restarts = 0
	}
	p.lastFailure = time.Now()
	if p.restarts >= max {
		err := fmt.Errorf("partition %s failed %d times in a row (%d restarts); stopping: %w", id, p.restarts+1, p.restarts, m.cause)
		log.Error(err.Error())
		m.sup.StopChildren(m.pid)
		n.finish(err)
		return
	}
	p.restarts++
	p.down = true
	wait := restartBackoff(n.e.cfg.RestartBackoff, p.restarts)
	log.Error(fmt.Sprintf("partition %s failed (restart %d of %d, next in %v): %v", id, p.restarts, max, wait, m.cause))
	root, self, pids := n.e.system.Root, ctx.Self(), []*actor.PID{m.pid}
	time.AfterFunc(wait, func() { root.Send(self, &restartPartitions{sup: m.sup, pids: pids}) })
}

// transactionalNoRestart is why a run with a transactional sink ends when
// a partition fails rather than restarting it. The sinks' open
// transaction holds what every partition wrote since the last checkpoint,
// and a commit may be under way: rewinding in-process would need that
// transaction aborted after the last row the failed incarnation sent (rows
// still in a writer's or the producer's queue would land in the next one)
// and a commit already made completed in the store first. A new process
// does both at its start: it aborts (fences) the open transaction and
// completes a checkpoint the sinks committed (recoverCommitted).
func transactionalNoRestart(id string, cause error) error {
	return fmt.Errorf("partition %s failed: %w; with a transactional sink a failed partition is not restarted in-process (the open transaction holds rows it would write again): run it again to resume from the last checkpoint", id, cause)
}

// restartPartitions restarts partitions whose backoff has passed.
func (n *node) restartPartitions(m *restartPartitions) {
	if n.finished {
		return
	}
	for _, pid := range m.pids {
		if p := n.partOf(pid); p != nil {
			p.down = false
		}
	}
	m.sup.RestartChildren(m.pids...)
}

// partOf is the partition a supervisor's PID belongs to, or nil.
func (n *node) partOf(pid *actor.PID) *partState {
	for _, p := range n.parts {
		if p.pid.Equal(pid) {
			return p
		}
	}
	return nil
}

// stop begins a stop: the partitions read no more and drop what they read
// but have not processed (no checkpoint covers it, so a restart reads it
// again); then a checkpoint of what they processed ends the run.
func (n *node) stop(ctx actor.Context) {
	if n.stopping || n.finished {
		return
	}
	n.stopping = true
	n.e.stopping.Store(true)
	for _, id := range n.partitionIDs() {
		p := n.parts[id]
		if p.down {
			n.giveUpStop("partition " + id + " is waiting for its restart")
			return
		}
		ctx.Send(p.pid, &stopReading{})
	}
	n.e.cfg.Logger.Info("stopping: reading stopped; checkpointing what is processed (records read after it are read again on restart)")
	n.maybeTrigger(ctx, true)
}

// giveUpStop ends a stop without its checkpoint: the last complete one
// stands, and a restart reads again what came after it.
func (n *node) giveUpStop(why string) {
	if n.finished {
		return
	}
	if in := n.inflight; in != nil {
		// Never completed, its writes stay invisible.
		n.inflight = nil
		n.e.cfg.Logger.Debug("checkpoint dropped", "seq", in.b.seq, "epoch", in.b.epoch)
	}
	n.e.cfg.Logger.Warn("stopping without a stop checkpoint: "+why+"; the last complete checkpoint stands and a restart reads again what came after it",
		"checkpoint", n.e.cfg.Stats.LastCheckpoint.Load())
	n.summary.Interrupted = true
	n.finish(nil)
}

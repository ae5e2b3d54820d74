package actors

import (
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/scripting"
)

// Messages of the engine. They are immutable once sent.

// assign: the source hands the node a partition.
type assign struct{ p connectors.Partition }

// revoke: the source takes a partition back; done closes when it has been
// checkpointed and stopped. lost skips the checkpoint.
type revoke struct {
	id   string
	lost bool
	done chan struct{}
}

// tick: the trigger timer fired.
type tick struct{}

// shutdown: stop reading, checkpoint what is processed, stop (ctx
// cancelled: SIGINT/SIGTERM). With giveUp, the stop checkpoint did not
// complete in that time: end without it.
type shutdown struct{ giveUp time.Duration }

// stopReading: the run is stopping; a supervisor reads no more and drops
// the batches it read and has not delivered.
type stopReading struct{}

// partitionCrashed: a partition's supervisor (or one of its children)
// failed; sup restarts or stops it.
type partitionCrashed struct {
	pid   *actor.PID
	sup   actor.Supervisor
	cause error
}

// restartPartitions: the backoff before restarting pids has passed.
type restartPartitions struct {
	sup  actor.Supervisor
	pids []*actor.PID
}

// sourceBatch: a supervisor's reader read a batch (or failed).
type sourceBatch struct {
	gen   uint64
	batch connectors.Batch
	err   error
	at    time.Time // when Read returned it
}

// barrier: a trigger, and a checkpoint when epoch > 0. final marks the
// barrier after the end of the input.
type barrier struct {
	seq   uint64
	epoch uint64
	final bool
	// watermark is the pipeline's event-time watermark (Unix ms) as of this
	// barrier: windows and timers it has passed fire here.
	watermark int64
}

// keyedBatch: processed records for one shard.
type keyedBatch struct {
	rows []scripting.Keyed
	// src and idx locate each row's raw record for dead letters.
	src *connectors.Batch
	idx []int
	// read is when the supervisor got the batch from its reader.
	read time.Time
	// watermark is the partition's watermark after the batch; shards
	// advance to it once they have added the batch's rows.
	watermark int64
}

// shardProcessed: a shard finished a keyedBatch (flow control).
type shardProcessed struct {
	gen   uint64 // the supervisor incarnation the shard belongs to
	shard int
}

// shardBarrierAck: a shard passed a barrier.
type shardBarrierAck struct {
	gen   uint64
	seq   uint64
	shard int
	err   error
}

// partitionAck: a partition passed a barrier; pos is where it stood.
type partitionAck struct {
	seq uint64
	id  string
	pos connectors.Position
	err error
}

// partitionStatus: what a partition's reader is doing.
type partitionStatus struct {
	id       string
	caughtUp bool // nothing more to read right now
	boundary bool // paused at a trigger boundary
	ended    bool // the partition has ended for good
	records  int64
	// maxTime is the latest event time the partition has delivered (Unix
	// ms; timed once there is one); active when it last delivered a record.
	maxTime int64
	timed   bool
	active  time.Time
	pos     connectors.Position // after the last delivered batch
}

// partitionFailed: reading a partition failed for good.
type partitionFailed struct {
	id  string
	err error
}

// partitionRestarted: a supervisor restarted from the last checkpoint.
type partitionRestarted struct{ id string }

// failed: a record failed; the node counts them against --max-errors.
type failed struct {
	n    int64
	last string
}

// checkpointDone / checkpointAborted settle a checkpoint's pending writes.
type checkpointDone struct{ epoch uint64 }
type checkpointAborted struct{ epoch uint64 }

// resultRows: a shard's changed (or, with reset, all) keys for the emitter.
type resultRows struct {
	partition string
	shard     int
	reset     bool
	rows      []partial
	// fired: rows of windows that fired at this trigger (final mode);
	// drop: state keys of windows to forget.
	fired bool
	ends  []int64 // with fired: each window's end
	drop  []string
}

// partial is one key's accumulators from one partition.
type partial struct {
	key     string
	keyVals []any
	accs    []any
	// firedBy: when the batch whose watermark fired the window was read
	firedBy time.Time
}

// emitTrigger: every partition passed barrier seq; emit what it calls for.
type emitTrigger struct {
	seq       uint64
	epoch     uint64 // > 0 when the barrier is a checkpoint
	final     bool
	watermark int64
}

// rowsOut: rows for a sink.
type rowsOut struct{ rows []connectors.Row }

// flush: make what a sink has durable and acknowledge seq to the node.
type flush struct{ seq uint64 }

// sinkFlushed: a sink flushed up to seq (err when it could not).
type sinkFlushed struct {
	seq  uint64
	name string
	err  error
}

// sinkFailed: a sink's write failed.
type sinkFailed struct {
	name string
	err  error
}

// commit: a transactional sink commits what it has with checkpoint cp.
type commit struct {
	seq uint64
	cp  connectors.Checkpoint
}

// abortTx: a transactional sink drops what it wrote since its last commit.
type abortTx struct{}

// settled: the barrier seq is done (or dropped); supervisors release the
// sink rows they held back since passing it.
type settled struct{ seq uint64 }

package actors

import (
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/scripting"
)

// Every message an actor of the engine receives, by family (protoactor's
// lifecycle messages aside). They are immutable once sent.

// To the node: the source's assignments, the timer, a stop, failures.

// assign: the source hands the node a partition.
type assign struct{ p connectors.Partition }

// revoke: the source takes a partition back; done closes when it has been
// checkpointed and stopped. lost skips the checkpoint.
type revoke struct {
	id   string
	lost bool
	done chan struct{}
}

// Reload (reload.go): a new version of the script.

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

// Through a partition: its reader's batches, barriers, their
// acknowledgements and its status.

// sourceBatch: a supervisor's reader read a batch (or failed).
type sourceBatch struct {
	gen   uint64
	batch connectors.Batch
	err   error
	at    time.Time // when Read returned it
	// bufs: the memory its worker filled (the supervisor's, once
	// delivered), reused when the batch is released
	bufs *batchBufs
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
	// storeFirst: the partition is fresh (restored, and what it restored
	// not in the store yet); its shards write to the store first and hand
	// their changelog writes to the node with their acks (node.trigger).
	storeFirst bool
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
	clog  []clogWrite // at a storeFirst barrier: the changelog's writes
	// writing: the shard's checkpoint write goes on after this ack, and a
	// shardWritten tells the node when it is in the store
	writing bool
}

// shardWritten: a shard's checkpoint write, begun when it passed barrier
// seq, is in the store (err when it is not). It goes to the node, which
// makes nothing of the checkpoint durable elsewhere (changelog, sinks'
// commits, the store's marker) before every write of it is in.
type shardWritten struct {
	seq       uint64
	partition string
	shard     int
	err       error
}

// epochBegun: the record of the epoch of checkpoint seq is durable (err
// when its write failed). Until then the node makes nothing of the
// checkpoint durable (node.trigger).
type epochBegun struct {
	seq uint64
	err error
}

// ownerStored: the pipeline's name is in the store at the epoch of
// checkpoint seq (err when it is not).
type ownerStored struct {
	seq uint64
	err error
}

// clogWrite is a changelog write held back (barrier.storeFirst); value
// nil deletes.
type clogWrite struct{ key, value []byte }

// partitionAck: a partition passed a barrier; pos is where it stood.
type partitionAck struct {
	seq uint64
	id  string
	pos connectors.Position
	// own: the partition goes by its own watermark (a repartition
	// topic's), which was watermark at the barrier: its changelog marker
	// keeps that, not the node's, which may be ahead of it
	own       bool
	watermark int64
	// fired: the watermark its shards fired windows by at the barrier
	fired int64
	err   error
	clog  []clogWrite // its shards' (barrier.storeFirst)
	// writing counts its shards whose checkpoint write is still going
	// on (each sends the node a shardWritten)
	writing int
}

// markerWatermark is the watermark a changelog marker keeps for the
// partition that sent a: its own where it goes by its own (restored with
// the node's, a partition behind the node would find its next records
// late), else the node's, the barrier's.
func (a *partitionAck) markerWatermark(node int64) int64 {
	if a != nil && a.own {
		return a.watermark
	}
	return node
}

// stageMark is the watermark up to which the partition that sent a has
// emitted all its windows, once the barrier's emit (at watermark node) is
// out: those its shards fired, that the emitter emits once node passes
// their end. Its rows still to come are of windows ending after it.
func (a *partitionAck) stageMark(node int64) int64 { return min(node, a.fired) }

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

// partitionRestarted: a supervisor restarted from the last checkpoint,
// epoch: the one complete in the store when it planned its start.
type partitionRestarted struct {
	id    string
	epoch uint64
}

// restartNoted (node → supervisor): the node has heard of the restart;
// the barriers before this were its predecessor's.
type restartNoted struct{}

// failed: a record failed; the node counts them against --max-errors.
type failed struct {
	n    int64
	last string
}

// A barrier's outcome (node → partitions → shards).

// checkpointDone / checkpointAborted settle a checkpoint's pending writes.
type checkpointDone struct{ epoch uint64 }
type checkpointAborted struct{ epoch uint64 }

// Results (shards → emitter).

// resultRows: a shard's changed (or, with reset, all) keys for the emitter.
type resultRows struct {
	partition string
	shard     int
	reset     bool
	rows      []partial
	// restored: with reset, the shard's table as its partition's
	// changelog brought it: rows the previous owner emitted already,
	// which an update emit does not repeat
	restored bool
	// more: with reset (or part), more of the shard's table follows in
	// the next message, with part set; the shard has sent its table (its
	// partition can count as held) only with the last. total: the rows
	// of this message and the rest of its table's, to make room for at
	// once.
	more, part bool
	total      int
	// fired: rows of windows that fired at this trigger (final mode),
	// each partial's end its window's; drop: state keys of windows to
	// forget.
	fired bool
	drop  []string
	// superseded: session windows merged into another of their key since
	// the last trigger, to forget before taking this message's rows,
	// which may be sessions that took one of those keys since (in a
	// final emit they come with the fired rows)
	superseded []string
	// read: when the oldest batch folded into rows left its source (zero
	// for fired windows, which FireLatency measures)
	read time.Time
}

// partial is one key's accumulators from one partition.
type partial struct {
	key     string
	keyVals []any
	accs    []any
	// start, end: the window, Unix ms (windowed pipelines)
	start, end int64
	// firedBy: when the batch whose watermark fired the window was read
	firedBy time.Time
	// raw: a restored entry of an unwindowed pipeline not decoded yet
	// (keyVals and accs nil): the encoded key values and accumulators,
	// as the changelog or the store has them
	raw []byte
}

// emitTrigger: every partition passed barrier seq; emit what it calls for.
type emitTrigger struct {
	seq       uint64
	epoch     uint64 // > 0 when the barrier is a checkpoint
	final     bool
	watermark int64
}

// stageRows: the rows the stage before emitted at a trigger, for a shard
// of the next stage or the collector (stage.go); the trigger goes on with
// them.
type stageRows struct {
	trigger emitTrigger
	rows    []connectors.Row
	read    time.Time
	// changed: some key of the sender's table changed at this trigger
	// (complete emits); from: how many senders' rows a gathered one holds
	changed bool
	from    int
}

// swapScript: the emitter makes its runtime from p from now on (a reload).
type swapScript struct{ p *scripting.Pipeline }

// Sinks (→ SinkWriter → node).

// rowsOut: rows for a sink; read, when known, is when the batch they came
// from left its source.
type rowsOut struct {
	rows []connectors.Row
	read time.Time
}

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

// resultsAborted (node → emitter): the checkpoint in flight is aborted,
// and the results sink's transaction with it. The emitter holds again the
// windows the last complete checkpoint holds (their rows emitted since
// are dropped, and the partitions start again from it), then passes the
// sink its abortTx after the rows it sent.
type resultsAborted struct{}

// settled: the barrier seq is done (or dropped); supervisors release the
// sink rows they held back since passing it.
type settled struct{ seq uint64 }

// The changelog (node).

// changelogCommitted: the changelog committed checkpoint seq's changes.
type changelogCommitted struct {
	seq     uint64
	offsets map[string]int64
	err     error
}

// Parse workers (supervisor ↔ ParseWorker).

// work: a batch to process; worked: what came of it.
type work struct {
	gen   uint64
	seq   uint64
	batch *connectors.Batch
	// bufs: an earlier batch's memory, which nothing reads any more, for
	// the worker to fill again; nil: it allocates its own
	bufs *batchBufs
}

// worked carries its supervisor incarnation: a restarted supervisor keeps
// its PID, and must not take a dead incarnation's results for its own.
type worked struct {
	gen      uint64
	seq      uint64
	perShard [][]scripting.Keyed
	perIdx   [][]int
	outputs  map[string][]connectors.Row // by sink name
	dead     []connectors.Row
	kept     int64
	maxTime  int64 // the latest event time among the kept records
	timed    bool  // some kept record had an event time
	// interrupted: the run stopped a script call; the batch is not
	// processed and must not be delivered.
	interrupted bool
	// bufs holds perShard, perIdx and their records' values, for reuse
	// once the shards have folded them
	bufs *batchBufs
}

// Restoring a partition from its changelog (supervisor → shards, node).

// kv is one change read from the changelog; value nil deletes.
type kv struct {
	key   string // the state key, or the hook key when hook
	hook  bool
	value []byte
}

// restoreKVs carries changelog changes to a shard; pending counts the
// changes sent and not yet taken in, the reader's backpressure.
type restoreKVs struct {
	gen     uint64
	kvs     []kv
	pending *atomic.Int64
}

// restored: the changelog has been read; the shard puts its state together.
type restored struct {
	gen       uint64
	watermark int64
}

// restoreDone: the supervisor's changelog reader finished.
type restoreDone struct {
	gen    uint64
	marker connectors.ChangelogMarker
	n      int64
	took   time.Duration
	err    error
}

// partitionReady: a partition restored its state; the node includes it
// in barriers from now on. A fresh one does not read yet: its restored
// state is not in the store, and the next checkpoint writes it before
// the other partitions get their barrier (node.trigger); it reads once
// that checkpoint is complete.
type partitionReady struct {
	id    string
	fresh bool
}

// restoreProgress reports a partition's restore to the node.
type restoreProgress struct {
	id          string
	done, total int64
}

// A partition's held windows (supervisor → emitter).

// loadHeld, heldKVs, partitionMoved: a partition's held windows arrive
// with it or leave with it (with a changelog).
type loadHeld struct {
	partition string
	load      bool
	// restoring: the changelog's held windows follow, then heldRestored;
	// until then the partition's are not written to the changelog (they
	// may be older than what it has)
	restoring bool
}

type heldRestored struct{ partition string }

type heldKVs struct {
	partition string
	keys      []string
	values    [][]byte
}

type partitionMoved struct{ partition string }

// Standby copies (node ↔ standby keeper).

// standbySet: the partitions to keep warm now; the answer lists each with
// the offset to read it from.
type standbySet struct{ ids []string }

type standbyFrom struct {
	id   string
	from int64
}

// standbyChanges: a partition's changelog from offset from to next.
type standbyChanges struct {
	id         string
	from, next int64
	keys       []string
	values     [][]byte
	marker     connectors.ChangelogMarker
}

// standbyOwned: the node starts (or stops) reading a partition.
type standbyOwned struct {
	id    string
	owned bool
}

// standbyAck: the keeper passed a barrier.
type standbyAck struct {
	seq uint64
	err error
}

// Status and state queries (Handle → node, emitter).

type statusQuery struct{}

// stateQuery asks the emitter for the result table's rows of key. Each
// query to the emitter carries the time its asker stops waiting: the
// emitter skips one it gets later (a table of many keys takes seconds to
// shape on a loaded machine; answers no one waits for would queue up
// behind each other, every next query timing out too).
type stateQuery struct {
	key      string
	deadline time.Time
}

// shareQuery asks the emitter for its share of the result table; mergeQuery
// for the rows the shares of every node make together.
type shareQuery struct {
	key      string
	deadline time.Time
}

// held, in both answers: the partitions whose whole state the answer
// holds (every shard of theirs has sent the emitter its table).
type shareAnswer struct {
	share []byte
	held  []string
	err   error
}

type mergeQuery struct {
	key      string
	shares   [][]byte
	deadline time.Time
}

type stateAnswer struct {
	rows []connectors.Row
	held []string
	err  error
}

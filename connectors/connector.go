package connectors

import (
	"context"
	"errors"
	"time"
)

// ErrEndOfInput is returned by Partition.Read when the partition has ended
// for good (stdin closed, a generator reached its count). A partition that is
// merely caught up returns a Batch with CaughtUp set instead.
var ErrEndOfInput = errors.New("end of input")

// Position is where a partition stands, encoded by the partition itself
// (a Kafka offset, a file's byte offset, the set of files done). The engine
// stores it opaquely in every checkpoint, atomically with the state it covers.
type Position []byte

// Record is one raw record read from a partition.
type Record struct {
	Key   []byte
	Value []byte
	// Time is the record's source timestamp (Kafka's record time, a file's
	// modification time), zero when the source has none.
	Time time.Time
	// Seq locates the record in its batch's unit: a line number for files,
	// an offset for Kafka. Used in error messages and dead letters.
	Seq int64
	// Err, when set, says the source could not deliver the record whole (a
	// line longer than the maximum record size, a *TooLongError): Value
	// holds a preview, and the engine sends the record to the dead letters
	// with Err as the reason instead of processing it.
	Err error
}

// Batch is a run of records from one partition. A batch never spans two
// files, so Where names the place of every record in it.
type Batch struct {
	Records []Record
	// Where names the records' container, "part-00003.json" or "flows/3";
	// Unit is what Record.Seq counts there, "line" or "offset".
	Where, Unit string
	// End is the position just after the last record of the batch: where a
	// restart resumes once the batch is covered by a checkpoint.
	End Position
	// CaughtUp says the partition has nothing more to read right now.
	CaughtUp bool
	// Source names the source the batch came from in a pipeline that reads
	// several (Merged); SourceEnded says that source has ended.
	Source      string
	SourceEnded bool
	// Stream names the partition of a Merged the batch came from: each
	// has its own event time, the partition's is their minimum.
	Stream string
	// Marks are event-time markers: each named stream's event time is at
	// least its mark, as if a record of that time had come (a repartition
	// topic's watermark markers, written by the upstream partitions so a
	// downstream partition's event time moves on while an upstream sends
	// it no records).
	Marks map[string]int64
	// Boundary asks for a trigger after this batch before more is read
	// (maxFilesPerTrigger): the engine pauses this partition until the next
	// trigger has passed through it.
	Boundary bool
	// Release, when set, gives the batch's memory (its Records and the
	// bytes of their Values) back to the source to read later batches
	// into. Whoever holds the batch last calls it once, when nothing reads
	// the batch any more; a batch never released is simply collected.
	Release func()
}

// Locate formats where record i of the batch came from, as
// "part-00003.json line 812".
func (b *Batch) Locate(i int) string {
	if i < 0 || i >= len(b.Records) {
		return b.Where
	}
	return b.Where + " " + b.Unit + " " + itoa(b.Records[i].Seq)
}

// Partition is one independently ordered, independently positioned part of a
// source: a Kafka partition, a directory, a followed file, a generator.
type Partition interface {
	// ID is stable across runs; checkpoints are keyed by it.
	ID() string
	// Seek moves the partition to a position an earlier Batch.End returned,
	// forgetting everything read since: the engine calls it before the first
	// Read to resume from a checkpoint, and again to rewind when it restarts
	// a failed partition from its last checkpoint. Seek(nil) goes back to
	// where the partition started. A partition that can't rewind (stdin)
	// says so in its error.
	Seek(pos Position) error
	// Read blocks until records are available, the partition is caught up
	// (an empty Batch with CaughtUp set), or ctx is done. It returns
	// ErrEndOfInput once the partition has ended for good.
	Read(ctx context.Context) (Batch, error)
	// Describe renders a Position for people (`eddy checkpoints list`).
	Describe(pos Position) string
	Close() error
}

// Listener is told which partitions this node reads. File-like sources
// assign all their partitions once; Kafka assigns and revokes as the
// consumer group rebalances.
type Listener interface {
	// Assign hands a partition to the engine, which seeks it to its
	// checkpointed position and starts reading it.
	Assign(p Partition)
	// Revoke checkpoints and stops a partition; it returns when that is done.
	Revoke(id string)
	// Lose stops a partition without checkpointing it (Kafka's lost
	// partitions: another node may own it already). Its state goes back to
	// the last complete checkpoint; it returns when the partition is stopped.
	Lose(id string)
}

// CheckpointObserver is implemented by sources that want to hear of every
// complete checkpoint, such as Kafka mirroring its positions to the
// consumer group's committed offsets so Kafka's tools show the lag. It is
// called on a goroutine of its own, after the checkpoint is durable; an
// error is logged, never fatal.
type CheckpointObserver interface {
	Checkpointed(ctx context.Context, cp Checkpoint) error
}

// Source is a set of partitions.
type Source interface {
	// Start announces partitions to l. It may return before every partition
	// is assigned (Kafka assigns later), but not before it has assigned the
	// ones it knows now.
	Start(ctx context.Context, l Listener) error
	Close() error
}

// Field is one named value of a Row.
type Field struct {
	Name  string
	Value any
}

// Row is one output record. Values are nil, bool, int64, float64, string,
// []any or map[string]any. Fields keep their order, which sinks preserve
// (JSON key order, CSV columns).
type Row struct {
	// Key is the grouping key the row belongs to, empty when it has none.
	// Keyed sinks (Kafka, upserts) use it.
	Key    string
	Fields []Field
}

// Get returns the value of the named field and whether it is present.
func (r Row) Get(name string) (any, bool) {
	for _, f := range r.Fields {
		if f.Name == name {
			return f.Value, true
		}
	}
	return nil, false
}

// Sink receives rows. Calls come from one goroutine at a time.
type Sink interface {
	// Write hands rows to the sink, which may buffer them.
	Write(ctx context.Context, rows []Row) error
	// Flush makes every row written so far durable; the engine calls it at
	// each checkpoint before the checkpoint is marked complete.
	Flush(ctx context.Context) error
	Close() error
}

// Checkpoint is what a transactional sink commits with: the checkpoint's id
// and every partition's position in it.
type Checkpoint struct {
	ID        uint64
	Positions map[string]Position
}

// Transactional is a Sink whose writes become visible only at a commit
// made atomically with a checkpoint (Kafka transactions). The commit is
// the point of no return: the engine commits every transactional sink,
// then marks the checkpoint complete in its store; after a crash between
// the two, it asks the sinks what they committed and completes that
// checkpoint instead of replaying past it, so outputs are exactly once.
type Transactional interface {
	Sink
	// Commit makes what was written since the last commit visible, with
	// cp recorded beside it. Flush has been called first.
	Commit(ctx context.Context, cp Checkpoint) error
	// Committed returns the newest checkpoint this sink committed (ID 0
	// when none), for the engine's recovery at start.
	Committed(ctx context.Context) (Checkpoint, error)
	// Abort drops what was written since the last commit.
	Abort(ctx context.Context) error
}

// WatermarkMarker is a transactional results sink that carries the
// engine's watermark on to the next reader (a stage topic): at each
// checkpoint, before the commit, the engine tells it, for each partition
// it holds, the watermark up to which that partition's windows have all
// been written (its rows still to come are of windows ending after it).
// The markers commit with the rows, or not at all.
type WatermarkMarker interface {
	Transactional
	// CarriesWatermarks says whether the sink's reader takes markers (a
	// Kafka sink writes them to stage topics only).
	CarriesWatermarks() bool
	MarkWatermarks(ctx context.Context, marks map[string]int64) error
}

// Single is a Source of exactly one partition, assigned when it starts:
// a directory, a followed file, stdin, a generator. Sources of that kind
// embed it.
type Single struct{ Partition Partition }

// Start assigns the partition.
func (s Single) Start(_ context.Context, l Listener) error {
	l.Assign(s.Partition)
	return nil
}

// Close closes the partition.
func (s Single) Close() error { return s.Partition.Close() }

package connectors

import (
	"context"
	"errors"
)

// ErrNotMember is wrapped by a changelog commit the source's group refused
// because the node is no longer a member (its session ran out while it was
// paused or cut off, and its partitions moved): the checkpoint is aborted
// and the partitions are lost, not the run.
var ErrNotMember = errors.New("the group no longer counts this node as a member")

// ErrTxnLost is wrapped by a changelog commit whose transaction the broker
// dropped (it outlived its timeout, or its records were not delivered in
// time): nothing of it is visible, and Abort readies a fresh transaction.
// (The engine still ends the run with it: aborting only the checkpoint
// loses the rows emitted at its barrier unless the partitions restart from
// the last checkpoint, which is not done yet.)
var ErrTxnLost = errors.New("the checkpoint's changelog transaction was lost")

// GroupMember is how a consumer group knows a node, as the nodes of a
// cluster tell each other: the nodes that see one's process gone remove it
// from the group on its behalf.
type GroupMember struct {
	ID       string `json:"id,omitempty"`       // the member id
	Instance string `json:"instance,omitempty"` // the group instance id (static membership)
	// Txn is the transactional id of the node's changelog producer: the
	// nodes that remove a gone member also abort what it left open.
	Txn string `json:"txn,omitempty"`
}

// Changelog carries each partition's state to whichever node reads the
// partition next (Kafka Streams' changelog topics). At every checkpoint the
// engine writes the state keys each partition changed, then commits them
// with one marker per partition; a node handed a partition whose local
// store is missing or behind reads the changes it lacks before it reads a
// record. A Source that can move partitions between nodes offers one
// (ChangelogSource).
type Changelog interface {
	// Write adds a change of partition's state to the open checkpoint:
	// key = value, or a delete when value is nil. It is called by several
	// goroutines at once and must not block for long (records are buffered
	// and sent asynchronously); a failure shows at Commit.
	Write(partition string, key, value []byte)
	// Commit makes the changes written since the last Commit or Abort
	// durable and visible to Restore, atomically with a marker for each
	// partition in markers. It returns, for each of them, the changelog
	// offset just after its marker: where this node's next Restore of the
	// partition starts when its store holds this checkpoint.
	Commit(ctx context.Context, markers map[string]ChangelogMarker) (map[string]int64, error)
	// Abort drops the changes written since the last Commit.
	Abort(ctx context.Context) error
	// End returns the offset just after partition's last committed record:
	// a store whose offset for the partition is at End is up to date.
	End(ctx context.Context, partition string) (int64, error)
	// Restore reads partition's committed changes from offset from up to
	// its End as of the call, in order, calling apply for each (value nil
	// for a delete) and progress now and then. It returns the newest marker
	// read (Checkpoint 0 when it read none) and the offset it stopped at.
	// apply may keep key and value: Restore doesn't reuse or change them.
	Restore(ctx context.Context, partition string, from int64, apply func(key, value []byte) error,
		progress func(done, total int64)) (ChangelogMarker, int64, error)
	Close() error
}

// ChangelogMarker closes one checkpoint of one partition in its changelog:
// the state written before it is the partition's state at Position.
type ChangelogMarker struct {
	Checkpoint uint64   `json:"checkpoint"`
	Position   Position `json:"position"`
	// Watermark is the partition's event-time watermark then (Unix ms),
	// 0 without event time.
	Watermark int64 `json:"watermark,omitempty"`
	// Node names the node that wrote it, for status and logs.
	Node string `json:"node,omitempty"`
}

// ChangelogSource is a Source whose partitions can move between nodes and
// which keeps their changelogs. pipeline names the state's owner; the
// changelog's name derives from it.
type ChangelogSource interface {
	Source
	Changelog(pipeline string) (Changelog, error)
}

// ChangelogSharer is a Changelog that can write into a transactional
// sink's transactions instead of its own, so that output and state commit
// together (exactly-once across a partition moving). When shared, Commit
// only flushes and records the markers: the sink's Commit, which the
// engine calls after it, ends the transaction.
type ChangelogSharer interface {
	ShareTransaction(sink Transactional) bool
}

// StandbySource is a ChangelogSource that can name the partitions this
// node should keep warm copies of (eddy run --standby N): partitions other
// nodes own, chosen so that each has up to n copies on nodes other than
// its owner. The engine tails their changelogs into the local store, so a
// failover reads only the latest changes.
type StandbySource interface {
	ChangelogSource
	Standbys(ctx context.Context, n int) ([]string, error)
}

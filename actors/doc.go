// Package actors is eddy's engine: the actor tree that runs a pipeline.
//
//	node ─┬─ PartitionSupervisor (one per source partition) ── KeyedAggregator shards
//	      ├─ Emitter   (merges partitions' partial aggregates into result rows)
//	      ├─ StageAggregator (one per later stage of a multi-stage pipeline,
//	      │                   folding the rows of the stage before, in turn)
//	      └─ SinkWriter (one per output: results, records, dead letters)
//
// Records move in batches. Triggers and checkpoints are barriers that the
// node sends down each supervisor, which forwards them to its shards after
// the batches that precede them, so every shard's state and every
// partition's position in a checkpoint describe the same cut of the input.
// A checkpoint is one Badger version (package state): shards write their
// dirty keys at that version (encoded on the shard's goroutine, written
// and synced on one of the checkpoint's own while the shard folds the
// batches after the barrier), then the node writes the positions and
// marks it complete once every sink has flushed.
//
// Failures and stops are bounded (lifecycle.go): the node restarts a
// failing partition from the last checkpoint with backoff, a few times,
// then ends the run with the cause; a top-level actor that fails ends it
// at once. A stop (Run's ctx cancelled) reads no more, drops what was read
// and not processed, and checkpoints the rest, or gives up on that
// checkpoint after Config.StopTimeout and interrupts the script.
package actors

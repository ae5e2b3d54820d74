// Package actors is eddy's engine: the actor tree that runs a pipeline.
//
//	node ─┬─ PartitionSupervisor (one per source partition) ── KeyedAggregator shards
//	      ├─ Emitter   (merges partitions' partial aggregates into result rows)
//	      └─ SinkWriter (one per output: results, records, dead letters)
//
// Records move in batches. Triggers and checkpoints are barriers that the
// node sends down each supervisor, which forwards them to its shards after
// the batches that precede them, so every shard's state and every
// partition's position in a checkpoint describe the same cut of the input.
// A checkpoint is one Badger version (package state): shards write their
// dirty keys at that version, then the node writes the positions and marks
// it complete once every sink has flushed.
package actors

// Package state is eddy's room for durable operator state and checkpoints. It is
// the only package in eddy that imports Badger.
//
// # Versioning scheme
//
// Badger runs in managed mode and every checkpoint is one Badger version. A
// checkpoint with id E writes all of its changes at commit timestamp E:
//
//  1. E := store.Begin() durably records that epoch E was begun, so E is greater
//     than every version ever written, even by a checkpoint that crashed half-way.
//  2. Each actor writes its dirty keys with store.Batch(E) and commits.
//  3. The coordinator calls store.Complete(cp) with cp.ID == E. Complete writes the
//     source positions and the checkpoint's metadata at version E; that record is
//     the "complete" marker.
//
// Restore is Last() and then reads at Last().ID. Because reads at epoch E see only
// versions at or below E, a half-written checkpoint E+1 is invisible, and state and
// positions can never disagree.
//
// Epochs that were begun but never completed (a crash, or an abandoned checkpoint)
// leave writes behind at their version. The next Complete hides them: for every key
// an abandoned epoch wrote and the completing epoch did not, it writes the key's
// value as of the previous complete checkpoint at the new version. Every complete
// checkpoint therefore reads exactly the state its own writes and its predecessors'
// produced.
//
// # Retention
//
// The newest WithKeep periodic checkpoints stay readable; older versions are handed
// to Badger's compaction through SetDiscardTs. Savepoints (Checkpoint.Name != "")
// are kept too, by holding the discard timestamp at the oldest savepoint: that
// keeps the savepoint exact but retains every version written after it, until
// DeleteSavepoint (eddy checkpoints delete) releases it.
//
// # Keyspace
//
// Keys starting with ReservedPrefix hold the store's own metadata (the begun epoch
// and one record per complete checkpoint, with epochs encoded big-endian so they
// list in order). Batch.Set and Batch.Delete reject such keys.
package state

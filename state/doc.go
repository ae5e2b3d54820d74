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
//     (BeginAsync returns E while the record is written; every write at E
//     waits for it.)
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
// # Integrity
//
// A state directory is trusted only after it is checked. Before Badger opens
// it, Open reads its manifest and verifies every table's checksums (Badger
// would panic in its own goroutines on some damage, drop a table that fails
// its checksum, or start empty without a manifest and delete the tables).
// Badger then verifies every block it reads. Each checkpoint records its
// number of keys and a digest of them (the XOR of a hash of each key and
// value, kept up to date by the batches), and the file EDDY-CHECKPOINT beside
// Badger's records the last complete checkpoint. Open reads the last
// checkpoint back whole against both, falls back to the newest older kept
// checkpoint that passes when it does not, and otherwise refuses with a
// *DamageError. Verify does the same checks on a copy, for every checkpoint.
//
// Badger writes through memory-mapped files, where a full disk is a SIGBUS,
// so every write first checks the file system's free space and fails with a
// *NoSpaceError instead.
//
// # Keyspace
//
// Keys starting with ReservedPrefix hold the store's own metadata (the begun epoch
// and one record per complete checkpoint, with epochs encoded big-endian so they
// list in order). Batch.Set and Batch.Delete reject such keys.
package state

package state

import (
	"bytes"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// Batch writes one actor's dirty keys at one epoch. It is not safe for concurrent
// use; give each actor its own. A Batch must end with Commit or Cancel.
type Batch struct {
	s     *Store
	epoch uint64
	err   error // sticky: the first error, returned by every later call
	wb    *badger.WriteBatch
	prev  *badger.Txn // read at the previous checkpoint, to count created/deleted keys
	c     epochCounts
}

// Batch returns a batch writing at version epoch, which must have been returned by
// Begin and not completed yet; otherwise every call on the batch fails.
//
// Write each key at most once per epoch across all batches (actors own disjoint
// keys); Checkpoint.Keys counts on it.
func (s *Store) Batch(epoch uint64) *Batch {
	b := &Batch{s: s, epoch: epoch}
	s.mu.Lock()
	defer s.mu.Unlock()
	last := s.lastID()
	switch {
	case s.closed:
		b.err = errClosed
	case epoch == 0 || epoch > s.begun:
		b.err = fmt.Errorf("state: batch at epoch %d: not begun (newest begun is %d)", epoch, s.begun)
	case epoch <= last:
		b.err = fmt.Errorf("state: batch at epoch %d: checkpoint %d is already complete", epoch, last)
	default:
		b.wb = s.db.NewWriteBatchAt(epoch)
		if last > 0 {
			b.prev = s.db.NewTransactionAt(last, false)
		}
	}
	return b
}

func (b *Batch) check(key []byte) error {
	if b.err != nil {
		return b.err
	}
	if len(key) == 0 {
		return fmt.Errorf("state: batch at epoch %d: empty key", b.epoch)
	}
	if bytes.HasPrefix(key, []byte(ReservedPrefix)) {
		return fmt.Errorf("state: batch at epoch %d: key %q uses the reserved prefix %q", b.epoch, key, ReservedPrefix)
	}
	return nil
}

// existed reports whether key was live at the previous checkpoint, for Keys.
func (b *Batch) existed(key []byte) (bool, error) {
	if b.prev == nil {
		return false, nil
	}
	_, err := b.prev.Get(key)
	switch {
	case err == nil:
		return true, nil
	case errors.Is(err, badger.ErrKeyNotFound):
		return false, nil
	}
	return false, fmt.Errorf("state: batch at epoch %d: read %q: %w", b.epoch, key, err)
}

// Set writes key = value at the batch's epoch. Both are copied. Keys starting with
// ReservedPrefix are rejected.
func (b *Batch) Set(key, value []byte) error {
	if err := b.check(key); err != nil {
		return err
	}
	existed, err := b.existed(key)
	if err != nil {
		return err
	}
	// One allocation for both; Badger holds them until its transaction commits.
	buf := make([]byte, len(key)+len(value))
	k, v := buf[:len(key):len(key)], buf[len(key):]
	copy(k, key)
	copy(v, value)
	if err := b.wb.Set(k, v); err != nil {
		b.err = fmt.Errorf("state: batch at epoch %d: set %q: %w", b.epoch, key, err)
		return b.err
	}
	b.c.changed++
	if !existed {
		b.c.created++
	}
	return nil
}

// Delete removes key at the batch's epoch; checkpoints before it still see it.
// Keys starting with ReservedPrefix are rejected.
func (b *Batch) Delete(key []byte) error {
	if err := b.check(key); err != nil {
		return err
	}
	existed, err := b.existed(key)
	if err != nil {
		return err
	}
	if err := b.wb.Delete(bytes.Clone(key)); err != nil {
		b.err = fmt.Errorf("state: batch at epoch %d: delete %q: %w", b.epoch, key, err)
		return b.err
	}
	b.c.changed++
	if existed {
		b.c.deleted++
	}
	return nil
}

// Commit writes the batch and syncs it to disk; when it returns nil the writes are
// durable, and the epoch may be completed once every batch has committed.
func (b *Batch) Commit() error {
	if b.err != nil {
		b.Cancel()
		return b.err
	}
	defer b.release()
	if err := b.wb.Flush(); err != nil {
		b.err = fmt.Errorf("state: commit batch at epoch %d: %w", b.epoch, err)
		return b.err
	}
	if err := b.s.db.Sync(); err != nil {
		b.err = fmt.Errorf("state: commit batch at epoch %d: sync: %w", b.epoch, err)
		return b.err
	}
	b.s.mu.Lock()
	if c := b.s.counts[b.epoch]; c != nil {
		c.changed += b.c.changed
		c.created += b.c.created
		c.deleted += b.c.deleted
	}
	b.s.mu.Unlock()
	b.err = fmt.Errorf("state: batch at epoch %d: already committed", b.epoch)
	return nil
}

// Cancel drops the batch's unwritten changes. A large batch may already have
// written part of its changes; an epoch with a cancelled batch should not be
// completed. Begin a new one: its Complete hides the abandoned writes.
func (b *Batch) Cancel() {
	if b.wb != nil {
		b.wb.Cancel()
	}
	b.release()
	if b.err == nil {
		b.err = fmt.Errorf("state: batch at epoch %d: cancelled", b.epoch)
	}
}

func (b *Batch) release() {
	if b.prev != nil {
		b.prev.Discard()
		b.prev = nil
	}
	b.wb = nil
}

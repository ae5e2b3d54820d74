package state

import (
	"bytes"
	"fmt"
	"slices"

	"github.com/cespare/xxhash/v2"
	"github.com/dgraph-io/badger/v4"
)

// entryOverhead is what Badger's log adds to each entry, about.
const entryOverhead = 32

// Batch writes one actor's dirty keys at one epoch. It is not safe for concurrent
// use; give each actor its own. A Batch must end with Commit or Cancel.
type Batch struct {
	s     *Store
	epoch uint64
	err   error // sticky: the first error, returned by every later call
	wb    *badger.WriteBatch
	prev  *badger.Txn // read at the previous checkpoint, to count created/deleted keys
	ops   []op        // what the batch did to each key, for Checkpoint.Keys and Digest
	bytes int64       // keys and values written, for the check of free space
	room  int64       // bytes checked for room so far
}

// op is one write of a batch; key and val share Badger's copy.
type op struct {
	key []byte
	val []byte
	del bool
	seq int32 // its place in the batch: of two writes of a key, the later wins
}

// Batch returns a batch writing at version epoch, which must have been returned by
// Begin and not completed yet; otherwise every call on the batch fails.
//
// Write each key in at most one batch per epoch (actors own disjoint keys);
// Checkpoint.Keys counts on it.
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

// grow counts n more bytes of keys and values. Badger writes a large batch
// out in parts as it grows, so each MiB is checked for room as it comes.
func (b *Batch) grow(n int64) error {
	b.bytes += n + entryOverhead
	if b.bytes-b.room < batchRoomStep {
		return nil
	}
	if err := b.s.room(2 * batchRoomStep); err != nil {
		b.err = fmt.Errorf("state: batch at epoch %d: %w", b.epoch, err)
		return b.err
	}
	b.room = b.bytes
	return nil
}

const batchRoomStep = 1 << 20

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

// Set writes key = value at the batch's epoch. Both are copied. Keys starting with
// ReservedPrefix are rejected.
func (b *Batch) Set(key, value []byte) error {
	if err := b.check(key); err != nil {
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
	b.ops = append(b.ops, op{key: k, val: v, seq: int32(len(b.ops))})
	return b.grow(int64(len(buf)))
}

// Delete removes key at the batch's epoch; checkpoints before it still see it.
// Keys starting with ReservedPrefix are rejected.
func (b *Batch) Delete(key []byte) error {
	if err := b.check(key); err != nil {
		return err
	}
	k := bytes.Clone(key)
	if err := b.wb.Delete(k); err != nil {
		b.err = fmt.Errorf("state: batch at epoch %d: delete %q: %w", b.epoch, key, err)
		return b.err
	}
	b.ops = append(b.ops, op{key: k, del: true, seq: int32(len(b.ops))})
	return b.grow(int64(len(k)))
}

// Commit writes the batch and syncs it to disk; when it returns nil the writes are
// durable, and the epoch may be completed once every batch has committed.
func (b *Batch) Commit() (err error) {
	if b.err != nil {
		b.Cancel()
		return b.err
	}
	defer b.release()
	defer b.s.recoverBadger(&err)
	if err := b.s.room(b.bytes - b.room); err != nil {
		b.wb.Cancel()
		b.err = fmt.Errorf("state: commit batch at epoch %d: %w", b.epoch, err)
		return b.err
	}
	// Counting reads the previous checkpoint and the flush writes a newer version,
	// so they run side by side.
	type counted struct {
		c   epochCounts
		err error
	}
	done := make(chan counted, 1)
	go func() {
		var cnt counted
		defer func() { done <- cnt }()
		defer b.s.recoverBadger(&cnt.err)
		cnt.c, cnt.err = b.count()
	}()
	ferr := b.wb.Flush()
	if ferr == nil {
		if err := b.s.db.Sync(); err != nil {
			ferr = fmt.Errorf("sync: %w", err)
		}
	}
	cnt := <-done
	if ferr != nil {
		b.err = fmt.Errorf("state: commit batch at epoch %d: %w", b.epoch, ferr)
		return b.err
	}
	if cnt.err != nil {
		b.err = fmt.Errorf("state: commit batch at epoch %d: count keys: %w", b.epoch, cnt.err)
		return b.err
	}
	c := cnt.c
	b.s.mu.Lock()
	if sum := b.s.counts[b.epoch]; sum != nil {
		sum.changed += c.changed
		sum.created += c.created
		sum.deleted += c.deleted
		sum.digest ^= c.digest
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

// count works out how many keys the batch wrote, created and deleted relative to
// the previous checkpoint, and how it changes the digest. It walks the sorted writes and the previous
// checkpoint's keys together, so a dense batch costs one pass over the blocks it
// touches rather than a lookup per key. The last write of a key in the batch wins.
func (b *Batch) count() (epochCounts, error) {
	var c epochCounts
	if !slices.IsSortedFunc(b.ops, cmpOp) {
		// (Not a stable sort: seq orders the writes of a key, and pdqsort
		// is twice as fast on a million keys.)
		slices.SortFunc(b.ops, cmpOp)
	}
	var it *badger.Iterator
	if b.prev != nil {
		it = b.prev.NewIterator(badger.IteratorOptions{})
		defer it.Close()
		it.Rewind()
	}
	h := xxhash.New()
	for i, o := range b.ops {
		if i+1 < len(b.ops) && bytes.Equal(o.key, b.ops[i+1].key) {
			continue // a later write of the same key decides
		}
		c.changed++
		existed := it != nil && seekTo(it, o.key)
		if existed {
			err := it.Item().Value(func(v []byte) error {
				c.digest ^= entryHash(h, o.key, v)
				return nil
			})
			if err != nil {
				return c, fmt.Errorf("read %q: %w", o.key, err)
			}
		}
		if !o.del {
			c.digest ^= entryHash(h, o.key, o.val)
		}
		switch {
		case !o.del && !existed:
			c.created++
		case o.del && existed:
			c.deleted++
		}
	}
	return c, nil
}

func cmpOp(a, b op) int {
	if c := bytes.Compare(a.key, b.key); c != 0 {
		return c
	}
	return int(a.seq - b.seq)
}

// seekTo moves it forward to the first key >= key, stepping when the next keys
// are close and seeking otherwise, and reports whether key itself is live.
func seekTo(it *badger.Iterator, key []byte) bool {
	for step := 0; it.Valid() && bytes.Compare(it.Item().Key(), key) < 0; step++ {
		if step == 8 {
			it.Seek(key)
			break
		}
		it.Next()
	}
	return it.Valid() && bytes.Equal(it.Item().Key(), key)
}

func (b *Batch) release() {
	if b.prev != nil {
		b.prev.Discard()
		b.prev = nil
	}
	b.wb = nil
}

package state

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"github.com/cespare/xxhash/v2"
	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/pb"
)

// entryOverhead is what Badger's log adds to each entry, about.
const entryOverhead = 32

// Batch writes one actor's dirty keys at one epoch. It is not safe for concurrent
// use; give each actor its own. A Batch must end with Commit or Cancel.
//
// It keeps its writes until Commit, which hands them to Badger in key
// order. Badger's own write batch applies a transaction's writes in the
// order of a Go map, whatever order they came in, so its memtable (a
// skiplist) took each at a random place, and every insert missed the cache.
type Batch struct {
	s     *Store
	epoch uint64
	err   error       // sticky: the first error, returned by every later call
	prev  *badger.Txn // read at the previous checkpoint, to count created/deleted keys
	last  uint64      // the previous checkpoint, 0 for none
	known []op        // what the previous checkpoint wrote, if it is known (see knownKeys)
	// fresh: prefixes under which the previous checkpoint held no live
	// key (see Fresh): count reads none of their keys back
	fresh [][]byte
	ops   []op   // what the batch did to each key, for Checkpoint.Keys and Digest
	bytes int64  // keys and values written, for the check of free space
	room  int64  // bytes checked for room so far
	slab  []byte // the copies of keys and values, many to an allocation
}

// op is one write of a batch; key and val share Badger's copy.
type op struct {
	key []byte
	val []byte
	del bool
	seq int32 // its place in the batch: of two writes of a key, the later wins
	// hash: a write's share of its checkpoint's digest (0 for a delete),
	// set by count
	hash uint64
}

// Batch returns a batch writing at version epoch, which must have been returned by
// Begin (or BeginAsync) and not completed yet; otherwise every call on the batch
// fails. Its Commit waits for a BeginAsync's record of the epoch.
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
		if last > 0 {
			b.prev, b.last = s.db.NewTransactionAt(last, false), last
			b.known = s.known.of(last)
		}
	}
	return b
}

// grow counts n more bytes of keys and values, checking each MiB for room
// as it comes (a batch too large for the disk fails before its commit).
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
	if len(key) > maxKeySize {
		return fmt.Errorf("state: batch at epoch %d: key %.64q... is %d bytes, more than the %d a key may have", b.epoch, key, len(key), maxKeySize)
	}
	if bytes.HasPrefix(key, badgerPrefix) {
		return fmt.Errorf("state: batch at epoch %d: key %q uses Badger's reserved prefix %q", b.epoch, key, badgerPrefix)
	}
	return nil
}

// Badger's own limits, which its transactions check and its loader (which
// Commit writes through) does not: a key's size, a value's (one that fits a
// value log file; in memory, one small enough to sit in the LSM tree) and
// the prefix of its internal keys.
const maxKeySize = 65000

var badgerPrefix = []byte("!badger!")

func (s *Store) maxValue() int64 {
	if s.db.Opts().InMemory {
		return s.db.Opts().ValueThreshold
	}
	return s.db.Opts().ValueLogFileSize
}

// checkSet checks a key and a value before they are set.
func (b *Batch) checkSet(key, value []byte) error {
	if err := b.check(key); err != nil {
		return err
	}
	if int64(len(value)) > b.s.maxValue() {
		b.err = fmt.Errorf("state: batch at epoch %d: set %q: the value's %d bytes are more than Badger takes (%d)", b.epoch, key, len(value), b.s.maxValue())
		return b.err
	}
	return nil
}

// Set writes key = value at the batch's epoch. Both are copied. Keys starting with
// ReservedPrefix are rejected.
func (b *Batch) Set(key, value []byte) error {
	if err := b.checkSet(key, value); err != nil {
		return err
	}
	buf := b.copySpace(len(key) + len(value))
	k, v := buf[:len(key):len(key)], buf[len(key):]
	copy(k, key)
	copy(v, value)
	b.ops = append(b.ops, op{key: k, val: v, seq: int32(len(b.ops))})
	return b.grow(int64(len(buf)))
}

// SetOwned is Set without the copy of the value: value must stay
// unchanged until Commit or Cancel returns. The key is still copied: the
// store keeps a committed checkpoint's keys (knownKeys) to count the next
// one, past the caller's use of its buffers.
func (b *Batch) SetOwned(key, value []byte) error {
	if err := b.checkSet(key, value); err != nil {
		return err
	}
	k := b.copySpace(len(key))
	copy(k, key)
	b.ops = append(b.ops, op{key: k, val: value, seq: int32(len(b.ops))})
	return b.grow(int64(len(key) + len(value)))
}

// Grow makes room for n more writes, so that a large batch does not grow
// its record of them step by step.
func (b *Batch) Grow(n int) {
	b.ops = slices.Grow(b.ops, n)
}

// batchSlab is the size of the allocations the batch copies keys and
// values into: one allocation a write cost more than Badger's own work
// for a window's small entry.
const batchSlab = 64 << 10

// copySpace returns n bytes of the batch's slab, capped at n.
func (b *Batch) copySpace(n int) []byte {
	if len(b.slab)+n > cap(b.slab) {
		b.slab = make([]byte, 0, max(batchSlab, n))
	}
	start := len(b.slab)
	b.slab = b.slab[:start+n]
	return b.slab[start : start+n : start+n]
}

// Delete removes key at the batch's epoch; checkpoints before it still see it.
// Keys starting with ReservedPrefix are rejected.
func (b *Batch) Delete(key []byte) error {
	if err := b.check(key); err != nil {
		return err
	}
	k := b.copySpace(len(key))
	copy(k, key)
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
	if err := b.s.Begun(b.epoch); err != nil {
		b.err = fmt.Errorf("state: commit batch at epoch %d: %w", b.epoch, err)
		return b.err
	}
	if err := b.s.room(b.bytes - b.room); err != nil {
		b.err = fmt.Errorf("state: commit batch at epoch %d: %w", b.epoch, err)
		return b.err
	}
	b.sortOps()
	// Counting reads the previous checkpoint and the write a newer version,
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
	if hook := testHookBatchWrite; hook != nil {
		hook(b.epoch)
	}
	ferr := b.write()
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
		sum.know(b.ops)
	}
	b.s.mu.Unlock()
	b.err = fmt.Errorf("state: batch at epoch %d: already committed", b.epoch)
	return nil
}

// Cancel drops the batch's unwritten changes. A large batch may already have
// written part of its changes; an epoch with a cancelled batch should not be
// completed. Begin a new one: its Complete hides the abandoned writes.
func (b *Batch) Cancel() {
	b.release()
	if b.err == nil {
		b.err = fmt.Errorf("state: batch at epoch %d: cancelled", b.epoch)
	}
}

// sortOps puts the batch's writes in key order and keeps only the last
// write of each key.
func (b *Batch) sortOps() {
	if !slices.IsSortedFunc(b.ops, cmpOp) {
		// (Not a stable sort: seq orders the writes of a key, and pdqsort
		// is twice as fast on a million keys.)
		slices.SortFunc(b.ops, cmpOp)
	}
	kept := b.ops[:0]
	for i, o := range b.ops {
		if i+1 < len(b.ops) && bytes.Equal(o.key, b.ops[i+1].key) {
			continue // a later write of the same key decides
		}
		kept = append(kept, o)
	}
	clear(b.ops[len(kept):])
	b.ops = kept
}

// write hands the batch's writes to Badger in key order at the batch's
// epoch and waits until they are in its memtables. Badger's loader (made
// for its backups) is its one way to write at a version in a given order;
// a delete is an entry marked deleted (Badger's bitDelete, which its
// transactions' Delete sets and its backups keep in the same field).
// TestCountStaysExact reads every checkpoint back, deletes included.
func (b *Batch) write() error {
	l := b.s.db.NewKVLoader(loaderPending)
	kv := pb.KV{Version: b.epoch}
	for i := range b.ops {
		o := &b.ops[i] // (not a copy: count sets o.hash meanwhile)
		kv.Key, kv.Value, kv.Meta = o.key, o.val, nil
		if o.del {
			kv.Meta = deletedMeta
		}
		if err := l.Set(&kv); err != nil {
			_ = l.Finish() // (waits for what it sent; the first error is Set's)
			return err
		}
	}
	return l.Finish()
}

// loaderPending bounds how many parts of a large batch Badger applies at
// once.
const loaderPending = 16

// deletedMeta marks an entry deleted: Badger's bitDelete (its value.go).
var deletedMeta = []byte{1 << 0}

// count works out how many keys the batch wrote, created and deleted relative to
// the previous checkpoint, and how it changes the digest. The ops are in key
// order, one a key (sortOps).
func (b *Batch) count() (epochCounts, error) {
	var c epochCounts
	var prev *prevReader
	if b.prev != nil {
		prev = newPrevReader(b.prev)
		defer prev.close()
	}
	h := xxhash.New()
	known := knownCursor{ops: b.known}
	for i := range b.ops {
		o := &b.ops[i]
		c.changed++
		var old uint64
		existed := false
		if b.isFresh(o.key) {
			// (none of the previous checkpoint's keys: not existed)
		} else if k, ok := known.find(o.key); ok {
			old, existed = k.hash, !k.del
		} else if prev != nil {
			var err error
			if old, existed, err = prev.hash(h, o.key); err != nil {
				return c, fmt.Errorf("read %q: %w", o.key, err)
			}
		}
		c.digest ^= old
		if !o.del {
			o.hash = entryHash(h, o.key, o.val)
			c.digest ^= o.hash
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

// prevReader reads, in increasing key order, keys as of the previous
// checkpoint. A dense batch is cheapest walked with an iterator beside it,
// one pass over the blocks it touches; but between the keys of a sparse one
// lie versions and deletions (closed windows leave many) that a walk steps
// through, so many that the cost grows with the store's history. So it walks
// an iterator that shows every version, a few steps at most per key, and when
// a key is further off than that it reads the next keys by point lookups
// (which go straight to a key's version) until it seeks the walk again.
type prevReader struct {
	txn     *badger.Txn
	it      *badger.Iterator
	lookups int  // keys still to read by lookup before walking again
	stale   bool // the walk fell behind: seek it before walking
}

const (
	walkSteps    = 16 // entries a walk steps over to reach the next key
	lookupsAfter = 64 // keys read by lookup when it needs more
)

// newPrevReader starts with a seek to the batch's first key, not at the
// store's first: between the two may lie versions newer than the previous
// checkpoint that a walk steps over one by one (a checkpoint written in
// several batches, each after the last, would walk over all of the
// earlier batches' keys: at a million keys, that took longer than the
// write).
func newPrevReader(txn *badger.Txn) *prevReader {
	it := txn.NewIterator(badger.IteratorOptions{AllVersions: true})
	return &prevReader{txn: txn, it: it, stale: true}
}

func (r *prevReader) close() { r.it.Close() }

// hash reports whether key was live at the previous checkpoint and, if so,
// its share of that checkpoint's digest.
func (r *prevReader) hash(h *xxhash.Digest, key []byte) (uint64, bool, error) {
	item, err := r.find(key)
	if item == nil || err != nil {
		return 0, false, err
	}
	var sum uint64
	err = item.Value(func(v []byte) error {
		sum = entryHash(h, key, v)
		return nil
	})
	return sum, err == nil, err
}

// find returns key's item at the previous checkpoint, nil when it was not live.
func (r *prevReader) find(key []byte) (*badger.Item, error) {
	if r.lookups > 0 {
		r.lookups--
		return r.get(key)
	}
	if r.stale {
		r.it.Seek(key)
		r.stale = false
	}
	if !r.walk(key) { // key is far: look the next keys up
		r.lookups, r.stale = lookupsAfter-1, true
		return r.get(key)
	}
	return r.at(key), nil
}

func (r *prevReader) get(key []byte) (*badger.Item, error) {
	item, err := r.txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	return item, err
}

// walk steps the iterator to the first entry at or after key, at most
// walkSteps entries; false when key is further than that.
func (r *prevReader) walk(key []byte) bool {
	for step := 0; r.it.Valid() && bytes.Compare(r.it.Item().Key(), key) < 0; step++ {
		if step == walkSteps {
			return false
		}
		r.it.Next()
	}
	return true
}

// at is the item the iterator is at when it is key's newest version (versions
// come newest first) and live, else nil.
func (r *prevReader) at(key []byte) *badger.Item {
	if !r.it.Valid() {
		return nil
	}
	item := r.it.Item()
	if !bytes.Equal(item.Key(), key) || item.IsDeletedOrExpired() {
		return nil
	}
	return item
}

func cmpOp(a, b op) int {
	if c := bytes.Compare(a.key, b.key); c != 0 {
		return c
	}
	return int(a.seq - b.seq)
}

func (b *Batch) release() {
	if b.prev != nil {
		b.prev.Discard()
		b.prev = nil
	}
	b.ops, b.slab = nil, nil
}

package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// Complete marks checkpoint cp.ID complete: it writes cp's metadata and positions
// at version cp.ID and syncs, after which Last returns cp. Every Batch of the epoch
// must have been committed before. Complete fills in Keys and Changed from the
// epoch's batches and Time when it is zero; cp.ID must be the newest epoch begun
// so far or an older one still newer than Last.
//
// Epochs begun after the previous complete checkpoint and never completed may have
// left writes behind; Complete first hides them by rewriting, at cp.ID, each key
// they wrote and cp.ID did not to its value as of the previous checkpoint. That
// costs a scan of the versions written since the previous checkpoint, and only
// happens after a crash or an abandoned epoch.
//
// Then Complete prunes: periodic checkpoints beyond WithKeep are dropped from
// List, and Badger may discard versions older than the oldest kept checkpoint.
// Savepoints are kept and hold back that discard; see the package doc.
func (s *Store) Complete(cp Checkpoint) (err error) {
	if err := s.Begun(cp.ID); err != nil {
		return fmt.Errorf("state: complete epoch %d: %w", cp.ID, err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	defer s.recoverBadger(&err)
	e, last := cp.ID, s.lastID()
	switch {
	case e == 0 || e > s.begun:
		return fmt.Errorf("state: complete epoch %d: not begun (newest begun is %d)", e, s.begun)
	case e <= last:
		return fmt.Errorf("state: complete epoch %d: checkpoint %d is already complete", e, last)
	}
	if err := s.room(0); err != nil {
		return fmt.Errorf("state: complete epoch %d: %w", e, err)
	}
	if last == 0 && !s.cfg.inMemory {
		// From here on the directory may hold a checkpoint: it is no longer
		// one a failed Open may start afresh.
		if err := writeRecord(s.dir, record{Completing: e}); err != nil {
			return fmt.Errorf("state: complete epoch %d: %w", e, err)
		}
	}
	if e > last+1 {
		if err := s.hideAbandoned(last, e); err != nil {
			return fmt.Errorf("state: complete epoch %d: %w", e, err)
		}
	}

	cp = cp.clone()
	if cp.Time.IsZero() {
		cp.Time = time.Now()
	}
	if err := s.count(&cp); err != nil {
		return fmt.Errorf("state: complete epoch %d: %w", e, err)
	}

	kept, dropped := prune(append(s.cps[:len(s.cps):len(s.cps)], cp), s.cfg.keep)
	meta, err := json.Marshal(cp)
	if err != nil {
		return fmt.Errorf("state: complete epoch %d: encode: %w", e, err)
	}
	txn := s.db.NewTransactionAt(e, true)
	defer txn.Discard()
	if err := txn.Set(cpKey(e), meta); err != nil {
		return fmt.Errorf("state: complete epoch %d: %w", e, err)
	}
	for _, d := range dropped {
		if err := txn.Delete(cpKey(d.ID)); err != nil {
			return fmt.Errorf("state: complete epoch %d: drop checkpoint %d: %w", e, d.ID, err)
		}
	}
	if err := txn.CommitAt(e, nil); err != nil {
		return fmt.Errorf("state: complete epoch %d: %w", e, err)
	}
	if err := s.db.Sync(); err != nil {
		return fmt.Errorf("state: complete epoch %d: sync: %w", e, err)
	}
	s.cps = kept
	s.known = knownKeys{}
	if c := s.counts[e]; c != nil && !c.tooMany {
		s.known = newKnownKeys(e, c.known)
	}
	for id := range s.counts {
		if id <= e {
			delete(s.counts, id)
		}
	}
	s.setDiscardTs()
	if s.cfg.inMemory {
		return nil
	}
	if err := s.recordLast(); err != nil {
		return fmt.Errorf("state: checkpoint %d is complete, but: %w", e, err)
	}
	return nil
}

// count sets cp's Changed, Keys and Digest from its epoch's batches and the
// previous checkpoint. An epoch whose batches another process committed
// (one that died before completing it) is counted by reading it whole.
func (s *Store) count(cp *Checkpoint) error {
	c := s.counts[cp.ID]
	if c == nil {
		keys, digest, err := s.tally(cp.ID)
		if err != nil {
			return fmt.Errorf("count keys: %w", err)
		}
		cp.Keys, cp.Digest = keys, digest
		return nil
	}
	var prev Checkpoint
	if n := len(s.cps); n > 0 {
		prev = s.cps[n-1]
	}
	cp.Changed = c.changed
	cp.Keys = prev.Keys + c.created - c.deleted
	cp.Digest = prev.Digest ^ c.digest
	return nil
}

// prune keeps the newest keep periodic checkpoints and every savepoint.
func prune(cps []Checkpoint, keep int) (kept, dropped []Checkpoint) {
	periodic := 0
	for _, c := range cps {
		if c.Name == "" {
			periodic++
		}
	}
	for _, c := range cps {
		if c.Name == "" && periodic > keep {
			periodic--
			dropped = append(dropped, c)
			continue
		}
		kept = append(kept, c)
	}
	return kept, dropped
}

// hideAbandoned rewrites at version e every user key written by an epoch in
// (last, e) and not by e itself to its value as of last (absent when last is 0).
// Afterwards a read at e sees no trace of the abandoned epochs.
func (s *Store) hideAbandoned(last, e uint64) error {
	txn := s.db.NewTransactionAt(e, false)
	defer txn.Discard()
	var prev *badger.Txn
	if last > 0 {
		prev = s.db.NewTransactionAt(last, false)
		defer prev.Discard()
	}
	wb := s.db.NewWriteBatchAt(e)
	defer wb.Cancel()

	it := txn.NewIterator(badger.IteratorOptions{AllVersions: true, SinceTs: last})
	defer it.Close()
	reserved := []byte(ReservedPrefix)
	var cur []byte
	n, written := 0, int64(0)
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		if cur != nil && bytes.Equal(item.Key(), cur) {
			continue // versions of a key come newest first; the first decided it
		}
		cur = item.KeyCopy(cur[:0])
		if bytes.HasPrefix(cur, reserved) || item.Version() == e {
			continue // metadata, or written by e itself
		}
		key := bytes.Clone(cur)
		val, found, err := getAt(prev, key)
		if err != nil {
			return fmt.Errorf("hide abandoned writes: read %q at %d: %w", key, last, err)
		}
		if found {
			err = wb.Set(key, val)
		} else {
			err = wb.Delete(key)
		}
		if err != nil {
			return fmt.Errorf("hide abandoned writes: %w", err)
		}
		n++
		// Badger writes a large batch out in parts as it grows.
		if written += int64(len(key)+len(val)) + entryOverhead; written >= batchRoomStep {
			if err := s.room(2 * batchRoomStep); err != nil {
				return fmt.Errorf("hide abandoned writes: %w", err)
			}
			written = 0
		}
	}
	if n == 0 {
		return nil
	}
	if err := wb.Flush(); err != nil {
		return fmt.Errorf("hide abandoned writes: %w", err)
	}
	return s.db.Sync()
}

// getAt reads key in txn; a nil txn (before any checkpoint) finds nothing.
func getAt(txn *badger.Txn, key []byte) ([]byte, bool, error) {
	if txn == nil {
		return nil, false, nil
	}
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	v, err := item.ValueCopy(nil)
	return v, err == nil, err
}

package state

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"time"
)

// Save names checkpoint id a savepoint: it is kept, and readable, until
// DeleteSavepoint, however many checkpoints follow. id 0 means the last
// complete checkpoint. A name is unique within the store.
func (s *Store) Save(id uint64, name string) (Checkpoint, error) {
	if name == "" {
		return Checkpoint{}, fmt.Errorf("state: a savepoint needs a name")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Checkpoint{}, errClosed
	}
	i := -1
	for j, c := range s.cps {
		if c.Name == name {
			return Checkpoint{}, fmt.Errorf("state: savepoint %q exists already (checkpoint %d)", name, c.ID)
		}
		if c.ID == id || (id == 0 && j == len(s.cps)-1) {
			i = j
		}
	}
	if i < 0 {
		if id == 0 {
			return Checkpoint{}, ErrNoCheckpoint
		}
		return Checkpoint{}, fmt.Errorf("state: checkpoint %d is not kept: %w", id, ErrNoCheckpoint)
	}
	if s.cps[i].Name != "" {
		return Checkpoint{}, fmt.Errorf("state: checkpoint %d is savepoint %q already", s.cps[i].ID, s.cps[i].Name)
	}
	cp := s.cps[i].clone()
	cp.Name = name
	if err := s.putMeta(cp); err != nil {
		return Checkpoint{}, err
	}
	s.cps[i] = cp
	return cp.clone(), nil
}

// DeleteSavepoint drops the savepoint name. Its checkpoint goes on being
// kept only while it is among the newest periodic ones; releasing it lets
// Badger discard the history it held back.
func (s *Store) DeleteSavepoint(name string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	for i, c := range s.cps {
		if c.Name != name {
			continue
		}
		c = c.clone()
		c.Name = ""
		if err := s.putMeta(c); err != nil {
			return err
		}
		s.cps[i] = c
		kept, dropped := prune(s.cps, s.cfg.keep)
		for _, d := range dropped {
			if err := s.dropMeta(d.ID); err != nil {
				return err
			}
		}
		s.cps = kept
		s.setDiscardTs()
		return nil
	}
	return fmt.Errorf("state: no savepoint %q", name)
}

// Savepoint returns the checkpoint saved under name.
func (s *Store) Savepoint(name string) (Checkpoint, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.cps {
		if c.Name == name && name != "" {
			return c.clone(), nil
		}
	}
	return Checkpoint{}, fmt.Errorf("state: no savepoint %q: %w", name, ErrNoCheckpoint)
}

// putMeta rewrites a checkpoint's metadata record. It writes above every
// version so far (the metadata of a checkpoint is read at the newest
// version), and records that version as begun so no epoch reuses it.
func (s *Store) putMeta(cp Checkpoint) error {
	meta, err := json.Marshal(cp)
	if err != nil {
		return fmt.Errorf("state: encode checkpoint %d: %w", cp.ID, err)
	}
	return s.metaTxn(func(set func(k, v []byte) error, _ func(k []byte) error) error {
		return set(cpKey(cp.ID), meta)
	})
}

func (s *Store) dropMeta(id uint64) error {
	return s.metaTxn(func(_ func(k, v []byte) error, del func(k []byte) error) error {
		return del(cpKey(id))
	})
}

// metaTxn writes metadata at a fresh version, begun durably like an epoch
// (a later Complete hides nothing of it: reserved keys are left alone).
// s.mu is held.
func (s *Store) metaTxn(fn func(set func(k, v []byte) error, del func(k []byte) error) error) (err error) {
	defer s.recoverBadger(&err)
	if err := s.room(0); err != nil {
		return fmt.Errorf("state: write checkpoint metadata: %w", err)
	}
	v := s.begun + 1
	if v == math.MaxUint64 {
		return fmt.Errorf("state: out of versions")
	}
	txn := s.db.NewTransactionAt(v, true)
	defer txn.Discard()
	if err := fn(txn.Set, txn.Delete); err != nil {
		return fmt.Errorf("state: write checkpoint metadata: %w", err)
	}
	if err := txn.Set(begunKey, binary.BigEndian.AppendUint64(nil, v)); err != nil {
		return fmt.Errorf("state: write checkpoint metadata: %w", err)
	}
	if err := txn.CommitAt(v, nil); err != nil {
		return fmt.Errorf("state: write checkpoint metadata: %w", err)
	}
	if err := s.db.Sync(); err != nil {
		return fmt.Errorf("state: write checkpoint metadata: sync: %w", err)
	}
	s.begun = v
	return nil
}

// Rewind makes a new complete checkpoint identical to checkpoint id: the
// same keys and values (keys created since are deleted) and the same
// positions. A run restored from the store afterwards goes on as a run
// restored from id would, and the checkpoints between stay readable. It
// holds the state of id in memory while it compares.
func (s *Store) Rewind(id uint64) (Checkpoint, error) {
	from, err := s.checkpoint(id)
	if err != nil {
		return Checkpoint{}, err
	}
	last, err := s.Last()
	if err != nil {
		return Checkpoint{}, err
	}
	want := map[string][]byte{}
	if err := s.Scan(id, nil, func(k, v []byte) error {
		want[string(k)] = append([]byte(nil), v...)
		return nil
	}); err != nil {
		return Checkpoint{}, fmt.Errorf("state: rewind to %d: %w", id, err)
	}
	e, err := s.Begin()
	if err != nil {
		return Checkpoint{}, err
	}
	b := s.Batch(e)
	if err := s.Scan(last.ID, nil, func(k, v []byte) error {
		w, ok := want[string(k)]
		switch {
		case !ok:
			return b.Delete(k)
		case string(w) == string(v):
			delete(want, string(k))
		}
		return nil
	}); err != nil {
		b.Cancel()
		return Checkpoint{}, fmt.Errorf("state: rewind to %d: %w", id, err)
	}
	for k, v := range want {
		if err := b.Set([]byte(k), v); err != nil {
			b.Cancel()
			return Checkpoint{}, fmt.Errorf("state: rewind to %d: %w", id, err)
		}
	}
	if err := b.Commit(); err != nil {
		return Checkpoint{}, fmt.Errorf("state: rewind to %d: %w", id, err)
	}
	cp := Checkpoint{ID: e, Time: time.Now().UTC(), Positions: from.Positions}
	if err := s.Complete(cp); err != nil {
		return Checkpoint{}, fmt.Errorf("state: rewind to %d: %w", id, err)
	}
	return s.Last()
}

// checkpoint returns the kept checkpoint id.
func (s *Store) checkpoint(id uint64) (Checkpoint, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.cps {
		if c.ID == id {
			return c.clone(), nil
		}
	}
	return Checkpoint{}, fmt.Errorf("state: checkpoint %d is not kept: %w", id, ErrNoCheckpoint)
}

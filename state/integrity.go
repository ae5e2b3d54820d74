package state

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/cespare/xxhash/v2"
)

// A checkpoint carries the number of live keys and a digest of them (Keys and
// Digest), and a small file beside Badger's, the record, names the last
// complete checkpoint. Open checks both: Badger losing files (a deleted or
// truncated manifest or log) shows as a record newer than the store's last
// checkpoint, and damaged or lost values as a checkpoint whose keys no longer
// add up to its digest.

// recordName is the file recording the last complete checkpoint, written
// atomically (write, fsync, rename, fsync the directory) after each one.
const recordName = "EDDY-CHECKPOINT"

// record is the content of recordName.
type record struct {
	// Last is the newest complete checkpoint; 0 before the first.
	Last   uint64 `json:"last"`
	Keys   int64  `json:"keys"`
	Digest uint64 `json:"digest"`
	// Completing is set before the first checkpoint's Complete writes
	// anything, so a record with Last and Completing 0 proves that no
	// checkpoint was ever complete in the directory.
	Completing uint64 `json:"completing,omitempty"`
}

// neverComplete reports whether the record proves no checkpoint ever completed.
func (r record) neverComplete() bool { return r.Last == 0 && r.Completing == 0 }

// readRecord reads dir's record; ok is false when there is none (a new
// directory, or one written before eddy kept it).
func readRecord(dir string) (r record, ok bool, err error) {
	b, err := os.ReadFile(filepath.Join(dir, recordName))
	if errors.Is(err, os.ErrNotExist) {
		return r, false, nil
	}
	if err != nil {
		return r, false, fmt.Errorf("state: %w", err)
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return r, false, damaged(dir, recordName, "unreadable: %v", err)
	}
	return r, true, nil
}

func writeRecord(dir string, r record) error {
	b, err := json.Marshal(r)
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, recordName+".tmp")
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o644)
	if err != nil {
		return fmt.Errorf("state: write %s: %w", recordName, err)
	}
	_, err = f.Write(append(b, '\n'))
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(dir, recordName))
	}
	if err == nil {
		err = syncDir(dir)
	}
	if err != nil {
		os.Remove(tmp)
		return fmt.Errorf("state: write %s in %s: %w", recordName, dir, err)
	}
	return nil
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// entryHash is one live key's share of a checkpoint's Digest, which is the
// XOR of the hashes of all of them: a batch updates it from the previous
// checkpoint's by the keys it changes.
func entryHash(h *xxhash.Digest, key, value []byte) uint64 {
	h.Reset()
	var n [binary.MaxVarintLen64]byte
	h.Write(n[:binary.PutUvarint(n[:], uint64(len(key)))])
	h.Write(key)
	h.Write(value)
	return h.Sum64()
}

// tally counts the live keys at epoch and computes their digest. It reads
// every key and value, with Badger verifying each block's checksum.
func (s *Store) tally(epoch uint64) (keys int64, digest uint64, err error) {
	h := xxhash.New()
	err = s.scan(epoch, nil, func(k, v []byte) error {
		keys++
		digest ^= entryHash(h, k, v)
		return nil
	})
	return keys, digest, err
}

// check reads checkpoint cp whole and compares it with its Keys and Digest.
// A checkpoint written before eddy kept digests (Digest 0 with keys) is
// checked by its count, and its digest filled in.
func (s *Store) check(cp *Checkpoint) error {
	keys, digest, err := s.tally(cp.ID)
	if err != nil {
		return damaged(s.dir, "", "checkpoint %d: %w", cp.ID, err)
	}
	recorded := cp.Digest != 0 || cp.Keys == 0
	if keys != cp.Keys || (recorded && digest != cp.Digest) {
		return damaged(s.dir, "", "checkpoint %d reads %d keys with digest %016x; it was written with %d keys, digest %016x", cp.ID, keys, digest, cp.Keys, cp.Digest)
	}
	cp.Digest = digest
	return nil
}

// settle decides, after load, which checkpoint a run may restore: the last
// one when it is all there and reads back as written; else the newest older
// kept checkpoint that does, saying so; else none, with a DamageError.
func (s *Store) settle(rec record, hasRecord bool) error {
	n := len(s.cps)
	// Epochs the record knows of were begun, whatever the store lost.
	s.begun = max(s.begun, rec.Last, rec.Completing)
	if hasRecord && s.lastID() < rec.Last {
		return s.fallBack(n-1, damaged(s.dir, "", "checkpoint %d, the last one completed (%s says so), is gone from the store: Badger's MANIFEST or a *.mem log was deleted, truncated or damaged",
			rec.Last, recordName))
	}
	if n > 0 {
		if err := s.check(&s.cps[n-1]); err != nil {
			return s.fallBack(n-2, err)
		}
	}
	if hasRecord && rec == s.lastRecord() {
		// The record says so already (a new directory's, which prepare
		// has just written, or a closed store's): writing it again cost
		// two fsyncs and a rename before the first record could be read.
		// (Were its rename not durable yet, a crash would bring back
		// the record before it, which lags the store: what Open takes
		// after a crash between Complete's sync and its record.)
		return nil
	}
	return s.recordLast()
}

// fallBack restores the newest kept checkpoint from s.cps[from] down that
// checks out, after the newer ones failed with problem. It forgets the
// newer ones, so the next Complete hides what they wrote.
func (s *Store) fallBack(from int, problem error) error {
	if from < 0 {
		return problem
	}
	for i := from; i >= 0; i-- {
		if s.check(&s.cps[i]) != nil {
			continue
		}
		for _, c := range s.cps[i+1:] {
			if err := s.dropMeta(c.ID); err != nil {
				return fmt.Errorf("%w; falling back to checkpoint %d: %w", problem, s.cps[i].ID, err)
			}
		}
		s.cps = s.cps[:i+1]
		s.setDiscardTs()
		s.warn("falling back to an older checkpoint, which reads back exactly as written", "problem", problem.Error(), "checkpoint", s.cps[i].ID)
		return s.recordLast()
	}
	return fmt.Errorf("%w; no older checkpoint reads back intact either", problem)
}

// recordLast writes the record of the last complete checkpoint.
func (s *Store) recordLast() error {
	return writeRecord(s.dir, s.lastRecord())
}

// lastRecord is the record of the last complete checkpoint.
func (s *Store) lastRecord() record {
	n := len(s.cps)
	if n == 0 {
		return record{}
	}
	return record{Last: s.cps[n-1].ID, Keys: s.cps[n-1].Keys, Digest: s.cps[n-1].Digest}
}

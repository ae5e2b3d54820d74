package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/dgraph-io/badger/v4"
)

// Table is a table of rows kept on disk for a connector that reads them
// from a log (a compacted Kafka topic read as a lookup), apart from the
// checkpointed Store: a plain Badger database in a directory of its own, so
// it takes no part in checkpoints, their digests or the changelog. Each
// Write stores rows together with the read positions they bring the table
// to, in one transaction, so after a crash the rows and the positions
// still agree and the reader goes on from the positions.
//
// Beside the rows the table keeps its TableMeta: the positions, the number
// of rows and a digest of them (as a checkpoint does). OpenTable reads the
// rows back whole against both, so rows lost or changed behind the
// table's back are a *DamageError, never a table used as it is.
//
// Get may run concurrently with Write.
type Table struct {
	db  *badger.DB
	dir string

	mu   sync.Mutex // serializes writes; meta is theirs
	meta TableMeta
	h    *xxhash.Digest
}

// TableMeta is what a Table records beside its rows, written with them.
type TableMeta struct {
	// Source names what the rows were read from (the caller's choice: a
	// cluster and topic); OpenTable does not interpret it.
	Source string `json:"source"`
	// Positions is, per partition of the log, the position after the last
	// record the rows take in.
	Positions map[int32]int64 `json:"positions"`
	Rows      int64           `json:"rows"`
	Digest    uint64          `json:"digest"`
	// Time is when the last Write was.
	Time time.Time `json:"time"`
}

// TableChange is one record of the log: the row it writes (Value) or
// deletes (Value nil) and the position it brings its partition to. A
// change with a nil Key only moves the position (a record that is no row).
type TableChange struct {
	Partition int32
	Next      int64 // the position after the record
	Key       []byte
	Value     []byte
}

// Keys: rows under rowPrefix, the meta at metaKey (outside the rows' range).
var (
	metaKey   = []byte("m")
	rowPrefix = []byte("r")
)

func rowKey(k []byte) []byte { return append(append(make([]byte, 0, 1+len(k)), rowPrefix...), k...) }

// OpenTable opens or creates the table in dir, creating dir if needed. It
// refuses with a *DamageError (errors.Is(err, ErrDamaged)) a directory whose
// files fail Badger's checksums, whose rows don't add up to the count and
// digest its meta was written with, or that holds rows without a meta; and
// with an error naming dir one that another process holds. The caller may
// then RemoveTable and open it again to start afresh.
func OpenTable(dir string, log *slog.Logger) (*Table, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("state: create table dir: %w", err)
	}
	if err := checkRoom(dir, 0); err != nil {
		return nil, err
	}
	bopts := tableOptions(dir, log)
	if err := preflightTable(dir, bopts); err != nil {
		return nil, err
	}
	t, err := openTableBadger(dir, bopts)
	if err != nil {
		return nil, err
	}
	if err := t.load(); err != nil {
		t.db.Close()
		return nil, err
	}
	return t, nil
}

// RemoveTable deletes the table in dir, which must not be open. A missing
// dir is not an error.
func RemoveTable(dir string) error {
	if _, err := os.Stat(dir); os.IsNotExist(err) {
		return nil
	}
	unlock, err := lockDir(dir)
	if err != nil {
		return err
	}
	unlock()
	if err := os.RemoveAll(dir); err != nil {
		return fmt.Errorf("state: remove table %s: %w", dir, err)
	}
	return nil
}

// preflightTable checks dir's manifest and table files before Badger
// opens it, as Open does for a Store.
func preflightTable(dir string, bopts badger.Options) error {
	unlock, err := lockDir(dir)
	if err != nil {
		return err
	}
	defer unlock()
	f, err := listFiles(dir)
	if err != nil {
		return err
	}
	// Tables the manifest does not list are a crash's leftovers, which
	// Badger deletes; rows they held that the manifest's tables and the
	// logs don't are caught by the count and digest.
	_, err = preflight(dir, f, bopts)
	return err
}

func openTableBadger(dir string, bopts badger.Options) (t *Table, err error) {
	defer recoverAs(&err, func(p any) error { return damaged(dir, "", "Badger failed to open it: %s", firstLine(p)) })
	db, err := badger.Open(bopts)
	if err != nil {
		if strings.Contains(err.Error(), "Another process is using this Badger database") {
			return nil, errInUse(dir)
		}
		if errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.ENOSPC) {
			return nil, fmt.Errorf("state: open %s: %w", dir, err)
		}
		return nil, damaged(dir, "", "Badger failed to open it: %w", err)
	}
	return &Table{db: db, dir: dir, h: xxhash.New()}, nil
}

// tableOptions keep a table's memory small whatever its size: rows are
// read through a small block cache, and the caller caches what it decodes.
func tableOptions(dir string, log *slog.Logger) badger.Options {
	return smallChecked(badger.DefaultOptions(dir), 8<<20, log).WithNumVersionsToKeep(1)
}

// load reads the meta and checks the rows against it.
func (t *Table) load() (err error) {
	defer recoverAs(&err, func(p any) error { return damaged(t.dir, "", "Badger failed reading it: %s", firstLine(p)) })
	rows, digest, err := t.tally()
	if err != nil {
		return damaged(t.dir, "", "read its rows: %w", err)
	}
	err = t.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(metaKey)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error { return json.Unmarshal(v, &t.meta) })
	})
	if err != nil {
		return damaged(t.dir, "", "read its meta: %w", err)
	}
	if t.meta.Positions == nil {
		t.meta.Positions = map[int32]int64{}
	}
	if rows != t.meta.Rows || digest != t.meta.Digest {
		return damaged(t.dir, "", "it holds %d rows (digest %016x), but its positions were written with %d rows (digest %016x): rows were lost or changed",
			rows, digest, t.meta.Rows, t.meta.Digest)
	}
	return nil
}

// tally counts the rows and computes their digest, reading every one.
func (t *Table) tally() (rows int64, digest uint64, err error) {
	h := xxhash.New()
	err = t.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: rowPrefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			err := item.Value(func(v []byte) error {
				digest ^= entryHash(h, item.Key(), v)
				return nil
			})
			if err != nil {
				return fmt.Errorf("read %q: %w", item.Key()[len(rowPrefix):], err)
			}
			rows++
		}
		return nil
	})
	return rows, digest, err
}

// Meta returns the table's meta as of the last Write; Positions is the
// caller's copy.
func (t *Table) Meta() TableMeta {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.meta.clone()
}

// SetSource records source as what the rows are read from. Call it on
// an empty table, before the first Write.
func (t *Table) SetSource(source string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	m := t.meta.clone()
	m.Source = source
	txn := t.db.NewTransaction(true)
	defer txn.Discard()
	err := putMeta(txn, m)
	if err == nil {
		err = txn.Commit()
	}
	if err != nil {
		return fmt.Errorf("state: table %s: record its source: %w", t.dir, err)
	}
	t.meta = m
	return nil
}

// Write applies changes in order: each row set or deleted, each partition's
// position moved. The rows and the positions they bring the table to are
// written in one transaction; a Write too large for one is written in
// several, each with the positions of the changes it holds, so the stored
// positions never run ahead of the stored rows.
func (t *Table) Write(changes []TableChange) (err error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	defer recoverAs(&err, func(p any) error { return damaged(t.dir, "", "Badger failed: %s", firstLine(p)) })
	if err := t.room(changes); err != nil {
		return err
	}
	for len(changes) > 0 {
		n, err := t.writeSome(changes)
		if err != nil {
			return err
		}
		changes = changes[n:]
	}
	return nil
}

// room checks the file system has room for changes, as a Store's writes do.
func (t *Table) room(changes []TableChange) error {
	var n int64
	for _, c := range changes {
		n += int64(len(c.Key)+len(c.Value)) + entryOverhead
	}
	return checkRoom(t.dir, n)
}

// writeSome writes the longest prefix of changes one transaction takes,
// and returns its length.
func (t *Table) writeSome(changes []TableChange) (int, error) {
	txn := t.db.NewTransaction(true)
	defer txn.Discard()
	m := t.meta.clone()
	m.Time = time.Now()
	n := 0
	for _, c := range changes {
		err := t.change(txn, &m, c)
		if errors.Is(err, badger.ErrTxnTooBig) && n > 0 {
			break
		}
		if err != nil {
			return 0, fmt.Errorf("state: table %s: write %q: %w", t.dir, c.Key, err)
		}
		n++
	}
	err := putMeta(txn, m)
	if errors.Is(err, badger.ErrTxnTooBig) && n > 1 {
		return t.writeSome(changes[:n-1]) // one change fewer leaves room for the meta
	}
	if err == nil {
		err = txn.Commit()
	}
	if err != nil {
		return 0, fmt.Errorf("state: table %s: commit: %w", t.dir, err)
	}
	t.meta = m
	return n, nil
}

func (m TableMeta) clone() TableMeta {
	pos := make(map[int32]int64, len(m.Positions))
	for p, o := range m.Positions {
		pos[p] = o
	}
	m.Positions = pos
	return m
}

// change applies one change to txn and to m (count, digest, position).
// Nothing of m changes when it fails.
func (t *Table) change(txn *badger.Txn, m *TableMeta, c TableChange) error {
	if c.Key != nil {
		k := rowKey(c.Key)
		old, existed, err := t.hashOf(txn, k)
		if err != nil {
			return err
		}
		switch {
		case c.Value == nil && existed:
			if err := txn.Delete(k); err != nil {
				return err
			}
			m.Rows--
			m.Digest ^= old
		case c.Value != nil:
			if err := txn.Set(k, c.Value); err != nil {
				return err
			}
			if !existed {
				m.Rows++
			}
			m.Digest ^= old ^ entryHash(t.h, k, c.Value)
		}
	}
	m.Positions[c.Partition] = c.Next
	return nil
}

// hashOf is key's share of the digest, and whether it is a row, as txn
// sees it (its own writes included).
func (t *Table) hashOf(txn *badger.Txn, key []byte) (uint64, bool, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, err
	}
	var sum uint64
	err = item.Value(func(v []byte) error {
		sum = entryHash(t.h, key, v)
		return nil
	})
	return sum, err == nil, err
}

func putMeta(txn *badger.Txn, m TableMeta) error {
	b, err := json.Marshal(m)
	if err != nil {
		return err
	}
	return txn.Set(metaKey, b)
}

// Get returns key's row as stored (the caller's copy); found is false when
// there is none.
func (t *Table) Get(key []byte) (value []byte, found bool, err error) {
	defer recoverAs(&err, func(p any) error { return damaged(t.dir, "", "Badger failed: %s", firstLine(p)) })
	err = t.db.View(func(txn *badger.Txn) error {
		item, err := txn.Get(rowKey(key))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		value, err = item.ValueCopy(nil)
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("state: table %s: read %q: %w", t.dir, key, err)
	}
	return value, found, nil
}

// Scan calls fn for every row in key order; key and value are valid only
// during fn. An error from fn stops the scan and is returned.
func (t *Table) Scan(fn func(key, value []byte) error) (err error) {
	defer recoverAs(&err, func(p any) error { return damaged(t.dir, "", "Badger failed: %s", firstLine(p)) })
	return t.db.View(func(txn *badger.Txn) error {
		it := txn.NewIterator(badger.IteratorOptions{Prefix: rowPrefix})
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			var ferr error
			err := item.Value(func(v []byte) error {
				ferr = fn(item.Key()[len(rowPrefix):], v)
				return ferr
			})
			if ferr != nil {
				return ferr
			}
			if err != nil {
				return fmt.Errorf("state: table %s: read %q: %w", t.dir, item.Key()[len(rowPrefix):], err)
			}
		}
		return nil
	})
}

// Dir is the table's directory.
func (t *Table) Dir() string { return t.dir }

// Close closes the table. Writes and reads must have returned.
func (t *Table) Close() error {
	if err := checkRoom(t.dir, 0); err != nil {
		return fmt.Errorf("state: close table %s: %w", t.dir, err)
	}
	if err := t.db.Close(); err != nil {
		return fmt.Errorf("state: close table %s: %w", t.dir, err)
	}
	return nil
}

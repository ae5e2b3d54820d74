package state

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// ReservedPrefix starts every key the store uses for its own metadata. Batch.Set
// and Batch.Delete reject keys with this prefix, and Scan never returns them.
const ReservedPrefix = "\x00eddy/"

var (
	begunKey = []byte(ReservedPrefix + "begun")
	cpPrefix = []byte(ReservedPrefix + "cp/")
)

// cpKey is the metadata key of checkpoint epoch; big-endian so they list in order.
func cpKey(epoch uint64) []byte {
	return binary.BigEndian.AppendUint64(slices.Clip(cpPrefix), epoch)
}

// Checkpoint describes one complete checkpoint: the Badger version holding its
// state and the source positions that state corresponds to.
type Checkpoint struct {
	ID        uint64            // epoch from Begin; the Badger version of this checkpoint
	Time      time.Time         // when it completed; Complete sets time.Now() if zero
	Positions map[string][]byte // partition ID -> opaque position
	Keys      int64             // state keys in total after this checkpoint; set by Complete
	Changed   int64             // keys written by this checkpoint; set by Complete
	Name      string            // savepoint name, "" for a periodic checkpoint
}

func (c Checkpoint) clone() Checkpoint {
	if c.Positions != nil {
		p := make(map[string][]byte, len(c.Positions))
		for k, v := range c.Positions {
			p[k] = slices.Clone(v)
		}
		c.Positions = p
	}
	return c
}

// epochCounts accumulates what committed batches of one epoch did.
type epochCounts struct{ changed, created, deleted int64 }

// Store is eddy's checkpointed state: a Badger database in managed mode where each
// checkpoint is one version. It is safe for concurrent use.
type Store struct {
	db  *badger.DB
	cfg config
	dir string

	mu     sync.Mutex
	closed bool
	begun  uint64                  // highest epoch ever begun, durable
	cps    []Checkpoint            // kept complete checkpoints, oldest first
	counts map[uint64]*epochCounts // per open epoch, this process only
}

// Open opens or creates the store in dir, creating dir if needed. It fails with an
// error naming dir when another process holds it.
func Open(dir string, opts ...Option) (*Store, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o.apply(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	bopts := badgerOptions(dir, cfg)
	if !cfg.inMemory {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, fmt.Errorf("state: create dir: %w", err)
		}
	}
	if !cfg.inMemory {
		removeEmptyMemtables(dir)
	}
	db, err := badger.OpenManaged(bopts)
	if err != nil {
		// Badger formats the lock error with %v, so only its text identifies it.
		if strings.Contains(err.Error(), "Another process is using this Badger database") {
			return nil, fmt.Errorf("state dir %s is in use by another eddy process", dir)
		}
		return nil, fmt.Errorf("state: open %s: %w", dir, err)
	}
	s := &Store{db: db, cfg: cfg, dir: dir, counts: map[uint64]*epochCounts{}}
	if err := s.load(); err != nil {
		db.Close()
		return nil, fmt.Errorf("state: open %s: %w", dir, err)
	}
	s.setDiscardTs()
	return s, nil
}

func badgerOptions(dir string, cfg config) badger.Options {
	o := badger.DefaultOptions(dir)
	if cfg.inMemory {
		o = badger.DefaultOptions("").WithInMemory(true)
	}
	// Memory should grow with keys, not records: small memtables and caches.
	o = o.WithMemTableSize(16 << 20).
		WithNumMemtables(2).
		WithBlockCacheSize(32 << 20).
		WithIndexCacheSize(16 << 20).
		WithNumCompactors(2).
		WithValueLogFileSize(64 << 20).
		// One version at or below the discard timestamp is all a read at the oldest
		// kept checkpoint needs; versions above it are never discarded.
		WithNumVersionsToKeep(1).
		// Batch.Commit, Begin and Complete call db.Sync themselves, once per call
		// instead of once per internal transaction.
		WithSyncWrites(false).
		WithLogger(nil)
	if cfg.logger != nil {
		o = o.WithLogger(badgerLogger{cfg.logger})
	}
	if cfg.tune != nil {
		o = cfg.tune(o)
	}
	return o
}

// load reads the begun epoch and the kept checkpoints.
func (s *Store) load() error {
	txn := s.db.NewTransactionAt(math.MaxUint64, false)
	defer txn.Discard()
	item, err := txn.Get(begunKey)
	switch {
	case errors.Is(err, badger.ErrKeyNotFound):
	case err != nil:
		return fmt.Errorf("read begun epoch: %w", err)
	default:
		v, err := item.ValueCopy(nil)
		if err != nil || len(v) != 8 {
			return fmt.Errorf("read begun epoch: bad record (%d bytes): %v", len(v), err)
		}
		s.begun = binary.BigEndian.Uint64(v)
	}
	it := txn.NewIterator(badger.IteratorOptions{Prefix: cpPrefix, PrefetchValues: true, PrefetchSize: 16})
	defer it.Close()
	for it.Rewind(); it.Valid(); it.Next() {
		var cp Checkpoint
		err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &cp) })
		if err != nil {
			return fmt.Errorf("read checkpoint %x: %w", it.Item().Key(), err)
		}
		s.cps = append(s.cps, cp)
	}
	if n := len(s.cps); n > 0 && s.cps[n-1].ID > s.begun {
		s.begun = s.cps[n-1].ID
	}
	return nil
}

// Close closes the store. Batches must be committed or cancelled first and no
// reads may be running.
func (s *Store) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.closed = true
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("state: close %s: %w", s.dir, err)
	}
	return nil
}

// Begin starts the next checkpoint and returns its epoch: one more than every epoch
// ever begun, including by a process that crashed. The epoch is durably recorded
// before Begin returns, so no later Begin can hand it out again.
func (s *Store) Begin() (uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, errClosed
	}
	e := s.begun + 1
	txn := s.db.NewTransactionAt(e, true)
	defer txn.Discard()
	if err := txn.Set(begunKey, binary.BigEndian.AppendUint64(nil, e)); err != nil {
		return 0, fmt.Errorf("state: begin epoch %d: %w", e, err)
	}
	if err := txn.CommitAt(e, nil); err != nil {
		return 0, fmt.Errorf("state: begin epoch %d: %w", e, err)
	}
	if err := s.db.Sync(); err != nil {
		return 0, fmt.Errorf("state: begin epoch %d: sync: %w", e, err)
	}
	s.begun = e
	s.counts[e] = &epochCounts{}
	return e, nil
}

// Last returns the newest complete checkpoint, or ErrNoCheckpoint when none was
// ever completed. Its Positions map is the caller's own copy.
func (s *Store) Last() (Checkpoint, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return Checkpoint{}, errClosed
	}
	if len(s.cps) == 0 {
		return Checkpoint{}, ErrNoCheckpoint
	}
	return s.cps[len(s.cps)-1].clone(), nil
}

// List returns the kept complete checkpoints, savepoints included, oldest first.
func (s *Store) List() ([]Checkpoint, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, errClosed
	}
	out := make([]Checkpoint, len(s.cps))
	for i, c := range s.cps {
		out[i] = c.clone()
	}
	return out, nil
}

// lastID is the newest complete epoch, 0 when none. s.mu must be held.
func (s *Store) lastID() uint64 {
	if len(s.cps) == 0 {
		return 0
	}
	return s.cps[len(s.cps)-1].ID
}

// kept reports whether epoch is a kept complete checkpoint.
func (s *Store) kept(epoch uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return errClosed
	}
	for _, c := range s.cps {
		if c.ID == epoch {
			return nil
		}
	}
	return fmt.Errorf("state: epoch %d is not a kept checkpoint: %w", epoch, ErrNoCheckpoint)
}

// setDiscardTs lets compaction drop versions nothing can read any more: below the
// oldest kept checkpoint, which is the oldest savepoint when there is one.
func (s *Store) setDiscardTs() {
	if len(s.cps) > 0 {
		s.db.SetDiscardTs(s.cps[0].ID)
	}
}

// Size returns the bytes the store takes on disk: the blocks its files
// use, not their apparent sizes (Badger preallocates its value log and
// memtable files). It walks the directory, so call it for status, not in a
// loop. An in-memory store reports 0.
func (s *Store) Size() int64 {
	if s.cfg.inMemory {
		return 0
	}
	var n int64
	filepath.WalkDir(s.dir, func(_ string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		if info, err := d.Info(); err == nil {
			if st, ok := info.Sys().(*syscall.Stat_t); ok {
				n += st.Blocks * 512
			} else {
				n += info.Size()
			}
		}
		return nil
	})
	return n
}

// removeEmptyMemtables deletes zero-length *.mem files of dir. A process
// killed just after Badger created a memtable's log leaves it empty, and
// Badger then refuses to open the directory ("Create a new file": it takes
// the file for one it has to create). An empty log holds no writes. It does
// nothing while another process holds the directory (Badger's flock on it).
func removeEmptyMemtables(dir string) {
	d, err := os.Open(dir)
	if err != nil {
		return
	}
	defer d.Close()
	if syscall.Flock(int(d.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) != nil {
		return // in use: Open reports that
	}
	defer syscall.Flock(int(d.Fd()), syscall.LOCK_UN)
	entries, err := d.ReadDir(-1)
	if err != nil {
		return
	}
	for _, e := range entries {
		if info, err := e.Info(); err == nil && strings.HasSuffix(e.Name(), ".mem") && info.Size() == 0 {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}

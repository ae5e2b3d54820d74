package state

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/dgraph-io/badger/v4/options"
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
	// Digest is the XOR of a hash of every live key and its value, set by
	// Complete; Open and Verify read the checkpoint back against it. 0 with
	// Keys > 0 means the checkpoint predates digests (then Keys is checked).
	Digest uint64
	Name   string // savepoint name, "" for a periodic checkpoint
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
type epochCounts struct {
	changed, created, deleted int64
	digest                    uint64 // XOR of the batches' changes to the digest
	// known: the batches' writes, while there are at most knownMax
	known   []op
	tooMany bool
}

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
	known  knownKeys               // what the last complete checkpoint wrote
	// beginning: the last BeginAsync's epoch, whose record may still be
	// being written (nil: none since the store opened)
	beginning *beginning
	// freshness: prefixes found empty at the last checkpoint (Batch.Fresh)
	freshness freshness
}

// beginning is an epoch BeginAsync handed out: done closes once its
// record is durable, or its write failed with err.
type beginning struct {
	epoch uint64
	done  chan struct{}
	err   error
}

// Open opens or creates the store in dir, creating dir if needed. It fails
// with an error naming dir when another process holds it, with a
// *DamageError (errors.Is(err, ErrDamaged)) when its files are damaged or
// missing, and with a *NoSpaceError when its file system is full.
//
// Before Badger opens dir, Open checks its manifest and every table's
// checksums; afterwards it reads the last checkpoint whole and compares it
// with the key count and digest it was written with, and with the record of
// the last checkpoint kept beside Badger's files. When the last checkpoint
// is gone or fails that check, Open falls back to the newest older kept
// checkpoint that passes it, and logs a warning saying so; when none does,
// it fails. A directory in which no checkpoint ever completed (its record
// proves it) and that Badger cannot open is started afresh, with a warning.
func Open(dir string, opts ...Option) (*Store, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o.apply(&cfg)
	}
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if cfg.inMemory {
		db, err := badger.OpenManaged(badgerOptions(dir, cfg))
		if err != nil {
			return nil, fmt.Errorf("state: open in memory: %w", err)
		}
		return &Store{db: db, cfg: cfg, dir: dir, counts: map[uint64]*epochCounts{}}, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("state: create dir: %w", err)
	}
	if err := checkRoom(dir, 0); err != nil {
		return nil, err
	}
	rec, hasRecord, err := prepare(dir, cfg)
	if err != nil {
		return nil, err
	}
	s, err := openBadger(dir, cfg)
	if errors.Is(err, ErrDamaged) && hasRecord && rec.neverComplete() {
		if err := restartLocked(dir, cfg, err); err != nil {
			return nil, err
		}
		s, err = openBadger(dir, cfg)
	}
	if err != nil {
		return nil, err
	}
	if err := s.load(); err != nil {
		s.db.Close()
		return nil, damaged(dir, "", "read the checkpoints: %w", err)
	}
	if err := s.settle(rec, hasRecord); err != nil {
		s.db.Close()
		if _, serr := os.Stat(filepath.Join(dir, orphanDir)); serr == nil {
			return nil, fmt.Errorf("%w (tables the MANIFEST did not list are kept in %s)", err, filepath.Join(dir, orphanDir))
		}
		return nil, err
	}
	dropOrphans(dir)
	s.setDiscardTs()
	return s, nil
}

// prepare checks dir before Badger opens it, under Badger's lock on it, and
// returns its record of the last checkpoint. A new directory gets a record
// saying no checkpoint completed yet; a directory whose record says so and
// whose files fail the checks is emptied.
func prepare(dir string, cfg config) (rec record, hasRecord bool, err error) {
	unlock, err := lockDir(dir)
	if err != nil {
		return rec, false, err
	}
	defer unlock()
	rec, hasRecord, err = readRecord(dir)
	if err != nil {
		return rec, false, err
	}
	f, err := listFiles(dir)
	if err != nil {
		return rec, false, err
	}
	if !hasRecord && !f.manifest && !f.data() {
		return record{}, true, writeRecord(dir, record{})
	}
	orphans, err := preflight(dir, f, badgerOptions(dir, cfg))
	if err != nil && hasRecord && rec.neverComplete() {
		return rec, true, restart(dir, cfg, err)
	}
	if err != nil {
		return rec, false, err
	}
	return rec, hasRecord, keepOrphans(dir, orphans)
}

// restart empties a directory in which no checkpoint ever completed and
// that failed to open with err: a process killed while creating it.
func restart(dir string, cfg config, err error) error {
	if cfg.logger != nil {
		cfg.logger.Warn("state dir holds no complete checkpoint (its "+recordName+" proves none ever completed) and does not open; starting it afresh", "dir", dir, "error", err.Error())
	}
	if err := removeStore(dir); err != nil {
		return err
	}
	return writeRecord(dir, record{})
}

func restartLocked(dir string, cfg config, cause error) error {
	unlock, err := lockDir(dir)
	if err != nil {
		return err
	}
	defer unlock()
	return restart(dir, cfg, cause)
}

// openBadger opens dir's Badger in managed mode; a panic on a damaged file
// is an error.
func openBadger(dir string, cfg config) (s *Store, err error) {
	defer recoverAs(&err, func(p any) error { return damaged(dir, "", "Badger failed to open it: %s", firstLine(p)) })
	db, err := badger.OpenManaged(badgerOptions(dir, cfg))
	if err != nil {
		// Badger formats the lock error with %v, so only its text identifies it.
		if strings.Contains(err.Error(), "Another process is using this Badger database") {
			return nil, errInUse(dir)
		}
		if errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.ENOSPC) {
			return nil, fmt.Errorf("state: open %s: %w", dir, err)
		}
		return nil, damaged(dir, "", "Badger failed to open it: %w", err)
	}
	return &Store{db: db, cfg: cfg, dir: dir, counts: map[uint64]*epochCounts{}}, nil
}

func badgerOptions(dir string, cfg config) badger.Options {
	o := badger.DefaultOptions(dir)
	if cfg.inMemory {
		o = badger.DefaultOptions("").WithInMemory(true)
	}
	// Memory should grow with keys, not records: small memtables and caches.
	o = smallChecked(o, 16<<20, cfg.logger).
		// One version at or below the discard timestamp is all a read at the oldest
		// kept checkpoint needs; versions above it are never discarded.
		WithNumVersionsToKeep(1).
		// No transaction of the store reads what it then writes, so none
		// can conflict: the map of each write's key for the check (a
		// million entries at a restore's first checkpoint) is not kept.
		WithDetectConflicts(false)
	if cfg.tune != nil {
		o = cfg.tune(o)
	}
	return o
}

// smallChecked sets what every Badger database of eddy's shares: two
// memtables of memtable bytes, a block cache twice that and an index cache
// as big, two compactors, 64 MiB value log files; no sync per internal
// transaction (the checkpoint store's Batch.Commit, Begin and Complete call
// db.Sync themselves, once per call; a table's write lost to a crash is
// read again from its topic, rows and positions together); every block
// read checked against its
// checksum, and so are values in the value log (not OnTableRead: a table
// failing that at open is dropped with a log line; Open's preflight checks
// whole tables first, and refuses the directory instead); Badger's log to
// log, or nowhere.
func smallChecked(o badger.Options, memtable int64, log *slog.Logger) badger.Options {
	o = o.WithMemTableSize(memtable).
		WithNumMemtables(2).
		WithBlockCacheSize(2 * memtable).
		WithIndexCacheSize(memtable).
		WithNumCompactors(2).
		WithValueLogFileSize(64 << 20).
		WithSyncWrites(false).
		WithChecksumVerificationMode(options.OnBlockRead).
		WithVerifyValueChecksum(true).
		WithLogger(nil)
	if log != nil {
		o = o.WithLogger(badgerLogger{log})
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
	s.awaitBeginning() // (nothing may write once Badger closes)
	if !s.cfg.inMemory {
		// Close writes the memtable out as a table; on a full disk that is a
		// crash. Left open, the memtable's log replays at the next Open.
		if err := s.room(0); err != nil {
			return fmt.Errorf("state: close %s: %w", s.dir, err)
		}
	}
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("state: close %s: %w", s.dir, err)
	}
	return nil
}

// Begin starts the next checkpoint and returns its epoch: one more than every epoch
// ever begun, including by a process that crashed. The epoch is durably recorded
// before Begin returns, so no later Begin can hand it out again.
func (s *Store) Begin() (uint64, error) { return s.begin(false) }

// BeginAsync is Begin that returns the epoch before its record is durable:
// a goroutine of its own writes and syncs the record meanwhile. Nothing
// is written at the epoch before that: its batches' commits and its
// Complete wait for the record, and fail with its error; so does Begun,
// which callers that commit elsewhere at the epoch (a sink's transaction)
// wait for first. The next Begin waits for it too. The record's write was
// the one step between the end of a run's input and its final
// checkpoint's writes that no other work overlapped.
func (s *Store) BeginAsync() (uint64, error) { return s.begin(true) }

func (s *Store) begin(async bool) (_ uint64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return 0, errClosed
	}
	defer s.recoverBadger(&err)
	s.awaitBeginning()
	if err := s.room(0); err != nil {
		return 0, err
	}
	e := s.begun + 1
	if async {
		b := &beginning{epoch: e, done: make(chan struct{})}
		go func() {
			defer close(b.done)
			if hook := testHookRecordBegun; hook != nil {
				if b.err = hook(e); b.err != nil {
					return
				}
			}
			b.err = s.recordBegun(e)
		}()
		s.beginning = b
		// (Counted as begun at once: were the record's write to fail, the
		// next Begin's epoch is still a new one.)
	} else if err := s.recordBegun(e); err != nil {
		return 0, err
	}
	s.begun = e
	s.counts[e] = &epochCounts{}
	return e, nil
}

// Begun waits until epoch's record, if BeginAsync wrote it, is durable,
// and returns the error of its write. An epoch older than the last
// BeginAsync's waits for that one's record instead, and fails with its
// error: the older epoch's record may have failed (a write at an
// aborted checkpoint's epoch can come late), and a newer record covers
// it (the begun record is the highest epoch begun).
func (s *Store) Begun(epoch uint64) error {
	s.mu.Lock()
	b := s.beginning
	s.mu.Unlock()
	if b == nil || b.epoch < epoch {
		return nil // (not begun asynchronously: Begin's record was durable when it returned)
	}
	if hook := testHookAwaitBegun; hook != nil {
		select {
		case <-b.done:
		default:
			hook(epoch)
		}
	}
	<-b.done
	return b.err
}

// Test hooks, nil outside tests: testHookRecordBegun runs before a
// BeginAsync's record is written (its error fails the write),
// testHookAwaitBegun when a write at an epoch waits for its record, and
// testHookBatchWrite when a batch's writes go to Badger.
var (
	testHookRecordBegun func(epoch uint64) error
	testHookAwaitBegun  func(epoch uint64)
	testHookBatchWrite  func(epoch uint64)
)

// awaitBeginning waits for the record of the last BeginAsync, if it is
// being written. (Its goroutine takes no lock: s.mu may be held.)
func (s *Store) awaitBeginning() {
	if b := s.beginning; b != nil {
		<-b.done
	}
}

// recordBegun durably records that epoch e was begun.
func (s *Store) recordBegun(e uint64) (err error) {
	defer s.recoverBadger(&err)
	txn := s.db.NewTransactionAt(e, true)
	defer txn.Discard()
	if err := txn.Set(begunKey, binary.BigEndian.AppendUint64(nil, e)); err != nil {
		return fmt.Errorf("state: begin epoch %d: %w", e, err)
	}
	if err := txn.CommitAt(e, nil); err != nil {
		return fmt.Errorf("state: begin epoch %d: %w", e, err)
	}
	if err := s.db.Sync(); err != nil {
		return fmt.Errorf("state: begin epoch %d: sync: %w", e, err)
	}
	return nil
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

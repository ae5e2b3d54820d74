package state

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// Badger writes its logs and tables through memory-mapped files, created
// sparse: on a full file system, writing a page of one is a SIGBUS that
// kills the process, not an error. So every write of the store first
// checks that the file system has room for it and for what it may set off
// in Badger (a memtable written out as a table, a compaction of the first
// levels), and fails with a *NoSpaceError before writing anything. Another
// process filling the disk between the check and the write can still
// crash it; the margin makes that unlikely, not impossible.

// spaceMargin is kept free beyond the estimate: Badger's small writes (a
// log's header, the discard stats, the manifest).
const spaceMargin = 1 << 20

// room checks that dir's file system can take write bytes more, after
// what Badger may need for its own flushes and compactions.
func (s *Store) room(write int64) error {
	if s.cfg.inMemory {
		return nil
	}
	var levels int64
	for _, t := range s.db.Tables() {
		if t.Level <= 1 {
			levels += int64(t.OnDiskSize)
		}
	}
	return checkRoom(s.dir, write+levels)
}

// checkRoom checks that dir's file system can take write bytes twice (once
// in a log, once in a table), its memtables' logs written out as tables,
// and spaceMargin.
func checkRoom(dir string, write int64) error {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		return nil // can't tell; the write reports what it meets
	}
	free := int64(st.Bavail) * int64(st.Bsize)
	need := 2*write + 2*logBytes(dir) + spaceMargin
	if free < need {
		return &NoSpaceError{Dir: dir, Free: free, Need: need}
	}
	return nil
}

// logBytes is what dir's memtable logs hold: the blocks they use, since
// Badger creates them at full size, sparse.
func logBytes(dir string) int64 {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	var n int64
	for _, e := range entries {
		if !strings.HasSuffix(e.Name(), ".mem") {
			continue
		}
		info, err := os.Stat(filepath.Join(dir, e.Name()))
		if err != nil {
			continue
		}
		if st, ok := info.Sys().(*syscall.Stat_t); ok {
			n += st.Blocks * 512
		}
	}
	return n
}

// recoverBadger turns a panic in Badger, on a file damaged under a running
// store, into an error naming the directory.
func (s *Store) recoverBadger(err *error) {
	if p := recover(); p != nil {
		*err = damaged(s.dir, "", "Badger failed: %s", firstLine(p))
	}
}

// warn logs a warning about the store, when it has a logger.
func (s *Store) warn(msg string, args ...any) {
	if s.cfg.logger != nil {
		s.cfg.logger.Warn(msg, append([]any{"dir", s.dir}, args...)...)
	}
}

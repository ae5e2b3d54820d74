package state

import (
	"os"
	"path/filepath"
	"testing"
)

// A process killed just after Badger created a memtable log leaves an
// empty 00000N.mem behind; the store still opens, with its checkpoints.
func TestOpenAfterEmptyMemtableLog(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	e, _ := s.Begin()
	b := s.Batch(e)
	b.Set([]byte("k"), []byte("v"))
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	if err := s.Complete(Checkpoint{ID: e}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	if err := os.WriteFile(filepath.Join(dir, "00009.mem"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	s, err = Open(dir)
	if err != nil {
		t.Fatalf("reopen with an empty memtable log: %v", err)
	}
	defer s.Close()
	if v, ok, err := s.Get(e, []byte("k")); err != nil || !ok || string(v) != "v" {
		t.Fatalf("after reopen: %q %v %v", v, ok, err)
	}
}

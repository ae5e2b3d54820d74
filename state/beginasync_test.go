package state

import (
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

// setBeginHooks sets the BeginAsync test hooks until the test ends (after
// its stores' Close, which waits for a record being written).
func setBeginHooks(t *testing.T, record func(uint64) error, await, write func(uint64)) {
	t.Helper()
	testHookRecordBegun, testHookAwaitBegun, testHookBatchWrite = record, await, write
	t.Cleanup(func() { testHookRecordBegun, testHookAwaitBegun, testHookBatchWrite = nil, nil, nil })
}

// A batch at an epoch BeginAsync returned writes nothing to Badger before
// the epoch's record is durable: its Commit, called while the record is
// held, waits for it. The record is held until the commit either waits
// (correct) or writes (wrong), so each shows the same way every run.
func TestBeginAsyncBatchWaitsForTheRecord(t *testing.T) {
	var recorded, writtenEarly atomic.Bool
	decided := make(chan struct{}, 2) // the commit waited, or wrote
	setBeginHooks(t,
		func(uint64) error {
			select {
			case <-decided:
			case <-time.After(time.Minute):
				t.Error("the batch's commit neither waited for the record nor wrote within a minute")
			}
			recorded.Store(true) // (set before the write; the batch reads it after the write returned)
			return nil
		},
		func(uint64) { decided <- struct{}{} },
		func(uint64) {
			if !recorded.Load() {
				writtenEarly.Store(true)
				decided <- struct{}{}
			}
		})
	dir := t.TempDir()
	s := openT(t, dir)
	e, err := s.BeginAsync()
	if err != nil {
		t.Fatal(err)
	}
	b := s.Batch(e)
	if err := b.Set([]byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
	if writtenEarly.Load() {
		t.Fatal("the batch wrote at the epoch before its begin record was durable")
	}
	if err := s.Complete(Checkpoint{ID: e}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The record is durable: a new process begins past the epoch.
	s = openT(t, dir)
	if cp, err := s.Last(); err != nil || cp.ID != e || cp.Keys != 1 {
		t.Fatalf("after reopening: last checkpoint %+v (%v), want %d with 1 key", cp, err, e)
	}
	if next, err := s.Begin(); err != nil || next != e+1 {
		t.Fatalf("Begin after reopening: %d (%v), want %d", next, err, e+1)
	}
}

// When the record of an epoch BeginAsync returned fails, every write at
// the epoch fails with its error and the epoch never completes; the next
// epoch is a new one.
func TestBeginAsyncFailureFailsTheEpoch(t *testing.T) {
	injected := errors.New("injected record failure")
	setBeginHooks(t, func(uint64) error { return injected }, nil, nil)
	s := openT(t, t.TempDir())
	e, err := s.BeginAsync()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Begun(e); !errors.Is(err, injected) {
		t.Fatalf("Begun: %v, want the record's error", err)
	}
	b := s.Batch(e)
	if err := b.Set([]byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); !errors.Is(err, injected) {
		t.Fatalf("a batch's commit at the epoch: %v, want the record's error", err)
	}
	if err := s.Complete(Checkpoint{ID: e}); !errors.Is(err, injected) {
		t.Fatalf("Complete: %v, want the record's error", err)
	}
	if _, err := s.Last(); !errors.Is(err, ErrNoCheckpoint) {
		t.Fatalf("Last: %v, want no checkpoint", err)
	}
	testHookRecordBegun = nil
	next, err := s.Begin()
	if err != nil || next != e+1 {
		t.Fatalf("the next Begin: %d (%v), want %d", next, err, e+1)
	}
}

// A write that comes late at an epoch whose record failed (an aborted
// checkpoint's shard), once a newer epoch has begun, waits for the newer
// epoch's record, which covers it: were it written while that record was
// held, a crash could leave it durable at an epoch the next process
// begins again.
func TestLateWriteAtAFailedEpochWaitsForTheNewerRecord(t *testing.T) {
	injected := errors.New("injected record failure")
	var recorded, writtenEarly atomic.Bool
	decided := make(chan struct{}, 2)
	first := true
	setBeginHooks(t,
		func(uint64) error {
			if first {
				first = false
				return injected
			}
			select {
			case <-decided:
			case <-time.After(time.Minute):
				t.Error("the late commit neither waited for the newer record nor wrote within a minute")
			}
			recorded.Store(true)
			return nil
		},
		func(uint64) { decided <- struct{}{} },
		func(uint64) {
			if !recorded.Load() {
				writtenEarly.Store(true)
				decided <- struct{}{}
			}
		})
	s := openT(t, t.TempDir())
	e, err := s.BeginAsync()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Begun(e); !errors.Is(err, injected) {
		t.Fatalf("Begun: %v, want the record's error", err)
	}
	b := s.Batch(e) // (made before the next epoch begins, as a shard's is)
	if _, err := s.BeginAsync(); err != nil {
		t.Fatal(err)
	}
	if err := b.Set([]byte("k"), []byte("v")); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatalf("the late commit at epoch %d: %v", e, err)
	}
	if writtenEarly.Load() {
		t.Fatal("the late commit wrote at the failed epoch before the newer epoch's record was durable")
	}
}

package state

import (
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

const benchKeys = 100_000

// benchKV fills key and value for key i of checkpoint n: the same 100k keys are
// rewritten every checkpoint, as a busy aggregator's would be.
func benchKV(key, value []byte, i, n int) {
	binary.BigEndian.PutUint64(key[len(key)-8:], uint64(i))
	binary.BigEndian.PutUint64(value, uint64(n))
}

// BenchmarkCheckpoint writes 100k dirty keys (24-byte keys, 64-byte values) per
// checkpoint through Begin, Batch, Commit and Complete, on disk.
func BenchmarkCheckpoint(b *testing.B) {
	s := openT(b, b.TempDir(), WithKeep(2))
	key, value := []byte("aggregator/count/........"), make([]byte, 64)
	n := 0
	for b.Loop() {
		n++
		e, err := s.Begin()
		if err != nil {
			b.Fatal(err)
		}
		batch := s.Batch(e)
		for i := range benchKeys {
			benchKV(key, value, i, n)
			if err := batch.Set(key, value); err != nil {
				b.Fatal(err)
			}
		}
		if err := batch.Commit(); err != nil {
			b.Fatal(err)
		}
		if err := s.Complete(Checkpoint{ID: e}); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(benchKeys*b.N)/b.Elapsed().Seconds(), "keys/s")
}

// BenchmarkCheckpointBadger is the baseline: the same writes straight into a
// managed Badger write batch with the same options, no bookkeeping.
func BenchmarkCheckpointBadger(b *testing.B) {
	db, err := badger.OpenManaged(badgerOptions(b.TempDir(), defaultConfig()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	key, value := []byte("aggregator/count/........"), make([]byte, 64)
	n := 0
	for b.Loop() {
		n++
		wb := db.NewWriteBatchAt(uint64(n))
		for i := range benchKeys {
			benchKV(key, value, i, n)
			// Badger keeps the slices until commit; the store copies them too.
			if err := wb.Set(append([]byte(nil), key...), append([]byte(nil), value...)); err != nil {
				b.Fatal(err)
			}
		}
		if err := wb.Flush(); err != nil {
			b.Fatal(err)
		}
		if err := db.Sync(); err != nil {
			b.Fatal(err)
		}
		db.SetDiscardTs(uint64(n))
	}
	b.ReportMetric(float64(benchKeys*b.N)/b.Elapsed().Seconds(), "keys/s")
}

// BenchmarkCheckpointWindows writes keys the way event-time windows do:
// 10k sensors each rewrite their open window's key every checkpoint (a
// second of event time), and every 60 checkpoints the windows close (their
// keys are deleted) and the next minute's are created. Closed windows leave
// versions and deletions behind that a checkpoint's bookkeeping must not
// step through. Each op is one checkpoint.
func BenchmarkCheckpointWindows(b *testing.B) {
	const sensors = 10_000
	s := openT(b, b.TempDir())
	value := make([]byte, 64)
	key := func(sensor, minute int) []byte {
		return fmt.Appendf(nil, "agg/0\x00sensor-%05d\x00%08d", sensor, minute)
	}
	n := 0
	for b.Loop() {
		n++
		e, err := s.Begin()
		if err != nil {
			b.Fatal(err)
		}
		batch := s.Batch(e)
		minute := n / 60
		for i := range sensors {
			binary.BigEndian.PutUint64(value, uint64(n))
			if n%60 == 0 && minute > 0 {
				if err := batch.Delete(key(i, minute-1)); err != nil {
					b.Fatal(err)
				}
			}
			if err := batch.Set(key(i, minute), value); err != nil {
				b.Fatal(err)
			}
		}
		if err := batch.Commit(); err != nil {
			b.Fatal(err)
		}
		if err := s.Complete(Checkpoint{ID: e}); err != nil {
			b.Fatal(err)
		}
	}
	if last, err := s.Last(); err != nil || last.Keys != sensors {
		b.Fatalf("last checkpoint has %d keys (%v), want %d", last.Keys, err, sensors)
	}
}

package state

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// withTune adjusts Badger's options for one test.
func withTune(f func(badger.Options) badger.Options) Option {
	return optionFunc(func(c *config) { c.tune = f })
}

func openT(t testing.TB, dir string, opts ...Option) *Store {
	t.Helper()
	s, err := Open(dir, opts...)
	if err != nil {
		t.Fatalf("Open(%s): %v", dir, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// change is one epoch's writes: a value sets the key, nil deletes it.
type change map[string]*string

func val(s string) *string { return &s }

// write begins an epoch and writes ch in two batches, as two actors would.
func write(t testing.TB, s *Store, ch change) uint64 {
	t.Helper()
	e, err := s.Begin()
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	b1, b2 := s.Batch(e), s.Batch(e)
	for i, k := range slices.Sorted(maps.Keys(ch)) {
		b := b1
		if i%2 == 1 {
			b = b2
		}
		if v := ch[k]; v != nil {
			err = b.Set([]byte(k), []byte(*v))
		} else {
			err = b.Delete([]byte(k))
		}
		if err != nil {
			t.Fatalf("epoch %d: write %q: %v", e, k, err)
		}
	}
	for _, b := range []*Batch{b1, b2} {
		if err := b.Commit(); err != nil {
			t.Fatalf("epoch %d: Commit: %v", e, err)
		}
	}
	return e
}

func checkpoint(t testing.TB, s *Store, ch change) uint64 {
	t.Helper()
	e := write(t, s, ch)
	if err := s.Complete(Checkpoint{ID: e, Positions: map[string][]byte{"p0": []byte(fmt.Sprint(e))}}); err != nil {
		t.Fatalf("Complete(%d): %v", e, err)
	}
	return e
}

// view returns every live key at epoch via Scan.
func view(t testing.TB, s *Store, epoch uint64) map[string]string {
	t.Helper()
	got := map[string]string{}
	err := s.Scan(epoch, nil, func(k, v []byte) error {
		got[string(k)] = string(v)
		return nil
	})
	if err != nil {
		t.Fatalf("Scan(%d): %v", epoch, err)
	}
	return got
}

// checkView asserts that Scan and Get at epoch both give exactly want.
func checkView(t testing.TB, s *Store, epoch uint64, want map[string]string, probe ...string) {
	t.Helper()
	if got := view(t, s, epoch); !maps.Equal(got, want) {
		t.Fatalf("Scan at %d = %v, want %v", epoch, got, want)
	}
	for _, k := range append(slices.Collect(maps.Keys(want)), probe...) {
		v, found, err := s.Get(epoch, []byte(k))
		if err != nil {
			t.Fatalf("Get(%d, %q): %v", epoch, k, err)
		}
		w, ok := want[k]
		if found != ok || string(v) != w {
			t.Fatalf("Get(%d, %q) = %q, %v; want %q, %v", epoch, k, v, found, w, ok)
		}
	}
}

// apply plays ch onto a copy of m.
func apply(m map[string]string, ch change) map[string]string {
	m = maps.Clone(m)
	for k, v := range ch {
		if v == nil {
			delete(m, k)
		} else {
			m[k] = *v
		}
	}
	return m
}

func TestEpochViews(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	if _, err := s.Last(); !errors.Is(err, ErrNoCheckpoint) {
		t.Fatalf("Last on empty store: %v, want ErrNoCheckpoint", err)
	}
	changes := []change{
		{"a": val("a1"), "b": val("b1"), "c": val("c1")},
		{"a": val("a2"), "b": nil, "d": val("d2")},
		{"c": val("c3"), "a": nil, "b": val("b3")},
	}
	views := []map[string]string{{}}
	for i, ch := range changes {
		if e := checkpoint(t, s, ch); e != uint64(i+1) {
			t.Fatalf("epoch %d, want %d", e, i+1)
		}
		views = append(views, apply(views[i], ch))
	}
	probe := []string{"a", "b", "c", "d", "x"}
	checkAll := func(s *Store, wantIDs ...uint64) {
		t.Helper()
		for e := uint64(1); e <= 3; e++ {
			checkView(t, s, e, views[e], probe...)
		}
		cps, err := s.List()
		if err != nil {
			t.Fatal(err)
		}
		var ids []uint64
		for _, c := range cps {
			ids = append(ids, c.ID)
			if c.ID > 3 {
				continue
			}
			if c.Keys != int64(len(views[c.ID])) || c.Changed != int64(len(changes[c.ID-1])) {
				t.Errorf("checkpoint %d: Keys %d Changed %d, want %d %d", c.ID, c.Keys, c.Changed, len(views[c.ID]), len(changes[c.ID-1]))
			}
			if string(c.Positions["p0"]) != fmt.Sprint(c.ID) || c.Time.IsZero() {
				t.Errorf("checkpoint %d: positions %q time %v", c.ID, c.Positions, c.Time)
			}
		}
		if !slices.Equal(ids, wantIDs) {
			t.Fatalf("List = %v, want %v", ids, wantIDs)
		}
	}
	checkAll(s, 1, 2, 3)

	// Epoch 4 is written but never completed: invisible.
	if e := write(t, s, change{"c": val("c4"), "x": val("x4"), "d": nil}); e != 4 {
		t.Fatalf("epoch %d, want 4", e)
	}
	if last, err := s.Last(); err != nil || last.ID != 3 {
		t.Fatalf("Last = %d, %v; want 3", last.ID, err)
	}
	if _, _, err := s.Get(4, []byte("c")); !errors.Is(err, ErrNoCheckpoint) {
		t.Fatalf("Get at incomplete epoch 4: %v, want ErrNoCheckpoint", err)
	}
	checkAll(s, 1, 2, 3)

	// Reopen: identical state, and epoch 4 is never handed out again.
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openT(t, dir)
	if last, err := s.Last(); err != nil || last.ID != 3 || string(last.Positions["p0"]) != "3" {
		t.Fatalf("Last after reopen = %+v, %v; want 3", last, err)
	}
	checkAll(s, 1, 2, 3)

	// Epoch 5 writes only b: what abandoned epoch 4 wrote stays hidden at 5.
	if e := checkpoint(t, s, change{"b": val("b5")}); e != 5 {
		t.Fatalf("Begin after reopen = %d, want 5", e)
	}
	want5 := apply(views[3], change{"b": val("b5")})
	checkView(t, s, 5, want5, probe...)
	if last, _ := s.Last(); last.Keys != int64(len(want5)) || last.Changed != 1 {
		t.Fatalf("checkpoint 5: Keys %d Changed %d, want %d 1", last.Keys, last.Changed, len(want5))
	}
	checkAll(s, 1, 2, 3, 5)
}

func TestKeepDiscardsOldVersions(t *testing.T) {
	dir := t.TempDir()
	// No background compaction and one L0 table per level-0 slot: Flatten below
	// is then the only compaction, and it sees every version.
	tune := withTune(func(o badger.Options) badger.Options {
		return o.WithNumCompactors(0).WithNumLevelZeroTables(1)
	})
	open := func() *Store { return openT(t, dir, WithKeep(2), tune) }
	s := open()
	views := map[uint64]map[string]string{0: {}}
	for e := uint64(1); e <= 5; e++ {
		ch := change{}
		for i := range 50 {
			k := fmt.Sprintf("k%02d", i)
			switch {
			case (i+int(e))%2 == 0:
				ch[k] = val(fmt.Sprintf("v%d-%d", e, i))
			case i%7 == int(e):
				ch[k] = nil
			}
		}
		if got := checkpoint(t, s, ch); got != e {
			t.Fatalf("epoch %d, want %d", got, e)
		}
		views[e] = apply(views[e-1], ch)
		if e == 3 { // a second L0 table, so Flatten has two to merge
			s.Close()
			s = open()
		}
	}
	cps, err := s.List()
	if err != nil {
		t.Fatal(err)
	}
	if len(cps) != 2 || cps[0].ID != 4 || cps[1].ID != 5 {
		t.Fatalf("List = %+v, want checkpoints 4 and 5", cps)
	}
	if _, _, err := s.Get(3, []byte("k00")); !errors.Is(err, ErrNoCheckpoint) {
		t.Fatalf("Get at pruned checkpoint 3: %v, want ErrNoCheckpoint", err)
	}
	s.Close()
	s = open() // flushes the memtable; discard ts is restored to 4 on open

	if n := maxVersionsAtOrBelow(t, s, 4); n < 2 {
		t.Fatalf("before compaction: at most %d versions <= 4 per key; test needs history", n)
	}
	if err := s.db.Flatten(1); err != nil {
		t.Fatalf("Flatten: %v", err)
	}
	if n := maxVersionsAtOrBelow(t, s, 4); n != 1 {
		t.Fatalf("after compaction: %d versions <= 4 of one key survive, want 1", n)
	}
	for _, e := range []uint64{4, 5} {
		checkView(t, s, e, views[e], "k00", "k49", "zz")
	}
	s.Close()
	s = open()
	for _, e := range []uint64{4, 5} {
		checkView(t, s, e, views[e])
	}
}

// maxVersionsAtOrBelow is the most versions at or below ts any user key has.
func maxVersionsAtOrBelow(t *testing.T, s *Store, ts uint64) int {
	t.Helper()
	txn := s.db.NewTransactionAt(math.MaxUint64, false)
	defer txn.Discard()
	it := txn.NewIterator(badger.IteratorOptions{AllVersions: true})
	defer it.Close()
	most, n := 0, 0
	var cur []byte
	for it.Rewind(); it.Valid(); it.Next() {
		item := it.Item()
		if bytes.HasPrefix(item.Key(), []byte(ReservedPrefix)) {
			continue
		}
		if !bytes.Equal(item.Key(), cur) {
			cur, n = item.KeyCopy(nil), 0
		}
		if item.Version() <= ts {
			n++
			most = max(most, n)
		}
	}
	return most
}

func TestSavepointsAreKept(t *testing.T) {
	dir := t.TempDir()
	tune := withTune(func(o badger.Options) badger.Options {
		return o.WithNumCompactors(0).WithNumLevelZeroTables(1)
	})
	open := func() *Store { return openT(t, dir, WithKeep(1), tune) }
	s := open()
	checkpoint(t, s, change{"a": val("1"), "b": val("1")})
	e := write(t, s, change{"a": val("2")})
	if err := s.Complete(Checkpoint{ID: e, Name: "before-upgrade"}); err != nil {
		t.Fatal(err)
	}
	for i := 3; i <= 5; i++ {
		checkpoint(t, s, change{"a": val(fmt.Sprint(i)), "b": nil})
		if i == 3 {
			s.Close()
			s = open()
		}
	}
	s.Close()
	s = open()
	cps, _ := s.List()
	if len(cps) != 2 || cps[0].Name != "before-upgrade" || cps[0].ID != 2 || cps[1].ID != 5 {
		t.Fatalf("List = %+v, want savepoint 2 and checkpoint 5", cps)
	}
	if err := s.db.Flatten(1); err != nil {
		t.Fatal(err)
	}
	// The savepoint holds discard at 2: version 1 of a goes, 2..5 stay.
	if n := maxVersionsAtOrBelow(t, s, 2); n != 1 {
		t.Fatalf("%d versions <= 2 of one key survive compaction, want 1", n)
	}
	checkView(t, s, 2, map[string]string{"a": "2", "b": "1"})
	checkView(t, s, 5, map[string]string{"a": "5"}, "b")
}

func TestOpenTwiceIsInUse(t *testing.T) {
	dir := t.TempDir()
	openT(t, dir)
	_, err := Open(dir)
	if err == nil {
		t.Fatal("second Open of the same dir succeeded")
	}
	if want := fmt.Sprintf("state dir %s is in use by another eddy process", dir); err.Error() != want {
		t.Fatalf("second Open: %q, want %q", err, want)
	}
}

func TestErrors(t *testing.T) {
	tests := []struct {
		name        string
		run         func(s *Store) error
		errContains string
	}{
		{"keep zero", func(*Store) error { _, err := Open("", WithInMemory(), WithKeep(0)); return err }, "keep 0"},
		{"set reserved prefix", func(s *Store) error {
			e, _ := s.Begin()
			b := s.Batch(e)
			defer b.Cancel()
			return b.Set([]byte(ReservedPrefix+"begun"), []byte("x"))
		}, "reserved prefix"},
		{"delete reserved prefix", func(s *Store) error {
			e, _ := s.Begin()
			b := s.Batch(e)
			defer b.Cancel()
			return b.Delete([]byte(ReservedPrefix + "cp/x"))
		}, "reserved prefix"},
		// Badger's own limits: its loader, which a batch writes through,
		// does not check them
		{"set badger prefix", func(s *Store) error {
			e, _ := s.Begin()
			b := s.Batch(e)
			defer b.Cancel()
			return b.Set([]byte("!badger!head"), []byte("x"))
		}, "Badger's reserved prefix"},
		{"set key too long", func(s *Store) error {
			e, _ := s.Begin()
			b := s.Batch(e)
			defer b.Cancel()
			return b.Set(bytes.Repeat([]byte("k"), maxKeySize+1), []byte("x"))
		}, "65001 bytes, more than the 65000 a key may have"},
		{"delete key too long", func(s *Store) error {
			e, _ := s.Begin()
			b := s.Batch(e)
			defer b.Cancel()
			return b.Delete(bytes.Repeat([]byte("k"), maxKeySize+1))
		}, "65001 bytes, more than the 65000 a key may have"},
		{"set value too large", func(s *Store) error {
			e, _ := s.Begin()
			b := s.Batch(e)
			defer b.Cancel()
			return b.Set([]byte("k"), make([]byte, s.maxValue()+1))
		}, "more than Badger takes"},
		{"get reserved prefix", func(s *Store) error { _, _, err := s.Get(1, []byte(ReservedPrefix)); return err }, "reserved prefix"},
		{"scan reserved prefix", func(s *Store) error {
			return s.Scan(1, []byte(ReservedPrefix+"cp"), func(k, v []byte) error { return nil })
		}, "reserved prefix"},
		{"batch at unbegun epoch", func(s *Store) error { return s.Batch(9).Set([]byte("k"), nil) }, "not begun"},
		{"batch at complete epoch", func(s *Store) error { return s.Batch(1).Set([]byte("k"), nil) }, "already complete"},
		{"commit after cancel", func(s *Store) error {
			e, _ := s.Begin()
			b := s.Batch(e)
			b.Cancel()
			return b.Commit()
		}, "cancelled"},
		{"complete unbegun", func(s *Store) error { return s.Complete(Checkpoint{ID: 7}) }, "not begun"},
		{"complete twice", func(s *Store) error { return s.Complete(Checkpoint{ID: 1}) }, "already complete"},
		{"get unkept", func(s *Store) error { _, _, err := s.Get(2, []byte("a")); return err }, "no complete checkpoint"},
		{"scan error stops", func(s *Store) error {
			n := 0
			err := s.Scan(1, nil, func(k, v []byte) error { n++; return errors.New("enough") })
			if n != 1 {
				return fmt.Errorf("fn called %d times", n)
			}
			return err
		}, "enough"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := openT(t, "", WithInMemory())
			checkpoint(t, s, change{"a": val("1"), "b": val("2")})
			err := tt.run(s)
			if err == nil || !bytes.Contains([]byte(err.Error()), []byte(tt.errContains)) {
				t.Fatalf("error %v, want one containing %q", err, tt.errContains)
			}
		})
	}
}

func TestScanPrefix(t *testing.T) {
	s := openT(t, "", WithInMemory())
	e := checkpoint(t, s, change{"\x00a": val("0"), "u/1": val("1"), "u/2": val("2"), "v/1": val("3"), "\xff": val("4")})
	var keys []string
	err := s.Scan(e, []byte("u/"), func(k, v []byte) error { keys = append(keys, string(k)); return nil })
	if err != nil || !slices.Equal(keys, []string{"u/1", "u/2"}) {
		t.Fatalf("Scan u/ = %q, %v", keys, err)
	}
	keys = nil
	err = s.Scan(e, []byte("\x00"), func(k, v []byte) error { keys = append(keys, string(k)); return nil })
	if err != nil || !slices.Equal(keys, []string{"\x00a"}) {
		t.Fatalf("Scan \\x00 = %q, %v (metadata must not show)", keys, err)
	}
	if got := view(t, s, e); len(got) != 5 {
		t.Fatalf("Scan all = %q", got)
	}
}

func TestBadgerLogger(t *testing.T) {
	var buf bytes.Buffer
	l := badgerLogger{slog.New(slog.NewTextHandler(&buf, nil))}
	l.Infof("dropped %d", 1)
	l.Debugf("dropped %d", 2)
	l.Warningf("table %d is odd\n", 3)
	l.Errorf("gone %s", "bad")
	got := buf.String()
	for _, want := range []string{`level=WARN msg="table 3 is odd" component=badger`, `level=ERROR msg="gone bad"`} {
		if !strings.Contains(got, want) {
			t.Errorf("log %q lacks %q", got, want)
		}
	}
	if strings.Contains(got, "dropped") {
		t.Errorf("info/debug reached the log: %q", got)
	}
	s := openT(t, t.TempDir(), WithLogger(slog.New(slog.NewTextHandler(&buf, nil))))
	checkpoint(t, s, change{"a": val("1")})
}

// A checkpoint written in several batches, some uncopied (SetOwned), each
// after the last in key order, reads and counts as one: each batch counts
// against the previous checkpoint, whatever the earlier batches wrote.
func TestCheckpointInSeveralBatches(t *testing.T) {
	s := openT(t, t.TempDir())
	key := func(i int) []byte { return fmt.Appendf(nil, "k%05d", i) }
	write := func(epoch uint64, from, to int, value string) {
		b := s.Batch(epoch)
		b.Grow(to - from)
		for i := from; i < to; i++ {
			if err := b.SetOwned(key(i), []byte(value)); err != nil {
				t.Fatal(err)
			}
		}
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
	}
	e1, _ := s.Begin()
	write(e1, 0, 1000, "a")
	if err := s.Complete(Checkpoint{ID: e1}); err != nil {
		t.Fatal(err)
	}
	e2, _ := s.Begin()
	for from := 500; from < 2000; from += 300 {
		write(e2, from, from+300, "b")
	}
	if err := s.Complete(Checkpoint{ID: e2}); err != nil {
		t.Fatal(err)
	}
	cp, err := s.Last()
	if err != nil || cp.Keys != 2000 || cp.Changed != 1500 {
		t.Fatalf("checkpoint %+v (%v): want 2000 keys, 1500 changed", cp, err)
	}
	keys, digest, err := s.tally(e2)
	if err != nil || keys != 2000 || digest != cp.Digest {
		t.Fatalf("read back: %d keys, digest %x (%v); the checkpoint says %d, %x", keys, digest, err, cp.Keys, cp.Digest)
	}
	for _, i := range []int{0, 499, 500, 1999} {
		want := "a"
		if i >= 500 {
			want = "b"
		}
		if v, ok, err := s.Get(e2, key(i)); err != nil || !ok || string(v) != want {
			t.Fatalf("%s: %q %v %v, want %q", key(i), v, ok, err, want)
		}
	}
}

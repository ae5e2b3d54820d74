package state

import (
	"errors"
	"fmt"
	"maps"
	"strings"
	"testing"

	"github.com/dgraph-io/badger/v4"
)

// tableModel applies changes as a Table should: the last value of a key
// wins, a nil value deletes it.
func tableModel(m map[string]string, changes []TableChange) {
	for _, c := range changes {
		switch {
		case c.Key == nil:
		case c.Value == nil:
			delete(m, string(c.Key))
		default:
			m[string(c.Key)] = string(c.Value)
		}
	}
}

// tableChanges is n records of 2 partitions from offset from: rows over
// n/3 keys, every seventh a tombstone, every eleventh no row.
func tableChanges(from, n int) []TableChange {
	var out []TableChange
	for i := from; i < from+n; i++ {
		c := TableChange{Partition: int32(i % 2), Next: int64(i/2 + 1)}
		switch {
		case i%11 == 10:
		case i%7 == 6:
			c.Key = fmt.Appendf(nil, "k%d", i%(n/3))
		default:
			c.Key, c.Value = fmt.Appendf(nil, "k%d", i%(n/3)), fmt.Appendf(nil, "v%d-%s", i, strings.Repeat("x", i%40))
		}
		out = append(out, c)
	}
	return out
}

func tableRowsOf(t *testing.T, tb *Table) map[string]string {
	t.Helper()
	got := map[string]string{}
	if err := tb.Scan(func(k, v []byte) error { got[string(k)] = string(v); return nil }); err != nil {
		t.Fatal(err)
	}
	return got
}

// TestTableKeepsRowsWithPositions: rows and positions written together
// read back after a reopen, with the count of rows; a write larger than
// one Badger transaction is written in parts and comes out whole.
func TestTableKeepsRowsWithPositions(t *testing.T) {
	dir := t.TempDir()
	tb, err := OpenTable(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{}
	for _, ch := range [][]TableChange{tableChanges(0, 3000), tableChanges(3000, 60000)} {
		if err := tb.Write(ch); err != nil {
			t.Fatal(err)
		}
		tableModel(want, ch)
	}
	if err := tb.Close(); err != nil {
		t.Fatal(err)
	}
	tb, err = OpenTable(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer tb.Close()
	if got := tableRowsOf(t, tb); !maps.Equal(got, want) {
		t.Fatalf("%d rows after a reopen, want %d", len(got), len(want))
	}
	m := tb.Meta()
	if m.Rows != int64(len(want)) || m.Positions[0] != 31500 || m.Positions[1] != 31500 {
		t.Fatalf("meta %d rows, positions %v; want %d rows at 31500 in both", m.Rows, m.Positions, len(want))
	}
	if v, found, err := tb.Get([]byte("k5")); err != nil || found != (want["k5"] != "") || string(v) != want["k5"] {
		t.Fatalf("Get(k5) = %q, %v, %v; want %q", v, found, err, want["k5"])
	}
}

// TestTableRefusesRowsThatDontAddUp: rows lost behind the table's back (a
// position without its rows) or rows without a meta are a *DamageError
// at open, naming the directory.
func TestTableRefusesRowsThatDontAddUp(t *testing.T) {
	for _, tc := range []struct {
		name   string
		damage func(*badger.Txn) error
		want   string
	}{
		{"rows lost", func(txn *badger.Txn) error { return txn.Delete(rowKey([]byte("k3"))) }, "rows were lost or changed"},
		{"row changed", func(txn *badger.Txn) error { return txn.Set(rowKey([]byte("k3")), []byte("other")) }, "rows were lost or changed"},
		{"no meta", func(txn *badger.Txn) error { return txn.Delete(metaKey) }, "rows were lost or changed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			tb, err := OpenTable(dir, nil)
			if err != nil {
				t.Fatal(err)
			}
			if err := tb.Write(tableChanges(0, 300)); err != nil {
				t.Fatal(err)
			}
			tb.Close()
			db, err := badger.Open(tableOptions(dir, nil))
			if err != nil {
				t.Fatal(err)
			}
			if err := db.Update(tc.damage); err != nil {
				t.Fatal(err)
			}
			db.Close()
			_, err = OpenTable(dir, nil)
			if !errors.Is(err, ErrDamaged) || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("OpenTable: %v; want a *DamageError naming %s and saying %q", err, dir, tc.want)
			}
			if err := RemoveTable(dir); err != nil {
				t.Fatal(err)
			}
			tb, err = OpenTable(dir, nil)
			if err != nil {
				t.Fatalf("after RemoveTable: %v", err)
			}
			defer tb.Close()
			if m := tb.Meta(); m.Rows != 0 || len(m.Positions) != 0 {
				t.Fatalf("after RemoveTable: %+v, want an empty table", m)
			}
		})
	}
}

package actors

import (
	"fmt"
	"testing"
)

// TestLatestWindows: the table gives each key the entry put last for it,
// nil for a key never put, through the growths of thousands of keys.
func TestLatestWindows(t *testing.T) {
	var tbl latestWindows
	want := map[string]*entry{}
	if tbl.get("k0") != nil {
		t.Fatal("an empty table has an entry")
	}
	for round := range 3 {
		for i := range 5000 {
			if round == 2 && i%2 == 0 {
				continue // the odd keys only get a third entry
			}
			en := &entry{key: fmt.Sprintf("k%d", i), start: int64(round)}
			tbl.put(en)
			want[en.key] = en
		}
	}
	for key, en := range want {
		if got := tbl.get(key); got != en {
			t.Fatalf("key %s: entry %+v, want the one of start %d", key, got, en.start)
		}
	}
	if tbl.n != len(want) {
		t.Errorf("%d slots used, want %d (one a key)", tbl.n, len(want))
	}
	for _, key := range []string{"k5000", "k-1", "", "k1 "} {
		if got := tbl.get(key); got != nil {
			t.Errorf("key %q was never put, got %+v", key, got)
		}
	}
}

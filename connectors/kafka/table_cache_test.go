package kafka

import (
	"testing"

	"github.com/eddy-stream/eddy/state"
)

// A row read from the store before a write of its key went in, and put
// after it, would keep the older row cached until the key's next write:
// the cache refuses it.
func TestRowCacheRefusesARowReadBeforeAWrite(t *testing.T) {
	c := newRowCache(16)
	_, ok, gen := c.get("k") // a miss: the lookup reads the store
	if ok {
		t.Fatal("an empty cache holds k")
	}
	c.drop([]state.TableChange{{Key: []byte("k"), Value: []byte(`j{"v":2}`)}}) // the write of k goes in
	c.put("k", cachedRow{row: map[string]any{"v": 1.0}, found: true}, gen)     // the row read before it
	if r, ok, _ := c.get("k"); ok {
		t.Fatalf("the row read before the write is cached: %v", r.row)
	}
	_, _, gen = c.get("k")
	c.put("k", cachedRow{row: map[string]any{"v": 2.0}, found: true}, gen)
	if r, ok, _ := c.get("k"); !ok || r.row["v"] != 2.0 {
		t.Fatalf("a row read after the write: %v %v, want it cached", r.row, ok)
	}
}

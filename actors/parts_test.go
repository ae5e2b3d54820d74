package actors

import (
	"reflect"
	"testing"
)

// TestPartsKeepPartitionOrder: a table entry's parts stay ordered by
// partition however they come and go (merged reads them in that order, so
// a key's row merges its partitions the same way every run).
func TestPartsKeepPartitionOrder(t *testing.T) {
	en := newEntry(nil, "p2", []any{int64(2)})
	for _, p := range []string{"p3", "p0", "p1"} {
		en.parts.set(p, []any{p})
	}
	en.parts.set("p2", []any{"p2 again"})
	en.parts.del("p0")
	en.parts.del("absent")
	var got []string
	for _, pa := range en.parts {
		got = append(got, pa.partition)
	}
	if want := []string{"p1", "p2", "p3"}; !reflect.DeepEqual(got, want) {
		t.Fatalf("parts %v, want %v", got, want)
	}
	if accs, ok := en.parts.get("p2"); !ok || accs[0] != "p2 again" {
		t.Fatalf("p2's part: %v %v, want the one set last", accs, ok)
	}
	if _, ok := en.parts.get("p0"); ok {
		t.Fatal("p0's part is still there after del")
	}
}

package state

import (
	"errors"
	"maps"
	"strings"
	"testing"
)

// A rewind to checkpoint 1 makes a new checkpoint that reads exactly as 1
// did, with 1's positions, across a reopen, and after an abandoned epoch.
func TestRewind(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	c1 := checkpoint(t, s, change{"a": val("1"), "b": val("1")})
	want := map[string]string{"a": "1", "b": "1"} // what checkpoint 1 wrote, not what the store reads back
	checkpoint(t, s, change{"a": val("2"), "c": val("2")})
	checkpoint(t, s, change{"b": nil, "d": val("3")})
	write(t, s, change{"a": val("abandoned"), "e": val("abandoned")}) // never completed
	cp, err := s.Rewind(c1)
	if err != nil {
		t.Fatal(err)
	}
	checkView(t, s, c1, want) // the checkpoint rewound to, unchanged
	if got := view(t, s, cp.ID); !maps.Equal(got, want) {
		t.Fatalf("after Rewind(%d) checkpoint %d reads %v, want %v", c1, cp.ID, got, want)
	}
	if string(cp.Positions["p0"]) != "1" || cp.Keys != int64(len(want)) {
		t.Fatalf("rewound checkpoint %+v: want checkpoint 1's positions and %d keys", cp, len(want))
	}
	s.Close()
	s = openT(t, dir)
	last, err := s.Last()
	if err != nil || last.ID != cp.ID {
		t.Fatalf("after reopen Last is %v, %v; want %d", last.ID, err, cp.ID)
	}
	if got := view(t, s, last.ID); !maps.Equal(got, want) {
		t.Fatalf("after reopen %v, want %v", got, want)
	}
	// And on from there: a new checkpoint builds on the rewound state.
	c := checkpoint(t, s, change{"z": val("9")})
	want["z"] = "9"
	if got := view(t, s, c); !maps.Equal(got, want) {
		t.Fatalf("after the rewind a checkpoint reads %v, want %v", got, want)
	}
	if _, err := s.Rewind(999); !errors.Is(err, ErrNoCheckpoint) {
		t.Fatalf("Rewind of a missing checkpoint: %v", err)
	}
}

// A savepoint outlives pruning and stays readable; deleting it lets it go.
func TestSavepoints(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir, WithKeep(2))
	c1 := checkpoint(t, s, change{"a": val("1")})
	sp, err := s.Save(0, "before-upgrade")
	if err != nil || sp.ID != c1 || sp.Name != "before-upgrade" {
		t.Fatalf("Save: %+v, %v", sp, err)
	}
	if _, err := s.Save(c1, "again"); err == nil || !strings.Contains(err.Error(), "already") {
		t.Fatalf("saving a savepoint twice: %v", err)
	}
	if _, err := s.Save(0, "before-upgrade"); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("a duplicate name: %v", err)
	}
	for i := 0; i < 4; i++ {
		checkpoint(t, s, change{"a": val("later")})
	}
	s.Close()
	s = openT(t, dir, WithKeep(2))
	got, err := s.Savepoint("before-upgrade")
	if err != nil || got.ID != c1 {
		t.Fatalf("Savepoint after reopen: %+v, %v", got, err)
	}
	checkView(t, s, c1, map[string]string{"a": "1"})
	cps, _ := s.List()
	if len(cps) != 3 || cps[0].Name != "before-upgrade" {
		t.Fatalf("List: %+v", cps)
	}
	if err := s.DeleteSavepoint("before-upgrade"); err != nil {
		t.Fatal(err)
	}
	if cps, _ := s.List(); len(cps) != 2 || cps[0].ID == c1 {
		t.Fatalf("after DeleteSavepoint List: %+v", cps)
	}
	if err := s.DeleteSavepoint("before-upgrade"); err == nil {
		t.Fatal("deleted a missing savepoint")
	}
	checkpoint(t, s, change{"b": val("1")})
}

package actors

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/eddy-stream/eddy/internal/memio"
	"github.com/eddy-stream/eddy/state"
)

func TestRingKeepsTheLatestNewestFirst(t *testing.T) {
	for _, tc := range []struct {
		name string
		put  int
	}{
		{"empty", 0},
		{"a few", 3},
		{"full", RecentSize},
		{"wrapped", RecentSize + 7},
		{"wrapped twice", 2*RecentSize + 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r ring[int]
			for i := range tc.put {
				r.put(i)
			}
			got := r.newestFirst()
			if len(got) != min(tc.put, RecentSize) {
				t.Fatalf("kept %d of %d: want %d", len(got), tc.put, min(tc.put, RecentSize))
			}
			for i, v := range got {
				if want := tc.put - 1 - i; v != want {
					t.Fatalf("item %d is %d, want %d (all: %v)", i, v, want, got)
				}
			}
		})
	}
}

// A run's handle answers its latest dead letters, with their reasons, and
// its checkpoints, with how long each took.
func TestHandleRecentCheckpointsAndDeadLetters(t *testing.T) {
	store, err := state.Open("", state.WithInMemory())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	lines := []string{`{"dstdevice":"A","dstport":"80"}`, `not json`, `{"dstdevice":5,"dstport":"80"}`}
	var h *Handle
	_, err = Run(context.Background(), Config{
		Pipeline: load(t, countScript), Source: &memio.Source{Lines: lines}, Store: store,
		Results: &memio.Sink{}, DeadLetters: &memio.Sink{}, MaxErrors: -1,
		OnReady: func(got *Handle) { h = got },
	})
	if err != nil {
		t.Fatal(err)
	}
	dead := h.DeadLetters()
	if len(dead) != 2 {
		t.Fatalf("dead letters: got %d, want 2: %+v", len(dead), dead)
	}
	for _, d := range dead {
		var row map[string]any
		if err := json.Unmarshal(d.Row, &row); err != nil || row["error"] == "" || row["error"] == nil || d.Time.IsZero() {
			t.Errorf("dead letter %s at %v: want a row with its error and a time (%v)", d.Row, d.Time, err)
		}
	}
	cps := h.Checkpoints()
	if len(cps) == 0 {
		t.Fatal("no checkpoint recorded: the run ends with one")
	}
	last, err := store.Last()
	if err != nil {
		t.Fatal(err)
	}
	if cp := cps[0]; cp.ID != last.ID || cp.Duration <= 0 || !cp.Time.Equal(last.Time) || cp.Keys != last.Keys {
		t.Errorf("newest checkpoint %+v: want the store's last (%+v) and a duration", cp, last)
	}
}

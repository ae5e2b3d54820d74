package actors

import (
	"context"
	"encoding/json"
	"testing"
	"time"

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
	handles := make(chan *Handle, 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		// quietSource's partitions never end: the run lasts until cancel.
		_, err := Run(ctx, Config{
			Pipeline: load(t, countScript), Source: &quietSource{lines: lines}, Store: store,
			Results: &memio.Sink{}, DeadLetters: &memio.Sink{}, MaxErrors: -1,
			TriggerInterval: 10 * time.Millisecond, CheckpointInterval: 10 * time.Millisecond,
			OnReady: func(h *Handle) { handles <- h },
		})
		done <- err
	}()
	var h *Handle
	select {
	case h = <-handles:
	case err := <-done:
		t.Fatalf("the run ended before it started: %v", err)
	case <-time.After(time.Minute):
		t.Fatal("no handle within a minute")
	}
	var dead []DeadLetter
	var cps []CheckpointRecord
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
		if dead, cps = h.DeadLetters(), h.Checkpoints(); len(dead) == 2 && len(cps) > 0 && cps[0].Keys > 0 {
			break
		}
	}
	if len(dead) != 2 {
		t.Fatalf("dead letters: got %d, want 2: %+v", len(dead), dead)
	}
	for _, d := range dead {
		var row map[string]any
		if err := json.Unmarshal(d.Row, &row); err != nil || row["error"] == "" || row["error"] == nil || d.Time.IsZero() {
			t.Errorf("dead letter %s at %v: want a row with its error and a time (%v)", d.Row, d.Time, err)
		}
	}
	if len(cps) == 0 {
		t.Fatal("no checkpoint recorded within 10s")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	last, err := store.Last()
	if err != nil {
		t.Fatal(err)
	}
	cps = h.Checkpoints()
	if cp := cps[0]; cp.ID != last.ID || cp.Duration <= 0 || !cp.Time.Equal(last.Time) || cp.Keys != last.Keys {
		t.Errorf("newest checkpoint %+v: want the store's last (%+v) and a duration", cp, last)
	}
	for i := 1; i < len(cps); i++ {
		if cps[i].ID >= cps[i-1].ID {
			t.Errorf("checkpoints not newest first: %d after %d", cps[i].ID, cps[i-1].ID)
		}
	}
}

package actors

import (
	"encoding/json"
	"sync"
	"time"

	"github.com/eddy-stream/eddy/connectors"
)

// RecentSize is how many checkpoints and dead letters a run keeps for
// Handle.Checkpoints and Handle.DeadLetters (the web page's tables).
const RecentSize = 50

// CheckpointRecord is one complete checkpoint of this run.
type CheckpointRecord struct {
	ID   uint64    `json:"id"`
	Time time.Time `json:"time"`
	// Duration is from the checkpoint's barrier to its being complete.
	Duration time.Duration `json:"duration_ns"`
	Keys     int64         `json:"keys"`
	// Changed is the state keys it wrote.
	Changed int64 `json:"changed"`
}

// DeadLetter is one record that failed, as the dead-letter sink got it
// (its fields say why: the reason is in "error").
type DeadLetter struct {
	Time time.Time       `json:"time"`
	Row  json.RawMessage `json:"row"`
}

// ring keeps the last RecentSize values put in it.
type ring[T any] struct {
	mu    sync.Mutex
	items []T
	next  int
}

func (r *ring[T]) put(v T) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.items) < RecentSize {
		r.items = append(r.items, v)
		return
	}
	r.items[r.next] = v
	r.next = (r.next + 1) % RecentSize
}

// newestFirst copies the values out, the last one put first.
func (r *ring[T]) newestFirst() []T {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]T, 0, len(r.items))
	for i := range r.items {
		out = append(out, r.items[(r.next+len(r.items)-1-i)%len(r.items)])
	}
	return out
}

// recent is what a run remembers of its latest checkpoints and dead
// letters.
type recent struct {
	checkpoints ring[CheckpointRecord]
	deadLetters ring[DeadLetter]
}

// dead keeps the last rows of a batch of dead letters.
func (r *recent) dead(rows []connectors.Row) {
	now := time.Now()
	for _, row := range rows[max(0, len(rows)-RecentSize):] {
		r.deadLetters.put(DeadLetter{Time: now, Row: connectors.AppendJSON(nil, row)})
	}
}

// Checkpoints returns the run's latest complete checkpoints (up to
// RecentSize), newest first.
func (h *Handle) Checkpoints() []CheckpointRecord { return h.e.recent.checkpoints.newestFirst() }

// DeadLetters returns the run's latest failed records (up to RecentSize),
// newest first.
func (h *Handle) DeadLetters() []DeadLetter { return h.e.recent.deadLetters.newestFirst() }

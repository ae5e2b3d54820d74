package actors

import (
	"container/heap"
	"fmt"
	"math/rand"
	"testing"
)

// TestTimerQueueOrder: push and pop give the items in the order
// container/heap gives them, mixed with heap.Push as loadEntry does.
func TestTimerQueueOrder(t *testing.T) {
	r := rand.New(rand.NewSource(1))
	var ours, ref timerQueue
	for round := range 2000 {
		if r.Intn(3) > 0 || ref.Len() == 0 {
			it := timerItem{at: int64(r.Intn(50)), key: fmt.Sprint("k", r.Intn(20)), name: fmt.Sprint(r.Intn(3))}
			if round%7 == 0 {
				heap.Push(&ours, it)
			} else {
				ours.push(it)
			}
			heap.Push(&ref, it)
			continue
		}
		got, want := ours.pop(), heap.Pop(&ref).(timerItem)
		if got != want {
			t.Fatalf("round %d: popped %+v, container/heap %+v", round, got, want)
		}
	}
	for ref.Len() > 0 {
		if got, want := ours.pop(), heap.Pop(&ref).(timerItem); got != want {
			t.Fatalf("draining: popped %+v, container/heap %+v", got, want)
		}
	}
	if ours.Len() != 0 {
		t.Fatalf("%d items left", ours.Len())
	}
}

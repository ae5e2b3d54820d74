package actors

import (
	"testing"
	"time"
)

// TestLatencyCumulative: the counts at Prometheus bucket bounds add up the
// observations at or below each bound (within the histogram's 10%), and
// Sum is their total.
func TestLatencyCumulative(t *testing.T) {
	var l Latency
	for _, d := range []time.Duration{500 * time.Microsecond, 2 * time.Millisecond, 2 * time.Millisecond, 3 * time.Second} {
		l.Observe(d)
	}
	bounds := []time.Duration{100 * time.Microsecond, time.Millisecond, 10 * time.Millisecond, time.Second, time.Hour}
	want := []uint64{0, 1, 3, 3, 4}
	got := l.Cumulative(bounds)
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("bound %v: %d, want %d (all: %v)", bounds[i], got[i], want[i], got)
		}
	}
	if sum := l.Sum(); sum != 3*time.Second+4500*time.Microsecond {
		t.Errorf("sum %v", sum)
	}
}

package actors

import "time"

// pulse tells a waiting test that what it watches may have changed (a
// commit, a batch added, rows written): the test waits for the event, not
// for time to pass.
type pulse chan struct{}

func newPulse() pulse { return make(pulse, 1) }

// fire wakes the waiter, never blocking the one that fires.
func (p pulse) fire() {
	select {
	case p <- struct{}{}:
	default:
	}
}

// until waits for cond, checking it at each fire, a minute at most; it
// says whether cond held.
func (p pulse) until(cond func() bool) bool {
	timeout := time.After(time.Minute)
	for !cond() {
		select {
		case <-p:
		case <-timeout:
			return cond()
		}
	}
	return true
}

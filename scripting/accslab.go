package scripting

// accSlab hands out a runtime's built-in accumulators and the slices that
// hold them many to an allocation: a window (or a partial sent to the
// emitter) costs one allocation in accSlabSize rather than one for each
// of its accumulators and one for their slice. The values handed out are
// separate variables that share a backing array; the array lives while
// any of them does, which for windows opened together and dropped
// together is about as long as each would alone.
type accSlab struct {
	counts   []countAcc
	sums     []sumAcc
	extremes []extremeAcc
	avgs     []avgAcc
	slots    []any
}

// accSlabSize is how many values one allocation of each kind serves.
const accSlabSize = 64

// cut returns the next fresh value of a slab, refilling it when empty.
func cut[T any](s *[]T) *T {
	if len(*s) == 0 {
		*s = make([]T, accSlabSize)
	}
	v := &(*s)[0]
	*s = (*s)[1:]
	return v
}

// accSlots returns n fresh slots, capped so that appending to them
// cannot reach the next ones.
func (s *accSlab) accSlots(n int) []any {
	if len(s.slots) < n {
		s.slots = make([]any, accSlabSize*max(n, 1))
	}
	out := s.slots[:n:n]
	s.slots = s.slots[n:]
	return out
}

package scripting

import (
	"reflect"
	"strconv"
	"unsafe"
)

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

// entryBlocks hands out a whole key's accumulators at once, for a
// pipeline whose aggregates are all counts, sums, mins, maxes and
// averages: one block holds the key's slots and its accumulators side by
// side (a struct made for the pipeline's aggregates), so a record folded
// into the key touches a line or two of memory rather than one in each
// kind's slab. Blocks come accSlabSize to an allocation.
type entryBlocks struct {
	typ  reflect.Type  // struct { Slots [n]any; A0 …; A1 …; … }
	slab reflect.Value // the current allocation's array of blocks
	next int           // the slab's next fresh block
	// headed: by head type, struct { Head head; Slots …; A0 …; … } (see
	// NewAccsAfter)
	headed map[reflect.Type]reflect.Type
}

// newEntryBlocks is nil when some aggregate is not one blocks can hold.
func newEntryBlocks(aggs []AggSpec) *entryBlocks {
	if len(aggs) == 0 {
		return nil
	}
	fields := []reflect.StructField{{Name: "Slots", Type: reflect.ArrayOf(len(aggs), reflect.TypeFor[any]())}}
	for i, a := range aggs {
		var t reflect.Type
		switch a.Func {
		case "count":
			t = reflect.TypeFor[countAcc]()
		case "sum":
			t = reflect.TypeFor[sumAcc]()
		case "min", "max":
			t = reflect.TypeFor[extremeAcc]()
		case "avg":
			t = reflect.TypeFor[avgAcc]()
		default:
			return nil
		}
		fields = append(fields, reflect.StructField{Name: "A" + strconv.Itoa(i), Type: t})
	}
	return &entryBlocks{typ: reflect.StructOf(fields)}
}

// cut returns a fresh block's slots, each holding its zero accumulator.
func (b *entryBlocks) cut() []any {
	if !b.slab.IsValid() || b.next == accSlabSize {
		b.slab, b.next = reflect.New(reflect.ArrayOf(accSlabSize, b.typ)).Elem(), 0
	}
	blk := b.slab.Index(b.next)
	b.next++
	return fill(blk, 0)
}

// fill points the slots of block blk, whose fields from the from'th are
// a block's (Slots, A0, …), at their accumulators, and returns them.
func fill(blk reflect.Value, from int) []any {
	n := blk.NumField() - from - 1
	slots := blk.Field(from).Slice3(0, n, n).Interface().([]any)
	for i := range slots {
		slots[i] = blk.Field(from + 1 + i).Addr().Interface()
	}
	return slots
}

// NewAccsAfter returns fresh accumulators for one key in one allocation
// with a zero value of type head before them, and a pointer to that value
// (the caller's record of the key: see actors' entry). A record folded
// into the key then finds its accumulators beside that record, not in a
// cache line of their own elsewhere. ok is false, and nothing made, when
// the pipeline's aggregates are not all built-ins a block holds (NewAccs
// makes those).
func (rt *Runtime) NewAccsAfter(head reflect.Type) (h unsafe.Pointer, accs []any, ok bool) {
	b := rt.blocks
	if b == nil {
		return nil, nil, false
	}
	t := b.headed[head]
	if t == nil {
		fields := []reflect.StructField{{Name: "Head", Type: head}}
		for i := range b.typ.NumField() {
			fields = append(fields, b.typ.Field(i))
		}
		t = reflect.StructOf(fields)
		if b.headed == nil {
			b.headed = map[reflect.Type]reflect.Type{}
		}
		b.headed[head] = t
	}
	blk := reflect.New(t)
	return blk.UnsafePointer(), fill(blk.Elem(), 1), true
}

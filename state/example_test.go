package state_test

import (
	"errors"
	"fmt"

	"github.com/eddy-stream/eddy/state"
)

// One checkpoint as the engine runs it: begin, let each actor write its dirty
// keys, then complete with the source positions; restore reads at Last().
func Example() {
	s, err := state.Open("", state.WithInMemory())
	if err != nil {
		panic(err)
	}
	defer s.Close()
	if _, err := s.Last(); errors.Is(err, state.ErrNoCheckpoint) {
		fmt.Println("fresh start")
	}

	e, _ := s.Begin()
	b := s.Batch(e) // one per actor
	b.Set([]byte("count/alice"), []byte("3"))
	b.Set([]byte("count/bob"), []byte("5"))
	if err := b.Commit(); err != nil {
		panic(err)
	}
	if err := s.Complete(state.Checkpoint{ID: e, Positions: map[string][]byte{"events/0": []byte("812")}}); err != nil {
		panic(err)
	}

	last, _ := s.Last()
	fmt.Printf("checkpoint %d: %d keys, events/0 at %s\n", last.ID, last.Keys, last.Positions["events/0"])
	s.Scan(last.ID, []byte("count/"), func(k, v []byte) error {
		fmt.Printf("%s = %s\n", k, v)
		return nil
	})
	// Output:
	// fresh start
	// checkpoint 1: 2 keys, events/0 at 812
	// count/alice = 3
	// count/bob = 5
}

package state

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// TestCountStaysExact writes keys the way closing windows do, so that between
// the keys a batch writes lie many versions and deletions (the count walks
// past a few and looks the rest up), with overwrites, deletes, keys deleted
// and written again, epochs abandoned after their batches committed, and
// reopens; after each checkpoint its Keys and Digest
// must equal a full read of it and Keys the live keys of a map kept beside.
func TestCountStaysExact(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	live := map[string]string{} // the reference: what the store should hold
	rng := rand.New(rand.NewPCG(1, 2))
	key := func(sensor, window int) string { return fmt.Sprintf("w/%03d/%04d", sensor, window) }
	const sensors = 200
	for epoch := 1; epoch <= 60; epoch++ {
		if epoch%20 == 0 { // reopen: counts go on from the checkpoint read back
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openT(t, dir)
		}
		if epoch%7 == 0 { // an epoch abandoned after its batch committed
			abandon(t, s, func(b *Batch) error {
				for i := range sensors {
					if err := b.Set([]byte(key(i, epoch/3)), []byte("abandoned")); err != nil {
						return err
					}
				}
				return b.Delete([]byte(key(1, epoch/3-1)))
			})
		}
		e, err := s.Begin()
		if err != nil {
			t.Fatal(err)
		}
		b := s.Batch(e)
		window := epoch / 3
		for i := range sensors {
			if i%7 == 3 && rng.IntN(3) == 0 {
				continue // a sensor that sent nothing this second
			}
			k := key(i, window)
			if window > 0 && epoch%3 == 0 { // the last window closed
				old := key(i, window-1)
				if err := b.Delete([]byte(old)); err != nil {
					t.Fatal(err)
				}
				delete(live, old)
			}
			v := fmt.Sprintf("%d@%d", rng.IntN(5), epoch)
			if i%11 == 0 { // written twice in one batch: the later write wins
				if err := b.Set([]byte(k), []byte("overwritten")); err != nil {
					t.Fatal(err)
				}
			}
			if err := b.Set([]byte(k), []byte(v)); err != nil {
				t.Fatal(err)
			}
			live[k] = v
			if i%13 == 0 && epoch%5 == 0 { // deleted, then written again later
				if err := b.Delete([]byte(k)); err != nil {
					t.Fatal(err)
				}
				delete(live, k)
			}
			if i%17 == 0 { // a key never there: deleting it changes no count
				if err := b.Delete([]byte(key(i, 9000+epoch))); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := b.Commit(); err != nil {
			t.Fatal(err)
		}
		if err := s.Complete(Checkpoint{ID: e}); err != nil {
			t.Fatal(err)
		}
		cp, err := s.Last()
		if err != nil {
			t.Fatal(err)
		}
		keys, digest, err := s.tally(e)
		if err != nil {
			t.Fatal(err)
		}
		if cp.Keys != keys || cp.Digest != digest || cp.Keys != int64(len(live)) {
			t.Fatalf("checkpoint %d: Keys %d, Digest %016x; reading it finds %d keys, digest %016x; the reference holds %d keys",
				e, cp.Keys, cp.Digest, keys, digest, len(live))
		}
	}
}

// abandon begins an epoch, commits the batch write wrote, and leaves the
// epoch incomplete.
func abandon(t *testing.T, s *Store, write func(*Batch) error) {
	t.Helper()
	e, err := s.Begin()
	if err != nil {
		t.Fatal(err)
	}
	b := s.Batch(e)
	if err := write(b); err != nil {
		t.Fatal(err)
	}
	if err := b.Commit(); err != nil {
		t.Fatal(err)
	}
}

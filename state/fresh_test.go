package state

import (
	"fmt"
	"testing"
)

// TestFreshCountStaysExact writes checkpoints whose batches call Fresh on
// every prefix they write, rightly (a prefix with no live key at the
// previous checkpoint: never written, all deleted, or written only by an
// abandoned epoch) and wrongly (a prefix with live keys, or one a batch
// of the same epoch has written meanwhile), over several batches an
// epoch and a reopen; after each checkpoint its Keys and Digest must equal
// a full read of it and Keys the live keys of a map kept beside.
func TestFreshCountStaysExact(t *testing.T) {
	dir := t.TempDir()
	s := openT(t, dir)
	live := map[string]string{}
	prefixes := []string{"p/a\x00", "p/b\x00", "p/c\x00", "p/d\x00"}
	key := func(p string, i int) string { return fmt.Sprintf("%s%05d", p, i) }
	// what each epoch does to each prefix's keys 0..n-1
	type step struct {
		set, del bool
		n        int
	}
	plan := []map[string]step{
		{"p/a\x00": {set: true, n: 300}},                                                                // a: new
		{"p/a\x00": {set: true, n: 400}, "p/b\x00": {set: true, n: 200}},                                // a: live (wrong hint); b: new
		{"p/a\x00": {del: true, n: 400}, "p/b\x00": {set: true, n: 150}, "p/c\x00": {set: true, n: 50}}, // a: deleted whole; b: new the step before
		{"p/a\x00": {set: true, n: 100}, "p/b\x00": {del: true, n: 100}},                                // a: all deleted before: new again
		{"p/d\x00": {set: true, n: 250}, "p/c\x00": {set: true, n: 10}},                                 // d: only an abandoned epoch's (below)
		{"p/b\x00": {set: true, n: 300}, "p/c\x00": {del: true, n: 50}, "p/d\x00": {n: 0}},              // b: partly live
	}
	for epoch, do := range plan {
		if epoch == 3 {
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = openT(t, dir)
		}
		if epoch == 4 {
			// an abandoned epoch writes d's keys: above the previous
			// checkpoint, so d stays empty there
			abandon(t, s, func(b *Batch) error {
				for i := range 100 {
					if err := b.Set([]byte(key("p/d\x00", i)), []byte("abandoned")); err != nil {
						return err
					}
				}
				return nil
			})
		}
		e, err := s.Begin()
		if err != nil {
			t.Fatal(err)
		}
		// each prefix's keys in two batches, the second begun after the
		// first committed (the store then knows the prefix's answer)
		for half := range 2 {
			b := s.Batch(e)
			for _, p := range prefixes {
				b.Fresh([]byte(p))
				st := do[p]
				for i := half; i < st.n; i += 2 {
					k := key(p, i)
					switch {
					case st.set:
						v := fmt.Sprintf("%d@%d", i, epoch)
						if err := b.Set([]byte(k), []byte(v)); err != nil {
							t.Fatal(err)
						}
						live[k] = v
					case st.del:
						if err := b.Delete([]byte(k)); err != nil {
							t.Fatal(err)
						}
						delete(live, k)
					}
				}
			}
			if err := b.Commit(); err != nil {
				t.Fatal(err)
			}
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
			t.Fatalf("checkpoint %d (step %d): Keys %d, Digest %016x; reading it finds %d keys, digest %016x; the reference holds %d keys",
				e, epoch, cp.Keys, cp.Digest, keys, digest, len(live))
		}
	}
}

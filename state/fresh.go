package state

import (
	"bytes"
	"fmt"
	"sync"

	"github.com/dgraph-io/badger/v4"
)

// A checkpoint's count reads each key it writes back as of the previous
// checkpoint (did it exist, with what share of the digest). The first
// checkpoint after a partition's restore from scratch writes millions of
// keys none of which exist there, and each read-back seeks Badger's
// iterator past the keys written at the new version so far (Badger skips
// them one by one): at 10 million restored keys that was a quarter of the
// process's CPU between serving and that checkpoint's completion. A
// caller that expects the keys under a prefix to be new says so with
// Fresh; the store checks it once per previous checkpoint and prefix,
// and count then takes every key under a prefix found empty as created.
// A wrong hint costs the check, never the count's exactness.

// Fresh tells the batch that its keys under prefix are likely new: none
// was live at the previous checkpoint. The store checks that (once per
// previous checkpoint and prefix, for all batches); when it holds, the
// batch's count reads none of those keys back. Call it before Commit.
func (b *Batch) Fresh(prefix []byte) {
	if b.err != nil || b.prev == nil || len(prefix) == 0 {
		return
	}
	empty, err := b.s.freshness.empty(b.s, b.prev, b.last, prefix)
	if err != nil {
		b.err = fmt.Errorf("state: batch at epoch %d: is %q empty at checkpoint %d: %w", b.epoch, prefix, b.last, err)
		return
	}
	if empty {
		b.fresh = append(b.fresh, bytes.Clone(prefix))
	}
}

// isFresh reports whether key lies under a prefix the previous checkpoint
// held no live key under.
func (b *Batch) isFresh(key []byte) bool {
	for _, p := range b.fresh {
		if bytes.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// freshness remembers which prefixes held no live key at one complete
// checkpoint (which never changes once complete).
type freshness struct {
	mu      sync.Mutex
	epoch   uint64
	checked map[string]bool // by prefix: held no live key
}

// empty reports whether prefix held no live key at checkpoint epoch, read
// by txn (at that version). Every read hides the versions above it, so the
// answer is the one a read of each key at that checkpoint would give.
func (f *freshness) empty(s *Store, txn *badger.Txn, epoch uint64, prefix []byte) (e bool, err error) {
	defer s.recoverBadger(&err)
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.epoch != epoch {
		f.epoch, f.checked = epoch, map[string]bool{}
	}
	if e, ok := f.checked[string(prefix)]; ok {
		return e, nil
	}
	it := txn.NewIterator(badger.IteratorOptions{Prefix: prefix})
	defer it.Close()
	it.Seek(prefix)
	e = !it.Valid()
	f.checked[string(prefix)] = e
	return e, nil
}

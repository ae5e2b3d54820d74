package actors

import "hash/maphash"

// latestWindows holds each key's latest window's entry (see windowEntry):
// an open-addressing table of the keys' hashes and entries, probed
// linearly. A lookup reads one slot (16 bytes, four to a cache line) and
// then the entry, whose allocation holds the key it compares (newEntry);
// a Go map read a group's control word, its slot and the key's bytes
// elsewhere first, each a cache miss waiting on the one before in a
// shard's megabytes of windows. Keys are never removed (as the map's
// were not): a key's slot keeps its latest entry.
type latestWindows struct {
	seed  maphash.Seed
	slots []latestSlot // a power of two of them
	n     int          // slots in use
}

type latestSlot struct {
	h  uint64
	en *entry
}

// get returns the latest window entry of key, nil if it has none.
func (t *latestWindows) get(key string) *entry {
	if t.n == 0 {
		return nil
	}
	h := maphash.String(t.seed, key)
	mask := uint64(len(t.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.en == nil {
			return nil
		}
		if s.h == h && s.en.key == key {
			return s.en
		}
	}
}

// put makes en its key's latest window entry.
func (t *latestWindows) put(en *entry) {
	if (t.n+1)*4 > len(t.slots)*3 {
		t.grow()
	}
	h := maphash.String(t.seed, en.key)
	mask := uint64(len(t.slots) - 1)
	for i := h & mask; ; i = (i + 1) & mask {
		s := &t.slots[i]
		if s.en == nil {
			*s = latestSlot{h: h, en: en}
			t.n++
			return
		}
		if s.h == h && s.en.key == en.key {
			s.en = en
			return
		}
	}
}

// grow doubles the table (first making it), placing each slot anew.
func (t *latestWindows) grow() {
	old := t.slots
	if len(old) == 0 {
		t.seed = maphash.MakeSeed()
	}
	t.slots = make([]latestSlot, max(2*len(old), 1024))
	mask := uint64(len(t.slots) - 1)
	for _, s := range old {
		if s.en == nil {
			continue
		}
		i := s.h & mask
		for t.slots[i].en != nil {
			i = (i + 1) & mask
		}
		t.slots[i] = s
	}
}

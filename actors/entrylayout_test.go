package actors

import (
	"testing"
	"unsafe"
)

// TestEntryLayout: folding a record into a window reads and writes the
// fields of its entry before raw's pointer, and an entry is a size class
// of whole cache lines, so those fields share one line (see entry).
func TestEntryLayout(t *testing.T) {
	var en entry
	if size := unsafe.Sizeof(en); size != 128 {
		t.Errorf("an entry is %d bytes, want 128 (two cache lines, so that entries are line-aligned)", size)
	}
	hot := map[string]uintptr{
		"start": unsafe.Offsetof(en.start), "accs": unsafe.Offsetof(en.accs), "sk": unsafe.Offsetof(en.sk),
		"fired": unsafe.Offsetof(en.fired), "dirty": unsafe.Offsetof(en.dirty), "changed": unsafe.Offsetof(en.changed),
		"gone": unsafe.Offsetof(en.gone), "local": unsafe.Offsetof(en.local), "unstored": unsafe.Offsetof(en.unstored),
		"raw": unsafe.Offsetof(en.raw),
	}
	for name, off := range hot {
		if off+8 > 64 {
			t.Errorf("entry.%s is at byte %d, past the first cache line", name, off)
		}
	}
}

package state

import (
	"bytes"
	"slices"
)

// A checkpoint's count needs each key's share of the previous checkpoint's
// digest, and reading it back from Badger was most of a checkpoint's cost
// where the same keys are written checkpoint after checkpoint (the open
// windows of event-time pipelines, rewritten each time, then deleted). So
// the store keeps what the last complete checkpoint's batches wrote, each
// key with its share, and a batch reads a key back only when that
// checkpoint did not write it. Keys written in an epoch that did not
// complete are not kept (its batches' counts go with it), and Complete's
// rewrite of an abandoned epoch's keys touches only keys the completing
// epoch did not write, which are read back as before.

// knownMax bounds the writes kept: beyond it, a checkpoint's keys are
// read back (their memory would grow with the state, not the window).
const knownMax = 1 << 17

// knownKeys is what checkpoint epoch wrote: its batches' last write of
// each key, in key order.
type knownKeys struct {
	epoch uint64
	ops   []op
}

func newKnownKeys(epoch uint64, ops []op) knownKeys {
	// (Each batch's ops are sorted, and batches write disjoint keys.)
	if !slices.IsSortedFunc(ops, cmpOp) {
		slices.SortFunc(ops, cmpOp)
	}
	return knownKeys{epoch: epoch, ops: ops}
}

// of is what checkpoint epoch wrote, or nil when that is not known.
func (k knownKeys) of(epoch uint64) []op {
	if k.epoch != epoch {
		return nil
	}
	return k.ops
}

// know adds a committed batch's writes (sorted, one a key, hashed by
// count) to its epoch's.
func (c *epochCounts) know(ops []op) {
	if c.tooMany || len(c.known)+len(ops) > knownMax {
		c.known, c.tooMany = nil, true
		return
	}
	c.known = append(c.known, ops...)
}

// knownCursor finds keys, in increasing order, among known writes.
type knownCursor struct {
	ops []op
	at  int
}

// find returns key's write, if it is among them; keys must come in
// increasing order. A batch's next key is most often a few writes on (the
// other batches' keys lie between), so it steps a few before it searches.
func (k *knownCursor) find(key []byte) (op, bool) {
	for step := 0; k.at < len(k.ops); step++ {
		c := bytes.Compare(k.ops[k.at].key, key)
		if c >= 0 {
			return k.ops[k.at], c == 0
		}
		if step == knownSteps {
			rest := k.ops[k.at:]
			i, found := slices.BinarySearchFunc(rest, key, func(o op, key []byte) int { return bytes.Compare(o.key, key) })
			k.at += i
			if found {
				return rest[i], true
			}
			return op{}, false
		}
		k.at++
	}
	return op{}, false
}

// knownSteps is how many writes find steps over before it searches.
const knownSteps = 8

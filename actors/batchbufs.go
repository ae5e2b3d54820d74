package actors

import "github.com/eddy-stream/eddy/scripting"

// batchBufs is the memory a parse worker fills for one batch: its keyed
// rows by shard, their records' indexes, and the slab their values are
// cut from (scripting.Keyed.Vals). Once every shard has folded the batch
// nothing reads it, and its supervisor hands it to a worker with a batch
// read later: reading costs no allocation a batch, where these cost about
// 180 bytes a record, all of it zeroed, scanned and collected.
type batchBufs struct {
	perShard [][]scripting.Keyed
	perIdx   [][]int
	vals     []any
}

// spareBufs holds a supervisor's batchBufs that no one reads.
type spareBufs []*batchBufs

// maxSpareBufs bounds the spares: enough for the batches a partition has
// in its workers and shards at once.
const maxSpareBufs = 32

func (s *spareBufs) take() *batchBufs {
	if len(*s) == 0 {
		return nil
	}
	b := (*s)[len(*s)-1]
	(*s)[len(*s)-1] = nil
	*s = (*s)[:len(*s)-1]
	return b
}

func (s *spareBufs) put(b *batchBufs) {
	if b != nil && len(*s) < maxSpareBufs {
		*s = append(*s, b)
	}
}

// prepare readies bufs (nil: new ones) for a batch of n records going to
// shards shards, each record's values width wide; sizes is how many rows
// each shard got from the worker's last batch.
func (b *batchBufs) prepare(n, width, shards int, sizes []int) *batchBufs {
	if b == nil {
		b = &batchBufs{perShard: make([][]scripting.Keyed, shards), perIdx: make([][]int, shards)}
		for sh, rows := range sizes {
			rows += rows/8 + 8
			b.perShard[sh] = make([]scripting.Keyed, 0, rows)
			b.perIdx[sh] = make([]int, 0, rows)
		}
	}
	for sh := range b.perShard {
		b.perShard[sh] = b.perShard[sh][:0]
		b.perIdx[sh] = b.perIdx[sh][:0]
	}
	if cap(b.vals) < n*width {
		b.vals = make([]any, 0, n*width)
	}
	return b
}

package kafka

import (
	"math/bits"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eddy-stream/eddy/connectors"
)

// fetchPools lends franz-go the Records it decodes fetched batches into,
// and the buffers the source's decompressor decodes batches into;
// franz-go takes a batch's slices back once every record of it is
// recycled (kgo.Record.Recycle). A record the engine was given is
// recycled when the engine releases its batch (connectors.Batch.Release),
// one it was not (a control record, one dropped by a seek) when the
// source lets go of it. Without it each fetched batch allocated its
// records and its bytes, which the collector then scanned and zeroed.
// (franz-go zeroes a buffer's whole capacity when it comes back: the
// buffers' sizes step by at most a quarter, so little more than the batch
// is zeroed.)
type fetchPools struct {
	recs  classPool[kgo.Record]
	bytes bytePool
}

// newFetchPools keeps record slices of 16 to 256k records (a batch of
// 256k records is more than 40 MiB of kgo.Record).
func newFetchPools() *fetchPools {
	return &fetchPools{recs: classPool[kgo.Record]{min: 16, max: 256 << 10}}
}

var (
	_ kgo.PoolRecords         = (*fetchPools)(nil)
	_ kgo.PoolDecompressBytes = (*fetchPools)(nil)
)

// GetDecompressBytes implements kgo.PoolDecompressBytes, for the batches
// franz-go's own decoder takes (other codecs, and LZ4 frames the
// source's decompressor leaves to it).
func (p *fetchPools) GetDecompressBytes(compressed []byte, _ kgo.CompressionCodecType) []byte {
	return p.bytes.get(4 * len(compressed))
}

// PutDecompressBytes implements kgo.PoolDecompressBytes.
func (p *fetchPools) PutDecompressBytes(b []byte) { p.bytes.put(b) }

// GetRecords implements kgo.PoolRecords. The slices are kept by size
// class, as buffers are: with one pool for all, a slice too short for the
// batch that got it was dropped, and a third of the batches of a
// bench-kafka run allocated their records anew. (franz-go clears each
// record as it is recycled, so a slice comes back zeroed.)
func (p *fetchPools) GetRecords(n int) []kgo.Record {
	return p.recs.get(n)[:n]
}

// PutRecords implements kgo.PoolRecords.
func (p *fetchPools) PutRecords(r []kgo.Record) { p.recs.put(r) }

// batchMem is one Read batch's memory: its records, and the fetched
// records their keys and values point into, recycled at Release.
type batchMem struct {
	recs    []connectors.Record
	fetched []*kgo.Record
	lent    bool // handed out with a batch, not yet released
}

var batchMems = sync.Pool{New: func() any { return new(batchMem) }}

func newBatchMem(n int) *batchMem {
	m := batchMems.Get().(*batchMem)
	if cap(m.recs) < n {
		m.recs = make([]connectors.Record, 0, n)
		m.fetched = make([]*kgo.Record, 0, n)
	}
	m.lent = true
	return m
}

// release recycles the batch's fetched records and keeps its slices for a
// later batch; called once, when the engine is done with the batch.
// Releasing a batch twice would hand its memory to two batches at once:
// that panics instead.
func (m *batchMem) release() {
	if !m.lent {
		panic("kafka: a batch was released twice")
	}
	m.lent = false
	recycle(m.fetched)
	clear(m.recs)
	m.recs, m.fetched = m.recs[:0], m.fetched[:0]
	batchMems.Put(m)
}

// recycle gives fetched records back to franz-go's pools (and clears the
// pointers to them).
func recycle(rs []*kgo.Record) {
	for i, r := range rs {
		r.Recycle()
		rs[i] = nil
	}
}

// classPool keeps slices by size class: for each power of two, four
// classes a quarter of it apart, so a slice is at most a quarter larger
// than asked for. Slices shorter than min or longer than max elements
// are not kept.
type classPool[T any] struct {
	classes  [4 * 27]sync.Pool
	min, max int // 0: minPooled, maxPooled
}

// bytePool keeps buffers of 4 KiB to 64 MiB.
type bytePool = classPool[byte]

const minPooled, maxPooled = 4 << 10, 64 << 20

// bounds are the shortest and longest slices kept.
func (cp *classPool[T]) bounds() (int, int) {
	if cp.min == 0 {
		return minPooled, maxPooled
	}
	return cp.min, cp.max
}

// classUp is the smallest class whose buffers hold n bytes, and their size.
func classUp(n int) (int, int) {
	p := max(bits.Len(uint(n-1)), 3) // 2^(p-1) < n <= 2^p
	q := 1 << (p - 3)
	m := (n + q - 1) / q // 5..8 eighths of 2^p
	return 4*p + m - 5, m * q
}

// classDown is the largest class whose buffers fit in c bytes.
func classDown(c int) int {
	p := bits.Len(uint(c)) // 2^(p-1) <= c < 2^p
	if m := c >> (p - 3); m > 4 {
		return 4*p + m - 5
	}
	return 4*(p-1) + 3 // 2^(p-1), the top class of the power below
}

// get returns an empty slice of capacity n at least.
func (cp *classPool[T]) get(n int) []T {
	if lo, hi := cp.bounds(); n < lo || n > hi {
		return make([]T, 0, max(n, 0))
	}
	c, size := classUp(n)
	if b, ok := cp.classes[c].Get().([]T); ok {
		return b[:0]
	}
	return make([]T, 0, size)
}

// put keeps b for a later get.
func (cp *classPool[T]) put(b []T) {
	if lo, hi := cp.bounds(); cap(b) < lo || cap(b) > hi {
		return
	}
	//lint:ignore SA6002 franz-go hands a slice back: boxing its header is one small allocation per fetched batch
	cp.classes[classDown(cap(b))].Put(b[:0])
}

// grow returns a slice of capacity n at least holding b's elements, and
// keeps b.
func (cp *classPool[T]) grow(b []T, n int) []T {
	nb := append(cp.get(n), b...)
	cp.put(b)
	return nb
}

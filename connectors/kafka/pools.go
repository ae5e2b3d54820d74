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
	recs  sync.Pool
	bytes bytePool
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

// GetRecords implements kgo.PoolRecords.
func (p *fetchPools) GetRecords(n int) []kgo.Record {
	if r, ok := p.recs.Get().([]kgo.Record); ok && cap(r) >= n {
		return r[:n]
	}
	return make([]kgo.Record, n)
}

// PutRecords implements kgo.PoolRecords.
func (p *fetchPools) PutRecords(r []kgo.Record) {
	//lint:ignore SA6002 franz-go hands a slice back: boxing its header is one small allocation per fetched batch
	p.recs.Put(r)
}

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

// bytePool keeps buffers by size class: for each power of two, four
// classes a quarter of it apart, so a buffer is at most a quarter larger
// than asked for. Buffers under 4 KiB or over 64 MiB are not kept.
type bytePool struct {
	classes [4 * 27]sync.Pool
}

const minPooled, maxPooled = 4 << 10, 64 << 20

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

// get returns an empty buffer of capacity n at least.
func (bp *bytePool) get(n int) []byte {
	if n < minPooled || n > maxPooled {
		return make([]byte, 0, max(n, 0))
	}
	c, size := classUp(n)
	if b, ok := bp.classes[c].Get().([]byte); ok {
		return b[:0]
	}
	return make([]byte, 0, size)
}

// put keeps b for a later get.
func (bp *bytePool) put(b []byte) {
	if cap(b) < minPooled || cap(b) > maxPooled {
		return
	}
	//lint:ignore SA6002 franz-go hands a slice back: boxing its header is one small allocation per fetched batch
	bp.classes[classDown(cap(b))].Put(b[:0])
}

// grow returns a buffer of capacity n at least holding b's bytes, and
// keeps b.
func (bp *bytePool) grow(b []byte, n int) []byte {
	nb := append(bp.get(n), b...)
	bp.put(b)
	return nb
}

package kafka

import (
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eddy-stream/eddy/connectors"
)

// fetchPools lends franz-go the Records it decodes fetched batches into;
// franz-go takes a batch's slice back once every record of it is recycled
// (kgo.Record.Recycle). A record the engine was given is recycled when the
// engine releases its batch (connectors.Batch.Release), one it was not (a
// control record, one dropped by a seek) when the source lets go of it.
// Without it each fetched batch allocated its records, which the
// collector then scanned. (franz-go's pool of decompressed bytes is not
// used: it zeroes a slice's whole capacity when it comes back, and its
// decoder grows a slice sized to fit, so in the profile it cost more than
// the copy it saves.)
type fetchPools struct {
	recs sync.Pool
}

var _ kgo.PoolRecords = (*fetchPools)(nil)

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

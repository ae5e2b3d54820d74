package files

import "github.com/eddy-stream/eddy/connectors"

// batchMem is the memory of one dir: batch: its records, the blocks its
// lines were read into (lineBlocks) and the bytes of values copied (lines
// of .gz files, previews of lines too long). The engine gives it back
// (Batch.Release) once it has processed the batch, and a later batch is
// read into it: a fresh buffer per batch, zeroed and collected, cost more
// than the reading itself.
type batchMem struct {
	records []connectors.Record
	blocks  []*block // held: let go of at release
	chunks  [][]byte // chunks[used] is being filled; the rest are spare
	used    int
	lent    bool // handed out with a batch, not yet released
	spare   batchMems
}

// chunkSize holds a typical batch's values (1024 lines of ~200 bytes) in
// one chunk; a batch of longer lines takes several.
const chunkSize = 256 << 10

// spareMems bounds the released batchMems a partition keeps: more than
// the engine holds at once (its workers' and shards' queues).
const spareMems = 32

// batchMems is a partition's released batchMems, for its next batches.
type batchMems chan *batchMem

// get takes a released batchMem, or a new one.
func (f batchMems) get() *batchMem {
	var m *batchMem
	select {
	case m = <-f:
	default:
		m = &batchMem{records: make([]connectors.Record, 0, maxBatchRecords), spare: f}
	}
	m.lent = true
	return m
}

// keep copies v into the batch's memory and returns the copy, which stays
// valid until the batch is released.
func (m *batchMem) keep(v []byte) []byte {
	if len(m.chunks) == 0 {
		m.chunks = append(m.chunks, make([]byte, 0, max(chunkSize, len(v))))
	}
	c := m.chunks[m.used]
	if len(c)+len(v) > cap(c) {
		m.used++
		if m.used == len(m.chunks) {
			m.chunks = append(m.chunks, nil)
		}
		if cap(m.chunks[m.used]) < len(v) {
			m.chunks[m.used] = make([]byte, 0, max(chunkSize, len(v)))
		}
		c = m.chunks[m.used][:0]
	}
	start := len(c)
	c = append(c, v...)
	m.chunks[m.used] = c
	return c[start:len(c):len(c)]
}

// hold keeps b for the batch's lines in it until the batch is released.
func (m *batchMem) hold(b *block) {
	if n := len(m.blocks); n > 0 && m.blocks[n-1] == b {
		return
	}
	b.refs.Add(1)
	m.blocks = append(m.blocks, b)
}

// release empties m and keeps it for a later batch of its partition
// (called from the engine's goroutine, while the reader reads on).
// Releasing a batch twice would hand its memory to two batches at once:
// that panics instead.
func (m *batchMem) release() {
	if !m.lent {
		panic("files: a batch was released twice")
	}
	m.lent = false
	clear(m.records[:cap(m.records)]) // no stale errors kept alive
	for i := range m.chunks[:min(m.used+1, len(m.chunks))] {
		m.chunks[i] = m.chunks[i][:0]
	}
	m.used = 0
	for i, b := range m.blocks {
		b.unref()
		m.blocks[i] = nil
	}
	m.blocks = m.blocks[:0]
	select {
	case m.spare <- m:
	default: // enough spares: collected
	}
}

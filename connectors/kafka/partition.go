package kafka

import (
	"context"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eddy-stream/eddy/connectors"
)

// partition is one assigned topic-partition. The source's poll loop fills
// its buffer; the engine's reader drains it with Read.
type partition struct {
	s     *Source
	tp    tp
	id    string
	where string

	// f fetches the partition's records; set at its assignment.
	f *fetcher

	// Guarded by s.mu.
	added      bool          // added to f's client (a direct fetcher)
	buf        []*kgo.Record // data and control records, in offset order
	bufRecords int           // data records in buf
	bufArr     []*kgo.Record // buf's array from its first element (see took)
	next       int64         // the offset the next fetched record must have at least
	pos        int64         // after the last record Read returned
	end        int64         // the partition's end (LSO or high watermark), -1 unknown
	seeked     bool          // fetching was pointed at pos
	full       bool          // paused because buf is full
	seekWait   []chan struct{}
	gone       bool // revoked, lost or closed
	frozen     bool // being revoked: Read returns nothing more
	lost       bool // being lost: no checkpoint of it may commit
	// member is the group member id the partition was assigned to: a
	// checkpoint of it commits only while the source is still that
	// member (see Source.holder).
	member   string
	returned bool // Read returned a batch since the assignment
	// starts: where the partition starts, listed at its assignment, for
	// its first seek (nil once it was seeked)
	starts *starts

	// failed: a record the partition can't read (Read returns it)
	failed error
	// in: a repartition topic's reading state (nil for other topics)
	in *repartitionIn
	// staged: a stage topic's partition, whose markers move its event
	// time (stagemarks.go)
	staged bool
	// seekTo: what a repartition partition's pending seek sets in.applied
	seekTo map[string]Seq

	notify chan struct{}
	owed   bool      // records were returned since the last CaughtUp
	endAt  time.Time // when end was last listed
}

var (
	_ connectors.Partition = (*partition)(nil)
	_ connectors.Lagger    = (*partition)(nil)
)

func newPartition(s *Source, t tp) *partition {
	p := &partition{s: s, tp: t, id: t.id(), where: t.topic + "/" + strconv.Itoa(int(t.part)), end: -1, notify: make(chan struct{}, 1), owed: true}
	if IsRepartitionTopic(t.topic) {
		p.in = &repartitionIn{applied: map[string]Seq{}}
	}
	p.staged = IsStageTopic(t.topic)
	return p
}

func (p *partition) ID() string { return p.id }

// Seek points the partition at pos (the next offset) and drops what was
// buffered. Seek(nil) goes back to where the partition starts without a
// checkpoint: the group's committed offset, else the start policy.
func (p *partition) Seek(pos connectors.Position) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var off int64
	var err error
	st := p.takeStarts() // (only the first seek reads it)
	if pos == nil {
		off, err = p.startOffset(ctx, st)
	} else {
		off, err = decodePos(pos)
	}
	if err != nil {
		return err
	}
	if err := p.seekApplied(pos); err != nil {
		return err
	}
	return p.s.requestSeek(ctx, p, off)
}

// takeStarts returns the listing of where the partition starts begun at
// its assignment, and drops it: a later seek lists again.
func (p *partition) takeStarts() *starts {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	st := p.starts
	p.starts = nil
	return st
}

// startOffset is where the partition starts without a checkpoint: as
// listed at its assignment (st, on its first seek), else as listed now.
func (p *partition) startOffset(ctx context.Context, st *starts) (int64, error) {
	if st != nil {
		select {
		case <-st.done:
			if off, ok := st.offs[p.tp]; ok && st.err == nil {
				return off, nil
			}
			// (A failed listing is done again for this partition alone,
			// which reports its own failure.)
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	return p.s.startOffset(ctx, p.tp)
}

// add routes a fetch to the buffer; s.mu is held.
func (p *partition) add(fp kgo.FetchPartition) {
	if !p.seeked || p.gone {
		for _, r := range fp.Records {
			r.Recycle()
		}
		return
	}
	end := fp.HighWatermark
	if !p.s.cfg.ReadUncommitted {
		end = fp.LastStableOffset
	}
	if end >= 0 {
		p.end, p.endAt = end, time.Now()
	}
	was := cap(p.buf)
	for _, r := range fp.Records {
		if r.Offset < p.next {
			r.Recycle() // fetched before a seek
			continue
		}
		p.next = r.Offset + 1
		p.buf = append(p.buf, r)
		if !r.Attrs.IsControl() {
			p.bufRecords++
		}
	}
	if cap(p.buf) != was {
		p.bufArr = p.buf[:0] // a new array, which buf starts at
	}
	if len(p.buf) >= p.s.cfg.Buffer && !p.full {
		p.full = true
		p.f.pause(p)
	}
	p.signal()
}

func (p *partition) signal() {
	select {
	case p.notify <- struct{}{}:
	default:
	}
}

// seekDone releases the Seek calls waiting; s.mu is not held.
func (p *partition) seekDone() {
	p.s.mu.Lock()
	w := p.seekWait
	p.seekWait = nil
	p.s.mu.Unlock()
	for _, c := range w {
		close(c)
	}
}

// Read returns the buffered records, up to the batch size, waiting for
// some when there are none. A quiet partition at its end says CaughtUp.
func (p *partition) Read(ctx context.Context) (connectors.Batch, error) {
	p.s.mu.Lock()
	seeked := p.seeked || len(p.seekWait) > 0
	p.s.mu.Unlock()
	if !seeked {
		// The engine had no checkpointed position for this partition.
		if err := p.Seek(nil); err != nil {
			return connectors.Batch{}, err
		}
	}
	timer := time.NewTimer(p.s.cfg.Poll)
	defer timer.Stop()
	for {
		if err := ctx.Err(); err != nil {
			return connectors.Batch{}, err
		}
		if p.isGone() {
			// Revoked or lost: the engine is stopping this reader (its
			// Revoke returns before the reader has seen the stop).
			<-ctx.Done()
			return connectors.Batch{}, ctx.Err()
		}
		b, ok := p.take()
		if err := p.readErr(); err != nil {
			return connectors.Batch{}, err
		}
		if ok {
			p.owed = true
			return b, nil
		}
		if p.owed && p.caughtUp(ctx, false) {
			p.owed = false
			return p.idle(), nil
		}
		select {
		case <-ctx.Done():
			return connectors.Batch{}, ctx.Err()
		case <-p.notify:
		case <-timer.C:
			if p.caughtUp(ctx, true) {
				p.owed = false
				return p.idle(), nil
			}
			timer.Reset(p.s.cfg.Poll)
		}
	}
}

func (p *partition) idle() connectors.Batch {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	p.returned = true
	return connectors.Batch{Where: p.where, Unit: "offset", End: p.position(), CaughtUp: true}
}

// Start is where the partition was started (Seek), while Read has handed
// out nothing since: the position the engine's state of it stands at
// before its first batch. nil before the seek, or once a batch was handed
// out (the engine's own position counts then).
func (p *partition) Start() connectors.Position {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	if !p.seeked || p.returned {
		return nil
	}
	return p.position()
}

// position is where the partition stands: its offset and, on a
// repartition topic, what it has applied; s.mu is held.
func (p *partition) position() connectors.Position {
	if p.in != nil {
		return encodeRepartitionPos(p.pos, p.in.applied)
	}
	return encodePos(p.pos)
}

// caughtUp says whether everything up to the partition's end was read;
// refresh lists the end when the fetches have not told it lately.
func (p *partition) caughtUp(ctx context.Context, refresh bool) bool {
	p.s.mu.Lock()
	pos, end, at, empty := p.pos, p.end, p.endAt, len(p.buf) == 0
	frozen := p.frozen
	p.s.mu.Unlock()
	if !empty || frozen {
		return false
	}
	if refresh && (end < 0 || pos < end || time.Since(at) > time.Second) {
		lctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		e, err := p.s.endOffset(lctx, p.tp)
		cancel()
		if err != nil {
			return false
		}
		p.s.mu.Lock()
		p.end, p.endAt, end = e, time.Now(), e
		p.s.mu.Unlock()
	}
	return end >= 0 && pos >= end
}

// take moves up to a batch of records out of the buffer.
func (p *partition) take() (connectors.Batch, bool) {
	s := p.s
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(p.buf) == 0 || p.frozen || p.failed != nil {
		return connectors.Batch{}, false
	}
	if p.in != nil {
		return p.takeRepartition()
	}
	if p.staged {
		return p.takeStage()
	}
	n := min(s.cfg.Batch, p.bufRecords)
	mem := newBatchMem(n)
	recs := mem.recs
	i := 0
	for ; i < len(p.buf); i++ {
		r := p.buf[i]
		if r.Attrs.IsControl() {
			p.pos = r.Offset + 1
			r.Recycle()
			continue
		}
		if len(recs) == n {
			break
		}
		recs = append(recs, connectors.Record{Key: r.Key, Value: r.Value, Time: r.Timestamp, Seq: r.Offset})
		mem.fetched = append(mem.fetched, r)
		p.pos = r.Offset + 1
	}
	mem.recs = recs
	p.took(i)
	p.bufRecords -= len(recs)
	if p.full && len(p.buf) <= s.cfg.Buffer/2 {
		p.full = false
		p.f.resume(p)
	}
	b := connectors.Batch{Records: recs, Where: p.where, Unit: "offset", End: encodePos(p.pos), Release: mem.release}
	b.CaughtUp = len(p.buf) == 0 && p.end >= 0 && p.pos >= p.end
	if len(recs) == 0 && !b.CaughtUp {
		// Only control records: report the new position as caught-up news
		// would, but keep reading.
		mem.release()
		return connectors.Batch{}, false
	}
	p.returned = true
	return b, true
}

// Describe renders a position: "offset 1234".
func (p *partition) Describe(pos connectors.Position) string {
	if pos == nil {
		return "the group's offset, else start=" + p.s.cfg.Start
	}
	off, err := decodePos(pos)
	if err != nil {
		return string(pos)
	}
	return "offset " + strconv.FormatInt(off, 10)
}

// Offset is pos's offset: the next record's.
func (p *partition) Offset(pos connectors.Position) (int64, bool) {
	off, err := decodePos(pos)
	return off, pos != nil && err == nil
}

// Lag is the partition's end as last fetched or listed (the last stable
// offset with read_committed, else the high watermark) minus pos's offset.
func (p *partition) Lag(pos connectors.Position) (int64, bool) {
	if pos == nil {
		return 0, false
	}
	off, err := decodePos(pos)
	if err != nil {
		return 0, false
	}
	p.s.mu.Lock()
	end := p.end
	p.s.mu.Unlock()
	if end < 0 {
		return 0, false
	}
	return max(end-off, 0), true
}

func (p *partition) readErr() error {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	return p.failed
}

func (p *partition) isGone() bool {
	p.s.mu.Lock()
	defer p.s.mu.Unlock()
	return p.gone
}

// took removes the buffer's first n records, taken; s.mu is held. An
// emptied buffer starts over at the start of its array (bufArr) instead of
// growing a new one, of up to Buffer pointers, each time it empties.
func (p *partition) took(n int) {
	clear(p.buf[:n])
	p.buf = p.buf[n:]
	if len(p.buf) == 0 {
		p.buf = p.bufArr[:0] // every element was cleared as it was taken
	}
}

// dropBuf empties the buffer, its records unread; s.mu is held.
func (p *partition) dropBuf() {
	recycle(p.buf)
	p.buf, p.bufRecords = p.bufArr[:0], 0
}

// close marks the partition gone and lets go of its buffer; s.mu is held.
func (p *partition) close() {
	p.gone = true
	p.dropBuf()
	p.buf, p.bufArr = nil, nil
	p.signal()
}

// Close is a no-op: the source owns the partition's fetching.
func (p *partition) Close() error { return nil }

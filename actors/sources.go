package actors

import (
	"math"
	"time"

	"github.com/eddy-stream/eddy/connectors"
)

// sourceTimes follows the latest event time of each stream of a partition
// that reads several (connectors.Merged: each named source, or each Kafka
// partition of them): the partition's event time is the minimum over the
// streams that have not ended, so one stream's records running ahead
// never make another's late.
//
// A stream that delivered no records for the idle timeout (a Kafka
// partition nobody writes to) stops holding it back, as a partition does
// for the node's watermark (node.advanceWatermark), until it delivers
// again.
type sourceTimes struct {
	names  []string
	latest map[string]int64
	ended  map[string]bool
	// active: when each stream last delivered records (or the start);
	// idle: the streams quiet for the idle timeout, as of the last batch
	active map[string]time.Time
	idle   map[string]bool
	// marked: the streams' time moves by markers, never by idleness
	marked bool
}

func newSourceTimes(names []string) *sourceTimes {
	st := &sourceTimes{names: names, latest: map[string]int64{}, ended: map[string]bool{},
		active: map[string]time.Time{}, idle: map[string]bool{}}
	now := time.Now()
	for _, n := range names {
		st.active[n] = now
	}
	return st
}

// delivered notes that stream delivered n records at now, and which
// streams have been quiet for longer than timeout.
func (st *sourceTimes) delivered(stream string, n int, now time.Time, timeout time.Duration) {
	if n > 0 {
		st.active[stream] = now
	}
	if st.marked {
		return
	}
	for _, name := range st.names {
		st.idle[name] = now.Sub(st.active[name]) > timeout
	}
}

// mark applies a batch's event-time markers (connectors.Batch.Marks): a
// marker is news from its stream, as a record is.
func (st *sourceTimes) mark(marks map[string]int64, now time.Time) {
	for stream, t := range marks {
		if l, ok := st.latest[stream]; !ok || t > l {
			st.latest[stream] = t
		}
		st.active[stream] = now
		st.idle[stream] = false
	}
}

// now is the partition's event time: the minimum of the live sources'
// latest, not timed while one of them has delivered none.
func (st *sourceTimes) now() (int64, bool) {
	mt, timed := int64(math.MaxInt64), false
	for _, n := range st.names {
		if st.ended[n] || st.idle[n] {
			continue
		}
		t, ok := st.latest[n]
		if !ok {
			return 0, false
		}
		mt, timed = min(mt, t), true
	}
	return mt, timed
}

// stampSources is watermarkAfter for a batch of a named source: it stamps
// each keyed record with the partition's watermark just before it and
// returns the watermark after the batch, leaving the partition's event
// time in w for its status.
func (s *PartitionSupervisor) stampSources(w *worked, b *connectors.Batch) int64 {
	if s.srcTimes == nil {
		s.srcTimes = newSourceTimes(s.streams())
		s.srcTimes.marked = s.marked()
	}
	st := s.srcTimes
	ooo := s.e.cfg.Pipeline.Watermark.OutOfOrder.Milliseconds()
	stream := b.Stream
	if stream == "" {
		stream = b.Source
	}
	if b.SourceEnded {
		st.ended[stream] = true
	}
	n := len(b.Records)
	st.delivered(stream, n, time.Now(), s.e.cfg.Pipeline.Watermark.IdleTimeout)
	times := make([]int64, n)
	has := make([]bool, n)
	for sh, rows := range w.perShard {
		for j := range rows {
			times[w.perIdx[sh][j]], has[w.perIdx[sh][j]] = rows[j].Time, true
		}
	}
	marks := make([]int64, n)
	for i, t := range times {
		marks[i] = math.MinInt64
		if mt, ok := st.now(); ok {
			marks[i] = mt - ooo
		}
		if l, ok := st.latest[stream]; has[i] && (!ok || t > l) {
			st.latest[stream] = t
		}
	}
	for sh, rows := range w.perShard {
		for j := range rows {
			rows[j].Watermark = marks[w.perIdx[sh][j]]
		}
	}
	st.mark(b.Marks, time.Now())
	mt, ok := st.now()
	w.maxTime, w.timed = mt, ok
	if !ok {
		return math.MinInt64
	}
	return mt - ooo
}

// streams names the partition's streams: a Merged's, else the pipeline's
// sources.
func (s *PartitionSupervisor) streams() []string {
	if m, ok := s.part.(interface{ Streams() []string }); ok && len(m.Streams()) > 0 {
		return m.Streams()
	}
	return s.e.cfg.Pipeline.SourceNames()
}

// marked says the partition's streams move their event time by markers
// (a repartition topic's: connectors.Batch.Marks): none of them is ever
// idle, since a quiet one may be an upstream partition moving to another
// node, whose records would be late if the event time went on without it.
func (s *PartitionSupervisor) marked() bool {
	m, ok := s.part.(interface{ Marked() bool })
	return ok && m.Marked()
}

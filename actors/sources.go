package actors

import (
	"math"

	"github.com/eddy-stream/eddy/connectors"
)

// sourceTimes follows each named source's latest event time in a
// partition that reads several (connectors.Merged): the partition's event
// time is the minimum over the sources that have not ended, so one
// source's records running ahead never make another's late.
type sourceTimes struct {
	names  []string
	latest map[string]int64
	ended  map[string]bool
}

func newSourceTimes(names []string) *sourceTimes {
	return &sourceTimes{names: names, latest: map[string]int64{}, ended: map[string]bool{}}
}

// now is the partition's event time: the minimum of the live sources'
// latest, not timed while one of them has delivered none.
func (st *sourceTimes) now() (int64, bool) {
	mt, timed := int64(math.MaxInt64), false
	for _, n := range st.names {
		if st.ended[n] {
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
		s.srcTimes = newSourceTimes(s.e.cfg.Pipeline.SourceNames())
	}
	st := s.srcTimes
	ooo := s.e.cfg.Pipeline.Watermark.OutOfOrder.Milliseconds()
	if b.SourceEnded {
		st.ended[b.Source] = true
	}
	n := len(b.Records)
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
		if l, ok := st.latest[b.Source]; has[i] && (!ok || t > l) {
			st.latest[b.Source] = t
		}
	}
	for sh, rows := range w.perShard {
		for j := range rows {
			rows[j].Watermark = marks[w.perIdx[sh][j]]
		}
	}
	mt, ok := st.now()
	w.maxTime, w.timed = mt, ok
	if !ok {
		return math.MinInt64
	}
	return mt - ooo
}

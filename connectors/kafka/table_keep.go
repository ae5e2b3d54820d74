package kafka

import (
	"errors"
	"fmt"
	"time"

	"github.com/eddy-stream/eddy/state"
)

// A kept table lives in the directory KeepIn named (eddy run's is
// STATE/tables/LOOKUP, see scripting.KeepTablesIn). What it stored is used
// only when it checks out against the topic as it is now; otherwise it is
// removed and read again from the topic's start, with a warning saying
// why (the topic is the table's truth, so starting over loses nothing but
// time). It is read again when:
//   - its files are damaged, or its rows don't add up to the count and
//     digest its positions were written with (state.ErrDamaged);
//   - it was read from another cluster or another topic of that name (one
//     deleted and made again: its topic ID differs);
//   - a stored position is past the partition's end, or before its log
//     start offset (records were deleted unread), or names a partition the
//     topic no longer has;
//   - it was last written longer ago than the topic's delete.retention.ms:
//     Kafka may have removed tombstones it never read, and rows they
//     deleted would stay.

// openKept opens the table's kept rows, read afresh when what is stored
// does not check out.
func (t *Table) openKept(info topicInfo) (*keptRows, error) {
	dir := t.dir
	source := tableSource(info, t.topic)
	store, err := state.OpenTable(dir, t.log)
	if err == nil {
		if why := stale(store.Meta(), info, source); why != "" {
			store.Close()
			err = errors.New(why)
		}
	} else if !errors.Is(err, state.ErrDamaged) {
		return nil, err
	}
	if err != nil {
		t.log.Warn("kafka table: reading the table again from the topic's start instead of using what is stored", "topic", t.topic, "dir", dir, "why", err.Error())
		if store, err = fresh(dir); err != nil {
			return nil, err
		}
	}
	if m := store.Meta(); m.Source == "" {
		if err := store.SetSource(source); err != nil {
			store.Close()
			return nil, err
		}
	} else {
		t.log.Info("kafka table: reading the topic after the stored table", "topic", t.topic, "dir", dir, "rows", m.Rows, "positions", m.Positions)
	}
	return &keptRows{topic: t.topic, store: store, cache: newRowCache(t.cacheRows)}, nil
}

// fresh removes the table in dir and opens it empty.
func fresh(dir string) (*state.Table, error) {
	if err := state.RemoveTable(dir); err != nil {
		return nil, err
	}
	return state.OpenTable(dir, nil)
}

// tableSource names the topic a table is read from: its cluster, name and ID.
func tableSource(info topicInfo, topic string) string {
	return fmt.Sprintf("cluster %s topic %s id %s", info.cluster, topic, info.id)
}

// stale says why the stored table m can't be used with the topic as info
// describes it, or "" when it can.
func stale(m state.TableMeta, info topicInfo, source string) string {
	if m.Source == "" {
		if len(m.Positions) > 0 || m.Rows > 0 {
			return "the stored table does not say which topic it was read from"
		}
		return ""
	}
	if m.Source != source {
		return fmt.Sprintf("the stored table was read from %s, not from %s (another cluster, or a topic deleted and made again)", m.Source, source)
	}
	for p, pos := range m.Positions {
		start, ok := info.starts[p]
		high := info.highs[p]
		switch {
		case !ok:
			return fmt.Sprintf("the stored table has read partition %d, which the topic does not have", p)
		case pos > high:
			return fmt.Sprintf("the stored table has read partition %d to offset %d, past its end %d (a topic deleted and made again?)", p, pos, high)
		case pos < start:
			return fmt.Sprintf("the stored table has read partition %d to offset %d, before its log start offset %d: records it never read were deleted", p, pos, start)
		}
	}
	if info.deleteRetention > 0 && !m.Time.IsZero() && time.Since(m.Time) > info.deleteRetention {
		return fmt.Sprintf("the stored table was last written %s ago, longer than the topic's delete.retention.ms (%s): Kafka may have removed tombstones it never read",
			time.Since(m.Time).Round(time.Second), info.deleteRetention)
	}
	return ""
}

// Package clustertest has a fake node engine for the tests of the cluster
// and of its HTTP face.
package clustertest

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/eddy-stream/eddy/actors"
	"github.com/eddy-stream/eddy/connectors"
)

// Words is a node that reads one partition and counts words: its share is
// one "word=count" line a word, and Merge sums the counts of each word over
// the shares, as a cluster merges the partials of its nodes.
type Words struct {
	Partition string
	Counts    map[string]int
	// Fail, when set, is every call's answer; NoTable makes Share and
	// Merge answer actors.ErrNoResultTable.
	Fail    error
	NoTable bool
	// All names every partition of the source, as a Kafka source does
	// (nil: the source doesn't say).
	All []string
	// Restoring: the partition is restoring from its changelog (Restored
	// of ToRestore changes read), so the share doesn't hold it.
	Restoring           bool
	Restored, ToRestore int64
}

func (w *Words) partition() actors.PartitionStatus {
	return actors.PartitionStatus{ID: w.Partition, Position: "offset 7", CaughtUp: !w.Restoring,
		Restoring: w.Restoring, Restored: w.Restored, ToRestore: w.ToRestore}
}

// Status implements cluster.Local.
func (w *Words) Status(context.Context) (actors.Status, error) {
	if w.Fail != nil {
		return actors.Status{}, w.Fail
	}
	return actors.Status{Pipeline: "wordcount", Partitions: []actors.PartitionStatus{w.partition()},
		StateBytes: 1 << 20}, nil
}

// Share implements cluster.Local.
func (w *Words) Share(_ context.Context, key string) (actors.Share, error) {
	switch {
	case w.Fail != nil:
		return actors.Share{}, w.Fail
	case w.NoTable:
		return actors.Share{}, actors.ErrNoResultTable
	}
	var b strings.Builder
	for k, n := range w.Counts {
		if (key == "" || k == key) && !w.Restoring {
			fmt.Fprintf(&b, "%s=%d\n", k, n)
		}
	}
	cover := actors.Cover{Partitions: []actors.PartitionStatus{w.partition()}, All: w.All}
	if !w.Restoring {
		cover.Held = []string{w.Partition}
	}
	return actors.Share{Data: []byte(b.String()), Cover: cover}, nil
}

// Merge implements cluster.Local.
func (w *Words) Merge(_ context.Context, key string, shares [][]byte) ([]connectors.Row, error) {
	if w.NoTable {
		return nil, actors.ErrNoResultTable
	}
	sum := map[string]int64{}
	for _, s := range shares {
		for _, line := range strings.Fields(string(s)) {
			k, v, _ := strings.Cut(line, "=")
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return nil, fmt.Errorf("bad share line %q", line)
			}
			sum[k] += n
		}
	}
	var rows []connectors.Row
	for k, n := range sum {
		rows = append(rows, connectors.Row{Key: k, Fields: []connectors.Field{{Name: "word", Value: k}, {Name: "count", Value: n}}})
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].Key < rows[j].Key })
	return rows, nil
}

// State implements statusapi.Local: this node's own table, incomplete
// as a node's State is when its share doesn't cover every partition.
func (w *Words) State(ctx context.Context, key string) ([]connectors.Row, error) {
	s, err := w.Share(ctx, key)
	if err != nil {
		return nil, err
	}
	rows, err := w.Merge(ctx, key, [][]byte{s.Data})
	if err != nil {
		return nil, err
	}
	return rows, actors.Completeness([]actors.Cover{s.Cover})
}

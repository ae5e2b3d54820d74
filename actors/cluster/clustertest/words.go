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
}

// Status implements cluster.Local.
func (w *Words) Status(context.Context) (actors.Status, error) {
	if w.Fail != nil {
		return actors.Status{}, w.Fail
	}
	return actors.Status{Pipeline: "wordcount", Partitions: []actors.PartitionStatus{{ID: w.Partition, Position: "offset 7", CaughtUp: true}},
		StateBytes: 1 << 20}, nil
}

// Share implements cluster.Local.
func (w *Words) Share(_ context.Context, key string) ([]byte, error) {
	switch {
	case w.Fail != nil:
		return nil, w.Fail
	case w.NoTable:
		return nil, actors.ErrNoResultTable
	}
	var b strings.Builder
	for k, n := range w.Counts {
		if key == "" || k == key {
			fmt.Fprintf(&b, "%s=%d\n", k, n)
		}
	}
	return []byte(b.String()), nil
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

// State implements statusapi.Local: this node's own table.
func (w *Words) State(ctx context.Context, key string) ([]connectors.Row, error) {
	s, err := w.Share(ctx, key)
	if err != nil {
		return nil, err
	}
	return w.Merge(ctx, key, [][]byte{s})
}

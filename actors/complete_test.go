package actors

import (
	"errors"
	"strings"
	"testing"
)

func TestCompleteness(t *testing.T) {
	ps := func(ids ...string) []PartitionStatus {
		var out []PartitionStatus
		for _, id := range ids {
			out = append(out, PartitionStatus{ID: id})
		}
		return out
	}
	restoring := func(id string, done, total int64) PartitionStatus {
		return PartitionStatus{ID: id, Restoring: true, Restored: done, ToRestore: total}
	}
	all := []string{"k:t/0", "k:t/1", "k:t/2", "k:t/10"}
	for _, tc := range []struct {
		name        string
		covers      []Cover
		errContains string // "" for complete
	}{
		{name: "one node, no list of partitions", covers: []Cover{{Held: []string{"f:a", "f:b"}, Partitions: ps("f:a", "f:b")}}},
		{name: "every partition on some node", covers: []Cover{
			{Held: []string{"k:t/0", "k:t/10"}, Partitions: ps("k:t/0", "k:t/10"), All: all},
			{Held: []string{"k:t/1", "k:t/2"}, Partitions: ps("k:t/1", "k:t/2"), All: all}}},
		{name: "held, then revoked before the status", covers: []Cover{
			{Held: []string{"k:t/0", "k:t/1", "k:t/2", "k:t/10"}, Partitions: ps("k:t/0"), All: all}}},
		{name: "restoring", covers: []Cover{
			{Held: []string{"k:t/0", "k:t/1"}, Partitions: append(ps("k:t/0", "k:t/1"), restoring("k:t/10", 20000, 500000)), All: all},
			{Partitions: []PartitionStatus{restoring("k:t/2", 100000, 500000)}, All: all}},
			errContains: "partitions k:t/2, k:t/10 are restoring (120000 of 1000000 changes)"},
		{name: "restoring, its size not known yet", covers: []Cover{{Partitions: []PartitionStatus{restoring("f:a", 0, 0)}}},
			errContains: "the answer is incomplete: partition f:a is restoring"},
		{name: "restarted: held but restoring again", covers: []Cover{{Held: []string{"f:a"}, Partitions: []PartitionStatus{restoring("f:a", 1, 2)}}},
			errContains: "partition f:a is restoring (1 of 2 changes)"},
		{name: "no owner", covers: []Cover{{Held: []string{"k:t/0", "k:t/1"}, Partitions: ps("k:t/0", "k:t/1"), All: all}},
			errContains: "partitions k:t/2, k:t/10 have no owner in the cluster (a rebalance is under way)"},
		{name: "one without an owner", covers: []Cover{{Held: []string{"k:t/0", "k:t/1", "k:t/2"}, Partitions: ps("k:t/0"), All: all}},
			errContains: "the answer is incomplete: partition k:t/10 has no owner in the cluster"},
		{name: "assigned, not in the table yet", covers: []Cover{{Held: []string{"f:a"}, Partitions: ps("f:a", "f:b")}},
			errContains: "partition f:b is starting (not in the result table yet)"},
		{name: "held by two nodes", covers: []Cover{
			{Held: []string{"k:t/0", "k:t/1"}, Partitions: ps("k:t/0"), All: all, Moves: true},
			{Held: []string{"k:t/1", "k:t/2", "k:t/10"}, Partitions: ps("k:t/1", "k:t/2", "k:t/10"), All: all, Moves: true}},
			errContains: "partition k:t/1 is held by two nodes (moving between them)"},
		{name: "held by two nodes without a changelog: each counted a part", covers: []Cover{
			{Held: []string{"k:t/0", "k:t/1"}, Partitions: ps("k:t/0"), All: all},
			{Held: []string{"k:t/1", "k:t/2", "k:t/10"}, Partitions: ps("k:t/1", "k:t/2", "k:t/10"), All: all}}},
		{name: "files read by two nodes each", covers: []Cover{
			{Held: []string{"dir:x"}, Partitions: ps("dir:x")}, {Held: []string{"dir:x"}, Partitions: ps("dir:x")}}},
		{name: "several causes", covers: []Cover{{Held: []string{"k:t/0"}, Partitions: append(ps("k:t/0", "k:t/1"), restoring("k:t/2", 0, 9)), All: all}},
			errContains: "partition k:t/2 is restoring (0 of 9 changes); partition k:t/1 is starting (not in the result table yet); partition k:t/10 has no owner"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := Completeness(tc.covers)
			var inc *IncompleteError
			switch {
			case tc.errContains == "" && err != nil:
				t.Fatalf("incomplete: %v", err)
			case tc.errContains == "":
			case !errors.As(err, &inc) || !errors.Is(err, ErrIncomplete):
				t.Fatalf("got %v, want an *IncompleteError", err)
			case !strings.Contains(err.Error(), tc.errContains):
				t.Fatalf("got %q, want it to contain %q", err, tc.errContains)
			}
		})
	}
}

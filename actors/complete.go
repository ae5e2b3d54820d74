package actors

import (
	"cmp"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
)

// Cover says which partitions one node's answer to a query of the result
// table holds, so that an answer missing some (a partition restoring from
// its changelog, or between owners in a rebalance) is told apart from a
// whole one.
type Cover struct {
	// Held are the partitions whose whole state the answer holds.
	Held []string `json:"held,omitempty"`
	// Partitions are the node's partitions as its status had them right
	// after it answered: restoring ones are marked.
	Partitions []PartitionStatus `json:"partitions,omitempty"`
	// All names every partition of the source, on every node, when the
	// source can say (connectors.PartitionLister; Kafka): nil for sources
	// whose partitions all go to the one node.
	All []string `json:"all,omitempty"`
	// Moves: the node's partitions take their state along when they move
	// to another node (it runs with a changelog), so a partition held by
	// two such nodes is counted twice. Without a changelog a moved
	// partition's rows stay where they were counted, and the new owner
	// counts on from there: both hold a part of it.
	Moves bool `json:"moves,omitempty"`
}

// Share is one node's share of the result table (Handle.Share): the
// partial accumulators of its partitions, opaque outside the engine, and
// what they cover.
type Share struct {
	Data []byte `json:"data,omitempty"`
	Cover
}

// ErrIncomplete is what an *IncompleteError is (errors.Is).
var ErrIncomplete = errors.New("the answer is incomplete")

// IncompleteError is the error of a query whose answer misses part of the
// result table. The rows returned with it are the partial answer: a caller
// that asked for one explicitly may show them, saying they are partial.
type IncompleteError struct {
	// Reasons say which partitions are missing and why, one a cause.
	Reasons []string
}

func (e *IncompleteError) Error() string {
	return "the answer is incomplete: " + strings.Join(e.Reasons, "; ")
}

// Is makes errors.Is(err, ErrIncomplete) hold.
func (e *IncompleteError) Is(target error) bool { return target == ErrIncomplete }

// Completeness checks that the answers of covers (one a node, every node
// that answered) hold the state of every partition of the source once: it
// returns nil when they do, else an *IncompleteError naming the partitions
// missing and why.
func Completeness(covers []Cover) error {
	held, moving := map[string]int{}, map[string]int{}
	owned := map[string]bool{}
	restoring := map[string]PartitionStatus{}
	all := map[string]bool{}
	for _, c := range covers {
		for _, id := range c.Held {
			held[id]++
			if c.Moves {
				moving[id]++
			}
		}
		for _, p := range c.Partitions {
			owned[p.ID] = true
			if p.Restoring {
				restoring[p.ID] = p
			}
		}
		for _, id := range c.All {
			all[id] = true
		}
	}
	var restoringIDs, twice, starting, ownerless []string
	var restored, toRestore int64
	ids := append(append(slices.Collect(maps.Keys(all)), slices.Collect(maps.Keys(owned))...), slices.Collect(maps.Keys(held))...)
	for _, id := range sortedIDs(ids) {
		switch p, isRestoring := restoring[id]; {
		case isRestoring:
			restoringIDs = append(restoringIDs, id)
			restored, toRestore = restored+p.Restored, toRestore+p.ToRestore
		case moving[id] > 1:
			twice = append(twice, id)
		case held[id] > 0:
		case owned[id]:
			starting = append(starting, id)
		default:
			ownerless = append(ownerless, id)
		}
	}
	var reasons []string
	switch {
	case len(restoringIDs) > 0 && toRestore > 0:
		reasons = append(reasons, fmt.Sprintf("%s restoring (%d of %d changes)", partitions(restoringIDs), restored, toRestore))
	case len(restoringIDs) > 0:
		reasons = append(reasons, partitions(restoringIDs)+" restoring")
	}
	if len(starting) > 0 {
		reasons = append(reasons, partitions(starting)+" starting (not in the result table yet)")
	}
	if len(ownerless) > 0 {
		what, verb := partitions(ownerless), "have"
		if len(ownerless) == 1 {
			verb = "has"
		}
		what = strings.TrimSuffix(strings.TrimSuffix(what, " are"), " is")
		reasons = append(reasons, fmt.Sprintf("%s %s no owner in the cluster (a rebalance is under way)", what, verb))
	}
	if len(twice) > 0 {
		reasons = append(reasons, partitions(twice)+" held by two nodes (moving between them)")
	}
	if len(reasons) == 0 {
		return nil
	}
	return &IncompleteError{Reasons: reasons}
}

// partitions names ids with their verb: "partition x is", "partitions
// x, y are".
func partitions(ids []string) string {
	if len(ids) == 1 {
		return "partition " + ids[0] + " is"
	}
	return "partitions " + strings.Join(ids, ", ") + " are"
}

// sortedIDs lists the partition IDs of ids, sorted by name, then by
// number (kafka:flows/2 before kafka:flows/10), once each.
func sortedIDs(ids []string) []string {
	slices.SortFunc(ids, func(a, b string) int {
		ia, ib := strings.LastIndexByte(a, '/'), strings.LastIndexByte(b, '/')
		if ia >= 0 && ib >= 0 && a[:ia] == b[:ib] {
			na, ea := strconv.Atoi(a[ia+1:])
			nb, eb := strconv.Atoi(b[ib+1:])
			if ea == nil && eb == nil {
				return cmp.Compare(na, nb)
			}
		}
		return strings.Compare(a, b)
	})
	return slices.Compact(ids)
}

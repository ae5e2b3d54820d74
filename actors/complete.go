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
	var t tally
	t.add(covers)
	var m missing
	for _, id := range t.ids() {
		switch p, restoring := t.restoring[id]; {
		case restoring:
			m.restoring = append(m.restoring, id)
			m.restored, m.toRestore = m.restored+p.Restored, m.toRestore+p.ToRestore
		case t.moving[id] > 1:
			m.twice = append(m.twice, id)
		case t.held[id] > 0:
		case t.owned[id]:
			m.starting = append(m.starting, id)
		default:
			m.ownerless = append(m.ownerless, id)
		}
	}
	if reasons := m.reasons(); len(reasons) > 0 {
		return &IncompleteError{Reasons: reasons}
	}
	return nil
}

// tally is what the covers of one answer say of each partition.
type tally struct {
	held, moving map[string]int // shares holding it (moving: of nodes with a changelog)
	owned, all   map[string]bool
	restoring    map[string]PartitionStatus
}

func (t *tally) add(covers []Cover) {
	t.held, t.moving = map[string]int{}, map[string]int{}
	t.owned, t.all = map[string]bool{}, map[string]bool{}
	t.restoring = map[string]PartitionStatus{}
	for _, c := range covers {
		for _, id := range c.Held {
			t.held[id]++
			if c.Moves {
				t.moving[id]++
			}
		}
		for _, p := range c.Partitions {
			t.owned[p.ID] = true
			if p.Restoring {
				t.restoring[p.ID] = p
			}
		}
		for _, id := range c.All {
			t.all[id] = true
		}
	}
}

// ids lists every partition the covers name, sorted.
func (t *tally) ids() []string {
	ids := slices.Collect(maps.Keys(t.all))
	ids = append(ids, slices.Collect(maps.Keys(t.owned))...)
	ids = append(ids, slices.Collect(maps.Keys(t.held))...)
	return sortedIDs(ids)
}

// missing are the partitions an answer misses, by cause.
type missing struct {
	restoring, starting, ownerless, twice []string
	restored, toRestore                   int64
}

// reasons says what is missing, one sentence a cause.
func (m *missing) reasons() []string {
	var reasons []string
	switch {
	case len(m.restoring) > 0 && m.toRestore > 0:
		reasons = append(reasons, fmt.Sprintf("%s restoring (%d of %d changes)", partitions(m.restoring), m.restored, m.toRestore))
	case len(m.restoring) > 0:
		reasons = append(reasons, partitions(m.restoring)+" restoring")
	}
	if len(m.starting) > 0 {
		reasons = append(reasons, partitions(m.starting)+" starting (not in the result table yet)")
	}
	if len(m.ownerless) > 0 {
		what, verb := "partitions "+strings.Join(m.ownerless, ", "), "have"
		if len(m.ownerless) == 1 {
			what, verb = "partition "+m.ownerless[0], "has"
		}
		reasons = append(reasons, fmt.Sprintf("%s %s no owner in the cluster (a rebalance is under way)", what, verb))
	}
	if len(m.twice) > 0 {
		reasons = append(reasons, partitions(m.twice)+" held by two nodes (moving between them)")
	}
	return reasons
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

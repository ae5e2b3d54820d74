package actors

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/scripting"
	"github.com/eddy-stream/eddy/state"
)

// Handle lets a running pipeline be asked about itself: its status and its
// live result table. Config.OnReady hands one out when the run starts; the
// CLI serves it over HTTP (eddy run --http).
type Handle struct{ e *engine }

// Status is what `eddy status` shows of one node.
type Status struct {
	Pipeline   string            `json:"pipeline"`
	Node       string            `json:"node,omitempty"`
	Partitions []PartitionStatus `json:"partitions"`
	Read       int64             `json:"records_read"`
	Kept       int64             `json:"records_kept"`
	Failed     int64             `json:"records_failed"`
	Late       int64             `json:"records_late"`
	Watermark  string            `json:"watermark,omitempty"`
	Checkpoint *CheckpointStatus `json:"last_checkpoint,omitempty"`
	StateBytes int64             `json:"state_bytes"`
	// Standbys are the partitions of other nodes this one keeps warm
	// copies of (eddy run --standby).
	Standbys []string `json:"standbys,omitempty"`
	// Script is which version of the script runs, and its reloads.
	Script *ScriptStatus `json:"script,omitempty"`
}

// PartitionStatus is one assigned partition.
type PartitionStatus struct {
	ID       string `json:"id"`
	Position string `json:"position,omitempty"`
	// Lag is the records between Position and the partition's end, when
	// the source knows it (Kafka: the last stable offset).
	Lag      *int64 `json:"lag,omitempty"`
	CaughtUp bool   `json:"caught_up"`
	Ended    bool   `json:"ended"`
	// Restoring: reading its changelog before its records; Restored of
	// ToRestore changes so far.
	Restoring bool  `json:"restoring,omitempty"`
	Restored  int64 `json:"restored,omitempty"`
	ToRestore int64 `json:"to_restore,omitempty"`
	// Offset is Position as a number, when the source numbers its
	// positions (Kafka offsets, generator records).
	Offset *int64 `json:"offset,omitempty"`
}

// CheckpointStatus is the last complete checkpoint.
type CheckpointStatus struct {
	ID   uint64    `json:"id"`
	Time time.Time `json:"time"`
	Keys int64     `json:"keys"`
}

const queryTimeout = 5 * time.Second

// tableTimeout bounds how long State and Merge wait for the result table.
// Longer than queryTimeout: shaping a table of a few hundred thousand rows
// can take the emitter more than 5 s on a loaded machine, and an answer
// waited for less than that is thrown away, again and again (after a
// 300k-key restore under load, GET /state answered 'busy' for minutes).
const tableTimeout = 30 * time.Second

// ErrNoResultTable is returned by State for pipelines without an aggregate.
var ErrNoResultTable = errors.New("the pipeline keeps no result table (it has no aggregate)")

// Status asks the node how it stands.
func (h *Handle) Status(ctx context.Context) (Status, error) {
	res, err := h.e.system.Root.RequestFuture(h.e.node, &statusQuery{}, queryTimeout).Result()
	if err != nil {
		return Status{}, fmt.Errorf("status: %w", err)
	}
	st := res.(Status)
	cfg := h.e.cfg
	st.Pipeline, st.Node = cfg.Pipeline.Name, cfg.Node
	st.Read, st.Kept, st.Failed, st.Late = cfg.Stats.Read.Load(), cfg.Stats.Kept.Load(), cfg.Stats.Failed.Load(), cfg.Stats.Late.Load()
	if cfg.Pipeline.HasEventTime() {
		if wm := cfg.Stats.Watermark.Load(); wm != 0 {
			st.Watermark = scripting.FormatTime(wm)
		}
	}
	if cp, err := cfg.Store.Last(); err == nil {
		st.Checkpoint = &CheckpointStatus{ID: cp.ID, Time: cp.Time, Keys: cp.Keys}
	} else if !errors.Is(err, state.ErrNoCheckpoint) {
		return st, err
	}
	st.StateBytes = cfg.Store.Size()
	if ids := h.e.standbys.Load(); ids != nil {
		st.Standbys = *ids
	}
	return st, nil
}

// State returns the current result rows of key (every window of it, for a
// windowed pipeline), or with key "" the whole result table, shaped as a
// complete emit would (order_by, limit). Rows are as of the last trigger.
// When the table misses a partition's state (restoring from its changelog,
// not yet assigned), the rows come with an *IncompleteError saying which.
func (h *Handle) State(ctx context.Context, key string) ([]connectors.Row, error) {
	if h.e.emitter == nil {
		return nil, ErrNoResultTable
	}
	all, err := h.allPartitions(ctx)
	if err != nil {
		return nil, err
	}
	res, err := h.e.system.Root.RequestFuture(h.e.emitter, &stateQuery{key: key, deadline: time.Now().Add(tableTimeout)}, tableTimeout).Result()
	if err != nil {
		return nil, fmt.Errorf("state: %w", busy(err, tableTimeout))
	}
	a := res.(*stateAnswer)
	if a.err != nil {
		return nil, a.err
	}
	parts, err := h.partitions()
	if err != nil {
		return nil, err
	}
	return a.rows, Completeness([]Cover{{Held: a.held, Partitions: parts, All: all}})
}

// Share returns this node's share of the result table for key ("" for
// every key): the partial accumulators of the partitions it owns, merged,
// one JSON line a state key, and which partitions they cover. Merge turns
// the shares of every node of a cluster into the rows State would answer
// on a single node; Completeness tells whether their covers are whole.
func (h *Handle) Share(ctx context.Context, key string) (Share, error) {
	if h.e.emitter == nil {
		return Share{}, ErrNoResultTable
	}
	all, err := h.allPartitions(ctx)
	if err != nil {
		return Share{}, err
	}
	res, err := h.e.system.Root.RequestFuture(h.e.emitter, &shareQuery{key: key, deadline: time.Now().Add(queryTimeout)}, queryTimeout).Result()
	if err != nil {
		return Share{}, fmt.Errorf("share: %w", busy(err, queryTimeout))
	}
	a := res.(*shareAnswer)
	if a.err != nil {
		return Share{}, a.err
	}
	// The node's partitions right after the share: a partition that moved
	// in meanwhile shows as not held, one that started restoring as such.
	parts, err := h.partitions()
	if err != nil {
		return Share{}, err
	}
	return Share{Data: a.share, Cover: Cover{Held: a.held, Partitions: parts, All: all, Moves: h.e.cfg.Changelog != nil}}, nil
}

// allPartitions names every partition of the source when it can say
// (connectors.PartitionLister), else nil.
func (h *Handle) allPartitions(ctx context.Context) ([]string, error) {
	l, ok := h.e.cfg.Source.(connectors.PartitionLister)
	if !ok {
		return nil, nil
	}
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	defer cancel()
	ids, err := l.AllPartitions(ctx)
	if err != nil {
		return nil, fmt.Errorf("the source's partitions: %w", err)
	}
	return ids, nil
}

// partitions is the node's partitions as its status lists them.
func (h *Handle) partitions() ([]PartitionStatus, error) {
	res, err := h.e.system.Root.RequestFuture(h.e.node, &statusQuery{}, queryTimeout).Result()
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	return res.(Status).Partitions, nil
}

// Merge merges shares (from Share, on every node) into result rows for key
// ("" for the whole table, shaped by order_by and limit).
func (h *Handle) Merge(ctx context.Context, key string, shares [][]byte) ([]connectors.Row, error) {
	if h.e.emitter == nil {
		return nil, ErrNoResultTable
	}
	res, err := h.e.system.Root.RequestFuture(h.e.emitter, &mergeQuery{key: key, shares: shares, deadline: time.Now().Add(tableTimeout)}, tableTimeout).Result()
	if err != nil {
		return nil, fmt.Errorf("merge: %w", busy(err, tableTimeout))
	}
	a := res.(*stateAnswer)
	return a.rows, a.err
}

// status answers a statusQuery in the node.
func (n *node) status(ctx actor.Context) {
	st := Status{}
	for _, id := range n.partitionIDs() {
		p := n.parts[id]
		ps := PartitionStatus{ID: id, CaughtUp: p.status.caughtUp, Ended: p.status.ended,
			Restoring: p.restoring, Restored: p.restored, ToRestore: p.toRestore}
		if pos := n.positions[id]; pos != nil {
			ps.Position = p.part.Describe(pos)
			if o, ok := p.part.(connectors.Offsetter); ok {
				if off, ok := o.Offset(pos); ok {
					ps.Offset = &off
				}
			}
			if l, ok := p.part.(connectors.Lagger); ok {
				if lag, ok := l.Lag(pos); ok {
					ps.Lag = &lag
				}
			}
		}
		st.Partitions = append(st.Partitions, ps)
	}
	st.Script = n.scriptStatus()
	ctx.Respond(st)
}

// busy says what a query's timeout means: the emitter is at work (taking
// in a restored partition's table, emitting a trigger's rows).
func busy(err error, waited time.Duration) error {
	if errors.Is(err, actor.ErrTimeout) {
		return fmt.Errorf("the result table did not answer within %v (busy; ask again): %w", waited, err)
	}
	return err
}

// gaveUp tells whether the asker of a query with deadline has stopped
// waiting: then the emitter does not answer.
func gaveUp(deadline time.Time) bool { return time.Now().After(deadline) }

// query answers a stateQuery in the emitter.
func (em *Emitter) query(ctx actor.Context, q *stateQuery) {
	if gaveUp(q.deadline) {
		return
	}
	rows, err := em.tableRows(em.table, q.key)
	ctx.Respond(&stateAnswer{rows: rows, held: em.held(), err: err})
}

// tableRows shapes the entries of table matching key ("" for all) as State
// answers.
func (em *Emitter) tableRows(table map[string]*resultEntry, key string) ([]connectors.Row, error) {
	return em.shape(table, matching(table, key, em.e.pipeline().IsWindowed()), key == "")
}

// matching lists the state keys of table whose key is key (every one for
// ""), sorted: a windowed key has one a window.
func matching(table map[string]*resultEntry, key string, windowed bool) []string {
	if key != "" && !windowed {
		// The key's own entry is an unwindowed pipeline's only one (a
		// windowed one's state keys all carry their window), found or
		// not without reading a table of millions.
		if _, ok := table[key]; ok {
			return []string{key}
		}
		return nil
	}
	var keys []string
	for k := range table {
		if key == "" || groupKey(k) == key {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

// share answers a shareQuery: one line a state key, ["key", [keyVals, accs]]
// with the accumulators of this node's partitions merged.
func (em *Emitter) share(ctx actor.Context, q *shareQuery) {
	if gaveUp(q.deadline) {
		return
	}
	var out []byte
	for _, k := range matching(em.table, q.key, em.e.pipeline().IsWindowed()) {
		if raw := em.table[k].raw; raw != nil {
			// a restored row no change has reached: its one part, as
			// encoded, is the share's entry
			out = append(append(append(connectors.AppendValue(append(out, '['), k), ','), raw...), "]\n"...)
			continue
		}
		en := em.table[k]
		accs, err := em.merged(en)
		if err == nil {
			out = append(connectors.AppendValue(append(out, '['), k), ',')
			out, err = em.rt.EncodeEntry(out, en.keyVals, accs)
			out = append(out, "]\n"...)
		}
		if err != nil {
			ctx.Respond(&shareAnswer{err: fmt.Errorf("key %q: %w", k, err)})
			return
		}
	}
	ctx.Respond(&shareAnswer{share: out, held: em.held()})
}

// mergeShares answers a mergeQuery: each share is one node's, so each is
// one partition of the merged table.
func (em *Emitter) mergeShares(ctx actor.Context, q *mergeQuery) {
	if gaveUp(q.deadline) {
		return
	}
	table := map[string]*resultEntry{}
	for n, share := range q.shares {
		node := fmt.Sprintf("node%04d", n)
		for len(share) > 0 {
			line := share
			if i := bytes.IndexByte(share, '\n'); i >= 0 {
				line, share = share[:i], share[i+1:]
			} else {
				share = nil
			}
			if len(bytes.TrimSpace(line)) == 0 {
				continue
			}
			k, entry, err := splitShareLine(line)
			if err != nil {
				ctx.Respond(&stateAnswer{err: fmt.Errorf("share %d: %w", n, err)})
				return
			}
			keyVals, accs, err := em.rt.DecodeEntry(entry)
			if err != nil {
				ctx.Respond(&stateAnswer{err: fmt.Errorf("share %d, key %q: %w", n, k, err)})
				return
			}
			en := table[k]
			if en == nil {
				en = &resultEntry{keyVals: keyVals}
				table[k] = en
			}
			en.parts.set(node, accs)
		}
	}
	rows, err := em.tableRows(table, q.key)
	ctx.Respond(&stateAnswer{rows: rows, err: err})
}

// splitShareLine parses ["key", entry].
func splitShareLine(line []byte) (string, []byte, error) {
	var parts []json.RawMessage
	if err := json.Unmarshal(line, &parts); err != nil || len(parts) != 2 {
		return "", nil, fmt.Errorf("bad share line %.100q", line)
	}
	var k string
	if err := json.Unmarshal(parts[0], &k); err != nil {
		return "", nil, fmt.Errorf("bad share key %.100q", parts[0])
	}
	return k, parts[1], nil
}

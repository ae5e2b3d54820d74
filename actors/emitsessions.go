package actors

import (
	"sort"
	"strconv"
	"time"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/scripting"
)

// Session windows across partitions. Each partition's shards merge a key's
// sessions as its records come, but a key's records can arrive on several
// partitions: each then holds sessions of its own, which may overlap or
// touch those of another. The key's true sessions are the connected
// components of all its partitions' sessions under the gap rule, so the
// emitter merges them: it holds every partition's sessions, open ones too
// (the shards send those even in a final emit), and a merged session fires
// once the pipeline's watermark, the minimum over the partitions, has
// passed its end; every part has fired in its partition by then.

// span is one partition's session of a key, as the emitter holds it.
type span struct {
	start, end int64
	fired      bool
}

// sessionPart names one partition's session in the table.
type sessionPart struct {
	key, partition string // the table's state key, and the partition
	span
}

func (em *Emitter) sessionWindows() bool {
	p := em.e.cfg.Pipeline
	return p.IsWindowed() && p.Window.Kind == "session"
}

func (en *resultEntry) setSpan(partition string, s span) {
	if en.spans == nil {
		en.spans = map[string]span{}
	}
	en.spans[partition] = s
}

// windowStart is the start of a window's state key (key␞start).
func windowStart(stateKey string) int64 {
	start, _ := strconv.ParseInt(stateKey[len(groupKey(stateKey))+len(windowSep):], 10, 64)
	return start
}

// isHeld: the partition's part of table entry key is a window that fired
// and waits for the pipeline's watermark (checkpointed by the emitter, so
// a shard restarting does not resend it).
func (em *Emitter) isHeld(key string, en *resultEntry, partition string) bool {
	if en.spans != nil {
		return en.spans[partition].fired
	}
	_, held := em.fired[key]
	return held
}

// forgetPart removes a partition's part of table entry key.
func (em *Emitter) forgetPart(key, partition string) {
	en := em.table[key]
	if en == nil {
		return
	}
	en.parts.del(partition)
	delete(en.spans, partition)
	em.changed[key] = struct{}{}
	if len(en.parts) == 0 {
		delete(em.table, key)
		delete(em.fired, key)
	}
}

// sessionRows builds a trigger's rows of a session-windowed pipeline: the
// merged sessions of the keys the emit mode calls for.
func (em *Emitter) sessionRows(final bool, watermark int64) ([]connectors.Row, error) {
	p := em.e.cfg.Pipeline
	var want map[string]bool // grouping keys; nil: all
	switch p.Emit {
	case scripting.EmitFinal:
		want = groupsOf(em.fired)
	case scripting.EmitUpdate:
		want = groupsOf(em.changed)
	default: // complete
		if len(em.changed) == 0 {
			return nil, nil
		}
	}
	em.changed = map[string]struct{}{}
	table := map[string]*resultEntry{}
	var done [][]sessionPart
	for group, parts := range em.sessionParts(want) {
		for _, c := range mergeSessions(parts) {
			if p.Emit == scripting.EmitFinal && !(final || allFired(c) && sessionEnd(c) <= watermark) {
				continue
			}
			sk, en, err := em.mergedSession(group, c)
			if err != nil {
				return nil, err
			}
			table[sk] = en
			done = append(done, c)
		}
	}
	if p.Emit == scripting.EmitComplete {
		return em.completeTable(table)
	}
	keys := make([]string, 0, len(table))
	for k := range table {
		keys = append(keys, k)
	}
	rows, err := em.shape(table, keys, p.Emit != scripting.EmitUpdate)
	if err != nil || p.Emit != scripting.EmitFinal {
		return rows, err
	}
	// Each session once: its parts leave the table.
	now := time.Now()
	for _, en := range table {
		if !en.firedBy.IsZero() {
			em.e.cfg.Stats.FireLatency.Observe(now.Sub(en.firedBy))
		}
	}
	for _, c := range done {
		for _, part := range c {
			em.forgetPart(part.key, part.partition)
		}
	}
	em.changed = map[string]struct{}{}
	return rows, nil
}

// groupsOf lists the grouping keys of state keys.
func groupsOf[V any](keys map[string]V) map[string]bool {
	out := make(map[string]bool, len(keys))
	for k := range keys {
		out[groupKey(k)] = true
	}
	return out
}

// sessionParts lists every partition's sessions of the grouping keys in
// want (all when nil), by grouping key.
func (em *Emitter) sessionParts(want map[string]bool) map[string][]sessionPart {
	out := map[string][]sessionPart{}
	if want != nil && len(want) == 0 {
		return out
	}
	for key, en := range em.table {
		group := groupKey(key)
		if want != nil && !want[group] {
			continue
		}
		for _, pa := range en.parts {
			out[group] = append(out[group], sessionPart{key: key, partition: pa.partition, span: en.spans[pa.partition]})
		}
	}
	return out
}

// mergeSessions splits one key's sessions into the sets that overlap or
// touch (the gap rule: a session [s, e) takes a record at e), each ordered
// by start, then partition.
func mergeSessions(parts []sessionPart) [][]sessionPart {
	sort.Slice(parts, func(i, j int) bool {
		if parts[i].start != parts[j].start {
			return parts[i].start < parts[j].start
		}
		return parts[i].partition < parts[j].partition
	})
	var out [][]sessionPart
	var end int64
	for i, s := range parts {
		if i == 0 || s.start > end {
			out = append(out, nil)
			end = s.end
		}
		out[len(out)-1] = append(out[len(out)-1], s)
		end = max(end, s.end)
	}
	return out
}

func allFired(c []sessionPart) bool {
	for _, s := range c {
		if !s.fired {
			return false
		}
	}
	return true
}

func sessionEnd(c []sessionPart) int64 {
	var end int64
	for i, s := range c {
		if i == 0 || s.end > end {
			end = s.end
		}
	}
	return end
}

// mergedSession merges a set of sessions of key group into one entry of
// a table to shape, under its state key.
func (em *Emitter) mergedSession(group string, c []sessionPart) (string, *resultEntry, error) {
	start, end := c[0].start, sessionEnd(c)
	first := em.table[c[0].key]
	firstAccs, _ := first.parts.get(c[0].partition)
	accs, err := em.rt.Portable(firstAccs)
	if err != nil {
		return "", nil, err
	}
	firedBy := first.firedBy
	for _, s := range c[1:] {
		en := em.table[s.key]
		part, _ := en.parts.get(s.partition)
		if err := em.rt.Merge(accs, part); err != nil {
			return "", nil, err
		}
		if !en.firedBy.IsZero() && (firedBy.IsZero() || en.firedBy.Before(firedBy)) {
			firedBy = en.firedBy
		}
	}
	n := len(first.keyVals) - len(scripting.WindowColumns)
	keyVals := append(first.keyVals[:n:n], scripting.FormatTime(start), scripting.FormatTime(end))
	return windowKey(group, start), &resultEntry{keyVals: keyVals, parts: parts{{accs: accs}}, firedBy: firedBy}, nil
}

package actors

import (
	"container/heap"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/scripting"
)

// Emitter keeps the result table: for each key, the partial accumulators
// every partition holds, merged into result rows at each trigger as the
// emit mode asks. Its table is derived state: shards resend theirs after a
// restore, so it is never checkpointed.
type Emitter struct {
	e     *engine
	rt    *scripting.Runtime
	table map[string]*resultEntry
	// tableRoom: the keys table was last made to hold (see room)
	tableRoom int
	// rawChunk: where newRaw takes the next raw entry from
	rawChunk []resultEntry
	// changed: the keys whose rows changed since the last trigger, for
	// the emit modes that read them (markChanged)
	changed map[string]struct{}
	shards  int
	// saved: the held-window keys the last checkpoint wrote; gone:
	// those of partitions that left this node with their state, to delete
	// from the store only (the changelog has them for the next owner)
	saved, gone map[string]bool
	// unsettled: the held-window keys each save deleted, by epoch, until
	// a checkpoint at or after it completes. A checkpoint aborted after
	// the save loses them (completing the next hides its writes:
	// state.Complete), so the next save deletes them again.
	unsettled map[uint64]heldDeletes
	// restoring: partitions whose held windows are still coming from their
	// changelog
	restoring map[string]bool
	// sent: for each partition, the shards that have sent their whole
	// table (a reset) since the partition came to this node; the table
	// holds the partition's state once all have (see held)
	sent map[string]map[int]bool
	// drops: windows to forget once this trigger's rows are out
	drops []dropped
	// fired: windows that fired in some partition, by end, for final mode:
	// they are emitted once the pipeline's watermark passes their end, when
	// every partition has fired them.
	fired map[string]int64
	// oldestRead: when the oldest batch folded into the rows of this
	// trigger left its source (zero: none, or windows emitted final)
	oldestRead time.Time
	// tables: the complete-mode tables emitted so far; each row of one
	// carries its number in TriggerColumn
	tables int64
}

// TriggerColumn is the field every row of a complete-mode table carries:
// the table's number in this run (1, 2, …), so a reader tells one table
// from the next.
const TriggerColumn = "trigger"

type dropped struct{ key, partition string }

// forget applies the drops of windows whose last rows are out.
func (em *Emitter) forget() {
	for _, d := range em.drops {
		if en := em.table[d.key]; en != nil {
			em.markChanged(d.key) // the next complete table lacks it
			en.parts.del(d.partition)
			delete(en.spans, d.partition)
			if len(en.parts) == 0 {
				delete(em.table, d.key)
			}
		}
	}
	em.drops = nil
}

type resultEntry struct {
	keyVals []any
	parts   parts     // partition → portable accumulators
	firedBy time.Time // the earliest read that fired it, for FireLatency
	// spans: partition → its session's bounds, and whether it fired
	// (session windows only: partitions' sessions of one start can differ)
	spans map[string]span
	// raw: the entry's only part, partition rawPart's, as its shard
	// restored it and not decoded yet (keyVals and parts are nil): a
	// restored key costs the table no decoding and no map of its own
	// until it changes or is read (see KeyedAggregator.lazyEntries)
	raw     []byte
	rawPart string
}

// decodeRaw decodes en's raw part in place.
func (em *Emitter) decodeRaw(key string, en *resultEntry) error {
	if en.raw == nil {
		return nil
	}
	keyVals, accs, err := em.rt.DecodeEntry(en.raw)
	if err != nil {
		return fmt.Errorf("key %q: the restored state does not decode: %w", key, err)
	}
	en.keyVals, en.parts = keyVals, parts{{partition: en.rawPart, accs: accs}}
	en.raw, en.rawPart = nil, ""
	return nil
}

// hasPart tells whether partition has a part of en.
func (en *resultEntry) hasPart(partition string) bool {
	if en.raw != nil {
		return en.rawPart == partition
	}
	_, ok := en.parts.get(partition)
	return ok
}

// decodedPart is partial p's key values and accumulators, decoded if raw.
func (em *Emitter) decodedPart(p partial) ([]any, []any, error) {
	if p.raw == nil {
		return p.keyVals, p.accs, nil
	}
	keyVals, accs, err := em.rt.DecodeEntry(p.raw)
	if err != nil {
		return nil, nil, fmt.Errorf("key %q: the restored state does not decode: %w", p.key, err)
	}
	return keyVals, accs, nil
}

func newEmitter(e *engine) (*Emitter, error) {
	rt, err := e.pipeline().NewRuntime(false)
	if err != nil {
		return nil, err
	}
	em := &Emitter{e: e, rt: rt, table: map[string]*resultEntry{}, changed: map[string]struct{}{}, fired: map[string]int64{},
		shards: e.cfg.Shards, saved: map[string]bool{}, gone: map[string]bool{}, unsettled: map[uint64]heldDeletes{},
		restoring: map[string]bool{}, sent: map[string]map[int]bool{}}
	if err := em.restore(); err != nil {
		rt.Close()
		return nil, err
	}
	return em, nil
}

// Windows a partition fired but the pipeline's watermark has not passed yet
// wait in the emitter; the shards' checkpointed state already counts them
// as fired, so the emitter checkpoints them too, or a crash would lose them.

func heldKey(partition, key string) []byte { return []byte("held/" + partition + "\x00" + key) }
func heldPrefix(partition string) []byte   { return []byte("held/" + partition + "\x00") }

// emitsResults says whether the emitter writes the results sink's rows
// itself (a multi-stage pipeline's go through its later stages).
func (e *engine) emitsResults() bool {
	return e.emitter != nil && e.firstStage.pids == nil
}

// resultsAborted: the results sink drops the rows of the windows emitted
// since the last complete checkpoint; those it held are held again (the
// shards, starting again from it, count them as fired). With a changelog
// each partition's come back as it starts again (loadHeld). The sink's
// abort follows the rows sent before it.
func (em *Emitter) resultsAborted(ctx actor.Context) error {
	ctx.Send(em.e.results, &abortTx{})
	return em.restore()
}

// restore reads the held windows of the last checkpoint.
func (em *Emitter) restore() error {
	if !em.holds() || em.e.cfg.Changelog != nil {
		// (With a changelog, each partition's held windows come back with
		// the partition: see loadHeld.)
		return nil
	}
	cp, err := em.e.cfg.Store.Last()
	if err != nil {
		return nil // no checkpoint: nothing held
	}
	prefix := []byte("held/")
	return em.e.cfg.Store.Scan(cp.ID, prefix, func(k, v []byte) error {
		return em.hold(k, v)
	})
}

// holds says whether the pipeline holds fired windows (final emits).
func (em *Emitter) holds() bool {
	return em.e.cfg.Pipeline.IsWindowed() && em.e.cfg.Pipeline.Emit == scripting.EmitFinal
}

// hold puts a checkpointed held window (store key k) back in the table.
func (em *Emitter) hold(k, v []byte) error {
	partition, key, _ := strings.Cut(string(k[len("held/"):]), "\x00")
	vals, accs, err := em.rt.DecodeEntry(v)
	if err != nil || len(vals) == 0 {
		return fmt.Errorf("held window %q: %v", key, err)
	}
	end, _ := vals[len(vals)-1].(int64)
	en := em.table[key]
	if en == nil {
		en = &resultEntry{keyVals: vals[: len(vals)-1 : len(vals)-1]}
		em.table[key] = en
	}
	en.parts.set(partition, accs)
	em.fired[key] = end
	if em.sessionWindows() {
		en.setSpan(partition, span{start: windowStart(key), end: end, fired: true})
	}
	em.saved[string(k)] = true
	delete(em.gone, string(k))
	return nil
}

// unhold forgets a partition's part of a held window (store key k).
func (em *Emitter) unhold(k string) {
	partition, key, _ := strings.Cut(k[len("held/"):], "\x00")
	em.forgetPart(key, partition)
}

// loadHeld: a partition starts on this node (with a changelog): its held
// windows as the local store has them (load), or none (the store's are
// stale); the changelog's come on top (heldKVs).
func (em *Emitter) loadHeld(m *loadHeld) error {
	if m.restoring {
		em.restoring[m.partition] = true
	}
	prefix := heldPrefix(m.partition)
	for k := range em.saved {
		if strings.HasPrefix(k, string(prefix)) {
			em.unhold(k)
			delete(em.saved, k)
			em.gone[k] = true
		}
	}
	em.unlogDeletes(string(prefix))
	cp, err := em.e.cfg.Store.Last()
	if err != nil {
		return nil
	}
	return em.e.cfg.Store.Scan(cp.ID, prefix, func(k, v []byte) error {
		if !m.load {
			em.gone[string(k)] = true // stale: delete at the next checkpoint
			return nil
		}
		return em.hold(k, v)
	})
}

// heldKVs applies a partition's held windows read from its changelog.
func (em *Emitter) heldKVs(m *heldKVs) error {
	for i, k := range m.keys {
		if m.values[i] == nil {
			em.unhold(k)
			if em.saved[k] {
				delete(em.saved, k)
				em.gone[k] = true
			}
			continue
		}
		if err := em.hold([]byte(k), m.values[i]); err != nil {
			return err
		}
	}
	return nil
}

// moved: a partition left this node with its state (a changelog): its
// held windows go too, those fired since the last checkpoint with them
// (the next owner fires them again), and leave the local store.
func (em *Emitter) moved(partition string) {
	prefix := string(heldPrefix(partition))
	for k := range em.saved {
		if strings.HasPrefix(k, prefix) {
			delete(em.saved, k)
			em.gone[k] = true
		}
	}
	em.unlogDeletes(prefix)
	for key := range em.fired {
		if en := em.table[key]; en != nil && en.hasPart(partition) {
			em.forgetPart(key, partition)
		}
	}
}

// save writes the held windows at checkpoint epoch, and deletes those the
// store or the changelog may hold that are out (see deletes).
func (em *Emitter) save(epoch uint64) error {
	sb := em.e.cfg.Store.Batch(epoch)
	var wb batchWriter = sb
	var tee *teeWriter
	if cl := em.e.cfg.Changelog; cl != nil {
		tee = &teeWriter{wb: sb, cl: cl}
		wb = tee
	}
	now, err := em.writeHeld(wb, tee)
	if err != nil {
		sb.Cancel()
		return err
	}
	d := em.deletes(now)
	if err := em.deleteOut(wb, tee, d); err != nil {
		sb.Cancel()
		return err
	}
	if len(d.logged)+len(d.local) > 0 {
		em.unsettled[epoch] = d
	}
	em.saved, em.gone = now, map[string]bool{}
	return sb.Commit()
}

// writeHeld writes every held window to wb, and returns their keys.
func (em *Emitter) writeHeld(wb batchWriter, tee *teeWriter) (map[string]bool, error) {
	now := map[string]bool{}
	var buf []byte
	var err error
	for key, end := range em.fired {
		en := em.table[key]
		if en == nil {
			continue
		}
		for _, pa := range en.parts {
			partition, accs := pa.partition, pa.accs
			end := end
			if sp, ok := en.spans[partition]; ok {
				if !sp.fired {
					continue // an open session: its shard resends it
				}
				end = sp.end
			}
			k := heldKey(partition, key)
			now[string(k)] = true
			vals := append(append([]any(nil), en.keyVals...), end)
			if buf, err = em.rt.EncodeEntry(buf[:0], vals, accs); err != nil {
				return nil, err
			}
			if tee != nil {
				tee.partition = partition
				tee.localOnly(em.restoring[partition])
			}
			if err := wb.Set(k, buf); err != nil {
				return nil, err
			}
		}
	}
	return now, nil
}

// deleteOut writes d's deletes to wb.
func (em *Emitter) deleteOut(wb batchWriter, tee *teeWriter, d heldDeletes) error {
	for _, k := range d.logged {
		if tee != nil {
			tee.partition, _, _ = strings.Cut(k[len("held/"):], "\x00")
			tee.localOnly(em.restoring[tee.partition])
		}
		if err := wb.Delete([]byte(k)); err != nil {
			return err
		}
	}
	for _, k := range d.local {
		tee.localOnly(true)
		if err := wb.Delete([]byte(k)); err != nil {
			return err
		}
	}
	return nil
}

// heldDeletes are held-window keys a save deletes: logged, from the store
// and (with a changelog) the partition's changelog; local, from the store
// only (partitions that left this node, or whose stored state is stale).
type heldDeletes struct{ logged, local []string }

// deletes lists what a save of the held windows now deletes: the windows
// the last save wrote that are out, those of partitions gone, and again
// the deletes of saves whose checkpoint did not complete. Checkpoints are
// one at a time, so a save before this one whose epoch is not complete
// was aborted.
func (em *Emitter) deletes(now map[string]bool) heldDeletes {
	var last uint64
	if cp, err := em.e.cfg.Store.Last(); err == nil {
		last = cp.ID
	}
	logged, local := map[string]bool{}, map[string]bool{}
	for k := range em.saved {
		logged[k] = true
	}
	for ep, d := range em.unsettled {
		if ep <= last {
			delete(em.unsettled, ep)
			continue
		}
		for _, k := range d.logged {
			logged[k] = true
		}
		for _, k := range d.local {
			local[k] = true
		}
	}
	for k := range em.gone {
		local[k] = true
	}
	var d heldDeletes
	for k := range local {
		if !now[k] {
			d.local = append(d.local, k)
		}
	}
	for k := range logged {
		if !now[k] && !local[k] {
			d.logged = append(d.logged, k)
		}
	}
	return d
}

// unlogDeletes makes the unsettled deletes of keys under prefix (a
// partition's held windows) local: the partition's changelog is no longer
// this node's to write, or its state comes anew from it.
func (em *Emitter) unlogDeletes(prefix string) {
	for ep, d := range em.unsettled {
		logged := d.logged[:0]
		for _, k := range d.logged {
			if strings.HasPrefix(k, prefix) {
				d.local = append(d.local, k)
			} else {
				logged = append(logged, k)
			}
		}
		d.logged = logged
		em.unsettled[ep] = d
	}
}

// Receive implements actor.Actor.
func (em *Emitter) Receive(ctx actor.Context) {
	// The emitter has no checkpoint to restart from: a panic here is a bug
	// that must stop the run loudly, not stall it.
	defer func() {
		if r := recover(); r != nil {
			ctx.Send(em.e.node, &sinkFailed{name: "results", err: fmt.Errorf("emitter failed (an engine bug: please report it): %v", r)})
		}
	}()
	switch m := ctx.Message().(type) {
	case *resultRows:
		if err := em.update(m); err != nil {
			ctx.Send(em.e.node, &sinkFailed{name: "results", err: fmt.Errorf("partition %s: %w", m.partition, err)})
		}
	case *loadHeld:
		if err := em.loadHeld(m); err != nil {
			ctx.Send(em.e.node, &partitionFailed{id: m.partition, err: fmt.Errorf("held windows: %w", err)})
		}
	case *heldKVs:
		if err := em.heldKVs(m); err != nil {
			ctx.Send(em.e.node, &partitionFailed{id: m.partition, err: fmt.Errorf("held windows from the changelog: %w", err)})
		}
	case *resultsAborted:
		if err := em.resultsAborted(ctx); err != nil {
			ctx.Send(em.e.node, &sinkFailed{name: "results", err: fmt.Errorf("held windows of the last checkpoint: %w", err)})
		}
	case *heldRestored:
		delete(em.restoring, m.partition)
	case *partitionMoved:
		delete(em.restoring, m.partition)
		delete(em.sent, m.partition)
		em.moved(m.partition)
	case *stateQuery:
		em.query(ctx, m)
	case *shareQuery:
		em.share(ctx, m)
	case *mergeQuery:
		em.mergeShares(ctx, m)
	case *emitTrigger:
		rows, err := em.rows(m.final, m.watermark)
		if err != nil {
			ctx.Send(em.e.node, &sinkFailed{name: "results", err: err})
			return
		}
		em.forget()
		if m.epoch > 0 && (len(em.fired) > 0 || len(em.saved) > 0 || len(em.gone) > 0 || len(em.unsettled) > 0) {
			if err := em.save(m.epoch); err != nil {
				ctx.Send(em.e.node, &sinkFailed{name: "results", err: fmt.Errorf("checkpoint %d: held windows: %w", m.epoch, err)})
				return
			}
		}
		em.e.toResults(ctx, m, rows, em.oldestRead)
		em.oldestRead = time.Time{}
	case *swapScript:
		rt, err := m.p.NewRuntime(false)
		if err != nil {
			ctx.Send(em.e.node, &sinkFailed{name: "results", err: fmt.Errorf("reload: %w", err)})
			return
		}
		em.rt.Close()
		em.rt = rt
	case *actor.Stopping:
		em.rt.Close()
	}
}

func (em *Emitter) update(m *resultRows) error {
	switch {
	case (m.reset || m.part) && m.more:
		// a table in parts: the shard has sent it with its last part
		delete(em.sent[m.partition], m.shard)
	case m.reset || m.part:
		if em.sent[m.partition] == nil {
			em.sent[m.partition] = map[int]bool{}
		}
		em.sent[m.partition][m.shard] = true
	}
	if m.reset {
		// A shard (re)started: forget what it sent before. Windows held for
		// a final emit stay: the shard's state, restored from a checkpoint,
		// counts them as fired, and the emitter checkpointed them.
		for key, en := range em.table {
			if em.isHeld(key, en, m.partition) {
				continue
			}
			if scripting.Shard(groupKey(key), em.shards) == m.shard {
				if en.hasPart(m.partition) {
					en.parts.del(m.partition)
					delete(en.spans, m.partition)
					if en.raw != nil || len(en.parts) == 0 {
						delete(em.table, key)
					}
					em.markChanged(key)
				}
			}
		}
	}
	if err := em.supersede(m.partition, m.superseded); err != nil {
		return err
	}
	for _, key := range m.drop {
		em.drops = append(em.drops, dropped{key: key, partition: m.partition})
	}
	if !m.read.IsZero() && (em.oldestRead.IsZero() || m.read.Before(em.oldestRead)) {
		em.oldestRead = m.read
	}
	// A key the changelog brought that the table lacked is no change of
	// this node's rows an update emit must send: the partition's previous
	// owner emitted it before its checkpoint. (A key other partitions
	// hold here changes: its merged row does.) A final emit takes the
	// whole table, and a complete one needs a change to emit the table
	// with the partition in it; session windows merge by what changed.
	quiet := m.restored && em.e.cfg.Pipeline.Emit != scripting.EmitComplete && !em.sessionWindows()
	if m.restored {
		em.room(max(m.total, len(m.rows)))
	}
	for _, p := range m.rows {
		if m.fired {
			em.fired[p.key] = p.end
		}
		en := em.table[p.key]
		isNew := en == nil
		en, err := em.put(m.partition, p, en)
		if err != nil {
			return err
		}
		if em.sessionWindows() {
			en.setSpan(m.partition, span{start: p.start, end: p.end, fired: m.fired})
		}
		if !(isNew && quiet) {
			em.markChanged(p.key)
		}
		if !p.firedBy.IsZero() && (en.firedBy.IsZero() || p.firedBy.Before(en.firedBy)) {
			en.firedBy = p.firedBy
		}
	}
	return nil
}

// markChanged notes that key's row changed since the last trigger. A
// final emit of aggregates or of fixed windows never asks which did (it
// takes the whole table, or the windows fired): there the set is not kept,
// which cost a map insert a changed key (ten thousand of them at the end
// of the netflow input, on the emitter's one goroutine).
func (em *Emitter) markChanged(key string) {
	if em.e.cfg.Pipeline.Emit == scripting.EmitFinal && !em.sessionWindows() {
		return
	}
	em.changed[key] = struct{}{}
}

// supersede forgets partition's sessions under keys, merged into others
// of their key. A session that fired is never merged (a record that would
// touch it is late), so one held here means the shard and the emitter
// disagree: forgetting it would drop a result unseen.
func (em *Emitter) supersede(partition string, keys []string) error {
	for _, key := range keys {
		if en := em.table[key]; en != nil && en.hasPart(partition) && em.isHeld(key, en, partition) {
			return fmt.Errorf("session %q fired and was then superseded by a merge (an engine bug: please report it)", key)
		}
		em.forgetPart(key, partition)
	}
	return nil
}

// room makes the table hold a restored partition's keys without growing,
// when a shard of it brings rows and they would not fit: each of its
// shards brings its share (so the room made is for every shard's), and
// a table of millions grown a doubling at a time rehashes every key at
// each (a fifth of the CPU time of a million-key restore).
func (em *Emitter) room(rows int) {
	if rows == 0 || len(em.table)+rows <= em.tableRoom {
		return
	}
	// an eighth more: the shards' shares differ a little, and one a few
	// keys over would copy the whole table again
	n := len(em.table) + rows*max(em.shards, 1)*9/8
	t := make(map[string]*resultEntry, n)
	maps.Copy(t, em.table)
	em.table, em.tableRoom = t, n
}

// newRaw is a new entry of partition's raw part: entries are made many to
// an allocation (a restored partition brings millions at once).
func (em *Emitter) newRaw(raw []byte, partition string) *resultEntry {
	if len(em.rawChunk) == 0 {
		em.rawChunk = make([]resultEntry, entryChunk)
	}
	en := &em.rawChunk[0]
	em.rawChunk = em.rawChunk[1:]
	*en = resultEntry{raw: raw, rawPart: partition}
	return en
}

// entryOfOne is a table entry of one part and its part, allocated at once.
type entryOfOne struct {
	en   resultEntry
	part [1]partAccs
}

// newEntry is a table entry of key values keyVals and partition's part
// accs: a key of one part (most) costs one allocation.
func newEntry(keyVals []any, partition string, accs []any) *resultEntry {
	e := &entryOfOne{en: resultEntry{keyVals: keyVals}, part: [1]partAccs{{partition: partition, accs: accs}}}
	e.en.parts = e.part[:1:1]
	return &e.en
}

// put sets partition's part of p's key in the table to p's, en being the
// key's entry (nil: none yet), and returns the key's entry (a restore of
// millions looked each key up again for it). A raw part of a new key
// stays raw.
func (em *Emitter) put(partition string, p partial, en *resultEntry) (*resultEntry, error) {
	if en == nil && p.raw != nil {
		en = em.newRaw(p.raw, partition)
		em.table[p.key] = en
		return en, nil
	}
	keyVals, accs, err := em.decodedPart(p)
	if err != nil {
		return nil, err
	}
	if en == nil {
		en = newEntry(keyVals, partition, accs)
		em.table[p.key] = en
		return en, nil
	} else if en.raw != nil && en.rawPart == partition {
		en.raw, en.rawPart, en.keyVals, en.parts = nil, "", keyVals, nil
	} else if err := em.decodeRaw(p.key, en); err != nil {
		return nil, err
	}
	en.parts.set(partition, accs)
	return en, nil
}

// held lists the partitions whose whole state the table holds: every
// shard of theirs has sent its table, and the windows held for a final
// emit are in. (A partition restoring from its changelog has not: its
// shards send theirs once restored.)
func (em *Emitter) held() []string {
	var ids []string
	for id, shards := range em.sent {
		if len(shards) == em.shards && !em.restoring[id] {
			ids = append(ids, id)
		}
	}
	sort.Strings(ids)
	return ids
}

// rows builds the rows a trigger emits.
func (em *Emitter) rows(final bool, watermark int64) ([]connectors.Row, error) {
	p := em.e.cfg.Pipeline
	if em.sessionWindows() {
		return em.sessionRows(final, watermark)
	}
	var keys []string
	switch {
	case p.IsWindowed() && p.Emit == scripting.EmitFinal:
		// Each window once, when it fires; nothing is kept after.
		keys = make([]string, 0, len(em.fired))
		for k, end := range em.fired {
			if final || end <= watermark {
				keys = append(keys, k)
			}
		}
		defer func() {
			now := time.Now()
			for _, k := range keys {
				if en := em.table[k]; en != nil && !en.firedBy.IsZero() {
					em.e.cfg.Stats.FireLatency.Observe(now.Sub(en.firedBy))
				}
				delete(em.table, k)
				delete(em.fired, k)
			}
		}()
	case p.Emit == scripting.EmitUpdate:
		keys = make([]string, 0, len(em.changed))
		for k := range em.changed {
			if em.table[k] != nil {
				keys = append(keys, k)
			}
		}
	case p.Emit == scripting.EmitComplete && len(em.changed) == 0:
		// The table is the one last emitted (an idle trigger, or the end
		// of the input right after a file boundary's trigger).
		return nil, nil
	case p.Emit == scripting.EmitComplete:
		em.changed = map[string]struct{}{}
		return em.completeTable(em.table)
	case final:
		keys = make([]string, 0, len(em.table))
		for k := range em.table {
			keys = append(keys, k)
		}
	default: // final mode, not the end yet
		return nil, nil
	}
	em.changed = map[string]struct{}{}
	return em.shape(em.table, keys, p.Emit != scripting.EmitUpdate)
}

// completeTable is the whole table, numbered: each row gets the field
// TriggerColumn.
func (em *Emitter) completeTable(table map[string]*resultEntry) ([]connectors.Row, error) {
	keys := make([]string, 0, len(table))
	for k := range table {
		keys = append(keys, k)
	}
	rows, err := em.shape(table, keys, true)
	if err != nil || len(rows) == 0 {
		return rows, err
	}
	em.tables++
	for i := range rows {
		rows[i].Fields = append(rows[i].Fields, connectors.Field{Name: TriggerColumn, Value: em.tables})
	}
	return rows, nil
}

// shape builds the rows of keys from table that pass having: ordered by
// order_by, cut to limit when limited, a window's row keyed by its key.
func (em *Emitter) shape(table map[string]*resultEntry, keys []string, limited bool) ([]connectors.Row, error) {
	p := em.e.cfg.Pipeline
	rows := make([]connectors.Row, 0, len(keys))
	cols := p.Columns()
	// The rows' fields, many rows' to an allocation; but a limit keeps
	// few rows, which would keep the chunk of all alive.
	cut := limited && p.Limit > 0
	var chunk []connectors.Field
	for j, k := range keys {
		en := table[k]
		if en == nil {
			return nil, fmt.Errorf("key %q: a window to emit has no state (an engine bug: please report it)", k)
		}
		if len(chunk) < len(cols) {
			chunk = make([]connectors.Field, len(cols)*fieldsChunk(cut, len(keys)-j))
		}
		row := connectors.Row{Key: k, Fields: chunk[:len(cols):len(cols)]}
		chunk = chunk[len(cols):]
		if err := em.result(k, en, cols, row.Fields); err != nil {
			return nil, fmt.Errorf("key %q: %w", k, err)
		}
		if keep, err := em.rt.Having(row); err != nil || !keep {
			if err != nil {
				return nil, fmt.Errorf("key %q: %w", groupKey(k), err)
			}
			continue
		}
		rows = append(rows, row)
	}
	if cut {
		rows = firstRows(rows, p.OrderBy, p.Limit)
	} else {
		sortTable(rows, p.OrderBy)
	}
	for i := range rows {
		rows[i].Key = groupKey(rows[i].Key)
	}
	return rows, nil
}

// fieldsChunk is how many rows' fields shape allocates at once, left rows
// still to build: one at a time when a limit cuts the table.
func fieldsChunk(cut bool, left int) int {
	if cut {
		return 1
	}
	return max(left, 1)
}

// result merges a key's partials and sets fields, named by cols, to its
// row values: its key values, then its results.
func (em *Emitter) result(key string, en *resultEntry, cols []string, fields []connectors.Field) error {
	keyVals, accs, err := em.raw(key, en)
	if err == nil && en.raw == nil {
		keyVals = en.keyVals
		accs, err = em.merged(en)
	}
	if err != nil {
		return err
	}
	res, err := em.rt.Results(accs)
	if err != nil {
		return err
	}
	if len(keyVals)+len(res) < len(cols) {
		return fmt.Errorf("%d key values and %d results for %d columns (an engine bug: please report it)", len(keyVals), len(res), len(cols))
	}
	for i, c := range cols {
		v := any(nil)
		if i < len(keyVals) {
			v = keyVals[i]
		} else {
			v = res[i-len(keyVals)]
		}
		fields[i] = connectors.Field{Name: c, Value: v}
	}
	return nil
}

// raw decodes en's raw part, if it has one, without keeping the result:
// its key values and its one part's accumulators.
func (em *Emitter) raw(key string, en *resultEntry) ([]any, []any, error) {
	if en.raw == nil {
		return nil, nil, nil
	}
	keyVals, accs, err := em.rt.DecodeEntry(en.raw)
	if err != nil {
		return nil, nil, fmt.Errorf("key %q: the restored state does not decode: %w", key, err)
	}
	return keyVals, accs, nil
}

// merged merges a key's partials, in partition order.
func (em *Emitter) merged(en *resultEntry) ([]any, error) {
	if len(en.parts) == 1 {
		return en.parts[0].accs, nil
	}
	accs, err := em.rt.Portable(en.parts[0].accs)
	if err != nil {
		return nil, err
	}
	for _, pa := range en.parts[1:] {
		if err := em.rt.Merge(accs, pa.accs); err != nil {
			return nil, err
		}
	}
	return accs, nil
}

// sortRows orders rows by the pipeline's order_by, then (for windows) by
// window start, then by key, so equal rows come out the same way every run.
func sortRows(rows []connectors.Row, order []scripting.Order) {
	sort.SliceStable(rows, rowOrder(rows, order))
}

// sortTable is sortRows for the rows of the emitter's table, whose keys
// (state keys) differ: the order is total, and an unstable sort of a few
// hundred thousand rows is several times faster than a stable one.
func sortTable(rows []connectors.Row, order []scripting.Order) {
	if len(order) == 0 && sortByStart(rows) {
		return
	}
	sort.Slice(rows, rowOrder(rows, order))
}

// sortByStart sorts windows' rows in rowOrder's order when there is no
// order_by and every window start is a string: by start, then key, the
// strings compared directly. (Through rowOrder each comparison went by
// scripting.Compare's type tests, a few times for each of the thousands of
// windows a trigger fires.) It says whether it sorted.
func sortByStart(rows []connectors.Row) bool {
	if len(rows) == 0 {
		return false
	}
	ws := -1
	for i, f := range rows[0].Fields {
		if f.Name == scripting.WindowColumns[0] {
			ws = i // the last of the name, as rowOrder's
		}
	}
	if ws < 0 {
		return false
	}
	for _, r := range rows {
		if _, ok := r.Fields[ws].Value.(string); !ok {
			return false
		}
	}
	slices.SortFunc(rows, func(a, b connectors.Row) int {
		if c := strings.Compare(a.Fields[ws].Value.(string), b.Fields[ws].Value.(string)); c != 0 {
			return c
		}
		return strings.Compare(a.Key, b.Key)
	})
	return true
}

// firstRows is the first n rows of the emitter's table rows in sortTable's
// order. A limit of 20 over a table of 10k keys was a sort of the whole
// table on the emitter's one goroutine, at the end of the input when
// nothing else runs: a heap of the n best seen keeps that to one pass.
func firstRows(rows []connectors.Row, order []scripting.Order, n int) []connectors.Row {
	if len(rows) <= n {
		sortTable(rows, order)
		return rows
	}
	h := &bestRows{before: rowOrder(rows, order), idx: make([]int, n)}
	for i := range h.idx {
		h.idx[i] = i
	}
	heap.Init(h)
	for i := n; i < len(rows); i++ {
		if h.before(i, h.idx[0]) {
			h.idx[0] = i
			heap.Fix(h, 0)
		}
	}
	first := make([]connectors.Row, n)
	for j, i := range h.idx {
		first[j] = rows[i]
	}
	sortTable(first, order)
	return first
}

// bestRows is a heap of row indexes whose top is the row that comes last
// in the table's order (before says whether row i comes before row j).
type bestRows struct {
	before func(i, j int) bool
	idx    []int
}

func (h *bestRows) Len() int           { return len(h.idx) }
func (h *bestRows) Less(a, b int) bool { return h.before(h.idx[b], h.idx[a]) }
func (h *bestRows) Swap(a, b int)      { h.idx[a], h.idx[b] = h.idx[b], h.idx[a] }
func (h *bestRows) Push(any)           { panic("bestRows: fixed size") }
func (h *bestRows) Pop() any           { panic("bestRows: fixed size") }

func rowOrder(rows []connectors.Row, order []scripting.Order) func(i, j int) bool {
	idx := map[string]int{}
	if len(rows) > 0 {
		for i, f := range rows[0].Fields {
			idx[f.Name] = i
		}
	}
	ws, windowed := idx[scripting.WindowColumns[0]]
	return func(i, j int) bool {
		for _, o := range order {
			c := scripting.Compare(rows[i].Fields[idx[o.Column]].Value, rows[j].Fields[idx[o.Column]].Value)
			if c != 0 {
				return (c < 0) != o.Desc
			}
		}
		if windowed {
			if c := scripting.Compare(rows[i].Fields[ws].Value, rows[j].Fields[ws].Value); c != 0 {
				return c < 0
			}
		}
		return rows[i].Key < rows[j].Key
	}
}

// partAccs is one partition's part of a table entry: its portable
// accumulators.
type partAccs struct {
	partition string
	accs      []any
}

// parts are a table entry's parts, ordered by partition: most entries
// have one, and a map of its own for each (a window fired every few
// microseconds at the end of the input) cost an allocation and a sort of
// its partitions at each merge.
type parts []partAccs

// find is where partition's part is, or would go, and whether it is there.
func (ps parts) find(partition string) (int, bool) {
	i := sort.Search(len(ps), func(i int) bool { return ps[i].partition >= partition })
	return i, i < len(ps) && ps[i].partition == partition
}

// get is partition's accumulators, and whether it has a part.
func (ps parts) get(partition string) ([]any, bool) {
	if i, ok := ps.find(partition); ok {
		return ps[i].accs, true
	}
	return nil, false
}

// set makes partition's part accs.
func (ps *parts) set(partition string, accs []any) {
	i, ok := ps.find(partition)
	if ok {
		(*ps)[i].accs = accs
		return
	}
	*ps = slices.Insert(*ps, i, partAccs{partition: partition, accs: accs})
}

// del removes partition's part, if it has one.
func (ps *parts) del(partition string) {
	if i, ok := ps.find(partition); ok {
		*ps = slices.Delete(*ps, i, i+1)
	}
}

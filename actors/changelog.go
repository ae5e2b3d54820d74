package actors

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/scripting"
	"github.com/eddy-stream/eddy/state"
)

// State follows partitions through the changelog (Config.Changelog):
//
//   - At a checkpoint each shard writes its changed keys to the store and
//     to the changelog; once the sinks have flushed, the node commits the
//     changelog with a marker per partition (its position), then commits
//     the transactional sinks, then completes the checkpoint, recording
//     beside it, per partition, the changelog offset after the marker
//     (clogKey). With --exactly-once the changelog writes into the Kafka
//     sink's transaction, so output and state commit together.
//   - A supervisor starting a partition compares that offset with the
//     changelog's end. Up to date: it loads the local checkpoint as without
//     a changelog. Behind: it loads the local state and reads the changes
//     it lacks on top; no local state (or a changelog older than the
//     local offset): it reads the whole changelog and deletes the local
//     keys the changelog doesn't have. The newest marker read says where
//     to read the partition from. The node leaves a restoring partition
//     out of barriers until it is ready, so the others go on meanwhile.

// clogKey is where a checkpoint records the changelog offset it holds a
// partition's state to.
func clogKey(partition string) []byte { return []byte("clog/" + partition) }

type clogEntry struct {
	Offset    int64               `json:"offset"`
	Position  connectors.Position `json:"position,omitempty"`
	Watermark int64               `json:"watermark,omitempty"`
}

// teeWriter writes a shard's checkpoint to the store and the changelog.
type teeWriter struct {
	wb        batchWriter
	cl        connectors.Changelog
	partition string
	local     bool // the next write goes to the store only
	// later, when set, keeps the changelog's writes to go with the
	// shard's ack (barrier.storeFirst)
	later *recordedWrites
}

// log writes key = value to the changelog, or keeps it for later.
func (t *teeWriter) log(key, value []byte) {
	if t.later != nil {
		t.later.clog = append(t.later.clog, clogWrite{key: key, value: value})
		return
	}
	t.cl.Write(t.partition, key, value)
}

func (t *teeWriter) localOnly(b bool) {
	if t != nil {
		t.local = b
	}
}

func (t *teeWriter) Set(key, value []byte) error {
	if err := t.wb.Set(key, value); err != nil {
		return err
	}
	if !t.local {
		t.log(key, bytes.Clone(value)) // (the caller reuses value)
	}
	t.local = false
	return nil
}

// keptSetter is a batchWriter that can keep a value that never changes
// instead of copying it.
type keptSetter interface {
	setKept(key, value []byte) error
}

// setKept writes key = value to wb, value never changing after: a
// restored entry's bytes, of which a restore of millions of keys would
// otherwise copy every one at its first checkpoint.
func setKept(wb batchWriter, key, value []byte) error {
	if k, ok := wb.(keptSetter); ok {
		return k.setKept(key, value)
	}
	return wb.Set(key, value)
}

func (t *teeWriter) setKept(key, value []byte) error {
	if err := setKept(t.wb, key, value); err != nil {
		return err
	}
	if !t.local {
		t.log(key, value)
	}
	t.local = false
	return nil
}

func (t *teeWriter) Delete(key []byte) error {
	if err := t.wb.Delete(key); err != nil {
		return err
	}
	if !t.local {
		t.log(key, nil)
	}
	t.local = false
	return nil
}

// valueSlab keeps values many to an allocation. A nil value stays nil
// (a deletion).
type valueSlab struct{ buf []byte }

const valueSlabSize = 256 << 10

func (s *valueSlab) keep(v []byte) []byte {
	if len(v) == 0 {
		return v // (nil, a deletion, or empty)
	}
	if len(s.buf)+len(v) > cap(s.buf) {
		if len(v) > valueSlabSize/4 {
			return bytes.Clone(v)
		}
		s.buf = make([]byte, 0, valueSlabSize)
	}
	start := len(s.buf)
	s.buf = append(s.buf, v...)
	return s.buf[start:len(s.buf):len(s.buf)]
}

// restorePlan is how a starting partition gets its state back.
type restorePlan struct {
	epoch     uint64 // the local checkpoint to start from, 0 for none
	load      bool   // load the partition's keys from it
	wipe      bool   // its keys of the partition are stale: delete them
	pos       connectors.Position
	watermark int64
	from      int64 // the changelog offset to read from; -1: nothing to read
	end       int64
}

// plan decides where a starting partition's state comes from.
func (s *PartitionSupervisor) plan() (restorePlan, error) {
	cfg := s.e.cfg
	p := restorePlan{from: -1, watermark: math.MinInt64}
	cp, err := cfg.Store.Last()
	switch {
	case errors.Is(err, state.ErrNoCheckpoint):
	case err != nil:
		return p, err
	default:
		p.epoch = cp.ID
	}
	var local *clogEntry
	if p.epoch > 0 {
		pos, ok := cp.Positions[s.id]
		if ok {
			p.pos, p.load = pos, true
		}
		if cfg.Changelog != nil {
			v, found, err := cfg.Store.Get(p.epoch, clogKey(s.id))
			if err != nil {
				return p, err
			}
			if found {
				local = &clogEntry{}
				if err := json.Unmarshal(v, local); err != nil {
					return p, fmt.Errorf("checkpoint %d: changelog offset of %s: %w", p.epoch, s.id, err)
				}
				if !ok {
					// Handed back: the state the checkpoint holds is
					// the partition's when it left, at that marker.
					p.pos, p.load = local.Position, true
				}
				if s.marked() {
					// Its own watermark, kept with its state (the
					// checkpoint's is the node's, which may be ahead).
					p.watermark = local.Watermark
				}
			}
		}
		// A checkpoint without the partition's position has no state of
		// it to trust: what it holds is from before the partition moved
		// away (or from an older run) and must go.
		p.wipe = !p.load
		if local != nil && p.load && p.pos == nil {
			// Nothing of the partition read when it was checkpointed, so
			// nothing of its own to keep, and no proof that its state
			// was the changelog's up to local.Offset: a node resumed
			// after a pause may commit a checkpoint of a partition it
			// no longer holds and never read (with no position, the
			// group's fence has no offset to refuse), after the next
			// owner wrote there; a restore from its offset then skips
			// those writes (TestClusterHealsAfterAPause read keys low).
			// The changelog wins.
			local = nil
		}
	}
	if cfg.Changelog == nil {
		return p, nil
	}
	end, err := cfg.Changelog.End(s.e.ctx, s.id)
	if err != nil {
		return p, fmt.Errorf("changelog of %s: %w", s.id, err)
	}
	p.end = end
	switch {
	case local != nil && local.Offset >= end:
		// up to date (or the changelog was recreated: see below)
		if local.Offset > end {
			cfg.Logger.Warn("the changelog is behind the local state (recreated or truncated?): restoring the partition from it", "partition", s.id, "local", local.Offset, "changelog", end)
			p.load, p.wipe, p.pos, p.from = false, true, nil, 0
		}
	case local != nil && p.load:
		p.from = local.Offset
	default:
		if p.load {
			// Local state from before the changelog: the changelog wins.
			p.load, p.wipe = false, true
		}
		p.pos, p.from = nil, 0
	}
	if p.from >= 0 && p.from >= end {
		p.from = -1 // nothing to read
	}
	if !p.load {
		p.watermark = math.MinInt64 // the local state's watermark, with it
	}
	return p, nil
}

// maxPendingRestore bounds the changes read and not yet taken in.
const maxPendingRestore = 1 << 18

// readChangelog reads the partition's changelog from offset from and
// hands each change to the shard that owns its key.
func (s *PartitionSupervisor) readChangelog(ctx context.Context, self *actor.PID, from int64) {
	e, root, gen, shards, id := s.e, s.e.system.Root, s.gen, s.shards, s.id
	started := time.Now()
	aggP, keyP, heldP := statePrefix(id), hookStatePrefix(id), heldPrefix(id)
	held := &heldKVs{partition: id}
	flushHeld := func() {
		if len(held.keys) > 0 {
			root.Send(e.emitter, held)
			held = &heldKVs{partition: id}
		}
	}
	var pending atomic.Int64
	batches := make([][]kv, len(shards))
	keys := make([][][]byte, len(shards)) // the batch's keys, made strings as it is sent
	flush := func(i int) {
		if len(batches[i]) == 0 {
			return
		}
		setKeys(batches[i], keys[i])
		pending.Add(int64(len(batches[i])))
		root.Send(shards[i], &restoreKVs{gen: gen, kvs: batches[i], pending: &pending})
		batches[i], keys[i] = nil, keys[i][:0]
	}
	var n int64
	// A value is copied into slabs of many (a value the changelog hands
	// over keeps its whole fetched batch alive: about five times the
	// values' size), and a key's part after its prefix into a string of
	// its batch's keys.
	var slab valueSlab
	apply := func(k, v []byte) error {
		var c kv
		var sh int
		var key []byte
		switch {
		case bytes.HasPrefix(k, aggP):
			key = k[len(aggP):]
			sh = scripting.Shard(groupKeyBytes(key), len(shards))
		case bytes.HasPrefix(k, keyP):
			key, c.hook = k[len(keyP):], true
			sh = scripting.Shard(key, len(shards))
		case bytes.HasPrefix(k, heldP) && e.emitter != nil:
			// a window that fired here and waits for the watermark
			held.keys = append(held.keys, string(k))
			held.values = append(held.values, v)
			if len(held.keys) >= 1024 {
				flushHeld()
			}
			return nil
		default:
			return nil // not a shard's
		}
		if len(shards) == 0 {
			return nil
		}
		c.value = slab.keep(v)
		n++
		batches[sh] = append(batches[sh], c)
		keys[sh] = append(keys[sh], key)
		if len(batches[sh]) >= 1024 {
			flush(sh)
			for pending.Load() > maxPendingRestore && ctx.Err() == nil {
				time.Sleep(time.Millisecond)
			}
		}
		return nil
	}
	progress := func(done, total int64) {
		root.Send(e.node, &restoreProgress{id: id, done: done, total: total})
	}
	m, _, err := e.cfg.Changelog.Restore(ctx, id, from, apply, progress)
	for i := range batches {
		flush(i)
	}
	flushHeld()
	if e.emitter != nil {
		root.Send(e.emitter, &heldRestored{partition: id})
	}
	if ctx.Err() != nil {
		return
	}
	root.Send(self, &restoreDone{gen: gen, marker: m, n: n, took: time.Since(started), err: err})
}

// setKeys sets the key of each of kvs to its bytes in keys, every one a
// part of one string of them all: a restore of millions of keys makes one
// string a batch, not one a key.
func setKeys(kvs []kv, keys [][]byte) {
	size := 0
	for _, k := range keys {
		size += len(k)
	}
	var b strings.Builder
	b.Grow(size)
	for _, k := range keys {
		b.Write(k)
	}
	all, at := b.String(), 0
	for i, k := range keys {
		kvs[i].key = all[at : at+len(k)]
		at += len(k)
	}
}

// onRestored: the changelog is read; the shards build their state, and
// the partition reads from the newest marker's position.
func (s *PartitionSupervisor) onRestored(ctx actor.Context, m *restoreDone) {
	if m.err != nil {
		ctx.Send(s.e.node, &partitionFailed{id: s.id, err: fmt.Errorf("restore from the changelog: %w", m.err)})
		return
	}
	rate := 0.0
	if m.took > 0 {
		rate = float64(m.n) / m.took.Seconds()
	}
	s.e.cfg.Logger.Info("restored a partition from the changelog", "partition", s.id, "changes", m.n,
		"took", m.took.Round(time.Millisecond), "changes_per_s", int64(rate), "checkpoint", m.marker.Checkpoint, "node", m.marker.Node)
	s.e.cfg.Stats.Restored.Add(m.n)
	wm := s.plan0.watermark
	if m.marker.Checkpoint > 0 {
		s.pos, wm = m.marker.Position, m.marker.Watermark
	}
	// The newest marker's position, else (the changelog had nothing new
	// but aborted writes) the local checkpoint's; a restarted partition
	// with neither reads again from its start.
	if s.pos != nil || s.restart {
		if err := s.part.Seek(s.pos); err != nil {
			ctx.Send(s.e.node, &partitionFailed{id: s.id, err: fmt.Errorf("restore: seek to the changelog's position: %w", err)})
			return
		}
	} else if err := s.seekStart(); err != nil {
		ctx.Send(s.e.node, &partitionFailed{id: s.id, err: fmt.Errorf("restore: seek to the partition's start: %w", err)})
		return
	}
	for _, sh := range s.shards {
		ctx.Send(sh, &restored{gen: s.gen, watermark: wm})
	}
	s.restoredWM = &wm
	s.run(ctx, m.n >= storeFirstAbove)
}

// storeFirstAbove is how many changes a restore brings at least for the
// partition to read only once they are in the store (partitionReady): a
// few thousand keys go to the store in well under a second, a million
// took up to 80 s on a loaded machine. (A var: tests lower it.)
var storeFirstAbove int64 = 10_000

// shardRestore is what a shard restoring from the changelog collects.
// A shard of lazy entries (lazyEntries) puts the entries in its own
// table as they come, each local and still raw, and notes here only
// the keys the changelog deleted: one table of millions, not two.
type shardRestore struct {
	load, wipe bool
	lazy       bool
	size       int               // the entries expected, for a lazy shard's table
	entries    map[string][]byte // by state key; nil value: deleted
	raw        [][]kv            // (lazy) the changes, as they came
	deleted    map[string]bool   // (lazy) by state key
	damaged    error             // (lazy) the first entry that does not decode
	states     map[string][]byte // by hook key
	chunk      []entry           // (lazy) where newEntry takes the next entry from
}

// newEntry is a lazy shard's entry of key, restored as raw: entries are
// made many to an allocation (a restore of millions made each alone).
func (r *shardRestore) newEntry(key string, raw []byte) *entry {
	if len(r.chunk) == 0 {
		r.chunk = make([]entry, entryChunk)
	}
	en := &r.chunk[0]
	r.chunk = r.chunk[1:]
	*en = entry{key: key, raw: raw, local: true}
	return en
}

// entryChunk is how many restored entries newEntry makes at a time.
const entryChunk = 512

// maxPresized bounds the entries a shard's restore maps are sized for up
// front (a changelog not yet compacted has more changes than keys).
const maxPresized = 1 << 22

// newShardRestore is what one of shards collects of a restore by plan:
// its maps sized for its share of the changes to read, so that taking
// millions of them in does not grow (and rehash) the maps step by step.
func newShardRestore(plan restorePlan, shards int, lazy bool) *shardRestore {
	size := 0
	if plan.from >= 0 && shards > 0 {
		size = int(min((plan.end-plan.from)/int64(shards), maxPresized))
	}
	r := &shardRestore{load: plan.load, wipe: plan.wipe, lazy: lazy, size: size, states: map[string][]byte{}}
	if lazy {
		r.deleted = map[string]bool{}
	} else {
		r.entries = make(map[string][]byte, size)
	}
	return r
}

func (a *KeyedAggregator) collect(m *restoreKVs) {
	r := a.fromLog
	if r.lazy {
		r.raw = append(r.raw, m.kvs)
	}
	for _, c := range m.kvs {
		switch {
		case c.hook:
			r.states[c.key] = c.value
		case !r.lazy:
			r.entries[c.key] = c.value
		case c.value == nil:
			delete(a.entries, c.key)
			r.deleted[c.key] = true
		default:
			if err := a.checkRaw(c.key, c.value); err != nil && r.damaged == nil {
				r.damaged = err // (restored fails with it)
			}
			a.entries[c.key] = r.newEntry(c.key, c.value)
			delete(r.deleted, c.key)
		}
	}
	m.pending.Add(-int64(len(m.kvs)))
}

// restored puts the shard's state together: the local checkpoint's keys
// the changelog did not change, then the changelog's. What the changelog
// brought is written to the store (only) at the next checkpoint.
func (a *KeyedAggregator) restored(ctx actor.Context, m *restored) error {
	r := a.fromLog
	a.fromLog = nil
	if r.damaged != nil {
		return r.damaged
	}
	// No checkpoint of this node wrote the partition's keys since the
	// plan (it was out of barriers), so the last one holds them as then.
	cp, err := a.e.cfg.Store.Last()
	switch {
	case errors.Is(err, state.ErrNoCheckpoint):
		r.load, r.wipe = false, false
	case err != nil:
		return err
	}
	if len(a.entries) == 0 {
		a.entries = make(map[string]*entry, len(r.entries))
	}
	if r.load {
		if err := a.restoreWatermark(cp.ID); err != nil {
			return err
		}
		if err := a.loadStore(cp.ID, r.fromChangelog(a.entries), r.states); err != nil {
			return err
		}
	}
	if m.watermark > a.watermark && a.p.HasEventTime() {
		a.watermark = m.watermark
	}
	if r.lazy {
		a.restoredLazy(r)
	} else if err := a.restoredEntries(r); err != nil {
		return err
	}
	if err := a.restoredStates(r); err != nil {
		return err
	}
	if r.wipe {
		if err := a.wipeStale(cp.ID); err != nil {
			return err
		}
	}
	return a.announce(ctx, true)
}

// fromChangelog tells whether the changelog brought state key sk (a
// lazy shard's are in entries by then, each local).
func (r *shardRestore) fromChangelog(entries map[string]*entry) func(sk string) bool {
	if !r.lazy {
		return func(sk string) bool {
			_, ok := r.entries[sk]
			return ok
		}
	}
	return func(sk string) bool {
		if en := entries[sk]; en != nil && en.local {
			return true
		}
		return r.deleted[sk]
	}
}

// restoredLazy keeps what the changelog brought a lazy shard for the
// next checkpoint, which writes it to the store only, as the changelog had
// it (writeRestored): its entries are not listed one by one, nor looked
// up again to be encoded. An entry changed since is listed as any other,
// and written after (the later write of a key wins).
func (a *KeyedAggregator) restoredLazy(r *shardRestore) {
	a.localEntries, a.localStates = map[string][]byte{}, map[string]bool{}
	a.restoredRaw = r.raw
	a.unwritten.restored = true
}

// writeRestored writes the changes a lazy shard's restore brought to wb,
// to the store only, in the changelog's order.
func (a *KeyedAggregator) writeRestored(wb batchWriter, tee *teeWriter, entryKey func(sk string) []byte) error {
	for _, kvs := range a.restoredRaw {
		for _, c := range kvs {
			if c.hook {
				continue // (restoredStates lists them)
			}
			tee.localOnly(true)
			var err error
			if c.value == nil {
				err = wb.Delete(entryKey(c.key))
			} else {
				err = setKept(wb, entryKey(c.key), c.value)
			}
			if err != nil {
				return err
			}
		}
	}
	return nil
}

// restoredEntries decodes what the changelog brought a shard, for the
// next checkpoint, which writes it to the store only.
func (a *KeyedAggregator) restoredEntries(r *shardRestore) error {
	// What the changelog brought goes to the store as it is: the map it
	// was collected in is that list (no copy of millions of entries).
	a.localEntries, a.localStates = r.entries, map[string]bool{}
	a.unwritten.entries = slices.Grow(a.unwritten.entries, len(r.entries))
	for sk, v := range r.entries {
		if v == nil {
			a.unwritten.deleted = append(a.unwritten.deleted, sk)
			continue
		}
		if err := a.loadEntry(sk, v); err != nil {
			return err
		}
		en := a.entries[sk]
		en.dirty = true
		a.unwritten.entries = append(a.unwritten.entries, sk)
	}
	return nil
}

// restoredStates takes in the hook states the changelog brought.
func (a *KeyedAggregator) restoredStates(r *shardRestore) error {
	for k, v := range r.states {
		if v == nil {
			a.unwritten.statesDeleted = append(a.unwritten.statesDeleted, k)
		} else {
			if err := a.loadState(k, v); err != nil {
				return err
			}
			a.touchState(k, a.states[k])
		}
		a.localStates[k] = true
	}
	return nil
}

// wipeStale deletes, at the next checkpoint, the store's keys of this
// shard's partition that the restored state doesn't have.
func (a *KeyedAggregator) wipeStale(epoch uint64) error {
	store := a.e.cfg.Store
	prefix := statePrefix(a.partition)
	err := store.Scan(epoch, prefix, func(k, _ []byte) error {
		sk := string(k[len(prefix):])
		if scripting.Shard(groupKey(sk), a.shards) == a.shard && a.entries[sk] == nil {
			a.unwritten.deleted = append(a.unwritten.deleted, sk)
			a.localEntries[sk] = nil
		}
		return nil
	})
	if err != nil {
		return err
	}
	hp := hookStatePrefix(a.partition)
	return store.Scan(epoch, hp, func(k, _ []byte) error {
		key := string(k[len(hp):])
		if scripting.Shard(key, a.shards) == a.shard && a.states[key] == nil {
			a.unwritten.statesDeleted = append(a.unwritten.statesDeleted, key)
			a.localStates[key] = true
		}
		return nil
	})
}

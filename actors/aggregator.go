package actors

import (
	"bytes"
	"container/heap"
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/scripting"
)

// KeyedAggregator holds one shard of one partition's keyed state: the
// accumulators of the keys (and, for windowed pipelines, the open windows)
// that hash to it, the script's per-key state and timers. At each barrier
// it fires the windows and timers the watermark has passed, sends the
// emitter what changed, and at checkpoints writes what changed since the
// last one.
type KeyedAggregator struct {
	e         *engine
	p         *scripting.Pipeline
	partition string
	shard     int
	shards    int
	restore   uint64
	gen       uint64 // the supervisor incarnation it belongs to

	rt      *scripting.Runtime
	entries map[string]*entry // by state key: the key, or key␞start for a window
	// unwritten: the entries and hook states to write or delete at the
	// next checkpoint; pending: what each checkpoint not yet complete
	// wrote (to redo if it is aborted). Entries and states carry flags so
	// each is listed once.
	unwritten changeSet
	pending   map[uint64]changeSet
	emit      toEmit

	states map[string]*keyState // hook state by key
	timers timerHeap
	win    openWindows

	// watermark: records behind it are late; readAt: when the batch that
	// last moved it was read (for FireLatency).
	watermark int64
	// ownWatermark: the partition goes by its own watermark (a repartition
	// topic's, which may be behind the node's): a restore from the local
	// checkpoint starts there, not at the checkpoint's node watermark
	ownWatermark *int64
	readAt       time.Time
	out          heldOutput

	// fromLog: the partition's state comes from the changelog (on top of
	// the local checkpoint, or instead of it); nil once restored.
	fromLog *shardRestore
	// localEntries, localStates: keys the next checkpoint writes to the
	// store only (the changelog has them already). localEntries holds the
	// changelog's bytes of each entry (nil: deleted), written to the store
	// as they are; a change since the restore takes the key out.
	localEntries map[string][]byte
	localStates  map[string]bool
	// localUntil: the checkpoint that wrote them; they are kept until it
	// completes, so that an aborted one's redo writes them to the store
	// only again, not millions of them to the changelog
	localUntil uint64
	// restoredRaw: the changes a lazy shard's restore brought, in the
	// changelog's order (a nil value: deleted), kept until the checkpoint
	// that writes them to the store completes (see changeSet.restored)
	restoredRaw [][]kv
	// interrupted: the run interrupted a script call of this shard, whose
	// state is no longer a whole number of batches: no checkpoint may
	// have it.
	interrupted error
	// commits writes checkpoints to the store off the shard's goroutine.
	commits shardCommits
}

// toEmit is what a shard sends the emitter at its next barrier.
type toEmit struct {
	// changed: entries changed since (each listed once: see entry.changed)
	changed []string
	// fired: the windows fired since (each partial's end is its window's)
	fired []partial
	// dropped: window entries the emitter should forget, after it has
	// emitted lastChanges, their final changes; superseded: sessions
	// merged into another, to forget before it builds rows
	dropped     []string
	lastChanges []partial
	superseded  []string
	// oldestRead: when the oldest batch folded in since left its source
	// (for the results' end-to-end latency).
	oldestRead time.Time
}

// openWindows finds and queues a shard's windows.
type openWindows struct {
	sessions map[string][]*entry // open session windows by key
	// lastWindow remembers each key's latest window's entry (see
	// windowEntry).
	lastWindow latestWindows
	// ends queues open windows by end, expiries fired ones.
	ends, expiries timerQueue
	// stamps: the window bounds' texts, shared by the keys' windows
	stamps windowStamps
}

// changeSet lists changed state by key: entries (by state key) and hook
// states (by key) written, and those deleted (a hook state deleted is a
// stale one a restore from the changelog replaced).
type changeSet struct {
	entries, deleted, states, statesDeleted []string
	// restored: the changes a lazy shard's restore brought (restoredRaw),
	// written to the store as the changelog had them
	restored bool
}

func (c changeSet) empty() bool {
	return len(c.entries)+len(c.deleted)+len(c.states)+len(c.statesDeleted) == 0 && !c.restored
}

// entry is one key's accumulators, or one window's. Its fields are
// ordered so that what folding a record reads and writes (start, accs,
// sk, the flags, raw) lies in its first 64 bytes, and it is 128 bytes in
// all: entries are then aligned to cache lines, and a record folded into
// its window misses one line of its entry, not two (a window's start and
// its flags lay past the first line). TestEntryLayout holds it there.
type entry struct {
	start int64 // the window, Unix ms (with end); zero without windows
	accs  []any
	// sk: the state key of a tumbling or hopping window's entry, once
	// lastWindow has it (see windowEntry)
	sk             string
	fired          bool
	dirty, changed bool
	// gone: no longer in the shard's entries (dropped, superseded or
	// replaced), so lastWindow holding it looks it up again.
	gone bool
	// local: raw as the changelog brought it, unchanged since, so still
	// the changelog's last value of its key: a write of it goes to the
	// store only (the checkpoint after the restore writes every such
	// entry, see writeRestored; localEntries does the same for shards
	// that decode as they load)
	local bool
	// unstored: no checkpoint has written this entry (it was created
	// since the last one), so dropping it needs no delete: a window
	// that opens and fires between two checkpoints never reaches the
	// store or the changelog. Restored entries are stored.
	unstored bool
	// raw: the entry as the store or the changelog has it, not decoded
	// yet (keyVals and accs are nil): see lazyEntries.
	raw     []byte
	end     int64
	key     string // the grouping key
	keyVals []any
}

type keyState struct {
	ks    *scripting.KeyState
	dirty bool
}

const windowSep = "\x1e"

func windowKey(key string, start int64) string {
	var digits [20]byte // (one allocation: the digits are not a string of their own)
	return key + windowSep + string(strconv.AppendInt(digits[:0], start, 10))
}

// groupKey is the grouping key of a state key.
func groupKey(stateKey string) string {
	if i := strings.LastIndex(stateKey, windowSep); i >= 0 {
		return stateKey[:i]
	}
	return stateKey
}

// groupKeyBytes is groupKey of a state key's bytes.
func groupKeyBytes(stateKey []byte) []byte {
	if i := bytes.LastIndex(stateKey, []byte(windowSep)); i >= 0 {
		return stateKey[:i]
	}
	return stateKey
}

// appendStateKey appends stateKey(partition, key) to dst.
func appendStateKey(dst []byte, partition, key string) []byte {
	return append(append(append(append(dst, "agg/"...), partition...), 0), key...)
}

func newAggregator(e *engine, partition string, shard, shards int, restore, gen uint64) *KeyedAggregator {
	return &KeyedAggregator{e: e, p: e.pipeline(), partition: partition, shard: shard, shards: shards, restore: restore, gen: gen}
}

// Store keys: one prefix per partition and kind, so a partition's state can
// be restored (or moved) alone.
func stateKey(partition, key string) []byte     { return appendStateKey(nil, partition, key) }
func statePrefix(partition string) []byte       { return []byte("agg/" + partition + "\x00") }
func hookStateKey(partition, key string) []byte { return []byte("key/" + partition + "\x00" + key) }
func hookStatePrefix(partition string) []byte   { return []byte("key/" + partition + "\x00") }

// testHookAdd, when a test sets it, runs before each batch a shard adds:
// a panic there is a crashed shard. Atomic: shards of a run that ended may
// still be stopping while the test resets it.
var testHookAdd atomic.Pointer[func(partition string, shard int)]

// Receive implements actor.Actor.
func (a *KeyedAggregator) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		if err := a.start(ctx); err != nil {
			panic(fmt.Errorf("shard %d of %s: %w", a.shard, a.partition, err))
		}
	case *actor.Stopping:
		if !a.commits.wait() {
			a.e.cfg.Logger.Error("a stopping shard's checkpoint write did not end in time", "partition", a.partition, "shard", a.shard, "waited", commitStopTimeout)
		}
		if a.rt != nil {
			a.rt.Close()
		}
	case *keyedBatch:
		if hook := testHookAdd.Load(); hook != nil {
			(*hook)(a.partition, a.shard)
		}
		a.add(ctx, m)
		if len(m.rows) > 0 && (a.emit.oldestRead.IsZero() || m.read.Before(a.emit.oldestRead)) {
			a.emit.oldestRead = m.read
		}
		if m.watermark > a.watermark {
			a.readAt = m.read
			if err := a.advance(m.watermark, false); err != nil {
				a.hookFailed(ctx, err)
			}
		}
		a.out.flushTo(ctx, a.e)
		a.e.cfg.Stats.BatchLatency.Observe(time.Since(m.read))
		ctx.Send(ctx.Parent(), &shardProcessed{gen: a.gen, shard: a.shard})
	case *barrier:
		if ack := a.onBarrier(ctx, m); ack != nil {
			ctx.Send(ctx.Parent(), ack) // (nil: the checkpoint's commit sends it)
		}
		// What this shard emits from now on belongs after the barrier.
		a.out.hold(a.e)
	case *settled:
		a.out.release(ctx, a.e)
	case *checkpointDone:
		if a.localUntil > 0 && m.epoch >= a.localUntil {
			a.restoreWritten()
		}
		for ep := range a.pending {
			if ep <= m.epoch {
				delete(a.pending, ep)
			}
		}
	case *checkpointAborted:
		a.redo(a.pending[m.epoch])
		delete(a.pending, m.epoch)
	case *restoreKVs:
		if m.gen == a.gen {
			a.collect(m)
		}
	case *restored:
		if m.gen == a.gen {
			if err := a.restored(ctx, m); err != nil {
				panic(fmt.Errorf("shard %d of %s: restore from the changelog: %w", a.shard, a.partition, err))
			}
		}
	}
}

func (a *KeyedAggregator) start(ctx actor.Context) error {
	rt, err := a.p.NewRuntime(false)
	if err != nil {
		return err
	}
	a.rt = rt
	a.entries = map[string]*entry{}
	a.pending = map[uint64]changeSet{}
	a.states = map[string]*keyState{}
	a.win.sessions = map[string][]*entry{}
	a.win.lastWindow = latestWindows{}
	a.watermark = math.MinInt64
	if a.fromLog != nil {
		if a.fromLog.lazy {
			// sized for what the changelog brings (collect), so that
			// millions of keys do not grow the table step by step
			a.entries = make(map[string]*entry, a.fromLog.size)
		}
		return nil // the changelog first: see restored
	}
	if a.restore == 0 {
		a.toEmitter(ctx, &resultRows{partition: a.partition, shard: a.shard, reset: true})
		return nil
	}
	if err := a.restoreState(); err != nil {
		return fmt.Errorf("restore from checkpoint %d: %w", a.restore, err)
	}
	return a.announce(ctx, false)
}

// announce sends the emitter the shard's whole table; restored: as the
// changelog brought it (see resultRows). A restored table goes in parts of
// announcePart rows (resultRows.more): a table of millions sent at once
// held a row of 128 bytes for each key until the emitter had taken them
// all, and the emitter waited until the last was made.
func (a *KeyedAggregator) announce(ctx actor.Context, restored bool) error {
	if a.windowedFinal() && !a.sessionWindows() {
		// (fired windows of a final emit: the emitter checkpointed them)
		a.toEmitter(ctx, &resultRows{partition: a.partition, shard: a.shard, reset: true, restored: restored})
		return nil
	}
	parted := restored && a.quietRows()
	size := len(a.entries)
	if parted {
		size = min(size, announcePart)
	}
	m := &resultRows{partition: a.partition, shard: a.shard, reset: true, restored: restored, total: len(a.entries), rows: make([]partial, 0, size)}
	for k, en := range a.entries {
		if en.fired && a.windowedFinal() {
			continue
		}
		p, err := a.partial(k, en)
		if err != nil {
			return err
		}
		m.rows = append(m.rows, p)
		if parted && len(m.rows) == announcePart {
			m.more = true
			a.toEmitter(ctx, m)
			m = &resultRows{partition: a.partition, shard: a.shard, part: true, restored: true, total: m.total - len(m.rows), rows: make([]partial, 0, size)}
		}
	}
	a.toEmitter(ctx, m)
	return nil
}

// announcePart is how many rows each part of a restored table has at
// most. (A var: tests make it small.)
var announcePart = 1 << 16

// quietRows: restored rows are no change the emitter emits (see
// Emitter.update), so a trigger between two parts of a restored table
// emits none of them (a complete emit, or session windows, would emit a
// table holding some of them).
func (a *KeyedAggregator) quietRows() bool {
	return a.p.Emit != scripting.EmitComplete && !a.sessionWindows()
}

func (a *KeyedAggregator) restoreState() error {
	if err := a.restoreWatermark(a.restore); err != nil {
		return err
	}
	return a.loadStore(a.restore, nil, nil)
}

func (a *KeyedAggregator) restoreWatermark(epoch uint64) error {
	if a.ownWatermark != nil {
		a.watermark = *a.ownWatermark
		return nil
	}
	wm, ok, err := a.e.cfg.Store.Get(epoch, watermarkKey)
	if err != nil {
		return err
	}
	if ok {
		a.watermark, _ = strconv.ParseInt(string(wm), 10, 64)
	}
	return nil
}

// loadStore loads this shard's keys of the partition as of checkpoint
// epoch, but for those in skipEntries and skipStates (which the changelog
// has newer values of).
func (a *KeyedAggregator) loadStore(epoch uint64, skipEntry func(sk string) bool, skipStates map[string][]byte) error {
	store := a.e.cfg.Store
	prefix := statePrefix(a.partition)
	err := store.Scan(epoch, prefix, func(k, v []byte) error {
		sk := string(k[len(prefix):])
		if scripting.Shard(groupKey(sk), a.shards) != a.shard {
			return nil
		}
		if skipEntry != nil && skipEntry(sk) {
			return nil
		}
		if a.lazyEntries() {
			return a.loadRaw(sk, bytes.Clone(v)) // (v is the store's only during the call)
		}
		return a.loadEntry(sk, v)
	})
	if err != nil {
		return err
	}
	hp := hookStatePrefix(a.partition)
	return store.Scan(epoch, hp, func(k, v []byte) error {
		key := string(k[len(hp):])
		if scripting.Shard(key, a.shards) != a.shard {
			return nil
		}
		if _, skip := skipStates[key]; skip {
			return nil
		}
		return a.loadState(key, v)
	})
}

// lazyEntries: the pipeline's restored entries are kept as encoded (raw)
// until a record, a query or an emit needs their values. A restore of
// millions of keys then neither decodes nor allocates each key's values,
// and the emitter's table holds the same bytes (see resultEntry.raw).
// Windowed pipelines need each window's bounds to fire it, and joins
// compare an entry's key values on every record: they decode as they load.
func (a *KeyedAggregator) lazyEntries() bool {
	return !a.p.IsWindowed() && !a.p.HasJoin()
}

// loadRaw puts a checkpointed entry (state key sk, an unwindowed one) in
// place undecoded; v must not change after.
func (a *KeyedAggregator) loadRaw(sk string, v []byte) error {
	if err := a.checkRaw(sk, v); err != nil {
		return err
	}
	a.entries[sk] = &entry{key: sk, raw: v}
	return nil
}

// checkRaw refuses an entry kept encoded that would not decode: damaged
// state fails the partition as it restores, as it does when restored
// entries are decoded, and not later where a record, an emit or a query
// reads it (the emitter can't fail a partition).
func (a *KeyedAggregator) checkRaw(sk string, v []byte) error {
	if err := a.rt.CheckEntry(v); err != nil {
		return &damagedEntry{key: sk, err: err}
	}
	return nil
}

// decoded decodes entry en (state key sk) in place if it is still raw.
// An entry that fails to decode is damaged state, not a record's fault:
// the caller stops the shard with the error.
func (a *KeyedAggregator) decoded(sk string, en *entry) error {
	if en.raw == nil {
		return nil
	}
	keyVals, accs, err := a.rt.DecodeEntry(en.raw)
	if err != nil {
		return &damagedEntry{key: sk, err: err}
	}
	en.keyVals, en.accs, en.raw = keyVals, accs, nil
	return nil
}

// damagedEntry is a restored entry that does not decode.
type damagedEntry struct {
	key string
	err error
}

func (d *damagedEntry) Error() string {
	return fmt.Sprintf("restored state of key %q does not decode: %v", d.key, d.err)
}

func (d *damagedEntry) Unwrap() error { return d.err }

// loadEntry puts a checkpointed entry (state key sk) in place.
func (a *KeyedAggregator) loadEntry(sk string, v []byte) error {
	keyVals, accs, err := a.rt.DecodeEntry(v)
	if err != nil {
		return fmt.Errorf("key %q: %w", sk, err)
	}
	en := &entry{key: groupKey(sk), keyVals: keyVals, accs: accs}
	if a.p.IsWindowed() {
		// Windowed entries carry start, end and fired after the key.
		n := len(keyVals) - 3
		if n < 0 {
			return fmt.Errorf("key %q: a window entry without its window", sk)
		}
		en.start, _ = keyVals[n].(int64)
		en.end, _ = keyVals[n+1].(int64)
		en.fired, _ = keyVals[n+2].(bool)
		en.keyVals = keyVals[:n:n]
		if old := a.entries[sk]; old != nil {
			old.gone = true
			if a.p.Window.Kind == "session" {
				a.removeSession(old) // (a record must not merge into it)
			}
		}
		if a.p.Window.Kind == "session" && !en.fired {
			a.win.sessions[en.key] = append(a.win.sessions[en.key], en)
		}
	}
	a.entries[sk] = en
	if a.p.IsWindowed() {
		if en.fired {
			heap.Push(&a.win.expiries, timerItem{at: en.end, key: sk})
		} else {
			a.opened(sk, en)
		}
	}
	return nil
}

// loadState puts a key's checkpointed hook state in place.
func (a *KeyedAggregator) loadState(key string, v []byte) error {
	ks, err := a.rt.DecodeKeyState(v)
	if err != nil {
		return fmt.Errorf("state of key %q: %w", key, err)
	}
	a.states[key] = &keyState{ks: ks}
	a.timers.pushAll(key, ks)
	return nil
}

func (a *KeyedAggregator) touch(sk string, en *entry) {
	if a.localEntries != nil {
		delete(a.localEntries, sk) // changed since the restore
	}
	en.local = false
	if !en.dirty {
		en.dirty = true
		a.unwritten.entries = append(a.unwritten.entries, sk)
	}
	if !en.changed {
		en.changed = true
		a.emit.changed = append(a.emit.changed, sk)
	}
}

func (a *KeyedAggregator) touchState(key string, st *keyState) {
	if a.localStates != nil {
		delete(a.localStates, key) // changed since the restore
	}
	if !st.dirty {
		st.dirty = true
		a.unwritten.states = append(a.unwritten.states, key)
	}
}

func (a *KeyedAggregator) add(ctx actor.Context, m *keyedBatch) {
	nk := len(a.p.KeyColumns)
	for i := range m.rows {
		k := &m.rows[i]
		if k.Watermark > a.watermark {
			a.readAt = m.read
			if err := a.advance(k.Watermark, false); err != nil {
				a.hookFailed(ctx, err)
			}
		}
		if a.p.HasJoin() {
			if err := a.addJoined(k, m, i); err != nil { // (join.go)
				a.fail(ctx, m, i, err)
			}
			continue
		}
		var err error
		if a.p.IsWindowed() {
			err = a.addWindowed(k, nk, m, i)
		} else {
			_, err = a.addTo(k.Key, a.entries[k.Key], k, nk, 0, 0)
		}
		if err == nil && a.p.HasKeyHooks() {
			err = a.onRecord(k)
		}
		if err != nil {
			var damaged *damagedEntry
			if errors.As(err, &damaged) {
				panic(fmt.Errorf("shard %d of %s: %w", a.shard, a.partition, err))
			}
			a.fail(ctx, m, i, err)
		}
	}
}

// addTo folds a record into en, the entry at state key sk, creating it
// when en is nil; it returns the entry.
func (a *KeyedAggregator) addTo(sk string, en *entry, k *scripting.Keyed, nk int, start, end int64) (*entry, error) {
	fresh := en == nil
	if !fresh {
		if err := a.decoded(sk, en); err != nil {
			return nil, err
		}
	}
	if fresh {
		var err error
		if en, err = a.newEntry(k, nk); err != nil {
			return nil, err
		}
		en.start, en.end, en.unstored = start, end, true
	}
	if sk == k.Key {
		sk = en.key // (an unwindowed entry's: the lists touch adds to keep it)
	}
	if err := a.rt.Add(en.accs, k.Vals[nk:]); err != nil {
		return nil, err
	}
	if fresh {
		a.entries[sk] = en
		if a.p.IsWindowed() {
			a.opened(sk, en)
			if a.p.Window.Kind == "session" {
				a.win.sessions[en.key] = append(a.win.sessions[en.key], en)
			}
		}
	}
	a.touch(sk, en)
	return en, nil
}

// newEntry makes the entry of record k's key (nk key columns), with fresh
// accumulators. The entry, its key's bytes (up to inlineKey of them) and
// its accumulators lie in one allocation where the runtime can make them
// so (scripting.Runtime.NewAccsAfter): folding a record finds the key a
// map compares, the entry and the accumulators side by side, not in
// three places of a shard's megabytes of state, each a cache miss that
// waits for the one before it.
func (a *KeyedAggregator) newEntry(k *scripting.Keyed, nk int) (*entry, error) {
	// copies: k.Key and k.Vals are cut from slabs many records share
	// (scripting.Keyed), which the entry must not keep alive.
	p, accs, ok := a.rt.NewAccsAfter(keyedEntryType)
	if !ok {
		accs, err := a.rt.NewAccs()
		if err != nil {
			return nil, err
		}
		key := strings.Clone(k.Key)
		return &entry{key: key, keyVals: k.KeyVals(nk, key), accs: accs}, nil
	}
	h := (*keyedEntry)(p)
	h.en.accs = accs
	h.en.key = h.keep(k.Key)
	valKey := h.en.key
	if a.p.IsWindowed() && len(k.Key) <= inlineKey {
		// A window's emitted rows outlive it, and its inline key would
		// keep its whole allocation alive in them: they get a copy.
		// (An unwindowed entry lives as long as its key's rows anyway.)
		valKey = strings.Clone(k.Key)
	}
	h.en.keyVals = k.KeyVals(nk, valKey)
	return &h.en, nil
}

// keep returns key as the entry keeps it: in its room for the key, or a
// copy of its own if longer.
func (h *keyedEntry) keep(key string) string {
	if len(key) == 0 || len(key) > inlineKey {
		return strings.Clone(key)
	}
	copy(h.key[:], key)
	return unsafe.String(&h.key[0], len(key))
}

// keyedEntry is an entry with room for its key's bytes, the head of its
// accumulators' block (see newEntry). The key comes first: a lookup reads
// it first, and the line pair it lies in (the unit an x86 core's
// adjacent-line prefetch fetches) then holds the entry's fields a record
// reads (entry: its first 64 bytes).
type keyedEntry struct {
	key [inlineKey]byte
	en  entry
}

// inlineKey is how long a key keyedEntry holds can be; a longer one is
// the entry's own copy, elsewhere.
const inlineKey = 16

var keyedEntryType = reflect.TypeFor[keyedEntry]()

func (a *KeyedAggregator) onRecord(k *scripting.Keyed) error {
	st := a.state(k.Key)
	res, err := a.rt.OnRecord(st.ks, k.Key, k.Rec, k.Time, a.watermark)
	a.afterHook(k.Key, st, res)
	return err
}

func (a *KeyedAggregator) state(key string) *keyState {
	st := a.states[key]
	if st == nil {
		st = &keyState{ks: a.rt.NewKeyState()}
		a.states[key] = st
	}
	return st
}

// afterHook records what a hook did: its key's state is dirty, its timers
// may have moved, its rows go out.
func (a *KeyedAggregator) afterHook(key string, st *keyState, res scripting.HookResult) {
	if a.joinDone(key, st, res) { // (join.go)
		return
	}
	a.touchState(key, st)
	if res.TimersChanged {
		a.timers.pushAll(key, st.ks)
	}
	for _, em := range res.Emits {
		a.out.add(em.Sink, em.Row)
	}
}

// fail sends a record that failed in this shard to the dead letters. The
// record counted as kept upstream; it no longer does.
func (a *KeyedAggregator) fail(ctx actor.Context, m *keyedBatch, i int, err error) {
	if a.wasInterrupted(err) {
		return
	}
	row := deadLetter(a.partition, m.src, m.idx[i], err)
	a.e.cfg.Stats.Failed.Add(1)
	a.e.cfg.Stats.Kept.Add(-1)
	a.out.add("dead_letter", row)
	ctx.Send(a.e.node, &failed{n: 1, last: err.Error()})
}

// toEmitter sends the emitter rows, when the pipeline has one (a
// pipeline with hooks and no aggregate has shards but no result table).
func (a *KeyedAggregator) toEmitter(ctx actor.Context, m *resultRows) {
	if a.e.emitter != nil {
		ctx.Send(a.e.emitter, m)
	}
}

// hookFailed reports an on_window or on_timer error: there is no record to
// send to the dead letters, so the failure goes there on its own.
func (a *KeyedAggregator) hookFailed(ctx actor.Context, err error) {
	if a.wasInterrupted(err) {
		return
	}
	a.e.cfg.Stats.Failed.Add(1)
	a.out.add("dead_letter", connectors.Row{Fields: []connectors.Field{
		{Name: "error", Value: err.Error()}, {Name: "partition", Value: a.partition},
	}})
	ctx.Send(a.e.node, &failed{n: 1, last: err.Error()})
}

func (a *KeyedAggregator) partial(sk string, en *entry) (partial, error) {
	if en.raw != nil {
		return partial{key: sk, raw: en.raw}, nil // (unwindowed: see lazyEntries)
	}
	accs, err := a.rt.Portable(en.accs)
	if err != nil {
		return partial{}, err
	}
	keyVals := en.keyVals
	if a.p.IsWindowed() {
		keyVals = append(append(make([]any, 0, len(keyVals)+2), keyVals...), a.win.stamps.of(en.start), a.win.stamps.of(en.end))
	}
	return partial{key: sk, keyVals: keyVals, accs: accs, start: en.start, end: en.end}, nil
}

// windowedFinal: windows emitted once, when they fire; the emitter keeps
// nothing between triggers.
func (a *KeyedAggregator) windowedFinal() bool {
	return a.p.IsWindowed() && a.p.Emit == scripting.EmitFinal
}

// wasInterrupted notes a script call the run interrupted: not the
// record's failure, but the end of this shard's checkpoints.
func (a *KeyedAggregator) wasInterrupted(err error) bool {
	if !interrupted(err) {
		return false
	}
	if a.interrupted == nil {
		a.interrupted = fmt.Errorf("shard %d of %s: %w", a.shard, a.partition, err)
	}
	return true
}

// onBarrier passes a barrier: fires what it passed, sends the emitter what
// changed and, at a checkpoint, writes the state. It returns the ack to
// send now, or nil when the checkpoint's commit sends it.
func (a *KeyedAggregator) onBarrier(ctx actor.Context, b *barrier) *shardBarrierAck {
	ack := &shardBarrierAck{gen: a.gen, seq: b.seq, shard: a.shard}
	if a.interrupted != nil {
		ack.err = a.interrupted
		return ack
	}
	a.fireAt(ctx, b)
	if err := a.sendEmitter(ctx); err != nil {
		ack.err = err
		return ack
	}
	a.out.flushTo(ctx, a.e)
	if b.epoch == 0 || a.unwritten.empty() {
		return ack
	}
	return a.checkpoint(ctx, b, ack)
}

// fireAt fires the windows and timers the barrier's watermark has passed,
// and the processing-time timers due (but at the final barrier).
func (a *KeyedAggregator) fireAt(ctx actor.Context, b *barrier) {
	// The barrier's watermark is the pipeline's: past this partition's own
	// when the partition is idle, so its windows still close.
	if b.watermark > a.watermark || b.final {
		a.readAt = time.Now()
	}
	if err := a.advance(b.watermark, b.final); err != nil {
		a.hookFailed(ctx, err)
	}
	if !b.final {
		if err := a.fireClock(); err != nil {
			a.hookFailed(ctx, err)
		}
	}
}

// sendEmitter sends the emitter what changed since the last barrier: the
// windows fired, for a final emit of windows; otherwise the entries
// changed and dropped.
func (a *KeyedAggregator) sendEmitter(ctx actor.Context) error {
	drops := a.emit.dropped
	a.emit.dropped = nil
	if a.windowedFinal() {
		return a.sendFired(ctx)
	}
	if len(a.emit.changed) == 0 && len(drops) == 0 && len(a.emit.superseded) == 0 {
		return nil
	}
	return a.sendChanged(ctx, drops)
}

// sendFired sends the emitter the windows fired (and, of sessions, the
// open ones that changed).
//
// The sessions superseded since the last trigger go in the message of the
// fired rows, and the emitter forgets them before it takes the rows: a
// merged session takes the state key of the earliest session it absorbed,
// superseded just before, and can fire under that key in the same
// trigger. Sent in a later message, the key made the emitter forget the
// session it had just been given (a lost row: issue 15).
func (a *KeyedAggregator) sendFired(ctx actor.Context) error {
	superseded := a.emit.superseded
	a.emit.superseded = nil
	if len(a.emit.fired) > 0 || len(superseded) > 0 {
		// the emitter takes the slice: the next fired windows go in a new one
		a.toEmitter(ctx, &resultRows{partition: a.partition, shard: a.shard, fired: true, rows: a.emit.fired, superseded: superseded})
		a.emit.fired = nil
	}
	if a.sessionWindows() {
		if err := a.sendOpenSessions(ctx); err != nil {
			return err
		}
	}
	for _, sk := range a.emit.changed {
		if en := a.entries[sk]; en != nil {
			en.changed = false
		}
	}
	a.emit.changed = a.emit.changed[:0]
	return nil
}

// sendChanged sends the emitter the entries changed, the last changes of
// those dropped since, and which to forget.
func (a *KeyedAggregator) sendChanged(ctx actor.Context, drops []string) error {
	rows := append(make([]partial, 0, len(a.emit.changed)+len(a.emit.lastChanges)), a.emit.lastChanges...)
	a.emit.lastChanges = nil
	for _, sk := range a.emit.changed {
		en := a.entries[sk]
		if en == nil {
			continue
		}
		en.changed = false
		p, err := a.partial(sk, en)
		if err != nil {
			return err
		}
		rows = append(rows, p)
	}
	a.toEmitter(ctx, &resultRows{partition: a.partition, shard: a.shard, rows: rows, drop: drops, superseded: a.emit.superseded, read: a.emit.oldestRead})
	a.emit.superseded = nil
	a.emit.changed = a.emit.changed[:0]
	a.emit.oldestRead = time.Time{}
	return nil
}

// checkpoint encodes what changed since the last checkpoint and commits
// it at epoch off the shard's goroutine (shardcommit.go). The shard has
// passed the barrier once its changes are encoded and sent: it
// acknowledges it at once, and the commit tells the node when the write
// is in the store, so the emit and the sinks' flush of the checkpoint
// run beside its write. (At the end of the input they waited for it, with
// a core idle.) But at a storeFirst barrier the commit acknowledges it,
// with the changelog's writes, which must wait for the store's. It
// returns the ack to send now, or nil when the commit sends it.
func (a *KeyedAggregator) checkpoint(ctx actor.Context, b *barrier, ack *shardBarrierAck) *shardBarrierAck {
	epoch := b.epoch
	if a.localEntries != nil || a.localStates != nil {
		a.localUntil = epoch // the restored entries are kept until it completes
	}
	w, err := a.encodeUnwritten(b.storeFirst)
	a.markWritten(epoch)
	if err != nil {
		ack.err = err
		return ack
	}
	if b.storeFirst {
		supervisor := ctx.Parent()
		a.commits.start(a, epoch, w, func(err error) (*actor.PID, any) {
			ack.err, ack.clog = err, w.clog
			return supervisor, ack
		})
		return nil
	}
	ack.writing = true
	written := &shardWritten{seq: b.seq, partition: a.partition, shard: a.shard}
	a.commits.start(a, epoch, w, func(err error) (*actor.PID, any) {
		written.err = err
		return a.e.node, written
	})
	return ack
}

// encodeUnwritten encodes what the next checkpoint writes (and sends the
// changelog its copy).
func (a *KeyedAggregator) encodeUnwritten(storeFirst bool) (*recordedWrites, error) {
	u := a.unwritten
	if storeFirst {
		// What a restore of many keys brought, in its table's random
		// order: sorted here as strings, in about half the CPU time of the
		// commit's sort of the same writes (recordedWrites.commit), which
		// then finds them in order and passes over them once.
		slices.Sort(u.entries)
	}
	n := len(u.entries) + len(u.deleted) + len(u.states) + len(u.statesDeleted)
	if u.restored {
		for _, kvs := range a.restoredRaw {
			n += len(kvs)
		}
	}
	w := &recordedWrites{ops: make([]recordedOp, 0, n), storeFirst: storeFirst}
	if storeFirst {
		// After a restore with no local state, the store has none of the
		// partition's keys: it checks that once, then counts each as new.
		w.fresh = [][]byte{statePrefix(a.partition), hookStatePrefix(a.partition)}
	}
	return w, a.writeTo(w)
}

// markWritten moves what was unwritten to checkpoint epoch's pending
// writes, to redo if it is aborted.
func (a *KeyedAggregator) markWritten(epoch uint64) {
	for _, sk := range a.unwritten.entries {
		if en := a.entries[sk]; en != nil {
			en.dirty = false
		}
	}
	for _, k := range a.unwritten.states {
		if st := a.states[k]; st != nil {
			st.dirty = false
		}
	}
	a.pending[epoch] = a.unwritten
	a.unwritten = changeSet{}
}

// redo marks what an aborted checkpoint wrote to be written again.
func (a *KeyedAggregator) redo(w changeSet) {
	for _, sk := range w.entries {
		if en := a.entries[sk]; en != nil && !en.dirty {
			en.dirty = true
			a.unwritten.entries = append(a.unwritten.entries, sk)
		}
	}
	a.unwritten.restored = a.unwritten.restored || w.restored
	a.unwritten.deleted = append(a.unwritten.deleted, w.deleted...)
	a.unwritten.statesDeleted = append(a.unwritten.statesDeleted, w.statesDeleted...)
	for _, k := range w.states {
		if st := a.states[k]; st != nil {
			a.touchState(k, st)
		}
	}
}

// restoreWritten: the checkpoint that wrote what the changelog brought to
// the store is complete; from now on every change goes to both.
func (a *KeyedAggregator) restoreWritten() {
	for _, sk := range a.pending[a.localUntil].entries {
		if en := a.entries[sk]; en != nil {
			en.local = false
		}
	}
	a.localEntries, a.localStates, a.localUntil, a.restoredRaw = nil, nil, 0, nil
}

// isLocalEntry: the next checkpoint writes entry sk to the store only.
func (a *KeyedAggregator) isLocalEntry(sk string) bool {
	_, ok := a.localEntries[sk]
	return ok
}

type batchWriter interface {
	Set(key, value []byte) error
	Delete(key []byte) error
}

func (a *KeyedAggregator) writeTo(wb batchWriter) error {
	var buf []byte
	var err error
	if cl := a.e.cfg.Changelog; cl != nil {
		tee := &teeWriter{wb: wb, cl: cl, partition: a.partition}
		if r, ok := wb.(*recordedWrites); ok && r.storeFirst {
			tee.later = r
		}
		wb = tee
	}
	tee, _ := wb.(*teeWriter)
	// The entries' keys go in slabs of many: the first checkpoint after a
	// restore writes millions. (A key is never changed once made.)
	var keys valueSlab
	var kb []byte
	entryKey := func(sk string) []byte {
		kb = appendStateKey(kb[:0], a.partition, sk)
		return keys.keep(kb)
	}
	if a.unwritten.restored {
		if err := a.writeRestored(wb, tee, entryKey); err != nil {
			return err
		}
	}
	for _, sk := range a.unwritten.entries {
		en := a.entries[sk]
		if en == nil {
			continue // expired since: in deleted
		}
		if raw := a.localEntries[sk]; raw != nil {
			tee.localOnly(true)
			if err := setKept(wb, entryKey(sk), raw); err != nil {
				return err
			}
			continue
		}
		if en.raw != nil {
			// as restored (and rewritten by an aborted checkpoint's redo)
			tee.localOnly(en.local || a.isLocalEntry(sk))
			if err := setKept(wb, entryKey(sk), en.raw); err != nil {
				return err
			}
			continue
		}
		if a.p.IsWindowed() {
			buf, err = a.rt.EncodeWindowEntry(buf[:0], en.keyVals, en.start, en.end, en.fired, en.accs)
		} else {
			buf, err = a.rt.EncodeEntry(buf[:0], en.keyVals, en.accs)
		}
		if err != nil {
			return err
		}
		tee.localOnly(a.isLocalEntry(sk))
		if err := wb.Set(entryKey(sk), buf); err != nil {
			return err
		}
		en.unstored = false
	}
	for _, sk := range a.unwritten.deleted {
		if a.entries[sk] != nil {
			continue // recreated since
		}
		tee.localOnly(a.isLocalEntry(sk))
		if err := wb.Delete(entryKey(sk)); err != nil {
			return err
		}
	}
	for _, k := range a.unwritten.states {
		st := a.states[k]
		if st == nil {
			continue
		}
		if buf, err = a.rt.EncodeKeyState(buf[:0], st.ks); err != nil {
			return fmt.Errorf("key %q: %w", k, err)
		}
		tee.localOnly(a.localStates[k])
		if err := wb.Set(hookStateKey(a.partition, k), buf); err != nil {
			return err
		}
	}
	for _, k := range a.unwritten.statesDeleted {
		if a.states[k] != nil {
			continue
		}
		tee.localOnly(a.localStates[k])
		if err := wb.Delete(hookStateKey(a.partition, k)); err != nil {
			return err
		}
	}
	return nil
}

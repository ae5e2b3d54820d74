package actors

import (
	"fmt"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/scripting"
)

// KeyedAggregator holds one shard of one partition's keyed state: the
// accumulators of the keys that hash to it. It checkpoints the keys changed
// since the last complete checkpoint at each checkpoint barrier and sends
// the keys changed since the last trigger to the emitter.
type KeyedAggregator struct {
	e         *engine
	partition string
	shard     int
	shards    int
	restore   uint64

	rt      *scripting.Runtime
	entries map[string]*entry
	// dirty: keys changed since the last checkpoint barrier; pending: keys
	// written at a checkpoint that is not complete yet (dirty again if it
	// is aborted); changed: keys changed since the last trigger, for the
	// emitter. Entries carry flags so each key is listed once.
	dirty   []string
	pending map[uint64][]string
	changed []string
}

type entry struct {
	keyVals        []any
	accs           []any
	dirty, changed bool
}

func (a *KeyedAggregator) touch(key string, en *entry) {
	if !en.dirty {
		en.dirty = true
		a.dirty = append(a.dirty, key)
	}
	if !en.changed {
		en.changed = true
		a.changed = append(a.changed, key)
	}
}

func newAggregator(e *engine, partition string, shard, shards int, restore uint64) *KeyedAggregator {
	return &KeyedAggregator{e: e, partition: partition, shard: shard, shards: shards, restore: restore}
}

// stateKey is where a key's entry lives in the store: one prefix per
// partition, so a partition's state can be restored (or moved) alone.
func stateKey(partition, key string) []byte {
	return []byte("agg/" + partition + "\x00" + key)
}

func statePrefix(partition string) []byte { return []byte("agg/" + partition + "\x00") }

// Receive implements actor.Actor.
func (a *KeyedAggregator) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		if err := a.start(ctx); err != nil {
			panic(fmt.Errorf("shard %d of %s: %w", a.shard, a.partition, err))
		}
	case *actor.Stopping:
		if a.rt != nil {
			a.rt.Close()
		}
	case *keyedBatch:
		a.add(ctx, m)
		a.e.cfg.Stats.BatchLatency.Observe(time.Since(m.read))
		ctx.Send(ctx.Parent(), &shardProcessed{shard: a.shard})
	case *barrier:
		ctx.Send(ctx.Parent(), a.onBarrier(ctx, m))
	case *checkpointDone:
		for ep := range a.pending {
			if ep <= m.epoch {
				delete(a.pending, ep)
			}
		}
	case *checkpointAborted:
		for _, k := range a.pending[m.epoch] {
			if en := a.entries[k]; en != nil && !en.dirty {
				en.dirty = true
				a.dirty = append(a.dirty, k)
			}
		}
		delete(a.pending, m.epoch)
	}
}

func (a *KeyedAggregator) start(ctx actor.Context) error {
	rt, err := a.e.cfg.Pipeline.NewRuntime(false)
	if err != nil {
		return err
	}
	a.rt = rt
	a.entries = map[string]*entry{}
	a.pending = map[uint64][]string{}
	if a.restore == 0 {
		ctx.Send(a.e.emitter, &resultRows{partition: a.partition, shard: a.shard, reset: true})
		return nil
	}
	prefix := statePrefix(a.partition)
	err = a.e.cfg.Store.Scan(a.restore, prefix, func(k, v []byte) error {
		key := string(k[len(prefix):])
		if scripting.Shard(key, a.shards) != a.shard {
			return nil
		}
		keyVals, accs, err := rt.DecodeEntry(v)
		if err != nil {
			return fmt.Errorf("checkpoint %d, key %q: %w", a.restore, key, err)
		}
		a.entries[key] = &entry{keyVals: keyVals, accs: accs}
		return nil
	})
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	rows, err := a.partials(a.entries, nil)
	if err != nil {
		return err
	}
	ctx.Send(a.e.emitter, &resultRows{partition: a.partition, shard: a.shard, reset: true, rows: rows})
	return nil
}

// testHookAdd, when set by a test, runs before each batch a shard adds:
// a panic there is a crashed shard.
var testHookAdd func(partition string, shard int)

func (a *KeyedAggregator) add(ctx actor.Context, m *keyedBatch) {
	if testHookAdd != nil {
		testHookAdd(a.partition, a.shard)
	}
	nk := len(a.e.cfg.Pipeline.KeyColumns)
	var dead []connectors.Row
	for i, k := range m.rows {
		en := a.entries[k.Key]
		fresh := en == nil
		if fresh {
			accs, err := a.rt.NewAccs()
			if err != nil {
				dead = append(dead, deadLetter(a.partition, m.src, m.idx[i], err))
				continue
			}
			en = &entry{keyVals: k.Vals[:nk:nk], accs: accs}
		}
		if err := a.rt.Add(en.accs, k.Vals[nk:]); err != nil {
			dead = append(dead, deadLetter(a.partition, m.src, m.idx[i], err))
			continue
		}
		if fresh {
			a.entries[k.Key] = en
		}
		a.touch(k.Key, en)
	}
	if len(dead) > 0 {
		a.e.cfg.Stats.Failed.Add(int64(len(dead)))
		a.e.cfg.Stats.Kept.Add(-int64(len(dead)))
		if a.e.deadLetters != nil {
			ctx.Send(a.e.deadLetters, &rowsOut{rows: dead})
		}
		last, _ := dead[len(dead)-1].Get("error")
		ctx.Send(a.e.node, &failed{n: int64(len(dead)), last: fmt.Sprint(last)})
	}
}

// partials copies the given keys' state (all when keys is nil) for the
// emitter.
func (a *KeyedAggregator) partials(entries map[string]*entry, keys []string) ([]partial, error) {
	var out []partial
	appendOne := func(key string, en *entry) error {
		accs, err := a.rt.Portable(en.accs)
		if err != nil {
			return err
		}
		out = append(out, partial{key: key, keyVals: en.keyVals, accs: accs})
		return nil
	}
	if keys == nil {
		out = make([]partial, 0, len(entries))
		for k, en := range entries {
			if err := appendOne(k, en); err != nil {
				return nil, err
			}
		}
		return out, nil
	}
	out = make([]partial, 0, len(keys))
	for _, k := range keys {
		en := entries[k]
		en.changed = false
		if err := appendOne(k, en); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func (a *KeyedAggregator) onBarrier(ctx actor.Context, b *barrier) *shardBarrierAck {
	ack := &shardBarrierAck{seq: b.seq, shard: a.shard, keys: int64(len(a.entries))}
	if len(a.changed) > 0 {
		rows, err := a.partials(a.entries, a.changed)
		if err != nil {
			ack.err = err
			return ack
		}
		ctx.Send(a.e.emitter, &resultRows{partition: a.partition, shard: a.shard, rows: rows})
		a.changed = a.changed[:0]
	}
	if b.epoch == 0 {
		return ack
	}
	ack.changed = int64(len(a.dirty))
	if len(a.dirty) > 0 {
		ack.err = a.write(b.epoch)
		for _, k := range a.dirty {
			a.entries[k].dirty = false
		}
		a.pending[b.epoch] = a.dirty
		a.dirty = nil
	}
	return ack
}

// write puts the dirty keys into the store at version epoch.
func (a *KeyedAggregator) write(epoch uint64) error {
	wb := a.e.cfg.Store.Batch(epoch)
	var buf []byte
	for _, k := range a.dirty {
		var err error
		buf, err = a.rt.EncodeEntry(buf[:0], a.entries[k].keyVals, a.entries[k].accs)
		if err != nil {
			wb.Cancel()
			return err
		}
		if err := wb.Set(stateKey(a.partition, k), append([]byte(nil), buf...)); err != nil {
			wb.Cancel()
			return err
		}
	}
	return wb.Commit()
}

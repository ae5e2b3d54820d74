package actors

import (
	"context"
	"encoding/json"
	"errors"
	"sort"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/state"
)

// Standby copies (Config.Standby): the node keeps warm copies of
// partitions other nodes own, so a failover reads only their latest
// changes. A goroutine asks the source which partitions to keep (each has
// up to Standby copies on nodes other than its owner) and tails their
// changelogs; the keeper actor buffers what it reads and writes it to the
// store at each checkpoint, with the changelog offset and the marker's
// position beside it (clogKey), as if the node had owned the partition up
// to there. When a partition is assigned here, its restore starts from
// that offset.

// standbyKeeper holds the changes read for the standby partitions until
// the next checkpoint.
type standbyKeeper struct {
	e     *engine
	owned map[string]bool // read by this node: never kept warm
	parts map[string]*standbyPart
	stop  context.CancelFunc
	done  chan struct{}
}

type standbyPart struct {
	offset  int64             // the changelog offset read up to
	pending map[string][]byte // store key → value (nil: delete) since the last checkpoint
	// sent: what checkpoints not yet complete wrote, by epoch, to write
	// again if one is aborted
	sent   map[uint64]map[string][]byte
	marker connectors.ChangelogMarker
	dirty  bool
}

func newStandbyKeeper(e *engine) *standbyKeeper {
	return &standbyKeeper{e: e, owned: map[string]bool{}, parts: map[string]*standbyPart{}}
}

// Receive implements actor.Actor.
func (k *standbyKeeper) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		rctx, cancel := context.WithCancel(k.e.ctx)
		k.stop, k.done = cancel, make(chan struct{})
		self, root := ctx.Self(), k.e.system.Root
		go func() {
			defer close(k.done)
			k.tail(rctx, self, root)
		}()
	case *actor.Stopping:
		if k.stop != nil {
			k.stop()
			select {
			case <-k.done:
			case <-time.After(readerStopTimeout):
				k.e.cfg.Logger.Warn("standby: the changelog reader did not return in time after the stop", "waited", readerStopTimeout)
			}
		}
	case *standbySet:
		ctx.Respond(k.set(m.ids))
	case *standbyChanges:
		k.apply(m)
	case *standbyOwned:
		if m.owned {
			k.owned[m.id] = true
			delete(k.parts, m.id) // its restore reads from the last written offset
		} else {
			delete(k.owned, m.id)
		}
		k.publish()
	case *barrier:
		ctx.Send(k.e.node, &standbyAck{seq: m.seq, err: k.write(m.epoch)})
	case *checkpointDone:
		for _, p := range k.parts {
			for ep := range p.sent {
				if ep <= m.epoch {
					delete(p.sent, ep)
				}
			}
		}
	case *checkpointAborted:
		for _, p := range k.parts {
			if sent := p.sent[m.epoch]; sent != nil {
				for key, v := range sent {
					if _, newer := p.pending[key]; !newer {
						p.pending[key] = v
					}
				}
				delete(p.sent, m.epoch)
				p.dirty = true
			}
		}
	}
}

// set keeps the partitions of ids (but those this node reads) and answers
// where to read each from.
func (k *standbyKeeper) set(ids []string) []standbyFrom {
	keep := map[string]bool{}
	var out []standbyFrom
	for _, id := range ids {
		if k.owned[id] {
			continue
		}
		keep[id] = true
		p := k.parts[id]
		if p == nil {
			p = &standbyPart{offset: k.localOffset(id), pending: map[string][]byte{}}
			k.parts[id] = p
		}
		out = append(out, standbyFrom{id: id, from: p.offset})
	}
	for id := range k.parts {
		if !keep[id] {
			delete(k.parts, id) // another node keeps it now (what is written stays)
		}
	}
	k.publish()
	return out
}

// localOffset is the changelog offset the store holds a partition to.
func (k *standbyKeeper) localOffset(id string) int64 {
	store := k.e.cfg.Store
	cp, err := store.Last()
	if err != nil {
		return 0
	}
	v, ok, err := store.Get(cp.ID, clogKey(id))
	if err != nil || !ok {
		return 0
	}
	var ce clogEntry
	if json.Unmarshal(v, &ce) != nil {
		return 0
	}
	return ce.Offset
}

func (k *standbyKeeper) apply(m *standbyChanges) {
	p := k.parts[m.id]
	if p == nil || k.owned[m.id] || p.offset != m.from {
		return // dropped or owned meanwhile, or a stale read
	}
	for i, key := range m.keys {
		p.pending[key] = m.values[i]
	}
	if m.marker.Checkpoint > 0 {
		p.marker = m.marker
	}
	p.offset = m.next
	p.dirty = p.dirty || m.next != m.from
	k.e.cfg.Stats.StandbyChanges.Add(int64(len(m.keys)))
	k.publish()
}

// write puts what the standby partitions read since the last checkpoint
// into the store at epoch, with the offset each is now held to.
func (k *standbyKeeper) write(epoch uint64) error {
	if epoch == 0 {
		return nil
	}
	var wb *state.Batch
	for id, p := range k.parts {
		if !p.dirty || p.marker.Checkpoint == 0 {
			continue // nothing new, or no checkpoint of it read yet
		}
		if wb == nil {
			wb = k.e.cfg.Store.Batch(epoch)
		}
		for key, v := range p.pending {
			var err error
			if v == nil {
				err = wb.Delete([]byte(key))
			} else {
				err = wb.Set([]byte(key), v)
			}
			if err != nil {
				wb.Cancel()
				return err
			}
		}
		ce, _ := json.Marshal(clogEntry{Offset: p.offset, Position: p.marker.Position, Watermark: p.marker.Watermark})
		if err := wb.Set(clogKey(id), ce); err != nil {
			wb.Cancel()
			return err
		}
		if p.sent == nil {
			p.sent = map[uint64]map[string][]byte{}
		}
		p.sent[epoch] = p.pending
		p.pending, p.dirty = map[string][]byte{}, false
	}
	if wb == nil {
		return nil
	}
	return wb.Commit()
}

// publish records the standby partitions for status, and how far each
// has read for metrics.
func (k *standbyKeeper) publish() {
	ids := make([]string, 0, len(k.parts))
	offsets := make(map[string]int64, len(k.parts))
	for id, p := range k.parts {
		ids = append(ids, id)
		offsets[id] = p.offset
	}
	sort.Strings(ids)
	k.e.standbys.Store(&ids)
	k.e.cfg.Stats.StandbyOffsets.Store(&offsets)
}

// tail asks the source which partitions to keep warm and reads their
// changelogs, every checkpoint interval.
func (k *standbyKeeper) tail(ctx context.Context, self *actor.PID, root *actor.RootContext) {
	src := k.e.cfg.Source.(connectors.StandbySource)
	cl, log := k.e.cfg.Changelog, k.e.cfg.Logger
	every := max(k.e.cfg.CheckpointInterval, time.Second)
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(every):
		}
		ids, err := src.Standbys(ctx, k.e.cfg.Standby)
		if err != nil {
			log.Warn("standby: which partitions to keep warm", "err", err)
			continue
		}
		res, err := root.RequestFuture(self, &standbySet{ids: ids}, queryTimeout).Result()
		if err != nil {
			continue
		}
		for _, f := range res.([]standbyFrom) {
			m := &standbyChanges{id: f.id, from: f.from}
			marker, next, err := cl.Restore(ctx, f.id, f.from, func(key, value []byte) error {
				m.keys = append(m.keys, string(key))
				m.values = append(m.values, value)
				return nil
			}, nil)
			if ctx.Err() != nil {
				return
			}
			if err != nil {
				log.Warn("standby: reading a changelog", "partition", f.id, "err", err)
				continue
			}
			if n := len(m.keys); n > 0 {
				log.Debug("standby: read changes", "partition", f.id, "changes", n, "to", next)
			}
			m.next, m.marker = next, marker
			root.Send(self, m)
		}
	}
}

// standbyUsable reports whether cfg can keep standby copies, and why not.
func standbyUsable(cfg Config) error {
	if cfg.Standby <= 0 {
		return nil
	}
	if cfg.Changelog == nil {
		return errors.New("--standby needs the changelog (a kafka:// source without --changelog=false)")
	}
	if _, ok := cfg.Source.(connectors.StandbySource); !ok {
		return errors.New("--standby: the source can't name standby partitions (it takes a kafka:// source)")
	}
	return nil
}

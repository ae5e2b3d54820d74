package actors

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/scripting"
	"github.com/eddy-stream/eddy/state"
)

// maxInFlight bounds the batches a supervisor has sent a shard that the
// shard has not processed yet: the backpressure between them.
const maxInFlight = 4

// PartitionSupervisor owns one source partition: a reader goroutine, the
// parse/filter/key runtime, and the KeyedAggregator shards of the
// partition's state. When it or a shard fails, it restarts from the last
// complete checkpoint: state restored, partition rewound.
type PartitionSupervisor struct {
	e    *engine
	part connectors.Partition
	id   string
	// restart is set on every incarnation after the first.
	restart bool

	rt     *scripting.Runtime
	shards []*actor.PID
	// gen tells this incarnation's reader batches from a dead one's.
	gen uint64

	// reader
	permits    chan struct{}
	stopReader context.CancelFunc
	readerDone sync.WaitGroup

	pos       connectors.Position // after the last processed batch
	inFlight  []int
	paused    bool // at a trigger boundary
	status    partitionStatus
	requested bool // a read permit is outstanding

	// the barrier being passed through the shards
	barrier *barrier
	bpos    connectors.Position
	acked   map[int]*shardBarrierAck
}

// generations counts supervisor incarnations process-wide, so a restarted
// supervisor ignores its predecessor's in-flight reader batches.
var generations atomic.Uint64

func newSupervisor(e *engine, p connectors.Partition, restart bool) *PartitionSupervisor {
	return &PartitionSupervisor{e: e, part: p, id: p.ID(), restart: restart}
}

// Receive implements actor.Actor.
func (s *PartitionSupervisor) Receive(ctx actor.Context) {
	switch m := ctx.Message().(type) {
	case *actor.Started:
		if err := s.start(ctx); err != nil {
			ctx.Send(s.e.node, &partitionFailed{id: s.id, err: err})
		}
	case *actor.Restarting, *actor.Stopping:
		s.stop()
	case *sourceBatch:
		if m.gen == s.gen {
			s.onBatch(ctx, m)
		}
	case *shardProcessed:
		s.inFlight[m.shard]--
		s.request()
	case *barrier:
		s.onBarrier(ctx, m)
	case *shardBarrierAck:
		s.onShardAck(ctx, m)
	case *checkpointDone, *checkpointAborted:
		for _, sh := range s.shards {
			ctx.Send(sh, m)
		}
	}
}

func (s *PartitionSupervisor) start(ctx actor.Context) error {
	s.gen = generations.Add(1)
	cfg := s.e.cfg
	rt, err := cfg.Pipeline.NewRuntime(cfg.Records != nil)
	if err != nil {
		return err
	}
	s.rt = rt
	// Restore: the last complete checkpoint's position and state.
	epoch := uint64(0)
	cp, err := cfg.Store.Last()
	switch {
	case errors.Is(err, state.ErrNoCheckpoint):
	case err != nil:
		return fmt.Errorf("restore: %w", err)
	default:
		epoch = cp.ID
		if pos, ok := cp.Positions[s.id]; ok {
			if err := s.part.Seek(pos); err != nil {
				return fmt.Errorf("restore: seek to checkpoint %d: %w", cp.ID, err)
			}
			s.pos = pos
		}
	}
	if s.restart && s.pos == nil {
		// No checkpoint has this partition: read it again from its start.
		if err := s.part.Seek(nil); err != nil {
			return fmt.Errorf("restart: rewind: %w", err)
		}
	}
	if cfg.Pipeline.HasAggregate() {
		s.shards = make([]*actor.PID, cfg.Shards)
		s.inFlight = make([]int, cfg.Shards)
		for i := range s.shards {
			i := i
			s.shards[i] = ctx.Spawn(actor.PropsFromProducer(func() actor.Actor {
				return newAggregator(s.e, s.id, i, len(s.shards), epoch)
			}))
		}
	}
	if s.restart { // the node drops the barrier in flight
		ctx.Send(s.e.node, &partitionRestarted{id: s.id})
	}
	s.status = partitionStatus{id: s.id}
	s.startReader(ctx)
	return nil
}

// startReader runs the partition's blocking reads on a goroutine of their
// own; the actor hands it one permit per batch it is ready for.
func (s *PartitionSupervisor) startReader(ctx actor.Context) {
	rctx, cancel := context.WithCancel(s.e.ctx)
	s.stopReader = cancel
	s.permits = make(chan struct{}, 2)
	self, root, gen, part := ctx.Self(), s.e.system.Root, s.gen, s.part
	permits := s.permits
	s.readerDone.Add(1)
	go func() {
		defer s.readerDone.Done()
		for {
			select {
			case <-rctx.Done():
				return
			case <-permits:
			}
			b, err := part.Read(rctx)
			if rctx.Err() != nil {
				return
			}
			root.Send(self, &sourceBatch{gen: gen, batch: b, err: err, at: time.Now()})
			if err != nil {
				return
			}
		}
	}()
	s.request()
}

func (s *PartitionSupervisor) stop() {
	if s.stopReader != nil {
		s.stopReader()
		s.readerDone.Wait()
		s.stopReader = nil
	}
	if s.rt != nil {
		s.rt.Close()
		s.rt = nil
	}
}

// request gives the reader a permit unless paused, ended, or the shards
// are behind.
func (s *PartitionSupervisor) request() {
	if s.requested || s.paused || s.status.ended || s.stopReader == nil {
		return
	}
	for _, n := range s.inFlight {
		if n >= maxInFlight {
			return
		}
	}
	s.requested = true
	s.permits <- struct{}{}
}

func (s *PartitionSupervisor) onBatch(ctx actor.Context, m *sourceBatch) {
	s.requested = false
	stats := s.e.cfg.Stats
	switch {
	case errors.Is(m.err, connectors.ErrEndOfInput):
		s.status.ended = true
		stats.Ended.Add(1)
		s.report(ctx, 0)
		return
	case m.err != nil:
		ctx.Send(s.e.node, &partitionFailed{id: s.id, err: m.err})
		return
	}
	b := &m.batch
	n := s.process(ctx, b, m.at)
	s.pos = b.End
	s.status.caughtUp = b.CaughtUp
	if b.Boundary {
		s.paused = true
	}
	s.status.boundary = s.paused
	stats.Read.Add(int64(len(b.Records)))
	s.report(ctx, n)
	s.request()
}

func (s *PartitionSupervisor) report(ctx actor.Context, records int64) {
	st := s.status
	st.records = records
	ctx.Send(s.e.node, &st)
}

// process runs parse/filter/key over a batch and routes the results.
func (s *PartitionSupervisor) process(ctx actor.Context, b *connectors.Batch, read time.Time) int64 {
	e := s.e
	var (
		perShard [][]scripting.Keyed
		perIdx   [][]int
		records  []connectors.Row
		dead     []connectors.Row
		kept     int64
	)
	if len(s.shards) > 0 {
		perShard = make([][]scripting.Keyed, len(s.shards))
		perIdx = make([][]int, len(s.shards))
	}
	for i := range b.Records {
		k, rec, ok, err := s.rt.Process(b.Records[i].Value)
		if err != nil {
			dead = append(dead, deadLetter(s.id, b, i, err))
			continue
		}
		if !ok {
			continue
		}
		kept++
		if rec.Fields != nil {
			records = append(records, rec)
		}
		if perShard != nil {
			sh := scripting.Shard(k.Key, len(s.shards))
			perShard[sh] = append(perShard[sh], k)
			perIdx[sh] = append(perIdx[sh], i)
		}
	}
	for sh, rows := range perShard {
		if len(rows) > 0 {
			s.inFlight[sh]++
			ctx.Send(s.shards[sh], &keyedBatch{rows: rows, src: b, idx: perIdx[sh], read: read})
		}
	}
	if perShard == nil {
		e.cfg.Stats.BatchLatency.Observe(time.Since(read))
	}
	if len(records) > 0 && e.records != nil {
		ctx.Send(e.records, &rowsOut{rows: records})
	}
	if len(dead) > 0 {
		s.e.cfg.Stats.Failed.Add(int64(len(dead)))
		if e.deadLetters != nil {
			ctx.Send(e.deadLetters, &rowsOut{rows: dead})
		}
		last, _ := dead[len(dead)-1].Get("error")
		ctx.Send(e.node, &failed{n: int64(len(dead)), last: fmt.Sprint(last)})
	}
	e.cfg.Stats.Kept.Add(kept)
	return int64(len(b.Records))
}

// deadLetter describes a failed record for the dead-letter output.
func deadLetter(partition string, b *connectors.Batch, i int, err error) connectors.Row {
	return connectors.Row{Fields: []connectors.Field{
		{Name: "error", Value: err.Error() + " (" + b.Locate(i) + ")"},
		{Name: "partition", Value: partition},
		{Name: "source", Value: b.Locate(i)},
		{Name: "record", Value: string(b.Records[i].Value)},
	}}
}

func (s *PartitionSupervisor) onBarrier(ctx actor.Context, b *barrier) {
	s.paused = false
	s.status.boundary = false
	s.barrier, s.bpos, s.acked = b, s.pos, map[int]*shardBarrierAck{}
	if len(s.shards) == 0 {
		s.ackBarrier(ctx)
	}
	for _, sh := range s.shards {
		ctx.Send(sh, b)
	}
	s.request()
}

func (s *PartitionSupervisor) onShardAck(ctx actor.Context, m *shardBarrierAck) {
	if s.barrier == nil || m.seq != s.barrier.seq {
		return
	}
	s.acked[m.shard] = m
	if len(s.acked) == len(s.shards) {
		s.ackBarrier(ctx)
	}
}

func (s *PartitionSupervisor) ackBarrier(ctx actor.Context) {
	a := &partitionAck{seq: s.barrier.seq, id: s.id, pos: s.bpos}
	var errs []error
	for _, sa := range s.acked {
		a.keys += sa.keys
		a.changed += sa.changed
		if sa.err != nil {
			errs = append(errs, sa.err)
		}
	}
	a.err = errors.Join(errs...)
	s.barrier = nil
	ctx.Send(s.e.node, a)
}

package actors

import (
	"bytes"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	"github.com/eddy-stream/eddy/state"
)

// A shard's checkpoint is written in two halves. On the shard's goroutine
// it encodes its dirty state (which must not change under the encoding)
// into recordedWrites, and the changelog gets its copy in the same order
// as before. A goroutine of the checkpoint's own then writes those bytes
// to the store, syncs them and tells the node (or, at a storeFirst
// barrier, acknowledges the barrier to the supervisor), while the shard
// goes on folding the records after the barrier into the next
// checkpoint's changes. The store's write and sync
// took most of a checkpoint's time, and the shard used to wait through
// them with every record of its partition queued behind it.

// recordedWrites is a checkpoint's writes, encoded and in order. It
// keeps each key it is given (writeTo builds a fresh one per write) and
// copies each value (the caller reuses its buffer).
type recordedWrites struct {
	ops  []recordedOp
	slab []byte // values, many to an allocation
	// storeFirst: the changelog's writes wait in clog, to go with the
	// ack once the store has the checkpoint (barrier.storeFirst)
	storeFirst bool
	clog       []clogWrite
	// fresh: key prefixes the writes likely create every key under (a
	// restored partition's first checkpoint): each batch tells the store,
	// which then reads none of them back to count them (state.Batch.Fresh)
	fresh [][]byte
}

type recordedOp struct {
	key, value []byte
	del        bool
	seq        int32 // its place among the writes: the later of a key's wins
}

var _ batchWriter = (*recordedWrites)(nil)

func (r *recordedWrites) Set(key, value []byte) error {
	r.ops = append(r.ops, recordedOp{key: key, value: r.keep(value), seq: int32(len(r.ops))})
	return nil
}

// setKept records a write of a value that never changes (a restored
// entry's bytes): kept as it is, not copied.
func (r *recordedWrites) setKept(key, value []byte) error {
	r.ops = append(r.ops, recordedOp{key: key, value: value, seq: int32(len(r.ops))})
	return nil
}

func (r *recordedWrites) Delete(key []byte) error {
	r.ops = append(r.ops, recordedOp{key: key, del: true, seq: int32(len(r.ops))})
	return nil
}

const recordedSlab = 64 << 10

func (r *recordedWrites) keep(v []byte) []byte {
	if len(r.slab)+len(v) > cap(r.slab) {
		r.slab = make([]byte, 0, max(recordedSlab, len(v)))
	}
	start := len(r.slab)
	r.slab = append(r.slab, v...)
	return r.slab[start:len(r.slab):len(r.slab)]
}

// commit writes the recorded writes to the store at epoch in key order,
// in batches of about commitChunk writes. In order, because Badger's
// memtable takes keys in order at half the CPU time of the same keys
// unordered (a million restored keys: 6.9-8.6 s against 14.0-15.9 s, the
// sort included, on the loaded test machine), and the batches then have
// no sort of their own to do. In chunks, because a batch holds its writes
// (and Badger its transaction's) until it commits: the first checkpoint
// after a restore writes millions. The recorded keys and values stay
// unchanged until commit returns, so the batches take them uncopied.
func (r *recordedWrites) commit(store *state.Store, epoch uint64) error {
	slices.SortFunc(r.ops, func(x, y recordedOp) int {
		if c := bytes.Compare(x.key, y.key); c != 0 {
			return c
		}
		return int(x.seq - y.seq)
	})
	for ops := r.ops; len(ops) > 0; {
		n := chunkEnd(ops, commitChunk)
		if err := commitOps(r.batch(store, epoch), ops[:n]); err != nil {
			return err
		}
		ops = ops[n:]
	}
	return nil
}

// batch is a batch at epoch, told the prefixes likely fresh.
func (r *recordedWrites) batch(store *state.Store, epoch uint64) *state.Batch {
	b := store.Batch(epoch)
	for _, p := range r.fresh {
		b.Fresh(p)
	}
	return b
}

// commitChunk is about how many writes one batch of a commit takes. (A
// var: tests make it small.)
var commitChunk = 1 << 15

// chunkEnd is where the first chunk of sorted ops ends: after about size
// of them, never between two writes of a key (one batch must have them
// all, the later one winning).
func chunkEnd(ops []recordedOp, size int) int {
	n := min(size, len(ops))
	for n < len(ops) && bytes.Equal(ops[n].key, ops[n-1].key) {
		n++
	}
	return n
}

// commitOps writes ops to b and commits it.
func commitOps(b *state.Batch, ops []recordedOp) error {
	b.Grow(len(ops))
	for _, o := range ops {
		var err error
		if o.del {
			err = b.Delete(o.key)
		} else {
			err = b.SetOwned(o.key, o.value)
		}
		if err != nil {
			b.Cancel()
			return err
		}
	}
	return b.Commit()
}

// shardCommits runs a shard's checkpoint commits off its goroutine, and
// lets the shard wait for the one in flight when it stops. The
// supervisor passes a shard one barrier at a time, so at most one commit
// runs at once.
type shardCommits struct{ running sync.WaitGroup }

// testHookCommit, when a test sets it, runs on a checkpoint's commit
// goroutine before the commit.
var testHookCommit atomic.Pointer[func(partition string, shard int, epoch uint64)]

// start commits w, shard a's writes at epoch, on a goroutine of its own,
// then sends the message report makes of the commit's error to the actor
// it names.
func (c *shardCommits) start(a *KeyedAggregator, epoch uint64, w *recordedWrites, report func(error) (*actor.PID, any)) {
	store, root, partition, shard := a.e.cfg.Store, a.e.system.Root, a.partition, a.shard
	all := &a.e.storeWrites
	c.running.Add(1)
	all.running.Add(1)
	go func() {
		defer all.running.Done()
		defer c.running.Done()
		if hook := testHookCommit.Load(); hook != nil {
			(*hook)(partition, shard, epoch)
		}
		to, msg := report(w.commit(store, epoch))
		root.Send(to, msg)
	}()
}

// commitStopTimeout bounds a stopping shard's (or an ending run's) wait for
// its commits.
const commitStopTimeout = time.Minute

// wait waits for the commit in flight, if any, so that no write of a
// stopped shard reaches the store after it (a restarted incarnation
// restores from it). It reports false when the commit outlived
// commitStopTimeout.
func (c *shardCommits) wait() bool {
	done := make(chan struct{})
	go func() {
		c.running.Wait()
		close(done)
	}()
	select {
	case <-done:
		return true
	case <-time.After(commitStopTimeout):
		return false
	}
}

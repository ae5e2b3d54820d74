package actors

import (
	"fmt"
	"sort"
	"strings"

	"github.com/asynkron/protoactor-go/actor"
)

// A transactional sink's open transaction holds what every partition
// wrote since the last checkpoint. When it is aborted while partitions
// read on (a checkpoint aborted because a partition was lost or the
// group refused it, a lost partition's rows dropped), the rows of those
// that stay are gone from it and they do not read them again. The
// emitter redoes results (resultsAborted); records, routes, dead letters
// and late records can't be redone. Those partitions are tainted: no
// checkpoint may commit while one of them remains, since it would commit
// a transaction short of their rows. Rewinding them in-process would need
// every one stopped before the abort (rows in their shards, the writers'
// mailboxes and the producer's queue would land in the next transaction)
// and their state and positions put back to the last checkpoint, which is
// what a new process does (it fences the open transaction, and completes a
// checkpoint the sinks committed): so the run ends, as for a failed
// partition with a transactional sink (transactionalNoRestart). A
// partition lost in its turn is no longer tainted: its next owner reads
// it from the last checkpoint. Kafka's group loses a node's whole
// assignment at once (franz-go's OnPartitionsLost), so a node the group
// dropped still goes on with what it gets when it rejoins.

// rowSinks are the writers of the transactional sinks whose aborted rows
// no part of the engine redoes: all but the results the emitter emits.
func (n *node) rowSinks() []*actor.PID {
	var pids []*actor.PID
	for name, pid := range n.e.transactional {
		if name == "results" && n.e.emitsResults() {
			continue
		}
		pids = append(pids, pid)
	}
	return pids
}

// taint marks every partition assigned as tainted by an abort of the row
// sinks' transactions (why), when there are such sinks.
func (n *node) taint(why string) {
	if len(n.rowSinks()) == 0 {
		return
	}
	for id := range n.parts {
		if _, ok := n.tainted[id]; !ok {
			n.tainted[id] = why
		}
	}
}

// dropRowsOf drops, once lost partition id has stopped (every row it sent
// is in the writers' mailboxes), its rows since the last checkpoint from
// the row sinks' open transactions: its next owner reads them again. The
// partitions that stay are tainted by it.
func (n *node) dropRowsOf(ctx actor.Context, id string) {
	delete(n.tainted, id)
	pids := n.rowSinks()
	for _, pid := range pids {
		ctx.Send(pid, &abortTx{})
	}
	n.taint("partition " + id + " lost")
}

// taintErr says why no checkpoint may commit, when a tainted partition
// remains.
func (n *node) taintErr() error {
	var ids []string
	for id := range n.tainted {
		if n.parts[id] != nil {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	sort.Strings(ids)
	return fmt.Errorf("%s: the transactional sinks' open transaction dropped the rows partition %s wrote since the last checkpoint, which it does not read again; run it again to resume from the last checkpoint",
		n.tainted[ids[0]], strings.Join(ids, ", "))
}

package kafka

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/eddy-stream/eddy/connectors"
)

// Taking over a partition. The group's fence (the member and generation
// that ride along with the offsets, see commitGroupOffsetsInTxn) is
// checked when the offsets join a transaction, not when it commits: a node
// paused between the two (a few milliseconds, but a GC pause or a VM
// freeze lands there sometimes) would still commit after its partitions
// moved, and its output and offsets would join the next owner's. So the
// next owner, before it reads the partition's changelog, ends every other
// producer's transaction that wrote into that changelog partition: one
// still open (Ongoing) is fenced, by starting a producer with its
// transactional id, which aborts it and bumps the epoch its producer
// holds, so its EndTransaction fails; one already committing is waited
// for, and then is in what the next owner restores. Every checkpoint
// writes a marker into the changelog partition of each partition it
// covers, before its offsets join the transaction, so such a transaction
// is always seen there.

// beforeAddOffsets, when set (by tests), runs right before group offsets
// are added to a transaction, once the group's fence let them through.
var beforeAddOffsets func(txnID string)

// fencePrevious ends the other producers' transactions that are open on
// changelog partition topic/part (see above), and returns once none is.
// The broker's passing states (a new partition's leader not settled, a
// coordinator loading or moved, a fence's abort still being written) are
// retried. It fails when an open transaction can't be ended in a minute,
// when a request fails otherwise, or when a transactional id can't be
// seen (an ACL without DescribeTransactionalId): reading on would risk
// state and output the previous owner commits afterwards.
func (c *changelog) fencePrevious(ctx context.Context, topic string, part int32) error {
	return c.fenceExcept(ctx, fmt.Sprintf("kafka changelog %s/%d", topic, part), topic, part, c.ownTxnIDs())
}

// fenceExcept is fencePrevious sparing the open transactions of the
// transactional ids own (still waiting for those ending); where names
// the partition in errors.
func (c *changelog) fenceExcept(ctx context.Context, where, topic string, part int32, own []string) error {
	runCtx := ctx
	ctx, cancel := context.WithTimeout(ctx, takeoverTimeout)
	defer cancel()
	warned := map[string]int16{}
	var open []kadm.DescribedTransaction // as last seen
	var last error                       // the last transient failure
	unlistedTries := 0
	for pause := 5 * time.Millisecond; ; pause = min(2*pause, 200*time.Millisecond) {
		seen, err := c.openTxns(ctx, topic, part, own)
		if err == nil {
			if open = seen; len(open) == 0 {
				return nil
			}
			err = c.fenceOpen(ctx, where, open, warned)
		}
		var unlisted *unlistedError
		switch {
		case err == nil:
		case errors.As(err, &unlisted) && unlistedTries < 5:
			unlistedTries++ // (a listing that raced the transaction's start)
			last = err
		case transient(err):
			last = err
			c.src.cfg.Logger.Debug("kafka: a takeover's request met a passing state of the broker; retrying", "changelog", where, "err", err)
			if onRetry != nil {
				onRetry(where, err)
			}
		case ctx.Err() == nil:
			return fmt.Errorf("%s: the previous owner's open transactions: %w", where, err)
		}
		select {
		case <-ctx.Done():
			return takeoverStuck(runCtx, where, open, last)
		case <-time.After(pause):
		}
	}
}

// takeoverStuck says why fencePrevious stopped before the previous
// owner's transactions ended: the run stopped, some stayed open, or a
// request kept failing with last.
func takeoverStuck(runCtx context.Context, where string, open []kadm.DescribedTransaction, last error) error {
	if err := runCtx.Err(); err != nil {
		return fmt.Errorf("%s: the previous owner's open transactions: stopped: %w", where, err)
	}
	if len(open) > 0 {
		ids := make([]string, 0, len(open))
		for _, d := range open {
			ids = append(ids, d.TxnID+" ("+d.State+")")
		}
		if last != nil {
			return fmt.Errorf("%s: transactions %v of the previous owner still open after %v (the last request failed: %w)", where, ids, takeoverTimeout, last)
		}
		return fmt.Errorf("%s: transactions %v of the previous owner still open after %v", where, ids, takeoverTimeout)
	}
	if last == nil {
		return fmt.Errorf("%s: the previous owner's open transactions: no answer within %v", where, takeoverTimeout)
	}
	return fmt.Errorf("%s: the previous owner's open transactions: still failing after %v: %w", where, takeoverTimeout, last)
}

// takeoverTimeout bounds how long a takeover waits for the previous
// owner's transactions to end, retries included.
const takeoverTimeout = time.Minute

// fenceOpen fences each transaction of open that is still open for
// writes (Ongoing), as the incarnation of its producer that was described
// (fenceIncarnation); one ending is waited for (its markers). warned
// holds the transactions (id and epoch) already logged.
func (c *changelog) fenceOpen(ctx context.Context, where string, open []kadm.DescribedTransaction, warned map[string]int16) error {
	for _, d := range open {
		if d.State != "Ongoing" {
			continue // ending: wait for its markers
		}
		if e, ok := warned[d.TxnID]; !ok || e != d.ProducerEpoch {
			warned[d.TxnID] = d.ProducerEpoch
			c.src.cfg.Logger.Warn("kafka: fencing the previous owner's open transaction on a partition taken over", "changelog", where, "txn", d.TxnID, "epoch", d.ProducerEpoch)
		}
		if err := fenceIncarnation(ctx, c.cl, d); err != nil {
			return fmt.Errorf("fence transactional id %s (producer %d, epoch %d): %w", d.TxnID, d.ProducerID, d.ProducerEpoch, err)
		}
	}
	return nil
}

// fenceIncarnation fences the producer of transaction d as described, not
// a later one of the same transactional id: an InitProducerID that names
// d's producer id and epoch (KIP-360). An instance's transactional id is
// its next process's too: a node restarted after kill -9 may have taken
// the id up (and aborted what its predecessor left open) by the time the
// fence is sent; the broker then answers PRODUCER_FENCED or
// INVALID_PRODUCER_EPOCH to the stale epoch instead of fencing the new
// process. (The broker checks only the producer id while a transaction is
// open: a new process that has opened one within the round trip since d
// was described would still be fenced, and its next commit refused.)
// CONCURRENT_TRANSACTIONS: the abort is under way, or the transaction was
// ending already; fencePrevious looks again either way.
func fenceIncarnation(ctx context.Context, cl *kgo.Client, d kadm.DescribedTransaction) error {
	req := kmsg.NewPtrInitProducerIDRequest()
	req.TransactionalID = kmsg.StringPtr(d.TxnID)
	req.TransactionTimeoutMillis = d.TimeoutMillis
	if req.TransactionTimeoutMillis <= 0 {
		req.TransactionTimeoutMillis = int32(changelogTxnTimeout.Milliseconds())
	}
	req.ProducerID, req.ProducerEpoch = d.ProducerID, d.ProducerEpoch
	resp, err := req.RequestWith(ctx, cl)
	if err != nil {
		return err
	}
	switch err := kerr.ErrorForCode(resp.ErrorCode); {
	case err == nil, errors.Is(err, kerr.ConcurrentTransactions),
		errors.Is(err, kerr.ProducerFenced), errors.Is(err, kerr.InvalidProducerEpoch):
		return nil
	default:
		return err
	}
}

// ownTxnIDs are the transactional ids this node writes the changelog with.
func (c *changelog) ownTxnIDs() []string {
	c.txMu.RLock()
	defer c.txMu.RUnlock()
	own := []string{c.txnID}
	if c.shared != nil {
		own = append(own, c.shared.txnID)
	}
	return own
}

// openTxns lists the transactions open on topic/part: those of producers
// other than own still open for writes (Ongoing), which fencePrevious
// fences, and those ending whose markers are not written yet, own ones
// included, which it waits for. (This node's own transaction can be
// ending there when the partition comes back to it while a commit made
// before it lost the partition completes: read before its markers, the
// restore would miss a checkpoint that then counts.) An own transaction
// still open for writes is never fenced: it is this node's checkpoint in
// progress, which the group's fence and Source.holder keep from
// committing a partition this node lost.
func (c *changelog) openTxns(ctx context.Context, topic string, part int32, own []string) ([]kadm.DescribedTransaction, error) {
	described, err := c.adm.DescribeProducers(ctx, kadm.TopicsSet{topic: {part: {}}})
	if err != nil {
		return nil, fmt.Errorf("describe producers: %w", err)
	}
	dp, ok := described[topic].Partitions[part]
	if !ok {
		return nil, fmt.Errorf("describe producers: no answer for the partition")
	}
	if dp.Err != nil {
		return nil, fmt.Errorf("describe producers: %w", dp.Err)
	}
	var pids []int64
	for _, p := range dp.ActiveProducers {
		if p.CurrentTxnStartOffset >= 0 {
			pids = append(pids, p.ProducerID)
		}
	}
	if len(pids) == 0 {
		return nil, nil
	}
	listed, err := c.adm.ListTransactions(ctx, pids, nil)
	if err != nil {
		return nil, fmt.Errorf("list transactions of producers %v: %w", pids, err)
	}
	var ids []string
	seen := map[int64]bool{}
	for _, l := range listed {
		seen[l.ProducerID] = true
		ids = append(ids, l.TxnID)
	}
	for _, pid := range pids {
		if !seen[pid] {
			return nil, &unlistedError{pid}
		}
	}
	if len(ids) == 0 {
		return nil, nil
	}
	txns, err := c.adm.DescribeTransactions(ctx, ids...)
	if err != nil {
		return nil, fmt.Errorf("describe transactions %v: %w", ids, err)
	}
	var open []kadm.DescribedTransaction
	for _, d := range txns.Sorted() {
		switch {
		case errors.Is(d.Err, kerr.TransactionalIDNotFound):
			// Expired since it was listed: nothing of it is open.
		case d.Err != nil:
			return nil, fmt.Errorf("describe transaction %s: %w", d.TxnID, d.Err)
		case d.State == "PrepareCommit", d.State == "PrepareAbort", d.State == "PrepareEpochFence":
			open = append(open, d) // ending, this node's own too: wait for it
		case d.State == "Ongoing" && d.Topics.Lookup(topic, part) && !slices.Contains(own, d.TxnID):
			open = append(open, d)
		case d.State != "Ongoing":
			// Ended (CompleteAbort, CompleteCommit, Empty) by the
			// coordinator's account, while the partition still listed
			// it open a moment before: wait until the partition's own
			// account agrees, so the end read next is past its marker.
			open = append(open, d)
		}
	}
	return open, nil
}

// unlistedError: a producer has a transaction open in a partition and
// ListTransactions does not list its transactional id.
type unlistedError struct{ pid int64 }

func (e *unlistedError) Error() string {
	return fmt.Sprintf("producer id %d has a transaction open in the partition, and its transactional id is not listed (does this node's principal lack DescribeTransactionalId?)", e.pid)
}

// refusal says, for a transaction of s's member that failed with err,
// whether that is because s's partitions moved: with
// connectors.ErrNotMember when s no longer holds a partition of positions,
// or when the producer was fenced (fencedTxn) and s gave partitions up (revoked or
// lost) since the transaction began (s.given was since then), their next
// owner having fenced it (fencePrevious: a loss, or a revoke whose
// checkpoint was slower than the handover). A fenced producer waits up to
// 30 s for the group to tell of the loss (a node resumed after a pause
// may hear it after its commit failed). nil: err is not that.
func (s *Source) refusal(ctx context.Context, err error, since int64, positions map[string]connectors.Position) error {
	if s == nil {
		return nil
	}
	if _, _, herr := s.holder(positions); herr != nil {
		return fmt.Errorf("%w (the transaction: %v)", herr, err)
	}
	if !fencedTxn(err) {
		return nil
	}
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if n := s.given.Load(); n > since {
			return fmt.Errorf("%w: %d partitions of group %s were given up while the transaction was open, and their next owner fenced it (%v)",
				connectors.ErrNotMember, n-since, s.cfg.Group, err)
		}
		if time.Now().After(deadline) || ctx.Err() != nil || s.isClosed() {
			return nil
		}
	}
}

// fencedTxn says whether err is how the broker refuses a transaction that
// another producer of its transactional id fenced: PRODUCER_FENCED or
// INVALID_PRODUCER_EPOCH, or INVALID_TXN_STATE, which a commit gets when
// the fence's abort ended the transaction while the commit was held up
// between its offsets and its EndTransaction (seen in
// TestClusterHealsAfterAPause: the resumed node's run ended on it).
func fencedTxn(err error) bool {
	return errors.Is(err, kerr.ProducerFenced) || errors.Is(err, kerr.InvalidProducerEpoch) || errors.Is(err, kerr.InvalidTxnState)
}

// fenceTxnID starts a producer with transactional id txnID: the broker
// aborts what the id's earlier producer has open and refuses that one from
// then on (its epoch is bumped).
func fenceTxnID(ctx context.Context, conn Conn, txnID string) error {
	cl, err := conn.NewClient(kgo.TransactionalID(txnID), kgo.TransactionTimeout(changelogTxnTimeout))
	if err != nil {
		return err
	}
	defer cl.Close()
	_, _, err = cl.ProducerID(ctx)
	return err
}

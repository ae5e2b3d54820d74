package kafka

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
)

// The requests a takeover and a transactional commit make by hand (admin
// requests, AddOffsetsToTxn, TxnOffsetCommit, a fencing InitProducerID)
// meet the broker's passing states: a partition whose leader is not
// settled yet (a changelog topic just created, a leader that moved), a
// coordinator loading its log or moved, a transaction of the same id still
// ending (its markers being written, or a fence's abort). franz-go retries
// such errors inside its own producer and group calls, not in these. They
// are retried here, with backoff, for a bounded time: a run that gives up
// on one ends (a takeover can't restore, a commit can't go through), and
// says which request failed and why.

// transientTimeout bounds the retries of one request. Half a minute: a
// leader election or a coordinator's load takes seconds even on a loaded
// machine, and a transaction's commit (a minute's timeout) must still be
// able to finish after the retries.
const transientTimeout = 30 * time.Second

// transient says whether err is a passing state of the broker or of the
// connection to it, which the same request may get past when sent again:
// an error Kafka marks retriable (NOT_LEADER_OR_FOLLOWER, LEADER_NOT_AVAILABLE,
// UNKNOWN_TOPIC_OR_PARTITION while a topic is new, COORDINATOR_LOAD_IN_PROGRESS,
// COORDINATOR_NOT_AVAILABLE, NOT_COORDINATOR, REQUEST_TIMED_OUT, ...),
// CONCURRENT_TRANSACTIONS (the transactional id's previous transaction is
// still ending), or a broken connection (a process resumed after a pause
// finds its connections timed out). A context's end, a closed client, a
// fenced producer or an unknown member are not: retrying can't change
// them. Several errors joined (a request's shards, or a cause beside a
// sentinel such as ErrNotMember) are transient only if each is.
func transient(err error) bool {
	var p passing
	if errors.As(err, &p) {
		return true
	}
	for e := err; e != nil; e = errors.Unwrap(e) {
		if joined, ok := e.(interface{ Unwrap() []error }); ok {
			errs := joined.Unwrap()
			for _, e := range errs {
				if !transient(e) {
					return false
				}
			}
			return len(errs) > 0
		}
	}
	var op *net.OpError
	switch {
	case err == nil, errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, kgo.ErrClientClosed):
		return false
	case kerr.IsRetriable(err), errors.Is(err, kerr.ConcurrentTransactions):
		return true
	case kgo.IsRetryableBrokerErr(err), errors.As(err, &op):
		// (A refused dial too: the broker was reached before, so it is
		// restarting or its leadership moving, not a mistyped address.)
		return true
	}
	return false
}

// onRetry, when set (by tests), hears each transient failure retried.
var onRetry func(what string, err error)

// passing marks an error that the caller knows to be transient where it
// arises (a rebalance a commit waits out): retryTransient retries it.
type passing struct{ error }

func (p passing) Unwrap() error { return p.error }

// retryTransient calls call until it succeeds, fails with an error that
// is not transient, or has failed transiently for transientTimeout (or
// until ctx ends). Its error then names what was tried, how often and for
// how long, and wraps the last cause.
func retryTransient(ctx context.Context, what string, call func(context.Context) error) error {
	return retryFor(ctx, transientTimeout, what, call)
}

// retryFor is retryTransient with a bound of its own.
func retryFor(ctx context.Context, bound time.Duration, what string, call func(context.Context) error) error {
	start := time.Now()
	rctx, cancel := context.WithTimeout(ctx, bound)
	defer cancel()
	var last error // the last transient failure
	for tries, pause := 1, 10*time.Millisecond; ; tries, pause = tries+1, min(2*pause, 500*time.Millisecond) {
		err := call(rctx)
		switch {
		case err == nil:
			return nil
		case transient(err):
			last = err
			if onRetry != nil {
				onRetry(what, err)
			}
		case last != nil && rctx.Err() != nil:
			// The bound cut a retry short: the transient cause is the
			// story, not the deadline.
			return gaveUp(ctx, what, tries-1, start, last)
		default:
			return fmt.Errorf("%s: %w", what, err)
		}
		select {
		case <-rctx.Done():
			return gaveUp(ctx, what, tries, start, last)
		case <-time.After(pause):
		}
	}
}

// gaveUp is retryFor's error once it stops retrying cause: because ctx
// (the run's) ended, or because its bound passed.
func gaveUp(ctx context.Context, what string, tries int, start time.Time, cause error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s: stopped (%v) while retrying a transient error: %w", what, err, cause)
	}
	return fmt.Errorf("%s: still failing after %d tries in %v: %w", what, tries, time.Since(start).Round(time.Millisecond), cause)
}

// initProducerID is a call for retryTransient that has cl load its
// producer id and epoch (InitProducerID): for a transactional id, that
// fences the id's earlier producers and aborts what they left open.
func initProducerID(cl *kgo.Client) func(context.Context) error {
	return func(ctx context.Context) error {
		_, _, err := cl.ProducerID(ctx)
		return err
	}
}

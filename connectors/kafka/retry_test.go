package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eddy-stream/eddy/connectors"
)

// Which errors of a takeover's or a commit's requests are retried: the
// broker's passing states and broken connections, never an error that
// says this node lost its partitions or its producer.
func TestTransientErrors(t *testing.T) {
	refused := &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}
	shards := func(errs ...error) error {
		se := &kadm.ShardErrors{Name: "DescribeProducers"}
		for _, err := range errs {
			se.Errs = append(se.Errs, kadm.ShardError{Err: err})
		}
		return se
	}
	for _, tc := range []struct {
		name string
		err  error
		want bool
	}{
		{"no error", nil, false},
		{"a new partition's leader", kerr.NotLeaderForPartition, true},
		{"a new topic", kerr.UnknownTopicOrPartition, true},
		{"a leader election", kerr.LeaderNotAvailable, true},
		{"a coordinator loading", kerr.CoordinatorLoadInProgress, true},
		{"no coordinator", kerr.CoordinatorNotAvailable, true},
		{"a coordinator moved", kerr.NotCoordinator, true},
		{"a transaction still ending", kerr.ConcurrentTransactions, true},
		{"a request timed out", kerr.RequestTimedOut, true},
		{"wrapped", fmt.Errorf("describe producers: %w", kerr.NotLeaderForPartition), true},
		{"a connection closed", io.EOF, true},
		{"a connection refused", refused, true},
		{"every shard transient", shards(kerr.NotLeaderForPartition, kerr.UnknownTopicOrPartition), true},
		{"a shard not transient", shards(kerr.NotLeaderForPartition, kerr.TopicAuthorizationFailed), false},
		{"marked by the caller", passing{kerr.RebalanceInProgress}, true},
		{"a fenced producer", kerr.ProducerFenced, false},
		{"an old epoch", kerr.InvalidProducerEpoch, false},
		{"a dropped member", kerr.UnknownMemberID, false},
		{"an old generation", kerr.IllegalGeneration, false},
		{"a rebalance, unmarked", kerr.RebalanceInProgress, false},
		{"an ACL", kerr.TransactionalIDAuthorizationFailed, false},
		{"not a member any more", fmt.Errorf("%w: %w", connectors.ErrNotMember, kerr.NotCoordinator), false},
		{"the run stopped", fmt.Errorf("list: %w", context.Canceled), false},
		{"a deadline", context.DeadlineExceeded, false},
		{"a closed client", kgo.ErrClientClosed, false},
		{"anything else", errors.New("bad marker"), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := transient(tc.err); got != tc.want {
				t.Fatalf("transient(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

// retryFor retries transient failures until success, gives up on another
// error at once, and bounds the retries, naming the last cause.
func TestRetryTransient(t *testing.T) {
	ctx := t.Context()
	calls := 0
	failing := func(n int, err error) func(context.Context) error {
		calls = 0
		return func(context.Context) error {
			if calls++; calls <= n {
				return err
			}
			return nil
		}
	}
	if err := retryFor(ctx, time.Minute, "describe", failing(3, kerr.NotLeaderForPartition)); err != nil || calls != 4 {
		t.Fatalf("three transient failures, then success: %v after %d calls, want nil after 4", err, calls)
	}
	err := retryFor(ctx, time.Minute, "add offsets", failing(5, kerr.ProducerFenced))
	if !errors.Is(err, kerr.ProducerFenced) || calls != 1 || !strings.HasPrefix(err.Error(), "add offsets: ") {
		t.Fatalf("a fenced producer: %v after %d calls, want PRODUCER_FENCED named after the request, at once", err, calls)
	}
	err = retryFor(ctx, 300*time.Millisecond, "describe", failing(1<<30, kerr.ConcurrentTransactions))
	if !errors.Is(err, kerr.ConcurrentTransactions) || !strings.Contains(err.Error(), "still failing after") || calls < 2 {
		t.Fatalf("always transient: %v after %d calls, want CONCURRENT_TRANSACTIONS after retries", err, calls)
	}
	stopped, stop := context.WithCancel(ctx)
	stop()
	err = retryFor(stopped, time.Minute, "describe", failing(1<<30, kerr.NotCoordinator))
	if !errors.Is(err, kerr.NotCoordinator) || !strings.Contains(err.Error(), "stopped") {
		t.Fatalf("the run stopped while retrying: %v, want it said, with the cause", err)
	}
}

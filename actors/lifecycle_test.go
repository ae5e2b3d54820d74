package actors

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/internal/memio"
	"github.com/eddy-stream/eddy/state"
)

// syncBuffer is a log destination safe for the engine's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// runWithin runs cfg and fails the test when the run has not ended within
// limit: a hang is a failure, not a test binary timeout.
func runWithin(t *testing.T, ctx context.Context, limit time.Duration, cfg Config) (Summary, error) {
	t.Helper()
	type ran struct {
		sum Summary
		err error
	}
	done := make(chan ran, 1)
	go func() {
		sum, err := Run(ctx, cfg)
		done <- ran{sum, err}
	}()
	select {
	case r := <-done:
		return r.sum, r.err
	case <-time.After(limit):
		t.Fatalf("the run did not end within %v", limit)
		return Summary{}, nil
	}
}

// A partition that fails every time it runs is restarted a bounded number
// of times, with backoff, each restart logged with its count; then the
// run ends with the cause.
func TestPartitionThatKeepsFailingStopsTheRun(t *testing.T) {
	tests := []struct {
		name        string
		maxRestarts int
		errContains string
	}{
		{"default", 0, "partition mem failed 6 times in a row (5 restarts); stopping: shard crashed on its first batch"},
		{"two restarts", 2, "partition mem failed 3 times in a row (2 restarts); stopping: shard crashed on its first batch"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			testHookAdd = func(string, int) { panic(fmt.Errorf("shard crashed on its first batch")) }
			defer func() { testHookAdd = nil }()
			store, err := state.Open("", state.WithInMemory())
			if err != nil {
				t.Fatal(err)
			}
			defer store.Close()
			var lines []string
			for i := range 100 {
				lines = append(lines, fmt.Sprintf(`{"dstdevice":"C%d","dstport":"80"}`, i%5))
			}
			var logs syncBuffer
			_, err = runWithin(t, context.Background(), 30*time.Second, Config{
				Pipeline: load(t, countScript), Source: &memio.Source{Lines: lines, BatchSize: 10}, Store: store,
				Results: &memio.Sink{}, Shards: 2, Workers: 1, MaxErrors: -1, MaxRestarts: tc.maxRestarts,
				RestartBackoff: 5 * time.Millisecond, TriggerInterval: 10 * time.Millisecond,
				Logger: slog.New(slog.NewTextHandler(&logs, nil)),
			})
			if err == nil || !strings.Contains(err.Error(), tc.errContains) {
				t.Fatalf("got %v, want an error containing %q\n%s", err, tc.errContains, logs.String())
			}
			max := tc.maxRestarts
			if max == 0 {
				max = 5
			}
			for n := 1; n <= max; n++ {
				want := fmt.Sprintf("partition mem failed (restart %d of %d, next in %v): shard crashed", n, max, restartBackoff(5*time.Millisecond, n))
				if !strings.Contains(logs.String(), want) {
					t.Errorf("the log lacks %q:\n%s", want, logs.String())
				}
			}
		})
	}
}

func TestRestartBackoffDoublesUpToItsCap(t *testing.T) {
	for n, want := range []time.Duration{200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond, 1600 * time.Millisecond} {
		if got := restartBackoff(200*time.Millisecond, n+1); got != want {
			t.Errorf("restart %d: got %v, want %v", n+1, got, want)
		}
	}
	if got := restartBackoff(time.Second, 30); got != maxRestartBackoff {
		t.Errorf("restart 30: got %v, want the cap %v", got, maxRestartBackoff)
	}
}

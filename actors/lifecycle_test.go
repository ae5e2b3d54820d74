package actors

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/internal/memio"
	"github.com/eddy-stream/eddy/scripting"
	"github.com/eddy-stream/eddy/state"
)

// syncBuffer is a log destination safe for the engine's goroutines, which
// a test can wait on.
type syncBuffer struct {
	mu   sync.Mutex
	b    bytes.Buffer
	more chan struct{} // closed and replaced at each write
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.more != nil {
		close(s.more)
		s.more = nil
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// waitFor waits until the log holds want, failing the test after limit.
func (s *syncBuffer) waitFor(t *testing.T, want string, limit time.Duration) {
	t.Helper()
	deadline := time.After(limit)
	for {
		s.mu.Lock()
		if strings.Contains(s.b.String(), want) {
			s.mu.Unlock()
			return
		}
		if s.more == nil {
			s.more = make(chan struct{})
		}
		more := s.more
		s.mu.Unlock()
		select {
		case <-more:
		case <-deadline:
			t.Fatalf("the log lacks %q after %v:\n%s", want, limit, s.String())
		}
	}
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
			setTestHookAdd(t, func(string, int) { panic(fmt.Errorf("shard crashed on its first batch")) })
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

const interruptScript = `
return {
  parse = eddy.json { k = "string", n = "number" },
  filter = function(r) return r.n >= 0 end,
  key = "k",
  aggregate = {
    count = eddy.count(),
    total = {
      init = function() return 0 end,
      add = function(acc, r) return acc + r.n end,
      merge = function(a, b) return a + b end,
      result = function(a) return a end,
    },
  },
}`

// sends is an actor.Context that records what an actor sends.
type sends struct {
	actor.Context
	sent []any
}

func (s *sends) Send(_ *actor.PID, m any) { s.sent = append(s.sent, m) }

// A record whose script call the run interrupted is unprocessed: a parse
// worker neither dead-letters it nor delivers its batch.
func TestInterruptedWorkerBatchIsUnprocessed(t *testing.T) {
	p := load(t, interruptScript)
	e := &engine{cfg: Config{Pipeline: p}, outputs: map[string]*actor.PID{}}
	w := newParseWorker(e, "p0", 1)
	rt, err := p.NewRuntime(false)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	w.rt = rt
	p.Interrupt(errStopped)
	b := &connectors.Batch{Records: []connectors.Record{{Value: []byte(`{"k":"a","n":1}`)}, {Value: []byte(`{"k":"b","n":2}`)}}}
	out := w.process(&work{gen: 1, seq: 3, batch: b})
	if !out.interrupted || len(out.dead) > 0 || out.kept > 0 {
		t.Fatalf("got interrupted=%v, %d dead letters, %d kept; want an interrupted batch, nothing dead or kept", out.interrupted, len(out.dead), out.kept)
	}
}

// A shard whose script call the run interrupted neither dead-letters nor
// counts the record, and no checkpoint takes its state after that.
func TestInterruptedShardRefusesCheckpoints(t *testing.T) {
	p := load(t, interruptScript)
	stats := &Stats{}
	e := &engine{cfg: Config{Pipeline: p, Stats: stats}, outputs: map[string]*actor.PID{}}
	rt, err := p.NewRuntime(false)
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	k, _, _, err := rt.Process([]byte(`{"k":"a","n":1}`))
	if err != nil {
		t.Fatal(err)
	}
	a := newAggregator(e, "p0", 0, 1, 0, 1)
	if err := a.start(nil); err != nil {
		t.Fatal(err)
	}
	p.Interrupt(errStopped)
	ctx := &sends{}
	a.add(ctx, &keyedBatch{rows: []scripting.Keyed{k}, idx: []int{0}, src: &connectors.Batch{Records: []connectors.Record{{Value: []byte("x")}}}})
	if n := stats.Failed.Load(); n != 0 || len(a.out.pending["dead_letter"]) > 0 || len(ctx.sent) > 0 {
		t.Fatalf("%d failed, %d dead letters, messages %v: an interrupted call is not the record's failure", n, len(a.out.pending["dead_letter"]), ctx.sent)
	}
	ack := a.onBarrier(ctx, &barrier{seq: 1, epoch: 1})
	if !errors.Is(ack.err, scripting.ErrInterrupted) {
		t.Fatalf("barrier ack error %v, want one wrapping ErrInterrupted", ack.err)
	}
}

// panickySink panics on Write: an engine bug in a sink, say.
type panickySink struct{ memio.Sink }

func (*panickySink) Write(context.Context, []connectors.Row) error { panic("sink bug") }

// An actor at the top of the tree (a sink's writer here) that fails ends
// the run with the cause; it is not restarted silently, and the run does
// not wait for it forever.
func TestTopLevelActorFailureEndsTheRun(t *testing.T) {
	store, err := state.Open("", state.WithInMemory())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	_, err = runWithin(t, context.Background(), 30*time.Second, Config{
		Pipeline: load(t, countScript), Source: &memio.Source{Lines: []string{`{"dstdevice":"C1","dstport":"80"}`}, BatchSize: 10}, Store: store,
		Results: &panickySink{}, Shards: 1, Workers: 1, MaxErrors: -1,
	})
	if want := "the results sink failed: sink bug"; err == nil || !strings.Contains(err.Error(), want) {
		t.Fatalf("got %v, want an error containing %q", err, want)
	}
}

// A stop while a failed partition waits for its restart ends the run at
// once: the stop checkpoint can't include that partition, so it is given
// up (the last complete checkpoint stands), not waited for.
func TestStopDuringRestartBackoff(t *testing.T) {
	setTestHookAdd(t, func(string, int) { panic(fmt.Errorf("shard crashed")) })
	store, err := state.Open("", state.WithInMemory())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var logs syncBuffer
	type ran struct {
		sum Summary
		err error
	}
	done := make(chan ran, 1)
	go func() {
		sum, err := Run(ctx, Config{
			Pipeline: load(t, countScript), Source: &memio.Source{Lines: []string{`{"dstdevice":"C1","dstport":"80"}`}, BatchSize: 10},
			Store: store, Results: &memio.Sink{}, Shards: 1, Workers: 1, MaxErrors: -1,
			RestartBackoff: 10 * time.Second, StopTimeout: time.Minute, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		})
		done <- ran{sum, err}
	}()
	logs.waitFor(t, "(restart 1 of 5, next in 10s)", 10*time.Second)
	cancel()
	select {
	case r := <-done:
		if r.err != nil || !r.sum.Interrupted {
			t.Fatalf("got %+v, %v: want an interrupted run and no error", r.sum, r.err)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("the stop waited for the partition's restart:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), "stopping without a stop checkpoint: partition mem is waiting for its restart") {
		t.Fatalf("the log does not say why the stop checkpoint was given up:\n%s", logs.String())
	}
}

package batcher

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/internal/lockedbuf"
)

// fakeClock moves on by each backoff at once, so retries run without
// waiting, and records the backoffs.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	waits []time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.waits = append(c.waits, d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

func (c *fakeClock) backoffs() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.waits...)
}

func byKey(r connectors.Row) ([]byte, error) {
	if r.Key == "" {
		return nil, nil
	}
	return []byte(r.Key), nil
}

func row(key string, seq int) connectors.Row {
	return connectors.Row{Key: key, Fields: []connectors.Field{{Name: "seq", Value: int64(seq)}}}
}

func seqOf(r connectors.Row) int64 {
	v, _ := r.Get("seq")
	return v.(int64)
}

func newWriter(t *testing.T, plan Plan, key Key, opts ...Option) *Writer {
	t.Helper()
	w, err := New(plan, key, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	return w
}

// recorder is a fake database: it keeps what each Send wrote.
type recorder struct {
	mu   sync.Mutex
	rows []connectors.Row
}

func (r *recorder) write(_ context.Context, batch []connectors.Row) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rows = append(r.rows, batch...)
	return nil
}

func (r *recorder) written() []connectors.Row {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]connectors.Row(nil), r.rows...)
}

var (
	errTemporary = errors.New("connection refused")
	errPermanent = errors.New("syntax error")
)

func TestNewValidates(t *testing.T) {
	plan := PerBatch((&recorder{}).write)
	tests := []struct {
		name        string
		plan        Plan
		key         Key
		opts        []Option
		errContains string
	}{
		{name: "defaults", plan: plan, key: byKey},
		{name: "no plan", key: byKey, errContains: "needs a plan and a key"},
		{name: "no key", plan: plan, errContains: "needs a plan and a key"},
		{name: "no workers", plan: plan, key: byKey, opts: []Option{Workers(0)}, errContains: "workers 0: want at least 1"},
		{name: "no rows per batch", plan: plan, key: byKey, opts: []Option{BatchRows(0)}, errContains: "batch rows 0"},
		{name: "nil classifier", plan: plan, key: byKey, opts: []Option{Retryable(nil)}, errContains: "retryable"},
		{name: "negative retry-for", plan: plan, key: byKey, opts: []Option{RetryFor(-time.Second)}, errContains: "retry for -1s"},
		{name: "backoff max below first", plan: plan, key: byKey, opts: []Option{Backoff(time.Second, time.Millisecond)}, errContains: "backoff 1s to 1ms"},
		{name: "no backoff", plan: plan, key: byKey, opts: []Option{Backoff(0, time.Second)}, errContains: "want 0 < first <= max"},
		{name: "no close timeout", plan: plan, key: byKey, opts: []Option{CloseTimeout(0)}, errContains: "close timeout 0s"},
		{name: "nil logger", plan: plan, key: byKey, opts: []Option{Logger(nil, "x")}, errContains: "logger"},
		{name: "every problem at once", plan: plan, key: byKey, opts: []Option{Workers(0), BatchRows(-1)}, errContains: "workers 0: want at least 1\nbatch rows -1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, err := New(tt.plan, tt.key, tt.opts...)
			if tt.errContains == "" {
				if err != nil {
					t.Fatal(err)
				}
				w.Close()
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.errContains) {
				t.Fatalf("got %v, want an error containing %q", err, tt.errContains)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	ms := time.Millisecond
	var got []time.Duration
	for n := 1; n <= 10; n++ {
		got = append(got, backoff(100*ms, 10*time.Second, n))
	}
	want := []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms, 1600 * ms, 3200 * ms, 6400 * ms, 10 * time.Second, 10 * time.Second, 10 * time.Second}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("backoffs %v, want %v", got, want)
	}
}

// TestOrderPerKey writes interleaved keys through several workers and small
// batches: each key's rows must arrive in the order written.
func TestOrderPerKey(t *testing.T) {
	rec := &recorder{}
	w := newWriter(t, PerBatch(rec.write), byKey, Workers(4), BatchRows(3))
	const keys, perKey = 10, 200
	var rows []connectors.Row
	for i := range perKey {
		for k := range keys {
			rows = append(rows, row("k"+strconv.Itoa(k), i))
		}
	}
	for i := 0; i < len(rows); i += 7 {
		if err := w.Write(t.Context(), rows[i:min(i+7, len(rows))]); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	got := rec.written()
	if len(got) != len(rows) {
		t.Fatalf("wrote %d rows, want %d", len(got), len(rows))
	}
	next := map[string]int64{}
	for _, r := range got {
		if s := seqOf(r); s != next[r.Key] {
			t.Fatalf("key %s: got row %d, want %d", r.Key, s, next[r.Key])
		}
		next[r.Key]++
	}
}

// TestRouting checks that one key always reaches the same worker and rows
// with no key are spread over all of them.
func TestRouting(t *testing.T) {
	w := newWriter(t, PerBatch((&recorder{}).write), byKey, Workers(4))
	first, err := w.route(row("device-7", 0))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[int]bool{}
	for i := range 8 {
		if got, _ := w.route(row("device-7", i)); got != first {
			t.Fatalf("row %d of one key went to worker %d, the first to %d", i, got, first)
		}
		got, _ := w.route(row("", i))
		seen[got] = true
	}
	if len(seen) != 4 {
		t.Fatalf("rows with no key reached workers %v, want all 4", seen)
	}
}

func TestRetry(t *testing.T) {
	ms := time.Millisecond
	tests := []struct {
		name         string
		errs         []error // Send's results, one per attempt; then nil
		opts         []Option
		wantAttempts int
		wantBackoffs []time.Duration
		wantLog      []string
		errContains  string
	}{
		{name: "written at once", wantAttempts: 1},
		{
			name: "retryable errors back off until a write succeeds", errs: []error{errTemporary, errTemporary, errTemporary},
			wantAttempts: 4, wantBackoffs: []time.Duration{100 * ms, 200 * ms, 400 * ms},
			wantLog: []string{`msg="test sink: write failed, retrying; the checkpoint waits until it succeeds" rows=1 attempt=3 retry_in=400ms error="db-1: connection refused"`,
				`msg="test sink: write succeeded after retries" rows=1 attempts=4 outage=700ms`},
		},
		{
			name: "backoff doubles up to its max", errs: []error{errTemporary, errTemporary, errTemporary, errTemporary, errTemporary},
			opts:         []Option{Backoff(10*ms, 50*ms)},
			wantAttempts: 6, wantBackoffs: []time.Duration{10 * ms, 20 * ms, 40 * ms, 50 * ms, 50 * ms},
		},
		{
			name: "a permanent error fails at once", errs: []error{errPermanent},
			wantAttempts: 1, errContains: "db-1: syntax error",
		},
		{
			name: "a permanent error after retries", errs: []error{errTemporary, errPermanent},
			wantAttempts: 2, wantBackoffs: []time.Duration{100 * ms}, errContains: "db-1: syntax error",
		},
		{
			name: "gives up after retry-for", errs: []error{errTemporary, errTemporary, errTemporary, errTemporary, errTemporary, errTemporary},
			opts:         []Option{RetryFor(time.Second)},
			wantAttempts: 5, wantBackoffs: []time.Duration{100 * ms, 200 * ms, 400 * ms, 800 * ms},
			errContains: "db-1: gave up after 2s of retries (retry-for=1s): db-1: connection refused",
		},
		{
			name: "explain tells the error", errs: []error{errPermanent},
			opts:         []Option{Explain(func(err error) error { return fmt.Errorf("db-1: bad statement: %w", err) })},
			wantAttempts: 1, errContains: "db-1: bad statement: syntax error",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			clock := &fakeClock{now: time.Unix(0, 0)}
			logs := &lockedbuf.Buffer{}
			var mu sync.Mutex
			attempts := 0
			send := func(context.Context, []connectors.Row) error {
				mu.Lock()
				defer mu.Unlock()
				attempts++
				if attempts <= len(tt.errs) {
					return tt.errs[attempts-1]
				}
				return nil
			}
			opts := append([]Option{Workers(1), Where("db-1"), withClock(clock),
				Retryable(func(err error) bool { return errors.Is(err, errTemporary) }),
				Logger(slog.New(slog.NewTextHandler(logs, nil)), "test sink")}, tt.opts...)
			w := newWriter(t, PerBatch(send), byKey, opts...)
			if err := w.Write(t.Context(), []connectors.Row{row("a", 0)}); err != nil {
				t.Fatal(err)
			}
			err := w.Flush(t.Context())
			switch {
			case tt.errContains == "" && err != nil:
				t.Fatalf("flush: %v", err)
			case tt.errContains != "" && (err == nil || !strings.Contains(err.Error(), tt.errContains)):
				t.Fatalf("flush: got %v, want an error containing %q", err, tt.errContains)
			}
			if attempts != tt.wantAttempts {
				t.Errorf("%d attempts, want %d", attempts, tt.wantAttempts)
			}
			if got := clock.backoffs(); fmt.Sprint(got) != fmt.Sprint(tt.wantBackoffs) {
				t.Errorf("backoffs %v, want %v", got, tt.wantBackoffs)
			}
			if got := w.Retries(); got != int64(len(tt.wantBackoffs)) {
				t.Errorf("Retries() %d, want %d (one a backoff)", got, len(tt.wantBackoffs))
			}
			for _, want := range tt.wantLog {
				if !strings.Contains(logs.String(), want) {
					t.Errorf("the log lacks %s:\n%s", want, logs)
				}
			}
			if tt.errContains != "" {
				// A Writer that failed stays failed.
				if err := w.Write(t.Context(), []connectors.Row{row("b", 1)}); err == nil || !strings.Contains(err.Error(), tt.errContains) {
					t.Errorf("write after a failure: got %v, want the failure", err)
				}
			}
		})
	}
}

// TestPlanRequests checks that each request of a plan is retried on its
// own and a plan's error ends the batch where it stands.
func TestPlanRequests(t *testing.T) {
	var mu sync.Mutex
	var sent []string
	failOnce := map[string]bool{"b": true}
	plan := func(batch []connectors.Row) iter.Seq2[Request, error] {
		return func(yield func(Request, error) bool) {
			for _, r := range batch {
				if r.Key == "bad" {
					yield(Request{}, errors.New("row bad: no column"))
					return
				}
				key := r.Key
				if !yield(Request{Rows: 1, Send: func(context.Context) error {
					mu.Lock()
					defer mu.Unlock()
					sent = append(sent, key)
					if failOnce[key] {
						failOnce[key] = false
						return errTemporary
					}
					return nil
				}}, nil) {
					return
				}
			}
		}
	}
	w := newWriter(t, plan, func(connectors.Row) ([]byte, error) { return []byte{}, nil },
		Workers(1), withClock(&fakeClock{}), Retryable(func(err error) bool { return errors.Is(err, errTemporary) }))
	if err := w.Write(t.Context(), []connectors.Row{row("a", 0), row("b", 1), row("bad", 2), row("c", 3)}); err != nil {
		t.Fatal(err)
	}
	err := w.Flush(t.Context())
	if err == nil || err.Error() != "row bad: no column" {
		t.Fatalf("flush: got %v, want the plan's error as it is", err)
	}
	if got := strings.Join(sent, ","); got != "a,b,b" {
		t.Fatalf("sent %s, want a,b,b: b retried alone, nothing after the bad row", got)
	}
}

func TestWriteErrors(t *testing.T) {
	tests := []struct {
		name        string
		key         Key
		closeFirst  bool
		errContains string
	}{
		{name: "key rejects a row", key: func(connectors.Row) ([]byte, error) { return nil, errors.New("row lacks the partition key") }, errContains: "row lacks the partition key"},
		{name: "write after close", key: byKey, closeFirst: true, errContains: "db-1: write after close"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newWriter(t, PerBatch((&recorder{}).write), tt.key, Where("db-1"))
			if tt.closeFirst {
				if err := w.Close(); err != nil {
					t.Fatal(err)
				}
			}
			err := w.Write(t.Context(), []connectors.Row{row("a", 0)})
			if err == nil || !strings.Contains(err.Error(), tt.errContains) {
				t.Fatalf("got %v, want an error containing %q", err, tt.errContains)
			}
		})
	}
}

// gate is a fake database that holds every Send until released.
type gate struct {
	started chan struct{} // one per Send begun
	release chan struct{}
	rec     recorder
}

func newGate() *gate {
	return &gate{started: make(chan struct{}, 100), release: make(chan struct{})}
}

func (g *gate) write(ctx context.Context, batch []connectors.Row) error {
	g.started <- struct{}{}
	select {
	case <-g.release:
		return g.rec.write(ctx, batch)
	case <-ctx.Done():
		return ctx.Err()
	}
}

// TestFlushWaitsUntilDurable checks Flush returns only after every Send
// did.
func TestFlushWaitsUntilDurable(t *testing.T) {
	g := newGate()
	w := newWriter(t, PerBatch(g.write), byKey, Workers(2))
	rows := []connectors.Row{row("a", 0), row("b", 1), row("c", 2), row("d", 3)}
	if err := w.Write(t.Context(), rows); err != nil {
		t.Fatal(err)
	}
	flushed := make(chan error, 1)
	go func() { flushed <- w.Flush(t.Context()) }()
	<-g.started
	select {
	case err := <-flushed:
		t.Fatalf("Flush returned (%v) while a write was still in flight", err)
	default:
	}
	close(g.release)
	if err := <-flushed; err != nil {
		t.Fatal(err)
	}
	if got := len(g.rec.written()); got != len(rows) {
		t.Fatalf("Flush returned with %d rows written, want %d", got, len(rows))
	}
}

func TestFlushEndsWithItsContext(t *testing.T) {
	g := newGate()
	w := newWriter(t, PerBatch(g.write), byKey, Workers(1))
	if err := w.Write(t.Context(), []connectors.Row{row("a", 0)}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	flushed := make(chan error, 1)
	go func() { flushed <- w.Flush(ctx) }()
	<-g.started
	cancel()
	if err := <-flushed; !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	close(g.release)
}

// TestWriteBlocksWhileWorkersAreBusy checks the backpressure: with its one
// worker stuck, Write holds until its context ends.
func TestWriteBlocksWhileWorkersAreBusy(t *testing.T) {
	g := newGate()
	w := newWriter(t, PerBatch(g.write), byKey, Workers(1), BatchRows(1))
	ctx, cancel := context.WithCancel(t.Context())
	wrote := make(chan error, 1)
	go func() { wrote <- w.Write(ctx, []connectors.Row{row("a", 0), row("a", 1), row("a", 2)}) }()
	<-g.started
	select {
	case err := <-wrote:
		t.Fatalf("Write returned (%v) with its worker stuck and its queue full", err)
	default:
	}
	cancel()
	if err := <-wrote; !errors.Is(err, context.Canceled) {
		t.Fatalf("got %v, want context.Canceled", err)
	}
	close(g.release)
}

// TestCloseGivesUp checks Close waits no longer than its timeout for a
// write that can't finish, and ends that write's context.
func TestCloseGivesUp(t *testing.T) {
	g := newGate()
	w, err := New(PerBatch(g.write), byKey, Workers(1), BatchRows(1), Where("db-1"), CloseTimeout(20*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(t.Context(), []connectors.Row{row("a", 0)}); err != nil {
		t.Fatal(err)
	}
	<-g.started
	err = w.Close()
	if err == nil || !strings.Contains(err.Error(), "db-1: close: rows still unwritten after 20ms") {
		t.Fatalf("close: got %v, want rows still unwritten", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if err := w.Flush(t.Context()); err == nil || !strings.Contains(err.Error(), "db-1: flush after close") {
		t.Fatalf("flush after close: got %v", err)
	}
}

// TestCloseFlushes checks Close writes what is still buffered.
func TestCloseFlushes(t *testing.T) {
	rec := &recorder{}
	w, err := New(PerBatch(rec.write), byKey, Workers(3))
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Write(t.Context(), []connectors.Row{row("a", 0), row("b", 1), row("", 2)}); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if got := len(rec.written()); got != 3 {
		t.Fatalf("Close left %d of 3 rows written", got)
	}
}

package batcher

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"iter"
	"sync"
	"sync/atomic"

	"github.com/eddy-stream/eddy/connectors"
)

// A Request is one write to the database, sent again as a whole while it
// fails with a retryable error: it must leave the same rows however often
// it runs (one statement, one transaction, an upsert).
type Request struct {
	Rows int                             // rows it carries, for the log
	Send func(ctx context.Context) error // ctx ends when Close gives up
}

// A Plan turns a batch, the rows one worker took in the order they were
// written, into the requests that write it, in order. The Writer sends each
// request before it asks for the next, so a Plan that yields lazily fails
// exactly where an eager loop over the batch would have; an error it
// yields is the sink's error, told as it is, and fails the Writer.
type Plan func(batch []connectors.Row) iter.Seq2[Request, error]

// PerBatch is the Plan that sends each batch as one request, write.
func PerBatch(write func(ctx context.Context, batch []connectors.Row) error) Plan {
	return func(batch []connectors.Row) iter.Seq2[Request, error] {
		return func(yield func(Request, error) bool) {
			yield(Request{Rows: len(batch), Send: func(ctx context.Context) error { return write(ctx, batch) }}, nil)
		}
	}
}

// A Key returns the key that routes r: rows with equal keys go to the same
// worker and are written in the order they came. A nil key means r has
// none, and such rows are spread round robin. An error rejects r, and
// Write returns it.
type Key func(r connectors.Row) ([]byte, error)

// Writer sends rows through a fixed set of workers, each with at most one
// batch in flight, retrying failed requests. Its Write, Flush and Close are
// those of a connectors.Sink and, like a sink's, are called from one
// goroutine.
type Writer struct {
	cfg     config
	plan    Plan
	key     Key
	workers []*worker
	pending sync.WaitGroup // batches handed to workers and not yet written
	ctx     context.Context
	cancel  context.CancelFunc
	errMu   sync.Mutex
	err     error
	closed  bool
	next    int // round robin for rows with no key
	retries atomic.Int64
}

type worker struct {
	rows []connectors.Row
	ch   chan []connectors.Row
}

// New starts a Writer that writes batches as plan says, routing rows by
// key; its workers run until Close.
func New(plan Plan, key Key, opts ...Option) (*Writer, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o.apply(&cfg)
	}
	if plan == nil || key == nil {
		return nil, errors.New("batcher: New needs a plan and a key function")
	}
	if err := cfg.validate(); err != nil {
		return nil, fmt.Errorf("batcher: %w", err)
	}
	if cfg.explain == nil {
		where := cfg.where
		cfg.explain = func(err error) error { return fmt.Errorf("%s: %w", where, err) }
	}
	w := &Writer{cfg: cfg, plan: plan, key: key}
	w.ctx, w.cancel = context.WithCancel(context.Background())
	for range cfg.workers {
		wk := &worker{ch: make(chan []connectors.Row, 1)}
		w.workers = append(w.workers, wk)
		go w.run(wk)
	}
	return w, nil
}

// Write hands rows to the workers, blocking while they are all busy: that
// is the backpressure that holds the pipeline back during an outage. It
// fails once a batch failed for good.
func (w *Writer) Write(ctx context.Context, rows []connectors.Row) error {
	if err := w.failed(); err != nil {
		return err
	}
	if w.closed {
		return fmt.Errorf("%s: write after close", w.cfg.where)
	}
	for _, r := range rows {
		i, err := w.route(r)
		if err != nil {
			return err
		}
		wk := w.workers[i]
		wk.rows = append(wk.rows, r)
		if len(wk.rows) >= w.cfg.batchRows {
			if err := w.send(ctx, wk); err != nil {
				return err
			}
		}
	}
	return nil
}

// route picks the worker for r by the hash of its key.
func (w *Writer) route(r connectors.Row) (int, error) {
	key, err := w.key(r)
	if err != nil {
		return 0, err
	}
	n := len(w.workers)
	switch {
	case n == 1:
		return 0, nil
	case key == nil:
		w.next++
		return w.next % n, nil
	}
	h := fnv.New32a()
	h.Write(key)
	return int(h.Sum32() % uint32(n)), nil
}

func (w *Writer) send(ctx context.Context, wk *worker) error {
	if len(wk.rows) == 0 {
		return nil
	}
	w.pending.Add(1)
	select {
	case wk.ch <- wk.rows:
		wk.rows = nil
		return nil
	case <-ctx.Done():
		w.pending.Done()
		return ctx.Err()
	}
}

// Flush sends what is buffered and returns once every row written so far
// is durable, retrying meanwhile; or ctx's error when ctx ends first; or
// the error that failed a batch.
func (w *Writer) Flush(ctx context.Context) error {
	if w.closed {
		return fmt.Errorf("%s: flush after close", w.cfg.where)
	}
	for _, wk := range w.workers {
		if err := w.send(ctx, wk); err != nil {
			return err
		}
	}
	done := make(chan struct{})
	go func() { w.pending.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return ctx.Err()
	}
	return w.failed()
}

// Close flushes for at most the close timeout, then ends the retries still
// going and stops the workers. A second Close does nothing.
func (w *Writer) Close() error {
	if w.closed {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), w.cfg.closeTimeout)
	err := w.Flush(ctx)
	cancel()
	if errors.Is(err, context.DeadlineExceeded) {
		err = fmt.Errorf("%s: close: rows still unwritten after %v; a restart from the last checkpoint writes them again", w.cfg.where, w.cfg.closeTimeout)
	}
	w.closed = true
	w.cancel()
	for _, wk := range w.workers {
		close(wk.ch)
	}
	return err
}

// Closed says whether Close was called.
func (w *Writer) Closed() bool { return w.closed }

func (w *Writer) failed() error {
	w.errMu.Lock()
	defer w.errMu.Unlock()
	return w.err
}

func (w *Writer) fail(err error) {
	w.errMu.Lock()
	defer w.errMu.Unlock()
	if w.err == nil {
		w.err = err
	}
}

// run writes the batches of one worker, in order, until Close. After a
// batch failed for good it drops the rest: the Writer has failed, and a
// restart writes them again from the last checkpoint.
func (w *Writer) run(wk *worker) {
	for batch := range wk.ch {
		if w.failed() == nil {
			if err := w.write(batch); err != nil {
				w.fail(err)
			}
		}
		w.pending.Done()
	}
}

func (w *Writer) write(batch []connectors.Row) error {
	for req, err := range w.plan(batch) {
		if err != nil {
			return err
		}
		if err := w.retry(req); err != nil {
			return err
		}
	}
	return nil
}

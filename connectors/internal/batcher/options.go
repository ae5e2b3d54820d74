package batcher

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"
)

// An Option changes one setting of a Writer from its default.
type Option interface{ apply(*config) }

type optionFunc func(*config)

func (f optionFunc) apply(c *config) { f(c) }

type config struct {
	workers      int
	batchRows    int
	retryable    func(error) bool
	retryFor     time.Duration
	firstBackoff time.Duration
	maxBackoff   time.Duration
	closeTimeout time.Duration
	where        string
	subject      string
	log          *slog.Logger
	explain      func(error) error
	clock        clock
}

// defaultConfig holds every default of a Writer.
func defaultConfig() config {
	return config{
		workers:      4,
		batchRows:    500,
		retryable:    func(error) bool { return false },
		firstBackoff: 100 * time.Millisecond,
		maxBackoff:   10 * time.Second,
		closeTimeout: 30 * time.Second,
		where:        "sink",
		subject:      "sink",
		log:          slog.New(slog.NewTextHandler(io.Discard, nil)),
		clock:        realClock{},
	}
}

func (c *config) validate() error {
	var errs []error
	if c.workers < 1 {
		errs = append(errs, fmt.Errorf("workers %d: want at least 1", c.workers))
	}
	if c.batchRows < 1 {
		errs = append(errs, fmt.Errorf("batch rows %d: want at least 1", c.batchRows))
	}
	if c.retryable == nil {
		errs = append(errs, errors.New("retryable: want a classifier, got nil"))
	}
	if c.retryFor < 0 {
		errs = append(errs, fmt.Errorf("retry for %v: want 0 (retry until closed) or more", c.retryFor))
	}
	if c.firstBackoff <= 0 || c.maxBackoff < c.firstBackoff {
		errs = append(errs, fmt.Errorf("backoff %v to %v: want 0 < first <= max", c.firstBackoff, c.maxBackoff))
	}
	if c.closeTimeout <= 0 {
		errs = append(errs, fmt.Errorf("close timeout %v: want more than 0", c.closeTimeout))
	}
	if c.log == nil {
		errs = append(errs, errors.New("logger: want a logger, got nil"))
	}
	return errors.Join(errs...)
}

// Workers sets how many requests are in flight at once (default 4): each
// worker sends its batches one after the other.
func Workers(n int) Option { return optionFunc(func(c *config) { c.workers = n }) }

// BatchRows sets how many rows a worker gathers before it sends them
// (default 500); Flush sends smaller batches.
func BatchRows(n int) Option { return optionFunc(func(c *config) { c.batchRows = n }) }

// Retryable sets the classifier of the errors that may pass on their own,
// such as timeouts and lost connections (default: none do); a request
// failing with one is sent again after a backoff.
func Retryable(f func(error) bool) Option { return optionFunc(func(c *config) { c.retryable = f }) }

// RetryFor bounds how long one request is retried before the Writer gives
// up and fails (default 0: until Close).
func RetryFor(d time.Duration) Option { return optionFunc(func(c *config) { c.retryFor = d }) }

// Backoff sets the wait before the first retry and the most any wait grows
// to by doubling (default 100ms to 10s).
func Backoff(first, max time.Duration) Option {
	return optionFunc(func(c *config) { c.firstBackoff, c.maxBackoff = first, max })
}

// CloseTimeout bounds how long Close waits for rows to be written (default
// 30s). Rows still unwritten then were never covered by a checkpoint (Flush
// did not return), so a restart writes them again.
func CloseTimeout(d time.Duration) Option { return optionFunc(func(c *config) { c.closeTimeout = d }) }

// Where names the sink at the start of the Writer's own errors, such as
// "mysql://eddy@db:3306/app/results" (default "sink").
func Where(s string) Option { return optionFunc(func(c *config) { c.where = s }) }

// Logger sets where retries are logged (default: nowhere) and the subject
// that starts each message, such as "mysql sink" (default "sink").
func Logger(l *slog.Logger, subject string) Option {
	return optionFunc(func(c *config) { c.log, c.subject = l, subject })
}

// Explain sets how a request's error is told to the user: in the error
// that fails the Writer and in the retry log (default: prefixed with
// Where). It says what the error means, not whether it is retryable: the
// classifier sees the error as the request returned it.
func Explain(f func(error) error) Option { return optionFunc(func(c *config) { c.explain = f }) }

// clock is the time the retries see; tests replace it.
type clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// withClock makes the retries read c instead of the system clock.
func withClock(c clock) Option { return optionFunc(func(cfg *config) { cfg.clock = c }) }

package batcher

import (
	"fmt"
	"time"
)

// retry sends req until it succeeds, fails with an error that is not
// retryable, the retry-for bound passes, or Close gives up.
func (w *Writer) retry(req Request) error {
	c := w.cfg
	start := c.clock.Now()
	for attempt := 1; ; attempt++ {
		err := req.Send(w.ctx)
		if err == nil {
			if attempt > 1 {
				c.log.Info(c.subject+": write succeeded after retries", "rows", req.Rows, "attempts", attempt, "outage", c.clock.Now().Sub(start).Round(time.Millisecond))
			}
			return nil
		}
		if w.ctx.Err() != nil {
			return fmt.Errorf("%s: closed while writing: %w", c.where, err)
		}
		if !c.retryable(err) {
			return c.explain(err)
		}
		if took := c.clock.Now().Sub(start); c.retryFor > 0 && took > c.retryFor {
			return fmt.Errorf("%s: gave up after %v of retries (retry-for=%v): %w", c.where, took.Round(time.Second), c.retryFor, c.explain(err))
		}
		wait := backoff(c.firstBackoff, c.maxBackoff, attempt)
		w.retries.Add(1)
		c.log.Warn(c.subject+": write failed, retrying; the checkpoint waits until it succeeds", "rows", req.Rows, "attempt", attempt, "retry_in", wait, "error", c.explain(err))
		select {
		case <-c.clock.After(wait):
		case <-w.ctx.Done():
			return fmt.Errorf("%s: closed while retrying: %w", c.where, err)
		}
	}
}

// Retries is how many times a write was tried again.
func (w *Writer) Retries() int64 { return w.retries.Load() }

// backoff is the wait before retry attempt n (1-based): first, doubling up
// to max.
func backoff(first, max time.Duration, n int) time.Duration {
	d := first
	for i := 1; i < n && d < max; i++ {
		d *= 2
	}
	return min(d, max)
}

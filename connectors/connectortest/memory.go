package connectortest

import (
	"context"
	"sync"

	"github.com/eddy-stream/eddy/connectors"
)

// MemSink keeps rows in memory, for engine tests that check what a
// pipeline emitted (goka's tester, in spirit). Rows count as written only
// once flushed, so a test can tell what a checkpoint covered.
type MemSink struct {
	mu      sync.Mutex
	pending []connectors.Row
	flushed []connectors.Row
	flushes int
	closed  bool
}

var _ connectors.Sink = (*MemSink)(nil)

// Write buffers rows until the next Flush.
func (s *MemSink) Write(ctx context.Context, rows []connectors.Row) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.pending = append(s.pending, rows...)
	return nil
}

// Flush makes the buffered rows visible to Rows.
func (s *MemSink) Flush(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.flushed = append(s.flushed, s.pending...)
	s.pending = nil
	s.flushes++
	return nil
}

// Close flushes.
func (s *MemSink) Close() error {
	_ = s.Flush(context.Background())
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	return nil
}

// Rows returns a copy of the flushed rows.
func (s *MemSink) Rows() []connectors.Row {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]connectors.Row(nil), s.flushed...)
}

// Flushes says how many times Flush was called.
func (s *MemSink) Flushes() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.flushes
}

// Closed says whether Close was called.
func (s *MemSink) Closed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

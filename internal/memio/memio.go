// Package memio is an in-memory source and sink: what `eddy test` runs a
// pipeline's inline tests on, and what engine tests use to run the real
// actor tree without files.
package memio

import (
	"context"
	"strconv"
	"sync"

	"github.com/eddy-stream/eddy/connectors"
)

// Source is one partition ("mem") over fixed lines, read in batches of
// BatchSize. It ends (ErrEndOfInput) after the last line.
type Source struct {
	Lines     []string
	BatchSize int
	// From is where reading begins unless the engine seeks elsewhere,
	// as a Kafka partition begins at the group's committed offset.
	From int
	// Boundary asks for a trigger after every batch: with BatchSize 1, a
	// barrier (and the watermark it carries) passes after every record,
	// so event-time tests don't depend on timing.
	Boundary bool
}

// Start implements connectors.Source.
func (s *Source) Start(_ context.Context, l connectors.Listener) error {
	n := s.BatchSize
	if n <= 0 {
		n = 1024
	}
	l.Assign(&partition{lines: s.Lines, next: s.From, batch: n, boundary: s.Boundary})
	return nil
}

// Close implements connectors.Source.
func (s *Source) Close() error { return nil }

type partition struct {
	lines    []string
	next     int
	batch    int
	boundary bool
}

func (p *partition) ID() string { return "mem" }

func (p *partition) Seek(pos connectors.Position) error {
	if pos == nil {
		p.next = 0
		return nil
	}
	n, err := strconv.Atoi(string(pos))
	if err != nil {
		return err
	}
	p.next = n
	return nil
}

func (p *partition) Read(ctx context.Context) (connectors.Batch, error) {
	if p.next >= len(p.lines) {
		return connectors.Batch{}, connectors.ErrEndOfInput
	}
	end := min(p.next+p.batch, len(p.lines))
	b := connectors.Batch{Where: "input", Unit: "line"}
	for i := p.next; i < end; i++ {
		b.Records = append(b.Records, connectors.Record{Value: []byte(p.lines[i]), Seq: int64(i + 1)})
	}
	p.next = end
	b.End = connectors.Position(strconv.Itoa(end))
	b.Boundary = p.boundary
	return b, nil
}

func (p *partition) Describe(pos connectors.Position) string { return "line " + string(pos) }

func (p *partition) Close() error { return nil }

// Sink collects rows in memory.
type Sink struct {
	mu      sync.Mutex
	rows    []connectors.Row
	flushes int
}

// Write implements connectors.Sink.
func (s *Sink) Write(_ context.Context, rows []connectors.Row) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rows = append(s.rows, rows...)
	return nil
}

// Flush implements connectors.Sink.
func (s *Sink) Flush(context.Context) error {
	s.mu.Lock()
	s.flushes++
	s.mu.Unlock()
	return nil
}

// Close implements connectors.Sink.
func (s *Sink) Close() error { return nil }

// Rows returns a copy of the rows written so far.
func (s *Sink) Rows() []connectors.Row {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]connectors.Row(nil), s.rows...)
}

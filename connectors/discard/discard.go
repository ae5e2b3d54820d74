// Package discard is the sink that drops what it is given: the results
// output of a pipeline whose outputs that matter are the named sinks its
// route function or hooks (ctx.emit) send to. It registers the URI
// "discard".
package discard

import (
	"context"
	"sync/atomic"

	"github.com/eddy-stream/eddy/connectors"
)

func init() {
	connectors.RegisterSink("discard", func(t connectors.Target) (connectors.Sink, error) { return &Sink{}, nil })
}

// Sink drops every row. It counts them, so a test or a log can say how
// many went.
type Sink struct{ rows atomic.Int64 }

var _ connectors.Sink = (*Sink)(nil)

// Write drops rows.
func (s *Sink) Write(ctx context.Context, rows []connectors.Row) error {
	s.rows.Add(int64(len(rows)))
	return nil
}

// Flush has nothing to make durable.
func (s *Sink) Flush(ctx context.Context) error { return nil }

// Close does nothing.
func (s *Sink) Close() error { return nil }

// Rows is how many rows Write dropped.
func (s *Sink) Rows() int64 { return s.rows.Load() }

package stdio

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/eddy-stream/eddy/connectors"
)

func init() {
	connectors.RegisterSink("stdout", func(t connectors.Target) (connectors.Sink, error) {
		return NewSink(os.Stdout, "stdout"), nil
	})
	connectors.RegisterSink("stderr", func(t connectors.Target) (connectors.Sink, error) {
		return NewSink(os.Stderr, "stderr"), nil
	})
}

// flushAt is the buffer size at which Write writes out on its own.
const flushAt = 64 << 10

// NewSink returns a sink that writes rows to w as JSON lines. name is used
// in errors.
func NewSink(w io.Writer, name string) *Sink {
	return &Sink{w: w, name: name}
}

// Sink writes JSON lines to a writer. It buffers, and writes only whole
// lines, so its output never interleaves mid-line with logs or with
// another sink on the same stream.
type Sink struct {
	w      io.Writer
	name   string
	buf    []byte
	closed bool
}

var _ connectors.Sink = (*Sink)(nil)

// Write buffers rows, writing out whole lines once the buffer is large.
func (s *Sink) Write(ctx context.Context, rows []connectors.Row) error {
	if s.closed {
		return fmt.Errorf("%s sink: write after close", s.name)
	}
	for _, r := range rows {
		s.buf = connectors.AppendJSON(s.buf, r)
		s.buf = append(s.buf, '\n')
		if len(s.buf) >= flushAt {
			if err := s.flush(); err != nil {
				return err
			}
		}
	}
	return nil
}

func (s *Sink) flush() error {
	if len(s.buf) == 0 {
		return nil
	}
	_, err := s.w.Write(s.buf)
	s.buf = s.buf[:0]
	if err != nil {
		return fmt.Errorf("%s sink: %w", s.name, err)
	}
	return nil
}

// Flush writes out what is buffered.
func (s *Sink) Flush(ctx context.Context) error { return s.flush() }

// Close flushes; it does not close the stream.
func (s *Sink) Close() error {
	if s.closed {
		return nil
	}
	s.closed = true
	return s.flush()
}

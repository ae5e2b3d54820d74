package stdio

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"

	"github.com/eddy-stream/eddy/connectors"
)

func init() {
	connectors.RegisterSource("stdin", func(t connectors.Target) (connectors.Source, error) {
		return NewStdin(os.Stdin), nil
	})
}

// NewStdin returns a source with one partition, "stdin", whose records are
// the lines of r ("\n" or "\r\n" stripped, empty lines skipped but
// counted). The partition returns connectors.ErrEndOfInput at the end of r.
func NewStdin(r io.Reader) *Stdin {
	return &Stdin{p: &stdinPartition{in: r, done: make(chan struct{})}}
}

// Stdin is the stdin source.
type Stdin struct {
	p *stdinPartition
}

var _ connectors.Source = (*Stdin)(nil)

// Start assigns the one partition.
func (s *Stdin) Start(ctx context.Context, l connectors.Listener) error {
	l.Assign(s.p)
	return nil
}

// Close stops the partition.
func (s *Stdin) Close() error { return s.p.Close() }

type stdinPosition struct {
	Line int64 `json:"line"`
}

// chunk is what the reader goroutine hands to Read: the lines that were
// available without blocking, at most a batch.
type chunk struct {
	recs []connectors.Record
	line int64 // the last line read, counting empty ones
	err  error // the read error after these lines; io.EOF at the end
}

type stdinPartition struct {
	in   io.Reader
	skip int64
	once sync.Once
	ch   chan chunk
	done chan struct{}
	stop sync.Once
	err  error // sticky: the end or a read error
}

var _ connectors.Partition = (*stdinPartition)(nil)

func (p *stdinPartition) ID() string { return "stdin" }

// Seek skips the lines a checkpoint counted: stdin cannot be rewound, so
// this is right only when the same input is piped in again.
func (p *stdinPartition) Seek(pos connectors.Position) error {
	if len(pos) == 0 {
		return nil
	}
	var q stdinPosition
	if err := json.Unmarshal(pos, &q); err != nil {
		return fmt.Errorf("stdin: bad position %q: %w", pos, err)
	}
	if q.Line > 0 {
		slog.Warn("stdin cannot be rewound: skipping the lines the checkpoint counted, assuming the same input is piped in again",
			"lines", q.Line)
	}
	p.skip = q.Line
	return nil
}

// run reads lines until the end of the input or Close. It hands over what
// it has whenever a batch is full or the input has nothing buffered, so an
// interactive stdin is not held back waiting for a full batch.
func (p *stdinPartition) run() {
	defer close(p.ch)
	r := bufio.NewReaderSize(p.in, 64<<10)
	var line int64
	c := chunk{}
	for {
		raw, err := readLine(r)
		if len(raw) > 0 {
			line++
			if v := trim(raw); len(v) > 0 && line > p.skip {
				c.recs = append(c.recs, connectors.Record{Value: append([]byte(nil), v...), Seq: line})
			}
		}
		c.line, c.err = line, err
		if err != nil || len(c.recs) >= 1024 || (r.Buffered() == 0 && len(c.recs) > 0) {
			select {
			case p.ch <- c:
			case <-p.done:
				return
			}
			if err != nil {
				return
			}
			c = chunk{}
		}
	}
}

func (p *stdinPartition) Read(ctx context.Context) (connectors.Batch, error) {
	if p.err != nil {
		return connectors.Batch{}, p.err
	}
	p.once.Do(func() {
		p.ch = make(chan chunk)
		go p.run()
	})
	select {
	case <-ctx.Done():
		return connectors.Batch{}, ctx.Err()
	case c, ok := <-p.ch:
		if !ok {
			p.err = connectors.ErrEndOfInput
			return connectors.Batch{}, p.err
		}
		switch {
		case errors.Is(c.err, io.EOF):
			p.err = connectors.ErrEndOfInput
		case c.err != nil:
			p.err = fmt.Errorf("stdin line %d: %w", c.line+1, c.err)
		}
		if len(c.recs) == 0 && p.err != nil {
			return connectors.Batch{}, p.err
		}
		end, _ := json.Marshal(stdinPosition{Line: max(c.line, p.skip)})
		return connectors.Batch{Records: c.recs, Where: "stdin", Unit: "line", End: end}, nil
	}
}

func (p *stdinPartition) Describe(pos connectors.Position) string {
	if len(pos) == 0 {
		return "stdin from its first line"
	}
	var q stdinPosition
	if err := json.Unmarshal(pos, &q); err != nil {
		return fmt.Sprintf("stdin bad position %q", pos)
	}
	return fmt.Sprintf("stdin after line %d", q.Line)
}

// Close stops handing lines over. A reader goroutine blocked in a read of
// the terminal or pipe stays blocked until the read returns; it does
// nothing after that.
func (p *stdinPartition) Close() error {
	p.stop.Do(func() { close(p.done) })
	return nil
}

// readLine returns the next line with its line end, however long; at the
// end of the input it returns the last bytes with io.EOF.
func readLine(r *bufio.Reader) ([]byte, error) {
	line, err := r.ReadSlice('\n')
	if !errors.Is(err, bufio.ErrBufferFull) {
		return line, err
	}
	long := append([]byte(nil), line...)
	for errors.Is(err, bufio.ErrBufferFull) {
		line, err = r.ReadSlice('\n')
		long = append(long, line...)
	}
	return long, err
}

func trim(raw []byte) []byte {
	n := len(raw)
	if n > 0 && raw[n-1] == '\n' {
		n--
		if n > 0 && raw[n-1] == '\r' {
			n--
		}
	}
	return raw[:n]
}

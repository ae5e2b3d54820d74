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
		max, err := t.MaxRecordSize()
		if err != nil {
			return nil, err
		}
		return newStdin(os.Stdin, max), nil
	}, connectors.MaxRecordSizeParam)
}

// NewStdin returns a source with one partition, "stdin", whose records are
// the lines of r ("\n" or "\r\n" stripped, empty lines skipped but
// counted). The partition returns connectors.ErrEndOfInput at the end of r.
// A line longer than connectors.DefaultMaxRecordSize is a dead letter.
func NewStdin(r io.Reader) *Stdin { return newStdin(r, connectors.DefaultMaxRecordSize) }

func newStdin(r io.Reader, maxRecord int) *Stdin {
	return &Stdin{connectors.Single{Partition: &stdinPartition{in: r, done: make(chan struct{}), limit: RewindBytes, maxRecord: maxRecord}}}
}

// Stdin is the stdin source.
type Stdin struct{ connectors.Single }

var _ connectors.Source = (*Stdin)(nil)

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

// RewindBytes bounds the lines stdin keeps after handing them out, so the
// engine can rewind a failed partition in process to a recent checkpoint.
const RewindBytes = 64 << 20

type stdinPartition struct {
	in        io.Reader
	maxRecord int // a longer line is a dead letter
	skip      int64
	once      sync.Once
	ch        chan chunk
	done      chan struct{}
	stop      sync.Once
	err       error // sticky: the end or a read error

	// history holds the batches handed out, oldest first, up to
	// RewindBytes; cursor is the next one Read serves from it (at
	// len(history) it reads new lines).
	history   []served
	histBytes int
	cursor    int
	base      int64 // the line count before history[0]
	limit     int   // RewindBytes; smaller in tests
}

// served is a batch handed out, with the line count before and after it.
type served struct {
	b          connectors.Batch
	from, line int64
	bytes      int
}

var _ connectors.Partition = (*stdinPartition)(nil)

func (p *stdinPartition) ID() string { return "stdin" }

// Seek before the first Read skips the lines a checkpoint counted: stdin
// cannot be rewound, so this is right only when the same input is piped in
// again. Later, Seek rewinds within the last RewindBytes of lines read, and
// fails for anything older.
func (p *stdinPartition) Seek(pos connectors.Position) error {
	var q stdinPosition
	if len(pos) > 0 {
		if err := json.Unmarshal(pos, &q); err != nil {
			return fmt.Errorf("stdin: bad position %q: %w", pos, err)
		}
	}
	if p.ch == nil {
		if q.Line > 0 {
			slog.Warn("stdin cannot be rewound: skipping the lines the checkpoint counted, assuming the same input is piped in again",
				"lines", q.Line)
		}
		p.skip, p.base = q.Line, q.Line
		return nil
	}
	for k, h := range p.history {
		if h.from == q.Line || (k == 0 && q.Line <= p.skip && h.from == p.skip) {
			p.cursor = k
			return nil
		}
	}
	if n := len(p.history); (n > 0 && p.history[n-1].line == q.Line) || (n == 0 && q.Line == p.base) {
		p.cursor = n
		return nil
	}
	return fmt.Errorf("stdin cannot be rewound to line %d: only lines after %d are kept", q.Line, p.base)
}

// run reads lines until the end of the input or Close. It hands over what
// it has whenever a batch is full or the input has nothing buffered, so an
// interactive stdin is not held back waiting for a full batch.
func (p *stdinPartition) run() {
	defer close(p.ch)
	r := bufio.NewReaderSize(p.in, 64<<10)
	var line, off int64
	c := chunk{}
	for {
		raw, tooLong, err := connectors.ReadLine(r, p.maxRecord)
		switch {
		case tooLong > 0:
			line++
			if line > p.skip {
				c.recs = append(c.recs, connectors.Record{Value: append([]byte(nil), raw...), Seq: line,
					Err: &connectors.TooLongError{Size: tooLong, Max: int64(p.maxRecord), Offset: off}})
			}
			off += tooLong
		case len(raw) > 0:
			line++
			off += int64(len(raw))
			if v := connectors.TrimLineEnd(raw); len(v) > 0 && line > p.skip {
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
	if err := ctx.Err(); err != nil {
		return connectors.Batch{}, err
	}
	if p.cursor < len(p.history) {
		p.cursor++
		return p.history[p.cursor-1].b, nil
	}
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
		line := max(c.line, p.skip)
		end, _ := json.Marshal(stdinPosition{Line: line})
		b := connectors.Batch{Records: c.recs, Where: "stdin", Unit: "line", End: end}
		p.remember(b, line)
		return b, nil
	}
}

// remember keeps b for rewinds, dropping the oldest batches beyond
// RewindBytes.
func (p *stdinPartition) remember(b connectors.Batch, line int64) {
	from := p.base
	if n := len(p.history); n > 0 {
		from = p.history[n-1].line
	}
	size := 0
	for _, r := range b.Records {
		size += len(r.Value) + 64
	}
	p.history = append(p.history, served{b: b, from: from, line: line, bytes: size})
	p.histBytes += size
	drop := 0
	for p.histBytes > p.limit && drop < len(p.history)-1 {
		p.histBytes -= p.history[drop].bytes
		drop++
	}
	if drop > 0 {
		p.base = p.history[drop].from
		p.history = append(p.history[:0:0], p.history[drop:]...)
	}
	p.cursor = len(p.history)
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

package files

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/eddy-stream/eddy/connectors"
)

// FileConfig is what a file: source was opened with.
type FileConfig struct {
	// Poll is how long a caught-up source waits for new lines; default
	// DefaultPoll.
	Poll time.Duration
	// FromEnd starts a run without a checkpoint at the end of the file, as
	// `tail -F` does, instead of at its start.
	FromEnd bool
}

// OpenFile opens the file: source t names, with the parameters poll and
// from=start|end.
func OpenFile(t connectors.Target) (*FileSource, error) {
	path, err := pathOf(t)
	if err != nil {
		return nil, err
	}
	var c FileConfig
	if c.Poll, err = t.DurationParam("poll", DefaultPoll); err != nil {
		return nil, err
	}
	from, err := t.Choice("from", "start", "start", "end")
	if err != nil {
		return nil, err
	}
	c.FromEnd = from == "end"
	return NewFile(path, c)
}

// NewFile opens a source that follows the file at path. The file need not
// exist yet: the source reports caught up until it appears. A directory at
// path is an error.
func NewFile(path string, c FileConfig) (*FileSource, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	if st, err := os.Stat(abs); err == nil && st.IsDir() {
		return nil, fmt.Errorf("%s is a directory: use dir:%s to read its files", abs, path)
	}
	if c.Poll <= 0 {
		c.Poll = DefaultPoll
	}
	p := &filePartition{
		path: abs, id: "file:" + abs, where: filepath.Base(abs), fromEnd: c.FromEnd,
		idler: idler{poll: c.Poll, owed: true},
	}
	return &FileSource{connectors.Single{Partition: p}}, nil
}

// FileSource is a file: source: one partition that follows a growing file
// like `tail -F`.
type FileSource struct{ connectors.Single }

var _ connectors.Source = (*FileSource)(nil)

// filePosition is a file: partition's checkpoint. Dev and Ino name the file
// it counts in: a restart that finds another file at the path reads that
// one from its start.
type filePosition struct {
	Off  int64  `json:"off"`
	Line int64  `json:"line"`
	Dev  uint64 `json:"dev"`
	Ino  uint64 `json:"ino"`
}

type filePartition struct {
	path, id, where string
	fromEnd         bool
	idler

	f        *os.File
	dev, ino uint64
	off      int64
	line     int64
	opened   bool          // the path was opened once: later opens start at 0
	resume   *filePosition // a Seek waiting for the first open
	start    *filePosition // where the first open began, for Seek(nil)
	buf      []byte
}

var _ connectors.Partition = (*filePartition)(nil)

func (p *filePartition) ID() string { return p.id }

// Seek forgets what was read and resumes at pos when the path is opened
// next; nil goes back to where this partition started (the start of the
// file, or its end for from=end).
func (p *filePartition) Seek(pos connectors.Position) error {
	var q *filePosition
	if len(pos) > 0 {
		q = new(filePosition)
		if err := json.Unmarshal(pos, q); err != nil {
			return fmt.Errorf("%s: bad position %q: %w", p.id, pos, err)
		}
	} else if p.start != nil {
		start := *p.start
		q = &start
	}
	p.Close()
	p.resume = q
	p.opened = false
	p.owed = true
	p.dev, p.ino, p.off, p.line = 0, 0, 0, 0
	return nil
}

func (p *filePartition) pos() connectors.Position {
	b, _ := json.Marshal(filePosition{Off: p.off, Line: p.line, Dev: p.dev, Ino: p.ino})
	return b
}

func (p *filePartition) Read(ctx context.Context) (connectors.Batch, error) {
	return p.idler.read(ctx, p.next, func() connectors.Batch {
		return connectors.Batch{Where: p.where, Unit: "line", End: p.pos()}
	})
}

// open opens the path and decides where to start: at a checkpoint taken on
// this very file, at its end for from=end on a first run, else at 0.
func (p *filePartition) open() (bool, error) {
	f, err := os.Open(p.path)
	if errors.Is(err, os.ErrNotExist) {
		if !p.opened && p.resume == nil {
			// A file that appears later is new: read it whole, even for
			// from=end, and rewind to its start.
			p.opened = true
			p.start = &filePosition{}
		}
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("%s: %w", p.id, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return false, fmt.Errorf("%s: %w", p.id, err)
	}
	p.f = f
	p.dev, p.ino = identOf(st)
	p.off, p.line = 0, 0
	first := !p.opened
	p.opened = true
	switch q := p.resume; {
	case first && q != nil:
		p.resume = nil
		switch {
		case *q == filePosition{}:
		case q.Dev != p.dev || q.Ino != p.ino:
			slog.Warn("file was replaced since the checkpoint; reading the new one from its start",
				"source", p.id, "checkpoint_line", q.Line)
		case st.Size() < q.Off:
			slog.Warn("file is shorter than at the checkpoint (truncated); reading it from its start",
				"source", p.id, "size", st.Size(), "checkpoint_offset", q.Off)
		default:
			p.off, p.line = q.Off, q.Line
		}
	case first && p.fromEnd:
		p.off = st.Size()
		// Start after the last complete line, so a line being written is
		// read whole.
		if p.off > 0 {
			p.off = p.lastLineEnd(p.off)
		}
	}
	if first && p.start == nil {
		p.start = &filePosition{Off: p.off, Line: p.line, Dev: p.dev, Ino: p.ino}
	}
	return true, nil
}

// lastLineEnd returns the offset just after the last "\n" before size.
func (p *filePartition) lastLineEnd(size int64) int64 {
	chunk := make([]byte, 64<<10)
	for end := size; end > 0; {
		start := max(0, end-int64(len(chunk)))
		n, _ := p.f.ReadAt(chunk[:end-start], start)
		if i := bytes.LastIndexByte(chunk[:n], '\n'); i >= 0 {
			return start + int64(i) + 1
		}
		end = start
	}
	return 0
}

// next returns the complete lines after the offset, handling a file that
// does not exist yet, was rotated away or was truncated.
func (p *filePartition) next() (connectors.Batch, bool, error) {
	if p.f == nil {
		ok, err := p.open()
		if !ok || err != nil {
			return connectors.Batch{}, false, err
		}
	}
	b, err := p.readLines()
	if err != nil || len(b.Records) > 0 {
		return b, err == nil, err
	}
	// Nothing new in the open file. Has the path moved on to another file?
	st, err := os.Stat(p.path)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return connectors.Batch{}, false, fmt.Errorf("%s: %w", p.id, err)
	}
	if err != nil || !p.same(st) {
		// Rotated: the old file's last lines may have been written between
		// our read and the rename, so read it once more before leaving it.
		if b, err := p.readLines(); err != nil || len(b.Records) > 0 {
			return b, err == nil, err
		}
		if fst, err := p.f.Stat(); err == nil && fst.Size() > p.off {
			slog.Warn("rotated file ends with an unterminated line; dropping it",
				"source", p.id, "line", p.line+1, "bytes", fst.Size()-p.off)
		}
		p.f.Close()
		p.f = nil
		p.dev, p.ino, p.off, p.line = 0, 0, 0, 0
		if ok, err := p.open(); !ok || err != nil {
			return connectors.Batch{}, false, err
		}
		b, err := p.readLines()
		return b, err == nil && len(b.Records) > 0, err
	}
	fst, err := p.f.Stat()
	if err != nil {
		return connectors.Batch{}, false, fmt.Errorf("%s: %w", p.id, err)
	}
	if fst.Size() < p.off {
		slog.Warn("file was truncated; reading it again from its start",
			"source", p.id, "size", fst.Size(), "offset", p.off)
		p.off, p.line = 0, 0
		b, err := p.readLines()
		return b, err == nil && len(b.Records) > 0, err
	}
	return connectors.Batch{}, false, nil
}

func (p *filePartition) same(st os.FileInfo) bool {
	dev, ino := identOf(st)
	if dev == 0 && ino == 0 {
		return os.SameFile(st, mustStat(p.f))
	}
	return dev == p.dev && ino == p.ino
}

func mustStat(f *os.File) os.FileInfo {
	st, _ := f.Stat()
	return st
}

// readLines reads the complete lines after the offset: up to
// maxBatchRecords lines or maxBatchBytes, more for a single longer line.
func (p *filePartition) readLines() (connectors.Batch, error) {
	b := connectors.Batch{Where: p.where, Unit: "line"}
	if cap(p.buf) == 0 {
		p.buf = make([]byte, 64<<10)
	}
	var n int
	for {
		m, err := p.f.ReadAt(p.buf[n:], p.off+int64(n))
		n += m
		if err != nil && !errors.Is(err, io.EOF) {
			return b, fmt.Errorf("%s: %w", p.id, err)
		}
		if n < len(p.buf) {
			break // the end of the file
		}
		if n >= maxBatchBytes && bytes.IndexByte(p.buf[:n], '\n') >= 0 || bytes.Count(p.buf[:n], []byte{'\n'}) >= maxBatchRecords {
			break
		}
		// The buffer is full and holds no complete line, or fewer lines
		// than a batch may: grow it and read on.
		p.buf = append(p.buf, make([]byte, len(p.buf))...)[:len(p.buf)*2]
	}
	data := p.buf[:n]
	end := bytes.LastIndexByte(data, '\n') + 1
	if end == 0 {
		b.End = p.pos()
		return b, nil
	}
	arena := make([]byte, 0, end)
	var recs []connectors.Record
	rest := data[:end]
	consumed := 0
	for len(rest) > 0 && len(recs) < maxBatchRecords {
		i := bytes.IndexByte(rest, '\n')
		raw := rest[:i+1]
		rest = rest[i+1:]
		consumed += len(raw)
		p.line++
		if v := connectors.TrimLineEnd(raw); len(v) > 0 {
			start := len(arena)
			arena = append(arena, v...)
			recs = append(recs, connectors.Record{Value: arena[start:len(arena):len(arena)], Seq: p.line})
		}
	}
	p.off += int64(consumed)
	b.Records = recs
	b.End = p.pos()
	if len(p.buf) > 4*maxBatchBytes {
		p.buf = nil // one huge line should not pin its buffer
	}
	return b, nil
}

func (p *filePartition) Describe(pos connectors.Position) string {
	if len(pos) == 0 {
		return p.id + " from the start"
	}
	var q filePosition
	if err := json.Unmarshal(pos, &q); err != nil {
		return fmt.Sprintf("%s bad position %q", p.id, pos)
	}
	return fmt.Sprintf("%s after line %d (byte %d, inode %d)", p.where, q.Line, q.Off, q.Ino)
}

func (p *filePartition) Close() error {
	if p.f != nil {
		err := p.f.Close()
		p.f = nil
		return err
	}
	return nil
}

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
	// Wait lets the file be missing when the source opens: it is read
	// once it appears, as `tail -F` waits for it. Without it a missing
	// file is an error, so a mistyped path is not a run that reads nothing.
	Wait bool
	// MaxRecordSize bounds a line; a longer one becomes a dead letter with
	// a preview. Default connectors.DefaultMaxRecordSize.
	MaxRecordSize int
}

// OpenFile opens the file: source t names, with the parameters poll,
// from=start|end, wait=true|false and max-record-size.
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
	wait, err := t.Choice("wait", "false", "true", "false")
	if err != nil {
		return nil, err
	}
	c.Wait = wait == "true"
	if c.MaxRecordSize, err = t.MaxRecordSize(); err != nil {
		return nil, err
	}
	return NewFile(path, c)
}

// NewFile opens a source that follows the file at path. With c.Wait the
// file need not exist yet: the source reports caught up until it appears;
// without, a missing file is an error. A directory at path is an error.
func NewFile(path string, c FileConfig) (*FileSource, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(abs)
	switch {
	case err == nil && st.IsDir():
		return nil, fmt.Errorf("%s is a directory: use dir:%s to read its files", abs, path)
	case errors.Is(err, os.ErrNotExist) && !c.Wait:
		return nil, fmt.Errorf("file %s does not exist (add ?wait=true to wait for it to appear, as tail -F does)", abs)
	}
	if c.Poll < 0 || c.MaxRecordSize < 0 {
		return nil, fmt.Errorf("file %s: negative setting in %+v: want 0 for the default, or more", abs, c)
	}
	if c.Poll == 0 {
		c.Poll = DefaultPoll
	}
	if c.MaxRecordSize == 0 {
		c.MaxRecordSize = connectors.DefaultMaxRecordSize
	}
	p := &filePartition{
		path: abs, id: "file:" + abs, where: filepath.Base(abs), fromEnd: c.FromEnd, maxRecord: c.MaxRecordSize,
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
	maxRecord       int
	idler

	f        *os.File
	dev, ino uint64
	off      int64
	line     int64
	opened   bool          // the path was opened once: later opens start at 0
	resume   *filePosition // a Seek waiting for the first open
	start    *filePosition // where the first open began, for Seek(nil)
	buf      []byte
	// long, when above 0, is how far a line longer than maxRecord that
	// starts at off has been skipped (see skipLong).
	long int64
	// gone is set once the path's disappearance was reported.
	gone bool
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
	p.dev, p.ino, p.off, p.line, p.long = 0, 0, 0, 0, 0
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
		if p.opened && !p.gone {
			p.gone = true
			slog.Warn("file was removed; waiting for it to appear again", "source", p.id, "file", p.where)
		}
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
	p.f, p.gone = f, false
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
		p.dev, p.ino, p.off, p.line, p.long = 0, 0, 0, 0, 0
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
		slog.Warn(fmt.Sprintf("%s was truncated to %s after line %d (offset %s); reading it again from its start, as tail -F does: lines written after the last read and before the truncation are lost",
			p.where, connectors.FormatSize(fst.Size()), p.line, connectors.FormatSize(p.off)),
			"source", p.id, "size", fst.Size(), "offset", p.off)
		p.off, p.line, p.long = 0, 0, 0
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
	if p.long > 0 {
		return p.skipLong()
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
		if n > p.maxRecord+2 && bytes.IndexByte(p.buf[:n], '\n') < 0 {
			// The first line is already too long: skip it without
			// holding it.
			p.long = p.off + int64(n)
			return p.skipLong()
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
	b.Records = p.split(data[:end])
	b.End = p.pos()
	if len(p.buf) > 4*maxBatchBytes {
		p.buf = nil // one huge line should not pin its buffer
	}
	return b, nil
}

// split makes records of the complete lines of data, at most a batch of
// them, and moves the offset past them. A line longer than the maximum
// record size becomes a dead-letter record with its preview.
func (p *filePartition) split(data []byte) []connectors.Record {
	arena := make([]byte, 0, len(data))
	var recs []connectors.Record
	for len(data) > 0 && len(recs) < maxBatchRecords {
		i := bytes.IndexByte(data, '\n')
		raw := data[:i+1]
		data = data[i+1:]
		at := p.off
		p.off += int64(len(raw))
		p.line++
		v := connectors.TrimLineEnd(raw)
		if len(v) == 0 {
			continue
		}
		var tooLong error
		if len(v) > p.maxRecord {
			tooLong = &connectors.TooLongError{Size: int64(len(raw)), Max: int64(p.maxRecord), Offset: at}
			v = v[:min(len(v), connectors.PreviewBytes)]
		}
		start := len(arena)
		arena = append(arena, v...)
		recs = append(recs, connectors.Record{Value: arena[start:len(arena):len(arena)], Seq: p.line, Err: tooLong})
	}
	return recs
}

// skipLong reads on through a line longer than the maximum record size that
// starts at off, in buffer-sized steps from long, without keeping it. Once
// its end is there, it returns the line as one dead-letter record (a
// preview and its size) and moves past it; until then it returns nothing,
// and a checkpoint still points at the line's start.
func (p *filePartition) skipLong() (connectors.Batch, error) {
	b := connectors.Batch{Where: p.where, Unit: "line"}
	chunk := p.buf[:min(cap(p.buf), 64<<10)]
	for {
		m, err := p.f.ReadAt(chunk, p.long)
		if err != nil && !errors.Is(err, io.EOF) {
			return b, fmt.Errorf("%s: %w", p.id, err)
		}
		if i := bytes.IndexByte(chunk[:m], '\n'); i >= 0 {
			end := p.long + int64(i) + 1
			preview := make([]byte, min(connectors.PreviewBytes, end-1-p.off))
			k, _ := p.f.ReadAt(preview, p.off)
			p.line++
			b.Records = []connectors.Record{{Value: preview[:k], Seq: p.line,
				Err: &connectors.TooLongError{Size: end - p.off, Max: int64(p.maxRecord), Offset: p.off}}}
			p.off, p.long = end, 0
			b.End = p.pos()
			return b, nil
		}
		p.long += int64(m)
		if m < len(chunk) {
			b.End = p.pos() // the line is still being written
			return b, nil
		}
	}
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

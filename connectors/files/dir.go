package files

import (
	"bufio"
	"compress/gzip"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/eddy-stream/eddy/connectors"
)

// DirConfig is what a dir: source was opened with.
type DirConfig struct {
	// Poll is how long a caught-up source waits for a new file; default
	// DefaultPoll.
	Poll time.Duration
	// MaxFilesPerTrigger, when above 0, sets Boundary on the last batch of
	// every Nth completed file, as Spark's maxFilesPerTrigger.
	MaxFilesPerTrigger int
	// MaxRecordSize bounds a line; a longer one becomes a dead letter with
	// a preview. Default connectors.DefaultMaxRecordSize.
	MaxRecordSize int
	// WarnOnLoss makes a file that shrinks, is replaced or is deleted
	// before it is read a warning; by default it fails the read, as Spark's
	// file source does unless told to ignore missing files.
	WarnOnLoss bool
}

// OpenDir opens the dir: source t names, with the parameters poll,
// max-files-per-trigger, max-record-size and on-loss=fail|warn.
func OpenDir(t connectors.Target) (*DirSource, error) {
	path, err := pathOf(t)
	if err != nil {
		return nil, err
	}
	var c DirConfig
	if c.Poll, err = t.DurationParam("poll", DefaultPoll); err != nil {
		return nil, err
	}
	n, err := t.IntParam("max-files-per-trigger", 0, 0)
	if err != nil {
		return nil, err
	}
	c.MaxFilesPerTrigger = int(n)
	if c.MaxRecordSize, err = t.MaxRecordSize(); err != nil {
		return nil, err
	}
	onLoss, err := t.Choice("on-loss", "fail", "fail", "warn")
	if err != nil {
		return nil, err
	}
	c.WarnOnLoss = onLoss == "warn"
	return NewDir(path, c)
}

// NewDir opens a source over the files of the directory path. The
// directory must exist.
func NewDir(path string, c DirConfig) (*DirSource, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	st, err := os.Stat(abs)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("directory %s does not exist", abs)
		}
		return nil, err
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("%s is not a directory: use file:%s to follow a file", abs, path)
	}
	if c.Poll < 0 || c.MaxRecordSize < 0 || c.MaxFilesPerTrigger < 0 {
		return nil, fmt.Errorf("dir %s: negative setting in %+v: want 0 for the default, or more", abs, c)
	}
	if c.Poll == 0 {
		c.Poll = DefaultPoll
	}
	if c.MaxRecordSize == 0 {
		c.MaxRecordSize = connectors.DefaultMaxRecordSize
	}
	p := &dirPartition{
		dir: abs, id: "dir:" + abs, maxFiles: c.MaxFilesPerTrigger,
		maxRecord: c.MaxRecordSize, warnOnLoss: c.WarnOnLoss,
		idler: idler{poll: c.Poll, owed: true},
		done:  map[string]bool{}, doneJSON: []byte("[]"),
		mems: make(batchMems, spareMems), blocks: newBlockPool(),
	}
	return &DirSource{Single: connectors.Single{Partition: p}, p: p}, nil
}

// DirSource is a dir: source: one partition that reads every file of a
// directory in lexical order, picking up files that appear later.
type DirSource struct {
	connectors.Single
	p *dirPartition
}

var (
	_ connectors.Source   = (*DirSource)(nil)
	_ connectors.Measured = (*DirSource)(nil)
)

// Extent is the files done of those found so far, and their bytes.
func (s *DirSource) Extent() connectors.Extent { return s.p.extent.Extent() }

// dirPosition is a dir: partition's checkpoint: the files done, and how far
// into the current one. Off is unused for .gz files, whose restart re-reads
// and skips Line lines.
type dirPosition struct {
	Done []string `json:"done"`
	File string   `json:"file,omitempty"`
	Off  int64    `json:"off,omitempty"`
	Line int64    `json:"line,omitempty"`
}

type dirPartition struct {
	dir, id    string
	maxFiles   int
	maxRecord  int
	warnOnLoss bool
	idler

	done     map[string]bool
	doneList []string // sorted
	doneJSON []byte   // doneList encoded once per completed file, not per batch
	pending  []string // listed, not done, in lexical order
	cur      *dirFile
	extent   dirExtent
	mems     batchMems // released batches' memory
	blocks   *blockPool
}

type dirFile struct {
	name string
	f    *os.File
	// lines reads a plain file; r a .gz file's text
	lines *lineBlocks
	r     *bufio.Reader
	gz    bool
	off   int64
	line  int64
	mtime time.Time
	// size is the file's size when it was opened: a file found shorter at
	// its end was truncated under the reader.
	size int64
}

var _ connectors.Partition = (*dirPartition)(nil)

func (p *dirPartition) ID() string { return p.id }

// Seek forgets what was read and resumes at pos, or at the first file for
// nil.
func (p *dirPartition) Seek(pos connectors.Position) error {
	var q dirPosition
	if len(pos) > 0 {
		if err := json.Unmarshal(pos, &q); err != nil {
			return fmt.Errorf("%s: bad position %q: %w", p.id, pos, err)
		}
	}
	p.Close()
	p.pending = nil
	p.owed = true
	clear(p.done)
	for _, name := range q.Done {
		p.done[name] = true
	}
	p.setDone()
	p.extent.restart(p.dir, p.doneList)
	if q.File == "" {
		return nil
	}
	if err := p.open(q.File, q.Off, q.Line); err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return p.lost(fmt.Sprintf("%s, the file the checkpoint was reading, is gone: its lines after line %d are lost", q.File, q.Line))
		}
		return fmt.Errorf("%s: resume %s at line %d: %w", p.id, q.File, q.Line, err)
	}
	p.extent.found(0, 0, true, p.cur.size)
	return nil
}

func (p *dirPartition) setDone() {
	p.doneList = p.doneList[:0]
	for name := range p.done {
		p.doneList = append(p.doneList, name)
	}
	slices.Sort(p.doneList)
	p.doneJSON, _ = json.Marshal(p.doneList)
}

// pos encodes the position after what has been read so far.
func (p *dirPartition) pos() connectors.Position {
	b := make([]byte, 0, len(p.doneJSON)+len(p.dir)+64)
	b = append(b, `{"done":`...)
	b = append(b, p.doneJSON...)
	if c := p.cur; c != nil {
		b = append(b, `,"file":`...)
		b = connectors.AppendValue(b, c.name)
		if !c.gz {
			b = append(b, `,"off":`...)
			b = connectors.AppendValue(b, c.off)
		}
		b = append(b, `,"line":`...)
		b = connectors.AppendValue(b, c.line)
	}
	return append(b, '}')
}

// open opens file name of the directory at byte off (line for .gz).
func (p *dirPartition) open(name string, off, line int64) error {
	f, err := os.Open(filepath.Join(p.dir, name))
	if err != nil {
		return err
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return err
	}
	c := &dirFile{name: name, f: f, off: off, line: line, mtime: st.ModTime(), size: st.Size()}
	if strings.HasSuffix(name, ".gz") {
		c.gz = true
		zr, err := gzip.NewReader(bufio.NewReader(counted{f, &p.extent}))
		if err != nil {
			f.Close()
			return fmt.Errorf("%s: %w", name, err)
		}
		c.r = bufio.NewReaderSize(zr, 64<<10)
		for range line {
			if _, err := c.r.ReadSlice('\n'); err != nil && !errors.Is(err, bufio.ErrBufferFull) {
				if errors.Is(err, io.EOF) {
					break
				}
				f.Close()
				return fmt.Errorf("%s: skip to line %d: %w", name, line, err)
			}
		}
	} else {
		if off > st.Size() {
			f.Close()
			return fmt.Errorf("%s is %d bytes, shorter than the checkpoint's offset %d: was it rewritten?", name, st.Size(), off)
		}
		if _, err := f.Seek(off, io.SeekStart); err != nil {
			f.Close()
			return err
		}
		p.extent.read(int(off))
		c.lines = newLineBlocks(counted{f, &p.extent}, p.blocks)
	}
	p.cur = c
	return nil
}

// list refreshes the pending files: regular files not done, not hidden
// ("." or "_" prefix, as Spark skips _SUCCESS) and not being written
// (".tmp" suffix), in lexical order.
func (p *dirPartition) list() error {
	entries, err := os.ReadDir(p.dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("directory %s does not exist", p.dir)
		}
		return fmt.Errorf("%s: %w", p.id, err)
	}
	p.pending = p.pending[:0]
	var bytes int64
	for _, e := range entries {
		name := e.Name()
		if p.done[name] || strings.HasPrefix(name, ".") || strings.HasPrefix(name, "_") || strings.HasSuffix(name, ".tmp") {
			continue
		}
		if p.cur != nil && p.cur.name == name {
			continue
		}
		size, ok := regularSize(p.dir, e)
		if !ok {
			continue
		}
		p.pending = append(p.pending, name) // ReadDir sorts by name
		bytes += size
	}
	var curSize int64
	if p.cur != nil {
		curSize = p.cur.size
	}
	p.extent.found(int64(len(p.pending)), bytes, p.cur != nil, curSize)
	return nil
}

// regularSize is the size of a directory entry that is a regular file or
// a link to one; ok is false for anything else. A regular file deleted
// since the listing counts 0 and stays listed, so that reading it reports
// its loss.
func regularSize(dir string, e os.DirEntry) (size int64, ok bool) {
	if e.Type().IsRegular() {
		if st, err := e.Info(); err == nil {
			size = st.Size()
		}
		return size, true
	}
	if e.Type()&os.ModeSymlink == 0 {
		return 0, false
	}
	st, err := os.Stat(filepath.Join(dir, e.Name()))
	if err != nil || !st.Mode().IsRegular() {
		return 0, false
	}
	return st.Size(), true
}

func (p *dirPartition) Read(ctx context.Context) (connectors.Batch, error) {
	return p.idler.read(ctx, p.next, func() connectors.Batch {
		return connectors.Batch{Where: p.id, Unit: "line", End: p.pos()}
	})
}

// next reads the next batch of the current or next file; ok is false when
// no file has anything left.
func (p *dirPartition) next() (connectors.Batch, bool, error) {
	listed := false
	for {
		if p.cur == nil {
			if len(p.pending) == 0 {
				if listed {
					return connectors.Batch{}, false, nil
				}
				if err := p.list(); err != nil {
					return connectors.Batch{}, false, err
				}
				listed = true
				continue
			}
			name := p.pending[0]
			p.pending = p.pending[1:]
			if err := p.open(name, 0, 0); err != nil {
				if errors.Is(err, os.ErrNotExist) {
					if err := p.lost(name + " was deleted before it was read: all its lines are lost"); err != nil {
						return connectors.Batch{}, false, err
					}
					continue
				}
				return connectors.Batch{}, false, fmt.Errorf("%s: %w", p.id, err)
			}
		}
		b, eof, err := p.readBatch()
		if err != nil {
			return connectors.Batch{}, false, err
		}
		if eof {
			if err := p.checkLoss(); err != nil {
				return connectors.Batch{}, false, err
			}
			p.cur.close()
			p.done[p.cur.name] = true
			p.setDone()
			p.extent.fileDone()
			p.cur = nil
			b.End = p.pos()
			b.Boundary = p.maxFiles > 0 && len(p.done)%p.maxFiles == 0
		}
		if len(b.Records) > 0 || b.Boundary {
			return b, true, nil
		}
		b.Release()
	}
}

// readBatch reads up to maxBatchRecords lines or maxBatchBytes from the
// current file; eof says the file has nothing after them.
func (p *dirPartition) readBatch() (b connectors.Batch, eof bool, err error) {
	c := p.cur
	mem := p.mems.get()
	b = connectors.Batch{Where: c.name, Unit: "line", Records: mem.records, Release: mem.release}
	size := 0
	for len(b.Records) < maxBatchRecords && size < maxBatchBytes {
		raw, tooLong, err := c.readLine(mem, p.maxRecord)
		switch {
		case tooLong > 0:
			c.line++
			size += len(raw)
			b.Records = append(b.Records, p.tooLong(raw, tooLong))
			c.off += tooLong
		case len(raw) > 0:
			c.off += int64(len(raw))
			c.line++
			if v := connectors.TrimLineEnd(raw); len(v) > 0 {
				size += len(v)
				b.Records = append(b.Records, connectors.Record{Value: v, Seq: c.line, Time: c.mtime})
			}
		}
		if errors.Is(err, io.EOF) {
			eof = true
			break
		}
		if err != nil {
			return b, false, fmt.Errorf("%s: %s line %d: %w", p.id, c.name, c.line+1, err)
		}
	}
	if !eof {
		if eof, err = c.atEnd(); err != nil {
			return b, false, fmt.Errorf("%s: %s line %d: %w", p.id, c.name, c.line+1, err)
		}
	}
	b.End = p.pos()
	return b, eof, nil
}

// tooLong makes the dead-letter record of a line longer than the maximum
// record size, from its preview (kept in the batch's memory) and its size.
func (p *dirPartition) tooLong(preview []byte, size int64) connectors.Record {
	c := p.cur
	at := c.off
	if c.gz {
		at = -1 // offsets in the compressed file mean nothing to people
	}
	return connectors.Record{Value: preview, Seq: c.line, Time: c.mtime,
		Err: &connectors.TooLongError{Size: size, Max: int64(p.maxRecord), Offset: at}}
}

// checkLoss, at the end of the current file, tells whether it lost lines
// under the reader: it is shorter than when it was opened and the reading
// stopped short of that size (truncated while being read), or another file
// now has its name (replaced: the new one is never read, its name is done).
func (p *dirPartition) checkLoss() error {
	c := p.cur
	st, err := c.f.Stat()
	if err != nil {
		return fmt.Errorf("%s: %s: %w", p.id, c.name, err)
	}
	if now := st.Size(); now < c.size && (c.gz || c.off < c.size) {
		what := fmt.Sprintf("%s shrank from %s to %s while being read", c.name, connectors.FormatSize(c.size), connectors.FormatSize(now))
		if !c.gz {
			what += " at offset " + connectors.FormatSize(c.off)
			if c.off > 0 && c.line > 0 {
				what += fmt.Sprintf(": about %d lines after line %d may be lost", (c.size-c.off)*c.line/c.off, c.line)
			} else {
				what += fmt.Sprintf(": its last %s may be lost", connectors.FormatSize(c.size-c.off))
			}
		}
		return p.lost(what)
	}
	if pst, err := os.Stat(filepath.Join(p.dir, c.name)); err == nil && !os.SameFile(st, pst) {
		return p.lost(c.name + " was replaced while being read: the new file of that name is not read")
	}
	return nil
}

// lost reports lines a file lost under the source: by default an error
// that stops the run, a warning with on-loss=warn.
func (p *dirPartition) lost(what string) error {
	if p.warnOnLoss {
		slog.Warn(what+"; going on (on-loss=warn)", "source", p.id)
		return nil
	}
	return fmt.Errorf("%s (add ?on-loss=warn to the URI to go on without them)", what)
}

func (p *dirPartition) Describe(pos connectors.Position) string {
	if len(pos) == 0 {
		return p.id + " from the first file"
	}
	var q dirPosition
	if err := json.Unmarshal(pos, &q); err != nil {
		return fmt.Sprintf("%s bad position %q", p.id, pos)
	}
	s := fmt.Sprintf("%d files done", len(q.Done))
	if q.File != "" {
		s += fmt.Sprintf(", %s after line %d", q.File, q.Line)
	}
	return s
}

func (p *dirPartition) Close() error {
	if p.cur != nil {
		err := p.cur.close()
		p.cur = nil
		return err
	}
	return nil
}

// close closes the file and lets go of its block.
func (c *dirFile) close() error {
	if c.lines != nil {
		c.lines.close()
	}
	return c.f.Close()
}

// readLine returns the next line with its line end, valid until mem is
// released, as connectors.ReadLine does (a preview and the size of a line
// longer than max).
func (c *dirFile) readLine(mem *batchMem, max int) (line []byte, tooLong int64, err error) {
	if c.lines != nil {
		return c.lines.next(mem, max)
	}
	line, tooLong, err = connectors.ReadLine(c.r, max)
	return mem.keep(line), tooLong, err
}

// atEnd says whether the file has nothing after the lines read.
func (c *dirFile) atEnd() (bool, error) {
	if c.lines != nil {
		return c.lines.atEnd()
	}
	if _, err := c.r.Peek(1); errors.Is(err, io.EOF) {
		return true, nil
	} else if err != nil {
		return false, err
	}
	return false, nil
}

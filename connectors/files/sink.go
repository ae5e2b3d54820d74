package files

import (
	"bufio"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/eddy-stream/eddy/connectors"
)

// SinkFormats are the file extensions the file: sink writes.
var SinkFormats = []string{".jsonl", ".json", ".csv"}

// OpenSink opens the file: sink t names.
func OpenSink(t connectors.Target) (*Sink, error) {
	rest := t.LocalPath()
	if rest == "" {
		return nil, fmt.Errorf("no path: write file:PATH")
	}
	return NewSink(rest)
}

// NewSink opens path for appending, creating the file if missing. Its
// directory must exist, except below the working directory: a relative
// path that stays inside it ("out/results.jsonl") gets its missing
// directories made. A sink never makes directories elsewhere, so a typo
// in an absolute path is an error, not a new tree under "/". The extension
// picks the format: .jsonl or .json write one JSON object per line, .csv
// writes CSV with a header.
func NewSink(path string) (*Sink, error) {
	ext := strings.ToLower(filepath.Ext(path))
	s := &Sink{path: path}
	switch ext {
	case ".jsonl", ".json":
	case ".csv":
		s.csv = true
	default:
		return nil, fmt.Errorf("file sink %s: unknown extension %q: use one of %s", path, ext, strings.Join(SinkFormats, ", "))
	}
	if err := parentDir(path); err != nil {
		return nil, fmt.Errorf("file sink %s: %w", path, err)
	}
	if s.csv {
		header, err := readHeader(path)
		if err != nil {
			return nil, fmt.Errorf("file sink %s: %w", path, err)
		}
		s.setHeader(header)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("file sink %s: %w", path, err)
	}
	s.f = f
	s.w = bufio.NewWriterSize(f, 256<<10)
	if s.csv {
		s.cw = csv.NewWriter(s.w)
	}
	return s, nil
}

// parentDir makes sure path's directory exists, making it only when path
// is relative and stays below the working directory.
func parentDir(path string) error {
	dir := filepath.Dir(path)
	st, err := os.Stat(dir)
	switch {
	case err == nil && !st.IsDir():
		return fmt.Errorf("%s is not a directory", dir)
	case err == nil:
		return nil
	case !errors.Is(err, os.ErrNotExist):
		return err
	case !filepath.IsLocal(dir):
		return fmt.Errorf("directory %s does not exist: create it first (a file sink makes missing directories only for a relative path below the working directory)", dir)
	}
	return os.MkdirAll(dir, 0o755)
}

// readHeader returns the columns of an existing CSV file, nil when the file
// is missing or empty.
func readHeader(path string) ([]string, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := csv.NewReader(bufio.NewReader(f))
	r.FieldsPerRecord = -1
	header, err := r.Read()
	if errors.Is(err, io.EOF) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read the existing header: %w", err)
	}
	return header, nil
}

// Sink is the file: sink. It appends, so it is at-least-once across a
// crash: what was written after the last checkpoint is written again.
type Sink struct {
	path   string
	f      *os.File
	w      *bufio.Writer
	buf    []byte
	csv    bool
	cw     *csv.Writer
	header []string
	column map[string]int
	cells  []string
}

var _ connectors.Sink = (*Sink)(nil)

func (s *Sink) setHeader(h []string) {
	s.header = h
	s.column = make(map[string]int, len(h))
	for i, name := range h {
		s.column[name] = i
	}
	s.cells = make([]string, len(h))
}

// Write appends rows to the buffer.
func (s *Sink) Write(ctx context.Context, rows []connectors.Row) error {
	if s.f == nil {
		return fmt.Errorf("file sink %s: write after close", s.path)
	}
	if s.csv {
		return s.writeCSV(rows)
	}
	for _, r := range rows {
		s.buf = connectors.AppendJSON(s.buf[:0], r)
		s.buf = append(s.buf, '\n')
		if _, err := s.w.Write(s.buf); err != nil {
			return fmt.Errorf("file sink %s: %w", s.path, err)
		}
	}
	return nil
}

func (s *Sink) writeCSV(rows []connectors.Row) error {
	for _, r := range rows {
		if s.header == nil {
			h := make([]string, len(r.Fields))
			for i, f := range r.Fields {
				h[i] = f.Name
			}
			s.setHeader(h)
			if err := s.cw.Write(h); err != nil {
				return fmt.Errorf("file sink %s: %w", s.path, err)
			}
		}
		clear(s.cells)
		for _, f := range r.Fields {
			i, ok := s.column[f.Name]
			if !ok {
				return fmt.Errorf("file sink %s: field %q is not a column of the header (%s)", s.path, f.Name, strings.Join(s.header, ", "))
			}
			s.cells[i] = s.cell(f.Value)
		}
		if err := s.cw.Write(s.cells); err != nil {
			return fmt.Errorf("file sink %s: %w", s.path, err)
		}
	}
	return nil
}

// cell renders a value as CSV text: strings as they are, nil as an empty
// cell, everything else as its JSON.
func (s *Sink) cell(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	}
	s.buf = connectors.AppendValue(s.buf[:0], v)
	return string(s.buf)
}

// Flush writes the buffer out and fsyncs the file.
func (s *Sink) Flush(ctx context.Context) error {
	if s.f == nil {
		return fmt.Errorf("file sink %s: flush after close", s.path)
	}
	if s.cw != nil {
		s.cw.Flush()
		if err := s.cw.Error(); err != nil {
			return fmt.Errorf("file sink %s: %w", s.path, err)
		}
	}
	if err := s.w.Flush(); err != nil {
		return fmt.Errorf("file sink %s: %w", s.path, err)
	}
	if err := s.f.Sync(); err != nil {
		return fmt.Errorf("file sink %s: %w", s.path, err)
	}
	return nil
}

// Close flushes and closes the file.
func (s *Sink) Close() error {
	if s.f == nil {
		return nil
	}
	err := s.Flush(context.Background())
	if cerr := s.f.Close(); err == nil {
		err = cerr
	}
	s.f = nil
	return err
}

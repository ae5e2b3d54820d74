package connectortest

import (
	"context"
	"fmt"
	"testing"

	"github.com/eddy-stream/eddy/connectors"
)

// SinkOptions tune TestSink.
type SinkOptions struct {
	// Rows are written in two Writes with a Flush between them; the
	// default is DefaultRows.
	Rows []connectors.Row
}

// DefaultRows exercises the value types a Row may hold: strings that need
// quoting and escaping in JSON and CSV, integers, integral and fractional
// floats, booleans.
func DefaultRows() []connectors.Row {
	return []connectors.Row{
		{Key: "a", Fields: []connectors.Field{{Name: "dstdevice", Value: "EnterpriseAppServer"}, {Name: "count", Value: int64(14199)}, {Name: "ratio", Value: 0.5}, {Name: "web", Value: true}}},
		{Key: "b", Fields: []connectors.Field{{Name: "dstdevice", Value: `Comp"576843", x`}, {Name: "count", Value: 13837.0}, {Name: "ratio", Value: 0.125}, {Name: "web", Value: false}}},
		{Key: "c", Fields: []connectors.Field{{Name: "dstdevice", Value: "line\nbreak → ü"}, {Name: "count", Value: int64(0)}, {Name: "ratio", Value: -2.25}, {Name: "web", Value: true}}},
	}
}

// TestSink writes rows through a sink opened by open (first half, Flush,
// second half, an empty Write, Flush twice, Close), then checks readBack
// returns them in order. Values compare by Canon, so a CSV sink that reads
// back the string "14199" matches the integer 14199.
func TestSink(t *testing.T, open func(t *testing.T) connectors.Sink, readBack func(t *testing.T) []connectors.Row, opts SinkOptions) {
	t.Helper()
	rows := opts.Rows
	if rows == nil {
		rows = DefaultRows()
	}
	ctx := context.Background()
	s := open(t)
	half := len(rows) / 2
	if err := s.Write(ctx, rows[:half]); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := s.Flush(ctx); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	if err := s.Write(ctx, rows[half:]); err != nil {
		t.Fatalf("Write: %v", err)
	}
	if err := s.Write(ctx, nil); err != nil {
		t.Fatalf("Write(nil): %v", err)
	}
	for range 2 {
		if err := s.Flush(ctx); err != nil {
			t.Fatalf("Flush: %v", err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	got := readBack(t)
	if err := SameRows(rows, got); err != nil {
		t.Fatal(err)
	}
}

// SameRows reports the first difference between two row runs, comparing
// field names in order and values by Canon.
func SameRows(want, got []connectors.Row) error {
	for i := range min(len(want), len(got)) {
		if Canon(want[i]) != Canon(got[i]) {
			return fmt.Errorf("row %d differs:\n got  %s\n want %s", i, Canon(got[i]), Canon(want[i]))
		}
	}
	if len(want) != len(got) {
		return fmt.Errorf("got %d rows, want %d", len(got), len(want))
	}
	return nil
}

// Canon renders a row for comparison: its fields in order, strings as they
// are, every other value as JSON.
func Canon(r connectors.Row) string {
	var b []byte
	for i, f := range r.Fields {
		if i > 0 {
			b = append(b, ' ')
		}
		b = append(b, f.Name...)
		b = append(b, '=')
		if s, ok := f.Value.(string); ok {
			b = append(b, '`')
			b = append(b, s...)
			b = append(b, '`')
		} else {
			b = append(b, '`')
			b = connectors.AppendValue(b, f.Value)
			b = append(b, '`')
		}
	}
	return string(b)
}

// SinkError opens the sink uri names, writes rows, flushes and closes it,
// and returns the first error on the way: for tests of what a sink refuses.
func SinkError(uri string, rows []connectors.Row) error {
	s, err := connectors.OpenSink(uri)
	if err != nil {
		return err
	}
	err = s.Write(context.Background(), rows)
	if err == nil {
		err = s.Flush(context.Background())
	}
	s.Close()
	return err
}

package connectortest_test

import (
	"context"
	"strings"
	"testing"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/connectors/connectortest"
)

func TestMemSinkPassesTheSuite(t *testing.T) {
	var s *connectortest.MemSink
	connectortest.TestSink(t,
		func(t *testing.T) connectors.Sink { s = &connectortest.MemSink{}; return s },
		func(t *testing.T) []connectors.Row {
			if !s.Closed() || s.Flushes() < 3 {
				t.Errorf("closed %v after %d flushes", s.Closed(), s.Flushes())
			}
			return s.Rows()
		},
		connectortest.SinkOptions{})
}

func TestMemSinkHoldsBackUnflushed(t *testing.T) {
	s := &connectortest.MemSink{}
	s.Write(context.Background(), connectortest.DefaultRows())
	if len(s.Rows()) != 0 {
		t.Fatal("unflushed rows are visible")
	}
}

func TestSame(t *testing.T) {
	rec := func(v string, seq int64) connectortest.Located {
		return connectortest.Located{Record: connectors.Record{Value: []byte(v), Seq: seq}, Where: "f", Unit: "line"}
	}
	a := []connectortest.Located{rec("x", 1), rec("y", 2)}
	tests := []struct {
		name        string
		got         []connectortest.Located
		errContains string
	}{
		{"equal", []connectortest.Located{rec("x", 1), rec("y", 2)}, ""},
		{"value differs", []connectortest.Located{rec("x", 1), rec("z", 2)}, "record 1 differs"},
		{"seq differs", []connectortest.Located{rec("x", 1), rec("y", 3)}, "record 1 differs"},
		{"re-read", []connectortest.Located{rec("x", 1), rec("y", 2), rec("y", 2)}, "got 3 records, want 2"},
		{"skipped", []connectortest.Located{rec("x", 1)}, "got 1 records, want 2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := connectortest.Same(a, tt.got)
			if tt.errContains == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.errContains) {
				t.Fatalf("got %v, want %q", err, tt.errContains)
			}
		})
	}
}

func TestSameRows(t *testing.T) {
	want := []connectors.Row{{Fields: []connectors.Field{{Name: "n", Value: int64(14199)}, {Name: "s", Value: "a"}}}}
	asText := []connectors.Row{{Fields: []connectors.Field{{Name: "n", Value: "14199"}, {Name: "s", Value: "a"}}}}
	if err := connectortest.SameRows(want, asText); err != nil {
		t.Fatalf("CSV-style text should match: %v", err)
	}
	reordered := []connectors.Row{{Fields: []connectors.Field{{Name: "s", Value: "a"}, {Name: "n", Value: int64(14199)}}}}
	if err := connectortest.SameRows(want, reordered); err == nil {
		t.Fatal("field order is not checked")
	}
}

package discard_test

import (
	"context"
	"testing"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/connectors/discard"
)

func TestDiscardDropsAndCounts(t *testing.T) {
	s, err := connectors.OpenSink("discard")
	if err != nil {
		t.Fatal(err)
	}
	d := s.(*discard.Sink)
	rows := []connectors.Row{{Fields: []connectors.Field{{Name: "a", Value: int64(1)}}}, {}}
	if err := d.Write(context.Background(), rows); err != nil {
		t.Fatal(err)
	}
	if err := d.Flush(context.Background()); err != nil {
		t.Fatal(err)
	}
	if got := d.Rows(); got != 2 {
		t.Errorf("dropped %d rows, want 2", got)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := connectors.OpenSink("discard?x=1"); err == nil {
		t.Error("discard?x=1: want an unknown-parameter error")
	}
}

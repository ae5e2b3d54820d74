package actors

import (
	"context"
	"testing"

	"github.com/eddy-stream/eddy/internal/memio"
	"github.com/eddy-stream/eddy/state"
)

// The map step runs before everything keyed: the event time, the window,
// the key and the aggregates read the mapped fields, and the records
// output carries exactly them.
func TestMapFeedsEveryLaterStep(t *testing.T) {
	src := `return {
  parse = eddy.json { type = "string", ts = "string", who = "string", price = "number" },
  filter = eddy.eq("type", "bid"),
  map = eddy.map { bidder = eddy.upper("who"), t = eddy.time_parse("ts"), eur = eddy.mul("price", 0.5) },
  event_time = "t",
  watermark = { out_of_order = "0s" },
  key = "bidder",
  window = eddy.tumbling("10s"),
  aggregate = { eur = eddy.sum("eur"), n = eddy.count() },
  emit = "final",
}`
	lines := []string{
		`{"type":"bid","ts":"2024-01-01T00:00:01Z","who":"ann","price":10}`,
		`{"type":"ask","ts":"2024-01-01T00:00:02Z","who":"ann","price":99}`,
		`{"type":"bid","ts":"2024-01-01T00:00:03Z","who":"Ann","price":4}`,
		`{"type":"bid","ts":"2024-01-01T00:00:12Z","who":"bob","price":3}`,
	}
	store, err := state.Open("", state.WithInMemory())
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	results, records, dead := &memio.Sink{}, &memio.Sink{}, &memio.Sink{}
	if _, err := Run(context.Background(), Config{
		Pipeline: load(t, src), Source: &memio.Source{Lines: lines}, Store: store,
		Results: results, Records: records, DeadLetters: dead, Shards: 2, MaxErrors: -1,
	}); err != nil {
		t.Fatal(err)
	}
	wantResults := `{"bidder":"ANN","window_start":"2024-01-01T00:00:00.000Z","window_end":"2024-01-01T00:00:10.000Z","eur":7,"n":2}
{"bidder":"BOB","window_start":"2024-01-01T00:00:10.000Z","window_end":"2024-01-01T00:00:20.000Z","eur":1.5,"n":1}
`
	if got := rowsText(results.Rows()); got != wantResults {
		t.Errorf("results:\n%swant\n%s", got, wantResults)
	}
	wantRecords := `{"bidder":"ANN","eur":5,"t":1704067201}
{"bidder":"ANN","eur":2,"t":1704067203}
{"bidder":"BOB","eur":1.5,"t":1704067212}
`
	if got := rowsText(records.Rows()); got != wantRecords {
		t.Errorf("records:\n%swant\n%s", got, wantRecords)
	}
	if n := len(dead.Rows()); n != 0 {
		t.Errorf("%d dead letters: %s", n, rowsText(dead.Rows()))
	}
}

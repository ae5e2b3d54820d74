package pipetest

import (
	"context"
	"strings"
	"testing"

	"github.com/eddy-stream/eddy/scripting"
)

// runInline loads a script and fails the test unless every inline test of
// it passes on the real engine.
func runInline(t *testing.T, name, src string) {
	t.Helper()
	p, err := scripting.LoadSource(name, []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	results, err := Run(context.Background(), p)
	if err != nil {
		t.Fatal(err)
	}
	if len(results) == 0 {
		t.Fatalf("%s has no inline tests", name)
	}
	for _, r := range results {
		if !r.Passed() {
			t.Errorf("%s: %s:\n%s", name, r.Name, strings.Join(r.Failures, "\n"))
		}
	}
}

const auctionBidSources = `
  sources = {
    auction = { parse = eddy.json{ id = "integer", t = "number" }, event_time = "t" },
    bid = { parse = eddy.json{ auction = "integer", price = "integer", t = "number" }, event_time = "t" },
  },
  watermark = { out_of_order = "0s" },`

// An interval join pairs each auction with the bids from its time to 10s
// after; a left join also emits the auctions that got none, once the
// watermark has passed their interval. Expected rows are worked out by
// hand from the inputs.
func TestIntervalJoin(t *testing.T) {
	input := `input = {
        auction = { '{"id":1,"t":0}', '{"id":2,"t":5}', '{"id":3,"t":30}' },
        bid = { '{"auction":1,"price":10,"t":1}', '{"auction":2,"price":20,"t":4}', '{"auction":1,"price":11,"t":10}',
                '{"auction":1,"price":12,"t":11}', '{"auction":3,"price":30,"t":35}' },
      },`
	runInline(t, "interval_inner.lua", `return {`+auctionBidSources+`
  join = eddy.interval_join{ left = "auction", right = "bid", on = { "id", "auction" }, before = "0s", after = "10s",
                             select = { "auction.id", "bid.price", "bid.t as bid_time" } },
  tests = { {
      name = "bids within 10s after their auction",
      `+input+`
      -- auction 1 (0s): bids at 1s and 10s (11s is past); auction 2 (5s):
      -- its bid at 4s is before it; auction 3 (30s): its bid at 35s
      want_records = { { id = 1, price = 10, bid_time = 1 }, { id = 1, price = 11, bid_time = 10 }, { id = 3, price = 30, bid_time = 35 } },
      late = 0,
  } },
}`)
	runInline(t, "interval_left.lua", `return {`+auctionBidSources+`
  join = eddy.interval_join{ left = "auction", right = "bid", on = { "id", "auction" }, before = "0s", after = "10s", kind = "left",
                             select = { "auction.id", "bid.price" } },
  tests = { {
      name = "auctions without a bid in their interval too",
      `+input+`
      want_records = { { id = 1, price = 10 }, { id = 1, price = 11 }, { id = 2 }, { id = 3, price = 30 } },
      late = 0,
  } },
}`)
}

// A window join pairs the records of a key in the same tumbling window;
// without select, a joined row has both sides' fields, those both have
// prefixed with their source's name, then the window.
func TestWindowJoin(t *testing.T) {
	runInline(t, "window_left.lua", `return {`+auctionBidSources+`
  join = eddy.join{ left = "auction", right = "bid", on = { "id", "auction" }, window = eddy.tumbling("10s"), kind = "left" },
  tests = { {
      name = "same window only",
      input = {
        auction = { '{"id":1,"t":2}', '{"id":2,"t":3}', '{"id":9,"t":30}' },
        -- the bid at 5s comes when the watermark is at 12s (the bids'
        -- latest; the auctions' is 30s): its window [0s, 10s) has closed
        bid = { '{"auction":1,"price":10,"t":9}', '{"auction":1,"price":11,"t":10}', '{"auction":2,"price":20,"t":12}',
                '{"auction":1,"price":13,"t":5}' },
      },
      want_records = {
        { id = 1, auction_t = 2, auction = 1, price = 10, bid_t = 9, window_start = "1970-01-01T00:00:00.000Z", window_end = "1970-01-01T00:00:10.000Z" },
        { id = 2, t = 3, window_start = "1970-01-01T00:00:00.000Z", window_end = "1970-01-01T00:00:10.000Z" },
        { id = 9, t = 30, window_start = "1970-01-01T00:00:30.000Z", window_end = "1970-01-01T00:00:40.000Z" },
      },
      late = 1,
  } },
}`)
}

// A record behind the watermark is late for the join: counted and sent to
// the late output, never paired. The watermark is the minimum over the
// sources: the auctions reach 30s first, and the bids' own 20s then holds
// it, so the bid at 1s is late and the one at 25s is not.
func TestJoinLateRecords(t *testing.T) {
	runInline(t, "join_late.lua", `return {`+auctionBidSources+`
  join = eddy.interval_join{ left = "auction", right = "bid", on = { "id", "auction" }, before = "30s", after = "30s",
                             select = { "auction.id", "bid.price" } },
  tests = { {
      name = "late bid",
      input = {
        auction = { '{"id":1,"t":0}', '{"id":1,"t":30}' },
        bid = { '{"auction":1,"price":1,"t":20}', '{"auction":1,"price":2,"t":1}', '{"auction":1,"price":3,"t":25}' },
      },
      want_records = { { id = 1, price = 1 }, { id = 1, price = 1 }, { id = 1, price = 3 }, { id = 1, price = 3 } },
      late = 1,
  } },
}`)
}

// Without a join, several sources make a union: each record carries its
// source's name in _source, which key and aggregates can use.
func TestUnionOfSources(t *testing.T) {
	runInline(t, "union.lua", `return {
  sources = {
    a = { parse = eddy.json{ k = "string" } },
    b = { parse = eddy.csv{ fields = { "k" } }, filter = eddy.ne("k", "skip") },
  },
  key = { "_source", "k" },
  aggregate = { n = eddy.count() },
  order_by = { "_source", "k" },
  tests = { {
      name = "counts per source",
      input = { a = { '{"k":"x"}', '{"k":"x"}', '{"k":"y"}' }, b = { "x", "skip" } },
      want = { { _source = "a", k = "x", n = 2 }, { _source = "a", k = "y", n = 1 }, { _source = "b", k = "x", n = 1 } },
  } },
}`)
}

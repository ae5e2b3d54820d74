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

const personAuctionSources = `
  sources = {
    person = { parse = eddy.json{ id = "integer", name = "string", t = "number" }, event_time = "t" },
    auction = { parse = eddy.json{ id = "integer", seller = "integer", t = "number" }, event_time = "t" },
  },
  watermark = { out_of_order = "0s" },`

// A regular join with retention = "forever" pairs every person with every
// auction of theirs, whichever comes first and however far apart in time,
// each pair once; nothing is ever late for it.
func TestRegularJoinForever(t *testing.T) {
	runInline(t, "regular_forever.lua", `return {`+personAuctionSources+`
  join = eddy.join{ left = "person", right = "auction", on = { "id", "seller" }, retention = "forever",
                    select = { "person.name", "auction.id" } },
  tests = { {
      name = "every pair, once",
      input = {
        -- ann registers after her first auction; bob's auction is 195s after
        -- him; seller 3 never registers; the auction at 1s comes when the
        -- watermark is far past it
        person = { '{"id":1,"name":"ann","t":100}', '{"id":2,"name":"bob","t":5}' },
        auction = { '{"id":10,"seller":1,"t":1}', '{"id":11,"seller":2,"t":200}', '{"id":12,"seller":3,"t":50}',
                    '{"id":13,"seller":1,"t":300}', '{"id":14,"seller":1,"t":2}' },
      },
      want_records = { { name = "ann", id = 10 }, { name = "bob", id = 11 }, { name = "ann", id = 13 }, { name = "ann", id = 14 } },
      late = 0,
  } },
}`)
}

// A regular join with a retention keeps each record that long after its
// time: it pairs records at most the retention apart, and a record whose
// retention (plus allowed_lateness) the watermark has passed is late.
func TestRegularJoinRetention(t *testing.T) {
	// The auctions are read first, then the persons (sources take turns
	// in name order), so the watermark is the persons' latest time.
	input := `input = {
        -- ann (10s): auction 10 is 15s after her, auction 11 31s (too far
        -- apart). bob (100s) moves the watermark to 100s: auction 12 (110s)
        -- pairs; cid (50s) comes then, and 50s + 30s of retention is
        -- behind the watermark: late.
        auction = { '{"id":10,"seller":1,"t":25}', '{"id":11,"seller":1,"t":41}', '{"id":12,"seller":2,"t":110}',
                    '{"id":13,"seller":3,"t":60}' },
        person = { '{"id":1,"name":"ann","t":10}', '{"id":2,"name":"bob","t":100}', '{"id":3,"name":"cid","t":50}' },
      },`
	runInline(t, "regular_retention.lua", `return {`+personAuctionSources+`
  join = eddy.join{ left = "person", right = "auction", on = { "id", "seller" }, retention = "30s",
                    select = { "person.name", "auction.id" } },
  tests = { {
      name = "pairs within the retention",
      `+input+`
      want_records = { { name = "ann", id = 10 }, { name = "bob", id = 12 } },
      late = 1,
  } },
}`)
	runInline(t, "regular_retention_lateness.lua", `return {`+personAuctionSources+`
  join = eddy.join{ left = "person", right = "auction", on = { "id", "seller" }, retention = "30s",
                    select = { "person.name", "auction.id" } },
  allowed_lateness = "30s",
  tests = { {
      -- with 30s of lateness, cid is kept until 110s and auction 13 until
      -- 120s: they pair, 10s apart
      name = "lateness keeps cid",
      `+input+`
      want_records = { { name = "ann", id = 10 }, { name = "bob", id = 12 }, { name = "cid", id = 13 } },
      late = 0,
  } },
}`)
}

// An interval join may end each left record's interval at a time in one
// of its fields (an auction's expires): a bid pairs with the auction it
// falls between the auction's time and its expiry, both included. A full
// join also emits, at their expiry, the auctions without a bid and the
// bids without an auction.
func TestIntervalJoinUntil(t *testing.T) {
	sources := `
  sources = {
    auction = { parse = eddy.json{ id = "integer", t = "number", expires = "string" }, event_time = "t" },
    bid = { parse = eddy.json{ auction = "integer", price = "integer", t = "number" }, event_time = "t" },
  },
  watermark = { out_of_order = "0s" },`
	input := `input = {
        -- auction 1 runs 0s..20s, auction 2 5s..6s, auction 3 7s..8s
        auction = { '{"id":1,"t":0,"expires":"1970-01-01T00:00:20Z"}', '{"id":2,"t":5,"expires":"1970-01-01T00:00:06Z"}',
                    '{"id":3,"t":7,"expires":"1970-01-01T00:00:08Z"}' },
        -- 1: at 1s and 20s (in), 21s (after); 2: at 4s (before), 6s (in);
        -- 9: no such auction
        bid = { '{"auction":1,"price":10,"t":1}', '{"auction":2,"price":20,"t":4}', '{"auction":2,"price":21,"t":6}',
                '{"auction":1,"price":11,"t":20}', '{"auction":1,"price":12,"t":21}', '{"auction":9,"price":90,"t":22}' },
      },`
	runInline(t, "interval_until.lua", `return {`+sources+`
  join = eddy.interval_join{ left = "auction", right = "bid", on = { "id", "auction" }, ends_at = "expires",
                             select = { "auction.id", "bid.price" } },
  tests = { {
      name = "bids while the auction runs",
      `+input+`
      want_records = { { id = 1, price = 10 }, { id = 2, price = 21 }, { id = 1, price = 11 } },
      late = 0,
  } },
}`)
	runInline(t, "interval_until_full.lua", `return {`+sources+`
  join = eddy.interval_join{ left = "auction", right = "bid", on = { "id", "auction" }, ends_at = "expires", kind = "full",
                             select = { "auction.id", "bid.auction", "bid.price" } },
  tests = { {
      name = "and either side alone",
      `+input+`
      want_records = { { id = 1, auction = 1, price = 10 }, { id = 2, auction = 2, price = 21 }, { id = 1, auction = 1, price = 11 },
                       { id = 3 }, { auction = 2, price = 20 }, { auction = 1, price = 12 }, { auction = 9, price = 90 } },
      late = 0,
  } },
}`)
}

// A full join of a window emits, when the window closes, the records of
// either side that found no partner in it; a right join only the right
// side's.
func TestWindowJoinOuter(t *testing.T) {
	input := `input = {
        person = { '{"id":1,"name":"ann","t":1}', '{"id":2,"name":"bob","t":2}' },
        -- ann's auction is in her window; bob's is in the next; seller 3
        -- never registers
        auction = { '{"id":10,"seller":1,"t":3}', '{"id":11,"seller":2,"t":12}', '{"id":12,"seller":3,"t":4}' },
      },`
	for _, c := range []struct{ kind, want string }{
		{"full", `{ { name = "ann", id = 10 }, { name = "bob" }, { id = 11 }, { id = 12 } }`},
		{"right", `{ { name = "ann", id = 10 }, { id = 11 }, { id = 12 } }`},
	} {
		runInline(t, "window_"+c.kind+".lua", `return {`+personAuctionSources+`
  join = eddy.join{ left = "person", right = "auction", on = { "id", "seller" }, window = eddy.tumbling("10s"), kind = "`+c.kind+`",
                    select = { "person.name", "auction.id" } },
  tests = { {
      name = "`+c.kind+` join",
      `+input+`
      want_records = `+c.want+`,
      late = 0,
  } },
}`)
	}
}

// An aggregate over an interval join's rows groups them per left record's
// interval (here an auction's, to its expiry) and emits each once, when
// the watermark passes its end: the highest bid per auction while it ran
// (Nexmark q9's winning price), and after it a stage (q4's average per
// category).
func TestAggregateOverJoin(t *testing.T) {
	sources := `
  sources = {
    auction = { parse = eddy.json{ id = "integer", category = "integer", t = "number", expires = "string" }, event_time = "t" },
    bid = { parse = eddy.json{ auction = "integer", price = "integer", t = "number" }, event_time = "t" },
  },
  watermark = { out_of_order = "0s" },`
	input := `input = {
        -- auction 1 (category 10) runs 0s..20s, 2 (10) 5s..6s, 3 (11) 7s..8s, 4 (11) 9s..30s
        auction = { '{"id":1,"category":10,"t":0,"expires":"1970-01-01T00:00:20Z"}', '{"id":2,"category":10,"t":5,"expires":"1970-01-01T00:00:06Z"}',
                    '{"id":3,"category":11,"t":7,"expires":"1970-01-01T00:00:08Z"}', '{"id":4,"category":11,"t":9,"expires":"1970-01-01T00:00:30Z"}' },
        -- 1: 10 at 1s, 15 at 20s, 99 at 21s (after it); 2: 50 at 4s
        -- (before it), 21 at 6s; 3: none; 4: 7 at 10s
        bid = { '{"auction":1,"price":10,"t":1}', '{"auction":2,"price":50,"t":4}', '{"auction":2,"price":21,"t":6}',
                '{"auction":4,"price":7,"t":10}', '{"auction":1,"price":15,"t":20}', '{"auction":1,"price":99,"t":21}' },
      },`
	runInline(t, "join_max.lua", `return {`+sources+`
  join = eddy.interval_join{ left = "auction", right = "bid", on = { "id", "auction" }, ends_at = "expires",
                             select = { "auction.id", "auction.category", "bid.price" } },
  key = { "id", "category" },
  aggregate = { final = eddy.max("price"), bids = eddy.count() },
  order_by = { "window_end", "id" },
  tests = { {
      name = "the highest bid while the auction ran",
      `+input+`
      want = {
        { id = 2, category = 10, window_start = "1970-01-01T00:00:05.000Z", window_end = "1970-01-01T00:00:06.000Z", final = 21, bids = 1 },
        { id = 1, category = 10, window_start = "1970-01-01T00:00:00.000Z", window_end = "1970-01-01T00:00:20.000Z", final = 15, bids = 2 },
        { id = 4, category = 11, window_start = "1970-01-01T00:00:09.000Z", window_end = "1970-01-01T00:00:30.000Z", final = 7, bids = 1 },
      },
      late = 0,
  } },
}`)
	runInline(t, "join_max_avg.lua", `return {`+sources+`
  join = eddy.interval_join{ left = "auction", right = "bid", on = { "id", "auction" }, ends_at = "expires",
                             select = { "auction.id", "auction.category", "bid.price" } },
  stages = {
    { key = { "id", "category" }, aggregate = { final = eddy.max("price") } },
    { key = "category", aggregate = { avg = eddy.avg("final"), auctions = eddy.count() }, order_by = { "category" }, emit = "final" },
  },
  tests = { {
      name = "the average winning price per category",
      `+input+`
      want = { { category = 10, avg = 18, auctions = 2 }, { category = 11, avg = 7, auctions = 1 } },
  } },
}`)
}

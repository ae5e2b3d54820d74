package pipetest

import (
	"cmp"
	"context"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/scripting"
)

// Aggregates over the rows of a left join and of a regular join, on
// generated auctions and bids a little out of order, equal plain-Go
// references of their SQL: GROUP BY over a LEFT JOIN (an auction without
// a bid is one row with no bid columns: COUNT(*) 1, MAX of none null,
// COUNT(DISTINCT) 0), and over a join that keeps both sides for ever.

type genAuction struct {
	id, category    int64
	ms, expires, at int64 // at: when it arrives (its time plus up to 2s)
}

type genBid struct {
	auction, bidder, price int64
	ms, at                 int64
}

// auctionsAndBids makes n auctions over 5 minutes, each running 1s to 20s,
// and for most of them a few bids from 2s before them to 2s after their
// end (so some fall outside); a few bids are for auctions that don't exist.
func auctionsAndBids(rng *rand.Rand, n int) ([]genAuction, []genBid) {
	var as []genAuction
	var bs []genBid
	for i := range int64(n) {
		ms := rng.Int64N(300_000)
		a := genAuction{id: i + 1, category: i % 5, ms: ms, expires: ms + 1000 + rng.Int64N(19_000), at: ms + rng.Int64N(2000)}
		as = append(as, a)
		for range rng.IntN(6) {
			t := max(0, a.ms-2000+rng.Int64N(a.expires-a.ms+4000))
			bs = append(bs, genBid{auction: a.id, bidder: rng.Int64N(8), price: rng.Int64N(1000), ms: t, at: t + rng.Int64N(2000)})
		}
	}
	for range n / 10 {
		t := rng.Int64N(300_000)
		bs = append(bs, genBid{auction: int64(n) + 1 + rng.Int64N(100), price: 1, ms: t, at: t})
	}
	return as, bs
}

// auctionBidInputs are both streams' lines in the order they arrive: at
// most 2s out of time order, less than the watermark's out_of_order.
func auctionBidInputs(as []genAuction, bs []genBid) map[string][]string {
	as, bs = slices.Clone(as), slices.Clone(bs)
	slices.SortStableFunc(as, func(x, y genAuction) int { return cmp.Compare(x.at, y.at) })
	slices.SortStableFunc(bs, func(x, y genBid) int { return cmp.Compare(x.at, y.at) })
	in := map[string][]string{}
	for _, a := range as {
		in["auction"] = append(in["auction"], fmt.Sprintf(`{"id":%d,"category":%d,"t":%g,"expires":"%s"}`, a.id, a.category, float64(a.ms)/1000, isoMillis(a.expires)))
	}
	for _, b := range bs {
		in["bid"] = append(in["bid"], fmt.Sprintf(`{"auction":%d,"bidder":%d,"price":%d,"t":%g}`, b.auction, b.bidder, b.price, float64(b.ms)/1000))
	}
	return in
}

func isoMillis(ms int64) string { return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z") }

const auctionBidAggSources = `
  sources = {
    auction = { parse = eddy.json{ id = "integer", category = "integer", t = "number", expires = "string" }, event_time = "t" },
    bid = { parse = eddy.json{ auction = "integer", bidder = "integer", price = "integer", t = "number" }, event_time = "t" },
  },
  watermark = { out_of_order = "3s" },`

// bidStats is the reference's aggregate of an auction's bids: COUNT(*),
// MAX(price) (null for none) and COUNT(DISTINCT bidder) of its joined
// rows; a left join's auction without a bid is one row of nulls.
func bidStats(row map[string]any, bids []genBid, left bool) map[string]any {
	row["rows"] = int64(len(bids))
	if len(bids) == 0 && left {
		row["rows"] = int64(1)
	}
	row["top"] = nil
	seen := map[int64]bool{}
	for i, b := range bids {
		if i == 0 || b.price > row["top"].(int64) {
			row["top"] = b.price
		}
		seen[b.bidder] = true
	}
	row["bidders"] = int64(len(seen))
	return row
}

// runAgainst runs src on in and fails unless its results are want.
func runAgainst(t *testing.T, name, src string, in map[string][]string, want []map[string]any) {
	t.Helper()
	p, err := scripting.LoadSource(name, []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	res, err := runOne(context.Background(), p, scripting.Test{Name: name, Inputs: in, Want: want, Late: 0, DeadLetters: 0})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Passed() {
		t.Fatal(strings.Join(res.Failures, "\n"))
	}
	t.Logf("%d result rows equal to the reference's", len(want))
}

// SELECT a.id, a.category, COUNT(*), MAX(b.price), COUNT(DISTINCT
// b.bidder) FROM auction a LEFT JOIN bid b ON b.auction = a.id AND b.t
// BETWEEN a.t AND a.expires GROUP BY a.id, a.category: per auction, in
// its interval's window, emitted when the watermark passes its expiry.
func TestAggregateOverLeftJoinEqualsReference(t *testing.T) {
	as, bs := auctionsAndBids(rand.New(rand.NewPCG(15, 3)), 400)
	var want []map[string]any
	lone := 0
	for _, a := range as {
		var in []genBid
		for _, b := range bs {
			if b.auction == a.id && b.ms >= a.ms && b.ms <= a.expires {
				in = append(in, b)
			}
		}
		if len(in) == 0 {
			lone++
		}
		want = append(want, bidStats(map[string]any{"id": a.id, "category": a.category,
			"window_start": isoMillis(a.ms), "window_end": isoMillis(a.expires), "end": a.expires}, in, true))
	}
	if lone < 20 || lone > len(as)-20 {
		t.Fatalf("%d of %d auctions have no bid: too few or too many to test a left join", lone, len(as))
	}
	// As order_by gives them: windows fire in end order.
	slices.SortFunc(want, func(x, y map[string]any) int {
		return cmp.Or(cmp.Compare(x["end"].(int64), y["end"].(int64)), cmp.Compare(x["id"].(int64), y["id"].(int64)))
	})
	for _, w := range want {
		delete(w, "end")
	}
	runAgainst(t, "left_join_agg.lua", `return {`+auctionBidAggSources+`
  join = eddy.interval_join{ left = "auction", right = "bid", on = { "id", "auction" }, ends_at = "expires", kind = "left",
                             select = { "auction.id", "auction.category", "bid.price", "bid.bidder" } },
  key = { "id", "category" },
  aggregate = { rows = eddy.count(), top = eddy.max("price"), bidders = eddy.count_distinct("bidder") },
  order_by = { "window_end", "id" },
}`, auctionBidInputs(as, bs), want)
}

// SELECT a.id, a.category, COUNT(*), MAX(b.price), COUNT(DISTINCT
// b.bidder) FROM auction a JOIN bid b ON b.auction = a.id GROUP BY a.id,
// a.category: a regular join keeping both sides for ever (any bid of the
// auction, whenever), its aggregate updated with every pair.
func TestAggregateOverRegularJoinEqualsReference(t *testing.T) {
	as, bs := auctionsAndBids(rand.New(rand.NewPCG(16, 4)), 400)
	var want []map[string]any
	for _, a := range as {
		var in []genBid
		for _, b := range bs {
			if b.auction == a.id {
				in = append(in, b)
			}
		}
		if len(in) > 0 {
			want = append(want, bidStats(map[string]any{"id": a.id, "category": a.category}, in, false))
		}
	}
	slices.SortFunc(want, func(x, y map[string]any) int { return cmp.Compare(x["id"].(int64), y["id"].(int64)) })
	runAgainst(t, "regular_join_agg.lua", `return {`+auctionBidAggSources+`
  join = eddy.join{ left = "auction", right = "bid", on = { "id", "auction" }, retention = "forever",
                    select = { "auction.id", "auction.category", "bid.price", "bid.bidder" } },
  key = { "id", "category" },
  aggregate = { rows = eddy.count(), top = eddy.max("price"), bidders = eddy.count_distinct("bidder") },
  order_by = { "id" },
}`, auctionBidInputs(as, bs), want)
}

// The same over a left regular join keeping each record 10s: a bid pairs
// with its auction when at most 10s apart, and an auction with no such
// bid counts once, when its retention passes.
func TestAggregateOverLeftRegularJoinEqualsReference(t *testing.T) {
	as, bs := auctionsAndBids(rand.New(rand.NewPCG(17, 5)), 400)
	var want []map[string]any
	lone := 0
	for _, a := range as {
		var in []genBid
		for _, b := range bs {
			if b.auction == a.id && max(b.ms-a.ms, a.ms-b.ms) <= 10_000 {
				in = append(in, b)
			}
		}
		if len(in) == 0 {
			lone++
		}
		want = append(want, bidStats(map[string]any{"id": a.id, "category": a.category}, in, true))
	}
	if lone < 20 || lone > len(as)-20 {
		t.Fatalf("%d of %d auctions have no bid: too few or too many to test a left join", lone, len(as))
	}
	slices.SortFunc(want, func(x, y map[string]any) int { return cmp.Compare(x["id"].(int64), y["id"].(int64)) })
	runAgainst(t, "left_regular_join_agg.lua", `return {`+auctionBidAggSources+`
  join = eddy.join{ left = "auction", right = "bid", on = { "id", "auction" }, retention = "10s", kind = "left",
                    select = { "auction.id", "auction.category", "bid.price", "bid.bidder" } },
  key = { "id", "category" },
  aggregate = { rows = eddy.count(), top = eddy.max("price"), bidders = eddy.count_distinct("bidder") },
  order_by = { "id" },
}`, auctionBidInputs(as, bs), want)
}

package nexmark

import (
	"cmp"
	"slices"
)

// Window sizes of the queries, in milliseconds.
const (
	Q5Size  = 10_000 // HOP(…, INTERVAL '2' SECOND, INTERVAL '10' SECOND)
	Q5Slide = 2_000
	Q7Size  = 10_000 // TUMBLE(…, INTERVAL '10' SECOND)
	Q8Size  = 10_000
	Q11Gap  = 10_000 // SESSION(B.dateTime, INTERVAL '10' SECOND)
)

// tumble is the start of the tumbling window of size that holds t.
func tumble(t Millis, size int64) Millis {
	return t - Millis(((int64(t)%size)+size)%size)
}

// Q5Row is a row of q5, with the window the SQL groups by (and leaves out
// of its output).
type Q5Row struct {
	WindowStart, WindowEnd Millis
	Auction, Num           int64
}

// Q5 is hot items: per 10-second window every 2 seconds, the auctions
// with the most bids (all of them on a tie: AuctionBids.num >= maxn), by
// window, then auction.
func Q5(bids []Bid) []Q5Row {
	type key struct {
		start   Millis
		auction int64
	}
	counts := map[key]int64{}
	for _, b := range bids {
		last := tumble(b.DateTime, Q5Slide)
		for s := last; s > b.DateTime-Q5Size; s -= Q5Slide {
			counts[key{s, b.Auction}]++
		}
	}
	most := map[Millis]int64{}
	for k, n := range counts {
		most[k.start] = max(most[k.start], n)
	}
	var out []Q5Row
	for k, n := range counts {
		if n >= most[k.start] {
			out = append(out, Q5Row{k.start, k.start + Q5Size, k.auction, n})
		}
	}
	slices.SortFunc(out, func(x, y Q5Row) int {
		return cmp.Or(cmp.Compare(x.WindowStart, y.WindowStart), cmp.Compare(x.Auction, y.Auction))
	})
	return out
}

// Q7Row is a row of q7: a bid with its window's highest price, and that
// window's end.
//
// The SQL selects B.auction, B.price, B.bidder into columns named
// auction, bidder, price; this row names each value for what it is.
type Q7Row struct {
	WindowEnd              Millis
	Auction, Bidder, Price int64
	DateTime               Millis
	Extra                  string
}

// Q7 is the highest bid: per 10-second tumbling window, the bids whose
// price is the window's highest, joined as the SQL joins them: on
// B.price = maxprice and B.dateTime BETWEEN window_end - 10s AND
// window_end, both ends included, so a bid at exactly window_end (of the
// next window) with the same price joins too. By window, then the bids'
// order.
func Q7(bids []Bid) []Q7Row {
	maxPrice := map[Millis]int64{} // by window end
	for _, b := range bids {
		end := tumble(b.DateTime, Q7Size) + Q7Size
		if p, ok := maxPrice[end]; !ok || b.Price > p {
			maxPrice[end] = b.Price
		}
	}
	var out []Q7Row
	for _, b := range bids {
		start := tumble(b.DateTime, Q7Size)
		ends := []Millis{start + Q7Size}
		if start == b.DateTime { // also the end of the window before
			ends = []Millis{start, start + Q7Size}
		}
		for _, e := range ends {
			if p, ok := maxPrice[e]; ok && p == b.Price {
				out = append(out, Q7Row{e, b.Auction, b.Bidder, b.Price, b.DateTime, b.Extra})
			}
		}
	}
	slices.SortStableFunc(out, func(x, y Q7Row) int { return cmp.Compare(x.WindowEnd, y.WindowEnd) })
	return out
}

// Q8Row is a row of q8.
type Q8Row struct {
	ID        int64
	Name      string
	StartTime Millis
}

// Q8 is new users: persons who opened an auction in the same 10-second
// tumbling window as they appeared (GROUP BY id, name, window joined with
// GROUP BY seller, window), each once per window, by window, then id.
func Q8(persons []Person, auctions []Auction) []Q8Row {
	type key struct {
		id    int64
		start Millis
	}
	sellers := map[key]bool{}
	for _, a := range auctions {
		sellers[key{a.Seller, tumble(a.DateTime, Q8Size)}] = true
	}
	seen := map[Q8Row]bool{}
	var out []Q8Row
	for _, p := range persons {
		r := Q8Row{p.ID, p.Name, tumble(p.DateTime, Q8Size)}
		if sellers[key{p.ID, r.StartTime}] && !seen[r] {
			seen[r] = true
			out = append(out, r)
		}
	}
	slices.SortFunc(out, func(x, y Q8Row) int {
		return cmp.Or(cmp.Compare(x.StartTime, y.StartTime), cmp.Compare(x.ID, y.ID), cmp.Compare(x.Name, y.Name))
	})
	return out
}

// Q11Row is a row of q11.
type Q11Row struct {
	Bidder, BidCount   int64
	StartTime, EndTime Millis
}

// Q11 is user sessions: per bidder, sessions of bids less than or exactly
// 10 seconds apart (Flink merges session windows [t, t+gap) that touch),
// each from its first bid to its last bid plus 10 seconds, with its number
// of bids; by start, then bidder.
func Q11(bids []Bid) []Q11Row {
	times := map[int64][]Millis{}
	for _, b := range bids {
		times[b.Bidder] = append(times[b.Bidder], b.DateTime)
	}
	var out []Q11Row
	for bidder, ts := range times {
		slices.Sort(ts)
		cur := Q11Row{bidder, 1, ts[0], ts[0] + Q11Gap}
		for _, t := range ts[1:] {
			if t > cur.EndTime {
				out = append(out, cur)
				cur = Q11Row{bidder, 0, t, t}
			}
			cur.BidCount++
			cur.EndTime = t + Q11Gap
		}
		out = append(out, cur)
	}
	slices.SortFunc(out, func(x, y Q11Row) int {
		return cmp.Or(cmp.Compare(x.StartTime, y.StartTime), cmp.Compare(x.Bidder, y.Bidder))
	})
	return out
}

package nexmark

import (
	"cmp"
	"slices"
)

// Q0Row is a row of q0 and q1: a bid passed through. In q1, Price is in
// thousandths of a euro (below).
type Q0Row struct {
	Auction, Bidder, Price int64
	DateTime               Millis
	Extra                  string
}

// Q0 is the pass-through: SELECT auction, bidder, price, dateTime, extra
// FROM bid, in the bids' order.
func Q0(bids []Bid) []Q0Row {
	out := make([]Q0Row, len(bids))
	for i, b := range bids {
		out[i] = Q0Row{b.Auction, b.Bidder, b.Price, b.DateTime, b.Extra}
	}
	return out
}

// Q1 converts prices to euros: 0.908 * price, a DECIMAL(23, 3), exact in
// Price as thousandths of a euro (price * 908).
func Q1(bids []Bid) []Q0Row {
	out := Q0(bids)
	for i := range out {
		out[i].Price *= 908
	}
	return out
}

// Q2Row is a row of q2.
type Q2Row struct{ Auction, Price int64 }

// Q2 is the selection: SELECT auction, price FROM bid WHERE
// MOD(auction, 123) = 0, in the bids' order.
func Q2(bids []Bid) []Q2Row {
	var out []Q2Row
	for _, b := range bids {
		if b.Auction%123 == 0 {
			out = append(out, Q2Row{b.Auction, b.Price})
		}
	}
	return out
}

// Q3Row is a row of q3.
type Q3Row struct {
	Name, City, State string
	ID                int64 // the auction's
}

// Q3 is local item suggestion: persons in OR, ID or CA joined with the
// auctions of category 10 they sell (an unwindowed inner join on
// A.seller = P.id), by auction id.
func Q3(persons []Person, auctions []Auction) []Q3Row {
	byID := map[int64][]Person{}
	for _, p := range persons {
		if p.State == "OR" || p.State == "ID" || p.State == "CA" {
			byID[p.ID] = append(byID[p.ID], p)
		}
	}
	var out []Q3Row
	for _, a := range auctions {
		if a.Category != 10 {
			continue
		}
		for _, p := range byID[a.Seller] {
			out = append(out, Q3Row{p.Name, p.City, p.State, a.ID})
		}
	}
	slices.SortStableFunc(out, func(x, y Q3Row) int { return cmp.Compare(x.ID, y.ID) })
	return out
}

// winning is, per auction, its bids made while it ran (B.dateTime BETWEEN
// A.dateTime AND A.expires, both ends included) joined on A.id = B.auction.
func winning(auctions []Auction, bids []Bid) map[int64][]Bid {
	byAuction := map[int64][]Bid{}
	for _, b := range bids {
		byAuction[b.Auction] = append(byAuction[b.Auction], b)
	}
	out := map[int64][]Bid{}
	for _, a := range auctions {
		for _, b := range byAuction[a.ID] {
			if b.DateTime >= a.DateTime && b.DateTime <= a.Expires {
				out[a.ID] = append(out[a.ID], b)
			}
		}
	}
	return out
}

// Q4Row is a row of q4.
type Q4Row struct {
	Category int64
	// Final is AVG(final) as Flink computes it over BIGINT: the sum
	// divided by the count, truncated. Avg is the exact mean.
	Final int64
	Avg   float64
}

// Q4 is the average selling price per category: per auction the highest
// price of its bids while it ran (auctions with none drop out of the
// inner join), averaged per category, by category.
func Q4(auctions []Auction, bids []Bid) []Q4Row {
	won := winning(auctions, bids)
	sum, n := map[int64]int64{}, map[int64]int64{}
	for _, a := range auctions {
		bs := won[a.ID]
		if len(bs) == 0 {
			continue
		}
		best := bs[0].Price
		for _, b := range bs[1:] {
			best = max(best, b.Price)
		}
		sum[a.Category] += best
		n[a.Category]++
	}
	var out []Q4Row
	for c, s := range sum {
		out = append(out, Q4Row{Category: c, Final: s / n[c], Avg: float64(s) / float64(n[c])})
	}
	slices.SortFunc(out, func(x, y Q4Row) int { return cmp.Compare(x.Category, y.Category) })
	return out
}

// Q9Row is a row of q9: an auction and its winning bid.
type Q9Row struct {
	Auction
	Bid Bid
}

// Q9 is the winning bids: per auction, of its bids while it ran, the one
// with the highest price, the earliest of those on a tie (ROW_NUMBER() OVER
// (PARTITION BY A.id ORDER BY B.price DESC, B.dateTime ASC) <= 1); a tie on
// both, which the SQL leaves open, goes to the first in the bids' order.
// By auction id.
func Q9(auctions []Auction, bids []Bid) []Q9Row {
	won := winning(auctions, bids)
	var out []Q9Row
	for _, a := range auctions {
		bs := won[a.ID]
		if len(bs) == 0 {
			continue
		}
		best := bs[0]
		for _, b := range bs[1:] {
			if b.Price > best.Price || b.Price == best.Price && b.DateTime < best.DateTime {
				best = b
			}
		}
		out = append(out, Q9Row{a, best})
	}
	slices.SortStableFunc(out, func(x, y Q9Row) int { return cmp.Compare(x.ID, y.ID) })
	return out
}

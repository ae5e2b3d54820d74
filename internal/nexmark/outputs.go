package nexmark

import "fmt"

// What the join scripts of scripts/nexmark print, decoded and turned into
// their references' rows: shared by the scripts' tests and eddy's kill -9
// tests.

// Q4Out is a row of q4.lua: a category and its exact mean winning price.
type Q4Out struct {
	Category int64   `json:"category"`
	Avg      float64 `json:"avg"`
}

// Row is the reference's row of r (Final, Flink's truncated mean, is the
// exact mean truncated).
func (r Q4Out) Row() Q4Row { return Q4Row{Category: r.Category, Final: int64(r.Avg), Avg: r.Avg} }

// Q9Out is a row of q9.lua: an auction's columns, its interval (its
// dateTime and expires again) and its winning bid.
type Q9Out struct {
	Auction
	WindowStart Millis `json:"window_start"`
	WindowEnd   Millis `json:"window_end"`
	Winner      struct {
		Auction     int64  `json:"auction"`
		Bidder      int64  `json:"bidder"`
		Price       int64  `json:"price"`
		BidDateTime Millis `json:"bid_dateTime"`
		BidExtra    string `json:"bid_extra"`
	} `json:"winner"`
}

// Row is the reference's row of r, or an error when r's window is not its
// auction's time and expiry.
func (r Q9Out) Row() (Q9Row, error) {
	if r.WindowStart != r.DateTime || r.WindowEnd != r.Expires {
		return Q9Row{}, fmt.Errorf("auction %d: window [%v, %v], want its dateTime and expires [%v, %v]", r.ID, r.WindowStart, r.WindowEnd, r.DateTime, r.Expires)
	}
	w := r.Winner
	return Q9Row{Auction: r.Auction, Bid: Bid{Auction: w.Auction, Bidder: w.Bidder, Price: w.Price, DateTime: w.BidDateTime, Extra: w.BidExtra}}, nil
}

// Q9Selected is Q9 with the bids' columns q9.lua leaves out (channel,
// url) blank.
func Q9Selected(auctions []Auction, bids []Bid) []Q9Row {
	rows := Q9(auctions, bids)
	for i := range rows {
		rows[i].Bid.Channel, rows[i].Bid.URL = "", ""
	}
	return rows
}

package nexmark

import (
	"reflect"
	"strings"
	"testing"
)

// s is a time s seconds after the epoch.
func s(sec float64) Millis { return Millis(sec * 1000) }

func bid(auction, price int64, at Millis) Bid {
	return Bid{Auction: auction, Bidder: 1, Price: price, DateTime: at, Extra: "x"}
}

func check[T any](t *testing.T, name string, got, want []T) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %+v\nwant %+v", name, got, want)
	}
}

func TestRead(t *testing.T) {
	bids, err := Read[Bid](strings.NewReader(
		`{"auction":1000,"bidder":1001,"price":9490,"channel":"Google","url":"u","dateTime":"2024-01-01T00:00:00.005Z","extra":"e"}` + "\n"))
	if err != nil {
		t.Fatal(err)
	}
	check(t, "bids", bids, []Bid{{1000, 1001, 9490, "Google", "u", 1704067200005, "e"}})
	if _, err := Read[Bid](strings.NewReader("{\"auction\":1}\n{\"auction\":1,\"id\":2}\n")); err == nil || !strings.Contains(err.Error(), `line 2: json: unknown field "id"`) {
		t.Errorf("an unknown field: %v", err)
	}
	if _, err := Read[Person](strings.NewReader(`{"dateTime":"noon"}`)); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("a bad time: %v", err)
	}
}

func TestQ0Q1Q2(t *testing.T) {
	bids := []Bid{bid(123, 1000, s(1)), bid(124, 7, s(2)), bid(246, 3, s(3))}
	check(t, "q0", Q0(bids), []Q0Row{{123, 1, 1000, s(1), "x"}, {124, 1, 7, s(2), "x"}, {246, 1, 3, s(3), "x"}})
	// 0.908 * 1000 = 908.000 euros, 0.908 * 7 = 6.356
	check(t, "q1", Q1(bids), []Q0Row{{123, 1, 908000, s(1), "x"}, {124, 1, 6356, s(2), "x"}, {246, 1, 2724, s(3), "x"}})
	check(t, "q2", Q2(bids), []Q2Row{{123, 1000}, {246, 3}})
}

func TestQ3(t *testing.T) {
	persons := []Person{{ID: 1, Name: "A", City: "Bend", State: "OR"}, {ID: 2, Name: "B", City: "Kent", State: "WA"}, {ID: 3, Name: "C", City: "Boise", State: "CA"}}
	auctions := []Auction{
		{ID: 13, Seller: 3, Category: 10},
		{ID: 10, Seller: 1, Category: 10},
		{ID: 11, Seller: 2, Category: 10}, // WA
		{ID: 12, Seller: 3, Category: 11}, // category
		{ID: 14, Seller: 9, Category: 10}, // no such person
	}
	check(t, "q3", Q3(persons, auctions), []Q3Row{{"A", "Bend", "OR", 10}, {"C", "Boise", "CA", 13}})
}

// auctionsQ4 ran: a1 and a2 (category 10) from 0 to 10s, a3 (category
// 11) from 5 to 6s, a4 (category 12) without bids.
var auctionsQ4 = []Auction{
	{ID: 1, Category: 10, DateTime: s(0), Expires: s(10)},
	{ID: 2, Category: 10, DateTime: s(0), Expires: s(10)},
	{ID: 3, Category: 11, DateTime: s(5), Expires: s(6)},
	{ID: 4, Category: 12, DateTime: s(0), Expires: s(100)},
}

var bidsQ4 = []Bid{
	bid(1, 100, s(1)), bid(1, 300, s(10)), bid(1, 999, s(11)), // after it expired
	bid(2, 201, s(0)), bid(2, 251, s(10)), // at its start and its end
	bid(3, 50, s(4)), // before it started
	bid(3, 70, s(5)),
	bid(1, 300, s(2)), // ties a1's best, earlier
}

func TestQ4(t *testing.T) {
	// category 10: (300 + 251) / 2 = 275.5, as BIGINT 275; category 11: 70
	check(t, "q4", Q4(auctionsQ4, bidsQ4), []Q4Row{{10, 275, 275.5}, {11, 70, 70}})
}

func TestQ9(t *testing.T) {
	got := Q9(auctionsQ4, bidsQ4)
	want := []Q9Row{{auctionsQ4[0], bid(1, 300, s(2))}, {auctionsQ4[1], bid(2, 251, s(10))}, {auctionsQ4[2], bid(3, 70, s(5))}}
	check(t, "q9", got, want)
}

func TestQ5(t *testing.T) {
	bids := []Bid{bid(1, 0, s(1)), bid(1, 0, s(3)), bid(2, 0, s(3.5)), bid(2, 0, s(9)), bid(2, 0, s(11))}
	w := func(start float64, auction, n int64) Q5Row { return Q5Row{s(start), s(start + 10), auction, n} }
	check(t, "q5", Q5(bids), []Q5Row{
		w(-8, 1, 1), w(-6, 1, 2), w(-4, 1, 2), w(-2, 1, 2),
		w(0, 1, 2), w(0, 2, 2), // a tie: both
		w(2, 2, 3), w(4, 2, 2), w(6, 2, 2), w(8, 2, 2), w(10, 2, 1),
	})
}

func TestQ7(t *testing.T) {
	bids := []Bid{
		bid(1, 5, s(1)), bid(2, 9, s(2)), bid(3, 9, s(7)), // [0, 10): max 9, twice
		bid(4, 4, s(10)), bid(5, 2, s(15)), // [10, 20): max 4
		bid(6, 4, s(20)), bid(7, 1, s(25)), // [20, 30): max 4; 4 at 20s also ends [10, 20)
	}
	r := func(end float64, b Bid) Q7Row {
		return Q7Row{s(end), b.Auction, b.Bidder, b.Price, b.DateTime, b.Extra}
	}
	check(t, "q7", Q7(bids), []Q7Row{r(10, bids[1]), r(10, bids[2]), r(20, bids[3]), r(20, bids[5]), r(30, bids[5])})
}

func TestQ8(t *testing.T) {
	persons := []Person{{ID: 3, Name: "C", DateTime: s(12)}, {ID: 1, Name: "A", DateTime: s(1)}, {ID: 2, Name: "B", DateTime: s(9)}, {ID: 1, Name: "A", DateTime: s(2)}}
	auctions := []Auction{
		{Seller: 1, DateTime: s(5)}, {Seller: 1, DateTime: s(6)}, // one row for both
		{Seller: 2, DateTime: s(11)}, // the next window
		{Seller: 3, DateTime: s(19.999)},
		{Seller: 4, DateTime: s(1)}, // no such person
	}
	check(t, "q8", Q8(persons, auctions), []Q8Row{{1, "A", s(0)}, {3, "C", s(10)}})
}

func TestQ11(t *testing.T) {
	b := func(bidder int64, at Millis) Bid { return Bid{Bidder: bidder, DateTime: at} }
	// 15s is exactly 10s after 5s: the sessions touch and merge.
	bids := []Bid{b(7, s(0)), b(8, s(3)), b(7, s(5)), b(7, s(15)), b(7, s(26))}
	check(t, "q11", Q11(bids), []Q11Row{{7, 3, s(0), s(25)}, {8, 1, s(3), s(13)}, {7, 1, s(26), s(36)}})
}

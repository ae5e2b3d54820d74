package gen_test

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/connectors/gen"
)

type nexPerson struct {
	ID                                                    int64
	Name, EmailAddress, CreditCard, City, State, DateTime string
	Extra                                                 string
}

type nexAuction struct {
	ID                    int64
	ItemName, Description string
	InitialBid, Reserve   int64
	DateTime, Expires     string
	Seller, Category      int64
	Extra                 string
}

type nexBid struct {
	Auction, Bidder, Price        int64
	Channel, URL, DateTime, Extra string
}

// nexLines returns the records of one stream of the first events events,
// each decoded strictly into T.
func nexLines[T any](t *testing.T, stream string, seed, events int64) []T {
	t.Helper()
	parts, err := gen.NexmarkParts("nexmark?stream="+stream, events)
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	if err := gen.Write(&b, parts[0].Name, seed, 0, parts[0].Count, 0); err != nil {
		t.Fatal(err)
	}
	var out []T
	for i, l := range strings.Split(strings.TrimSuffix(b.String(), "\n"), "\n") {
		d := json.NewDecoder(strings.NewReader(l))
		d.DisallowUnknownFields()
		var v T
		if err := d.Decode(&v); err != nil {
			t.Fatalf("%s line %d: %v: %s", stream, i, err, l)
		}
		out = append(out, v)
	}
	return out
}

func TestNexmarkStreamCount(t *testing.T) {
	for _, tt := range []struct {
		events               int64
		person, auction, bid int64
	}{
		{0, 0, 0, 0}, {1, 1, 0, 0}, {2, 1, 1, 0}, {4, 1, 3, 0}, {5, 1, 3, 1},
		{50, 1, 3, 46}, {51, 2, 3, 46}, {1000000, 20000, 60000, 920000},
	} {
		for s, want := range map[string]int64{"person": tt.person, "auction": tt.auction, "bid": tt.bid} {
			if got, _ := gen.NexmarkStreamCount(s, tt.events); got != want {
				t.Errorf("%d events: %d %ss, want %d", tt.events, got, s, want)
			}
		}
	}
	if _, err := gen.NexmarkStreamCount("bids", 10); err == nil || !strings.Contains(err.Error(), `stream="bids"`) {
		t.Errorf("unknown stream: %v", err)
	}
}

// TestNexmarkIDsAndTimes: persons and auctions are numbered from 1000 in
// order, and event n is at start + n/event-rate, in every stream.
func TestNexmarkIDsAndTimes(t *testing.T) {
	const events = 30000
	start := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(n int64) string { // 10000 events/s: 0.1 ms each
		return start.Add(time.Duration(n/10) * time.Millisecond).Format("2006-01-02T15:04:05.000Z")
	}
	persons := nexLines[nexPerson](t, "person", 1, events)
	auctions := nexLines[nexAuction](t, "auction", 1, events)
	bids := nexLines[nexBid](t, "bid", 1, events)
	if len(persons) != 600 || len(auctions) != 1800 || len(bids) != 27600 {
		t.Fatalf("got %d persons, %d auctions, %d bids, want 600, 1800, 27600", len(persons), len(auctions), len(bids))
	}
	for j, p := range persons {
		if p.ID != 1000+int64(j) || p.DateTime != at(int64(j)*50) {
			t.Fatalf("person %d: id %d at %s, want %d at %s", j, p.ID, p.DateTime, 1000+j, at(int64(j)*50))
		}
	}
	for j, a := range auctions {
		n := int64(j/3)*50 + 1 + int64(j%3)
		if a.ID != 1000+int64(j) || a.DateTime != at(n) {
			t.Fatalf("auction %d: id %d at %s, want %d at %s", j, a.ID, a.DateTime, 1000+j, at(n))
		}
	}
	for j, b := range bids {
		n := int64(j/46)*50 + 4 + int64(j%46)
		if b.DateTime != at(n) {
			t.Fatalf("bid %d at %s, want %s", j, b.DateTime, at(n))
		}
	}
}

// TestNexmarkFields: every field is in the range the published generator
// gives it, and the references between streams point where it points them.
func TestNexmarkFields(t *testing.T) {
	events := int64(200000)
	if testing.Short() {
		events = 50000
	}
	persons := nexLines[nexPerson](t, "person", 7, events)
	auctions := nexLines[nexAuction](t, "auction", 7, events)
	bids := nexLines[nexBid](t, "bid", 7, events)
	states := map[string]bool{"AZ": true, "CA": true, "ID": true, "OR": true, "WA": true, "WY": true}
	for _, p := range persons {
		if !states[p.State] || p.City == "" || !strings.Contains(p.Name, " ") ||
			!strings.HasSuffix(p.EmailAddress, ".com") || len(p.CreditCard) != 19 || len(p.Extra) < 100 {
			t.Fatalf("bad person %+v", p)
		}
	}
	hotSellers, categories := 0, map[int64]int{}
	for j, a := range auctions {
		lastPerson := int64(j / 3) // persons come first in each block of 50 events
		if a.Seller == lastPerson/100*100+1000 {
			hotSellers++
		}
		if a.Seller < 1000 || a.Seller > lastPerson+1000+10 {
			t.Fatalf("auction %d: seller %d is not a person up to %d", j, a.Seller, lastPerson+1010)
		}
		categories[a.Category]++
		if a.Reserve < a.InitialBid || a.InitialBid < 100 || a.InitialBid > 100000000 || !(a.Expires > a.DateTime) ||
			len(a.ItemName) > 19 || len(a.Description) > 99 {
			t.Fatalf("bad auction %+v", a)
		}
	}
	hotAuctions, hotBidders, hotChannels := 0, 0, 0
	for j, b := range bids {
		lastAuction := int64(j/46)*3 + 2
		lastPerson := int64(j / 46)
		if b.Auction == lastAuction/100*100+1000 {
			hotAuctions++
		}
		if b.Auction < 1000 || b.Auction > lastAuction+1000+10 || b.Auction < lastAuction+1000-100 && b.Auction != lastAuction/100*100+1000 {
			t.Fatalf("bid %d: auction %d is not in flight at auction %d", j, b.Auction, lastAuction+1000)
		}
		if b.Bidder == lastPerson/100*100+1001 {
			hotBidders++
		}
		if b.Price < 100 || b.Price > 100000000 || !strings.HasPrefix(b.URL, "https://www.nexmark.com/") || b.Channel == "" {
			t.Fatalf("bad bid %+v", b)
		}
		switch b.Channel {
		case "Google", "Facebook", "Baidu", "Apple":
			hotChannels++
		}
	}
	// P(hot) is 3/4 for sellers and bidders, 1/2 for auctions, 1/2 for
	// channels, plus the rare cold draw that hits the hot one.
	near := func(what string, got, of int, want float64) {
		if f := float64(got) / float64(of); f < want-0.02 || f > want+0.02 {
			t.Errorf("%s: %.3f, want about %.2f", what, f, want)
		}
	}
	near("hot sellers", hotSellers, len(auctions), 0.75)
	near("hot auctions", hotAuctions, len(bids), 0.5)
	near("hot bidders", hotBidders, len(bids), 0.75)
	near("hot channels", hotChannels, len(bids), 0.5)
	for c := int64(10); c < 15; c++ {
		near("category", categories[c], len(auctions), 0.2)
	}
	if len(categories) != 5 {
		t.Errorf("categories %v, want 10-14", categories)
	}
}

// TestNexmarkDeterministic: the same seed gives the same events, another
// seed others; the parameters change times but not ids.
func TestNexmarkDeterministic(t *testing.T) {
	write := func(name string, seed int64) string {
		var b bytes.Buffer
		if err := gen.Write(&b, name, seed, 0, 3000, 0); err != nil {
			t.Fatal(err)
		}
		return b.String()
	}
	for _, s := range gen.NexmarkStreams {
		name := "nexmark?stream=" + s
		a, b, c := write(name, 5), write(name, 5), write(name, 6)
		if a != b {
			t.Errorf("%s: seed 5 gave different lines twice", s)
		}
		if a == c {
			t.Errorf("%s: seeds 5 and 6 gave the same lines", s)
		}
	}
	slow := write("nexmark?stream=person&event-rate=10&start=2025-06-01T00:00:00Z", 5)
	first := strings.SplitN(slow, "\n", 3)
	if !strings.Contains(first[0], `"id":1000,`) || !strings.Contains(first[0], `"dateTime":"2025-06-01T00:00:00.000Z"`) ||
		!strings.Contains(first[1], `"id":1001,`) || !strings.Contains(first[1], `"dateTime":"2025-06-01T00:00:05.000Z"`) {
		t.Errorf("event-rate=10 and start: %s", strings.Join(first[:2], "\n"))
	}
}

func TestNexmarkParamErrors(t *testing.T) {
	for _, tt := range []struct{ name, errContains string }{
		{"nexmark?stream=bids", `stream="bids"`},
		{"nexmark?event-rate=0", "event-rate=0"},
		{"nexmark?event-rate=fast", `event-rate="fast"`},
		{"nexmark?start=yesterday", `start="yesterday"`},
	} {
		if _, err := gen.Lookup(tt.name); err == nil || !strings.Contains(err.Error(), tt.errContains) {
			t.Errorf("%s: got %v, want an error containing %q", tt.name, err, tt.errContains)
		}
	}
}

package gen

import (
	"fmt"
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/eddy-stream/eddy/connectors"
)

// The Nexmark benchmark's generator (github.com/nexmark/nexmark,
// nexmark-flink/.../generator): an online auction's people, auctions and
// bids, in the proportions 1:3:46. Event n (0, 1, 2, …) of the sequence is
// a person when n%50 is 0, an auction when it is 1-3 and a bid otherwise;
// its ids, its time and the ids it refers to follow from n alone, as in the
// published generator, and its other fields are drawn from a PCG seeded by
// (seed, n). So event n is the same whichever stream, file or block yields
// it, and the three streams of one seed fit together: an auction's seller
// and a bid's auction are persons and auctions of the same run.
//
// gen:nexmark yields one stream (stream=person|auction|bid, default bid);
// its record j is the j-th event of that kind. `eddy gen nexmark` writes
// all three, each in its own directory or Kafka topic.

// The published generator's proportions and defaults
// (NexmarkConfiguration, GeneratorConfig, *Generator.java).
const (
	nexPersonProportion  = 1
	nexAuctionProportion = 3
	nexBidProportion     = 46
	nexTotalProportion   = nexPersonProportion + nexAuctionProportion + nexBidProportion

	nexFirstPersonID   = 1000
	nexFirstAuctionID  = 1000
	nexFirstCategoryID = 10
	nexNumCategories   = 5

	nexNumActivePeople    = 1000
	nexNumInFlightAuction = 100
	nexPersonIDLead       = 10
	nexAuctionIDLead      = 10

	// P(hot) is 1 - 1/ratio: 1/2 of bids go to a hot auction, 3/4 of
	// auctions to a hot seller and 3/4 of bids come from a hot bidder.
	nexHotAuctionRatio = 2
	nexHotSellersRatio = 4
	nexHotBiddersRatio = 4
	// A hot seller, auction or bidder is the first (the second, for
	// bidders) of the last 100 persons or auctions.
	nexHotBatch = 100

	nexAvgPersonBytes  = 200
	nexAvgAuctionBytes = 500
	nexAvgBidBytes     = 100
)

// NexmarkStreams are the streams of gen:nexmark, in event order within
// each block of 50 events.
var NexmarkStreams = []string{"person", "auction", "bid"}

// NexmarkConfig is what gen:nexmark takes besides seed, count, rate and bad.
type NexmarkConfig struct {
	// Stream is person, auction or bid.
	Stream string
	// EventRate is events per second of event time over all three streams
	// (Nexmark's first-event.rate, default 10000): event n happens at
	// Start + n/EventRate seconds, truncated to the millisecond.
	EventRate float64
	// Start is the time of event 0 (Nexmark's base time).
	Start time.Time
}

// DefaultNexmarkConfig returns gen:nexmark's defaults.
func DefaultNexmarkConfig() NexmarkConfig {
	return NexmarkConfig{Stream: "bid", EventRate: 10000, Start: time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)}
}

// Name is the generator name for Write, WriteDir and Lookup, with the
// parameters that differ from the defaults as a query.
func (c NexmarkConfig) Name() string {
	if q := c.query(); q != "" {
		return "nexmark?" + q
	}
	return "nexmark"
}

func (c NexmarkConfig) query() string {
	d := DefaultNexmarkConfig()
	var q []string
	if c.Stream != d.Stream {
		q = append(q, "stream="+c.Stream)
	}
	if c.EventRate != d.EventRate {
		q = append(q, "event-rate="+strconv.FormatFloat(c.EventRate, 'g', -1, 64))
	}
	if !c.Start.Equal(d.Start) {
		q = append(q, "start="+c.Start.UTC().Format(time.RFC3339Nano))
	}
	return strings.Join(q, "&")
}

func (c NexmarkConfig) validate() error {
	switch {
	case nexStreamIndex(c.Stream) < 0:
		return fmt.Errorf("gen:nexmark: stream=%q, want person, auction or bid", c.Stream)
	case !(c.EventRate >= 0.001 && c.EventRate <= 1e9):
		return fmt.Errorf("gen:nexmark: event-rate=%g is outside [0.001, 1e9] events per second", c.EventRate)
	case c.Start.Nanosecond()%int(time.Millisecond) != 0:
		return fmt.Errorf("gen:nexmark: start=%s is not a whole number of milliseconds", c.Start.Format(time.RFC3339Nano))
	}
	return nil
}

func parseNexmarkConfig(q url.Values) (NexmarkConfig, error) {
	c := DefaultNexmarkConfig()
	t := connectors.Target{Params: q}
	if s := q.Get("stream"); s != "" {
		c.Stream = s
	}
	var err error
	if c.EventRate, err = t.FloatParam("event-rate", c.EventRate, 0.001, 1e9); err != nil {
		return c, fmt.Errorf("gen:nexmark: %w", err)
	}
	if s := q.Get("start"); s != "" {
		if c.Start, err = time.Parse(time.RFC3339Nano, s); err != nil {
			return c, fmt.Errorf("gen:nexmark: parameter start=%q is not an RFC 3339 time such as 2024-01-01T00:00:00Z", s)
		}
		c.Start = c.Start.UTC()
	}
	return c, c.validate()
}

func nexStreamIndex(s string) int {
	for i, n := range NexmarkStreams {
		if n == s {
			return i
		}
	}
	return -1
}

// NexmarkStreamCount is how many of the first events events of the Nexmark
// sequence belong to stream: the count that makes gen:nexmark?stream=S
// yield exactly those.
func NexmarkStreamCount(stream string, events int64) (int64, error) {
	lo, n, err := nexStreamSlots(stream)
	if err != nil {
		return 0, err
	}
	whole, rest := events/nexTotalProportion, events%nexTotalProportion
	return whole*n + min(max(rest-lo, 0), n), nil
}

// nexStreamSlots is the offsets [lo, lo+n) of stream's events within each
// block of nexTotalProportion events.
func nexStreamSlots(stream string) (lo, n int64, err error) {
	switch stream {
	case "person":
		return 0, nexPersonProportion, nil
	case "auction":
		return nexPersonProportion, nexAuctionProportion, nil
	case "bid":
		return nexPersonProportion + nexAuctionProportion, nexBidProportion, nil
	}
	return 0, 0, fmt.Errorf("gen:nexmark: stream=%q, want person, auction or bid", stream)
}

type nexmark struct {
	c    NexmarkConfig
	seed uint64
}

func (g nexmark) configure(q url.Values) (Generator, string, error) {
	c, err := parseNexmarkConfig(q)
	if err != nil {
		return nil, "", err
	}
	return nexmark{c: c, seed: g.seed}, c.query(), nil
}

func (g nexmark) withSeed(seed int64) Generator {
	g.seed = uint64(seed)
	return g
}

func (nexmark) Ext() string { return ".json" }

func (g nexmark) Lines(r *rand.Rand) func([]byte, int64, bool) []byte {
	lo, per, _ := nexStreamSlots(g.c.Stream)
	ev := newNexEvents(g.c, g.seed)
	var scratch []byte
	return func(b []byte, j int64, bad bool) []byte {
		n := (j/per)*nexTotalProportion + lo + j%per
		if !bad {
			return ev.append(b, n)
		}
		// A strict prefix of a JSON object never parses.
		scratch = ev.append(scratch[:0], n)
		return append(b, scratch[:1+r.IntN(len(scratch)-2)]...)
	}
}

// time is the event time of event n in Unix milliseconds, as
// GeneratorConfig.timestampForEvent computes it.
func (e *nexEvents) time(n int64) int64 {
	return e.startMs + int64(float64(n)*e.delayUs)/1000
}

// nexLastPerson is the base-0 id of the last person at or before event n.
func nexLastPerson(n int64) int64 {
	epoch, off := n/nexTotalProportion, n%nexTotalProportion
	if off >= nexPersonProportion {
		off = nexPersonProportion - 1
	}
	return epoch*nexPersonProportion + off
}

// nexLastAuction is the base-0 id of the last auction at or before event n
// (-1 before the first).
func nexLastAuction(n int64) int64 {
	epoch, off := n/nexTotalProportion, n%nexTotalProportion
	switch {
	case off < nexPersonProportion:
		epoch--
		off = nexAuctionProportion - 1
	case off >= nexPersonProportion+nexAuctionProportion:
		off = nexAuctionProportion - 1
	default:
		off -= nexPersonProportion
	}
	return epoch*nexAuctionProportion + off
}

// nexNextPerson picks one of the active people, or a few not created yet.
func nexNextPerson(r *rand.Rand, n int64) int64 {
	people := nexLastPerson(n) + 1
	active := min(people, nexNumActivePeople)
	return people - active + r.Int64N(active+nexPersonIDLead)
}

// nexNextAuction picks one of the auctions likely to be in flight, or a few
// not created yet.
func nexNextAuction(r *rand.Rand, n int64) int64 {
	last := nexLastAuction(n)
	lo := max(last-nexNumInFlightAuction, 0)
	return lo + r.Int64N(last-lo+1+nexAuctionIDLead)
}

// NexmarkPart is one stream of a Nexmark run: the generator name that
// yields it and how many records it holds.
type NexmarkPart struct {
	Stream string // person, auction or bid
	Name   string // "nexmark?stream=…" with the run's other parameters
	Count  int64
}

// NexmarkParts splits the first events events of generator name
// ("nexmark", with parameters or not) into its streams: the one its
// stream parameter names, or all three.
func NexmarkParts(name string, events int64) ([]NexmarkPart, error) {
	base, query, _ := strings.Cut(name, "?")
	if base != "nexmark" {
		return nil, fmt.Errorf("%s is not the nexmark generator", name)
	}
	q, err := url.ParseQuery(query)
	if err != nil {
		return nil, fmt.Errorf("generator nexmark: bad parameters %q: %w", query, err)
	}
	streams := NexmarkStreams
	if s := q.Get("stream"); s != "" {
		streams = []string{s}
	}
	var parts []NexmarkPart
	for _, s := range streams {
		q.Set("stream", s)
		c, err := parseNexmarkConfig(q)
		if err != nil {
			return nil, err
		}
		n, err := NexmarkStreamCount(s, events)
		if err != nil {
			return nil, err
		}
		parts = append(parts, NexmarkPart{Stream: s, Name: c.Name(), Count: n})
	}
	return parts, nil
}

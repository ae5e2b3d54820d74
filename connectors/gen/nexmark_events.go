package gen

import (
	"math"
	"math/bits"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"
)

// The fields of Nexmark's Person, Auction and Bid, drawn as the published
// PersonGenerator, AuctionGenerator and BidGenerator draw them. Every
// string is made of letters, digits, spaces and URL punctuation, so the
// lines are written without JSON escaping.

var (
	nexStates     = []string{"AZ", "CA", "ID", "OR", "WA", "WY"}
	nexCities     = []string{"Phoenix", "Los Angeles", "San Francisco", "Boise", "Portland", "Bend", "Redmond", "Seattle", "Kent", "Cheyenne"}
	nexFirstNames = []string{"Peter", "Paul", "Luke", "John", "Saul", "Vicky", "Kate", "Julie", "Sarah", "Deiter", "Walter"}
	nexLastNames  = []string{"Shultz", "Abrams", "Spencer", "White", "Bartels", "Walton", "Smith", "Jones", "Noris"}
	nexHotChannel = []string{"Google", "Facebook", "Baidu", "Apple"}
)

const nexChannels = 10000

// nexFixedData is what the published generator makes once per process
// from a random stream of its own: the pool extra fields are cut from, the
// hot channels' URLs and the other channels' names and URLs. Here the
// stream is a fixed PCG, so every run has the same ones.
type nexFixedData struct {
	extra       string
	hotURLs     []string
	channels    []string
	channelURLs []string
}

var nexFixed = sync.OnceValue(func() *nexFixedData {
	r := rand.New(rand.NewPCG(0x6e65786d61726b, 1))
	pool := make([]byte, 1<<16)
	for i := range pool {
		pool[i] = byte('a' + r.IntN(26))
	}
	d := &nexFixedData{extra: string(pool)}
	for range nexHotChannel {
		d.hotURLs = append(d.hotURLs, nexBaseURL(r))
	}
	for i := range nexChannels {
		u := nexBaseURL(r)
		if r.IntN(10) > 0 {
			id := int64(int32(bits.Reverse32(uint32(i))))
			u += "&channel_id=" + strconv.FormatInt(max(id, -id), 10)
		}
		d.channels = append(d.channels, "channel-"+strconv.Itoa(i))
		d.channelURLs = append(d.channelURLs, u)
	}
	return d
})

func nexBaseURL(r *rand.Rand) string {
	return "https://www.nexmark.com/" + string(nexString(nil, r, 5, '_')) + "/" +
		string(nexString(nil, r, 5, '_')) + "/" + string(nexString(nil, r, 5, '_')) + "/item.htm?query=1"
}

// nexEvents appends events as JSON lines.
type nexEvents struct {
	seed    uint64
	startMs int64
	delayUs float64
	pcg     *rand.PCG
	r       *rand.Rand
	fixed   *nexFixedData
}

func newNexEvents(c NexmarkConfig, seed uint64) *nexEvents {
	pcg := rand.NewPCG(0, 0)
	return &nexEvents{
		seed: seed, startMs: c.Start.UnixMilli(), delayUs: 1e6 / c.EventRate,
		pcg: pcg, r: rand.New(pcg), fixed: nexFixed(),
	}
}

// append appends event n (without a newline) to b.
func (e *nexEvents) append(b []byte, n int64) []byte {
	// Mixed, so neighbouring events' streams start far apart.
	e.pcg.Seed(mix(e.seed^0x6e65786d61726b), mix(uint64(n)))
	switch off := n % nexTotalProportion; {
	case off < nexPersonProportion:
		return e.person(b, n)
	case off < nexPersonProportion+nexAuctionProportion:
		return e.auction(b, n)
	default:
		return e.bid(b, n)
	}
}

func (e *nexEvents) person(b []byte, n int64) []byte {
	r := e.r
	b = append(b, `{"id":`...)
	b = strconv.AppendInt(b, nexLastPerson(n)+nexFirstPersonID, 10)
	// size sums the string fields' lengths, as the Java does, for extra.
	size := 8
	b = append(b, `,"name":"`...)
	at := len(b)
	b = append(b, nexFirstNames[r.IntN(len(nexFirstNames))]...)
	b = append(b, ' ')
	b = append(b, nexLastNames[r.IntN(len(nexLastNames))]...)
	size += len(b) - at
	b = append(b, `","emailAddress":"`...)
	at = len(b)
	b = nexString(b, r, 7, ' ')
	b = append(b, '@')
	b = nexString(b, r, 5, ' ')
	b = append(b, ".com"...)
	size += len(b) - at
	b = append(b, `","creditCard":"`...)
	for i := range 4 {
		if i > 0 {
			b = append(b, ' ')
		}
		b = appendPadded(b, r.IntN(10000), 4)
	}
	size += 19
	b = append(b, `","city":"`...)
	city := nexCities[r.IntN(len(nexCities))]
	b = append(b, city...)
	b = append(b, `","state":"`...)
	b = append(b, nexStates[r.IntN(len(nexStates))]...)
	size += len(city) + 2
	b = append(b, `","dateTime":"`...)
	b = appendMillis(b, e.time(n))
	b = append(b, `","extra":"`...)
	b = e.extra(b, size, nexAvgPersonBytes)
	return append(b, `"}`...)
}

func (e *nexEvents) auction(b []byte, n int64) []byte {
	r := e.r
	t := e.time(n)
	seller := (nexLastPerson(n) / nexHotBatch) * nexHotBatch
	if r.IntN(nexHotSellersRatio) == 0 {
		seller = nexNextPerson(r, n)
	}
	category := nexFirstCategoryID + r.IntN(nexNumCategories)
	initialBid := nexPrice(r)
	expires := t + e.auctionLength(r, n, t)
	b = append(b, `{"id":`...)
	b = strconv.AppendInt(b, nexLastAuction(n)+nexFirstAuctionID, 10)
	b = append(b, `,"itemName":"`...)
	nameAt := len(b)
	b = nexString(b, r, 20, ' ')
	size := 8 + len(b) - nameAt + 40
	b = append(b, `","description":"`...)
	descAt := len(b)
	b = nexString(b, r, 100, ' ')
	size += len(b) - descAt
	b = append(b, `","initialBid":`...)
	b = strconv.AppendInt(b, initialBid, 10)
	b = append(b, `,"reserve":`...)
	b = strconv.AppendInt(b, initialBid+nexPrice(r), 10)
	b = append(b, `,"dateTime":"`...)
	b = appendMillis(b, t)
	b = append(b, `","expires":"`...)
	b = appendMillis(b, expires)
	b = append(b, `","seller":`...)
	b = strconv.AppendInt(b, seller+nexFirstPersonID, 10)
	b = append(b, `,"category":`...)
	b = strconv.AppendInt(b, int64(category), 10)
	b = append(b, `,"extra":"`...)
	b = e.extra(b, size, nexAvgAuctionBytes)
	return append(b, `"}`...)
}

// auctionLength is an auction's length in ms: on average the time until
// nexNumInFlightAuction more auctions have started.
func (e *nexEvents) auctionLength(r *rand.Rand, n, t int64) int64 {
	ahead := int64(nexNumInFlightAuction*nexTotalProportion) / nexAuctionProportion
	horizon := e.time(n+ahead) - t
	return 1 + r.Int64N(max(horizon*2, 1))
}

func (e *nexEvents) bid(b []byte, n int64) []byte {
	r := e.r
	auction := (nexLastAuction(n) / nexHotBatch) * nexHotBatch
	if r.IntN(nexHotAuctionRatio) == 0 {
		auction = nexNextAuction(r, n)
	}
	// The second of the batch, so hot bidders and hot sellers differ.
	bidder := (nexLastPerson(n)/nexHotBatch)*nexHotBatch + 1
	if r.IntN(nexHotBiddersRatio) == 0 {
		bidder = nexNextPerson(r, n)
	}
	price := nexPrice(r)
	var channel, url string
	if r.IntN(2) > 0 {
		i := r.IntN(len(nexHotChannel))
		channel, url = nexHotChannel[i], e.fixed.hotURLs[i]
	} else {
		i := r.IntN(nexChannels)
		channel, url = e.fixed.channels[i], e.fixed.channelURLs[i]
	}
	b = append(b, `{"auction":`...)
	b = strconv.AppendInt(b, auction+nexFirstAuctionID, 10)
	b = append(b, `,"bidder":`...)
	b = strconv.AppendInt(b, bidder+nexFirstPersonID, 10)
	b = append(b, `,"price":`...)
	b = strconv.AppendInt(b, price, 10)
	b = append(b, `,"channel":"`...)
	b = append(b, channel...)
	b = append(b, `","url":"`...)
	b = append(b, url...)
	b = append(b, `","dateTime":"`...)
	b = appendMillis(b, e.time(n))
	b = append(b, `","extra":"`...)
	b = e.extra(b, 32, nexAvgBidBytes)
	return append(b, `"}`...)
}

// nexPrice is a price in cents, log-uniform from 1 to 1,000,000 dollars.
func nexPrice(r *rand.Rand) int64 {
	return int64(math.Floor(math.Pow(10, r.Float64()*6)*100 + 0.5))
}

// nexString appends 3 to max-1 random letters, one in 13 replaced by
// special, trimmed of spaces at either end.
func nexString(b []byte, r *rand.Rand, maxLen int, special byte) []byte {
	n := 3 + r.IntN(maxLen-3)
	start := len(b)
	for range n {
		if r.IntN(13) == 0 {
			b = append(b, special)
		} else {
			b = append(b, byte('a'+r.IntN(26)))
		}
	}
	s := b[start:]
	lead := 0
	for lead < len(s) && s[lead] == ' ' {
		lead++
	}
	end := len(s)
	for end > lead && s[end-1] == ' ' {
		end--
	}
	copy(s, s[lead:end])
	return b[:start+end-lead]
}

// extra appends filler that brings an event of size bytes to avg bytes on
// average, within ±20% of the missing part.
func (e *nexEvents) extra(b []byte, size, avg int) []byte {
	if size > avg {
		return b
	}
	want := avg - size
	delta := int(math.Floor(float64(want)*0.2 + 0.5))
	n := want - delta
	if delta > 0 {
		n += e.r.IntN(2 * delta)
	}
	off := e.r.IntN(len(e.fixed.extra) - n)
	return append(b, e.fixed.extra[off:off+n]...)
}

func appendMillis(b []byte, ms int64) []byte {
	return time.UnixMilli(ms).UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z")
}

func appendPadded(b []byte, v, width int) []byte {
	s := strconv.Itoa(v)
	for range width - len(s) {
		b = append(b, '0')
	}
	return append(b, s...)
}

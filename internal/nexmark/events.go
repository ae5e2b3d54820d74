// Package nexmark computes the Nexmark benchmark's queries in plain Go,
// from the queries' SQL (github.com/nexmark/nexmark,
// nexmark-flink/src/main/resources/queries/q*.sql) and not from eddy: the
// independent reference scripts/nexmark's pipelines are compared with.
// Each function reads whole streams and returns every result row the SQL
// would, in a fixed order; where the SQL leaves a choice open (a tie in
// q9) or a query's columns are misnamed (q7), the function's doc says what
// it does.
package nexmark

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"time"
)

// Person is a person event. Times are Unix milliseconds.
type Person struct {
	ID           int64  `json:"id"`
	Name         string `json:"name"`
	EmailAddress string `json:"emailAddress"`
	CreditCard   string `json:"creditCard"`
	City         string `json:"city"`
	State        string `json:"state"`
	DateTime     Millis `json:"dateTime"`
	Extra        string `json:"extra"`
}

// Auction is an auction event.
type Auction struct {
	ID          int64  `json:"id"`
	ItemName    string `json:"itemName"`
	Description string `json:"description"`
	InitialBid  int64  `json:"initialBid"`
	Reserve     int64  `json:"reserve"`
	DateTime    Millis `json:"dateTime"`
	Expires     Millis `json:"expires"`
	Seller      int64  `json:"seller"`
	Category    int64  `json:"category"`
	Extra       string `json:"extra"`
}

// Bid is a bid event.
type Bid struct {
	Auction  int64  `json:"auction"`
	Bidder   int64  `json:"bidder"`
	Price    int64  `json:"price"`
	Channel  string `json:"channel"`
	URL      string `json:"url"`
	DateTime Millis `json:"dateTime"`
	Extra    string `json:"extra"`
}

// Millis is a time in Unix milliseconds, in JSON an RFC 3339 string.
type Millis int64

// Layout is how times are written: RFC 3339 in UTC with milliseconds, as
// gen:nexmark writes them and eddy writes window_start and window_end.
const Layout = "2006-01-02T15:04:05.000Z"

func (m *Millis) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("a time: %w", err)
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return err
	}
	*m = Millis(t.UnixMilli())
	return nil
}

func (m Millis) MarshalJSON() ([]byte, error) {
	return json.Marshal(m.String())
}

func (m Millis) String() string { return time.UnixMilli(int64(m)).UTC().Format(Layout) }

// Read decodes JSON lines of one stream from r; an unknown or malformed
// field is an error naming its line.
func Read[T Person | Auction | Bid](r io.Reader) ([]T, error) {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var out []T
	for n := 1; sc.Scan(); n++ {
		var v T
		d := json.NewDecoder(bytes.NewReader(sc.Bytes()))
		d.DisallowUnknownFields()
		if err := d.Decode(&v); err != nil {
			return nil, fmt.Errorf("line %d: %w", n, err)
		}
		out = append(out, v)
	}
	return out, sc.Err()
}

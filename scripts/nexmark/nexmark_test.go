// The Nexmark queries of scripts/nexmark, run by the eddy binary on
// generated files and compared row by row with internal/nexmark's plain-Go
// references of the queries' SQL.
package nexmark_test

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/internal/nexmark"
)

var eddyBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "eddy-nexmark-")
	if err != nil {
		panic(err)
	}
	eddyBin = filepath.Join(dir, "eddy")
	if out, err := exec.Command("go", "build", "-o", eddyBin, "../../cmd/eddy").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building eddy: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// eddy runs the binary, failing the test on an error or after runLimit.
func eddy(t testing.TB, args ...string) {
	t.Helper()
	if stderr, err := tryEddy(args...); err != nil {
		t.Fatalf("eddy %s: %v\n%s", strings.Join(args, " "), err, stderr)
	}
}

// tryEddy runs the binary and returns its stderr and error (a run that
// takes more than runLimit is killed).
func tryEddy(args ...string) (string, error) {
	const runLimit = 5 * time.Minute
	ctx, cancel := context.WithTimeout(context.Background(), runLimit)
	defer cancel()
	cmd := exec.CommandContext(ctx, eddyBin, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	return stderr.String(), err
}

// events are the generated streams and what the references read of them.
type events struct {
	dir      string
	persons  []nexmark.Person
	auctions []nexmark.Auction
	bids     []nexmark.Bid
}

// generate writes the first n events of gen (a nexmark generator name)
// into dir, four files per stream, with the eddy binary, and reads them
// back for the references.
func generate(t testing.TB, dir, gen string, n int64) *events {
	t.Helper()
	return generateSeed(t, dir, gen, n, 42)
}

// generateSeed is generate with another seed.
func generateSeed(t testing.TB, dir, gen string, n, seed int64) *events {
	t.Helper()
	eddy(t, "gen", gen, "--count", fmt.Sprint(n), "--seed", fmt.Sprint(seed), "--files", "4", "--out", dir)
	e := &events{dir: dir}
	e.persons = readStream[nexmark.Person](t, filepath.Join(dir, "person"))
	e.auctions = readStream[nexmark.Auction](t, filepath.Join(dir, "auction"))
	e.bids = readStream[nexmark.Bid](t, filepath.Join(dir, "bid"))
	return e
}

func readStream[T nexmark.Person | nexmark.Auction | nexmark.Bid](t testing.TB, dir string) []T {
	t.Helper()
	out, err := nexmark.ReadDir[T](dir)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// query is one script and how to compare its output with its reference.
type query struct {
	name string
	// sources are the streams it reads; a query of several names each
	// (--source person=dir:…,auction=dir:…).
	sources []string
	// want is the reference's rows; got decodes eddy's output into the
	// same rows. Each is rendered one a line and sorted before comparing,
	// since partitions run in parallel.
	want func(e *events) []any
	got  func(t testing.TB, out []byte) []any
}

// rows decodes eddy's JSON lines strictly into R and converts each with f.
func rows[R, W any](f func(R) W) func(testing.TB, []byte) []any {
	return func(t testing.TB, out []byte) []any {
		t.Helper()
		res, err := nexmark.Decode(out, func(r R) []any { return []any{f(r)} })
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
}

func all[T any](s []T) []any { return nexmark.Rows(s) }

type bidRow struct {
	Auction  int64          `json:"auction"`
	Bidder   int64          `json:"bidder"`
	Price    int64          `json:"price"`
	DateTime nexmark.Millis `json:"dateTime"`
	Extra    string         `json:"extra"`
}

type q2Row struct {
	Auction int64 `json:"auction"`
	Price   int64 `json:"price"`
}

type q11Row struct {
	Bidder   int64          `json:"bidder"`
	Start    nexmark.Millis `json:"window_start"`
	End      nexmark.Millis `json:"window_end"`
	BidCount int64          `json:"bid_count"`
}

// q7Window is a row of q7.lua: a window and its bids with the highest
// price.
type q7Window struct {
	Start nexmark.Millis `json:"window_start"`
	End   nexmark.Millis `json:"window_end"`
	Bids  []bidRow       `json:"bids"`
}

// q7Rows flattens q7.lua's windows into the SQL's rows, one per bid.
func q7Rows(t testing.TB, out []byte) []any {
	var res []any
	for _, w := range rows(func(w q7Window) q7Window { return w })(t, out) {
		for _, b := range w.(q7Window).Bids {
			res = append(res, nexmark.Q7Row{WindowEnd: w.(q7Window).End, Auction: b.Auction, Bidder: b.Bidder, Price: b.Price, DateTime: b.DateTime, Extra: b.Extra})
		}
	}
	return res
}

// q1Row is a row of q1.lua: a bid with its price in euros, a float.
type q1Row struct {
	Auction  int64          `json:"auction"`
	Bidder   int64          `json:"bidder"`
	Price    float64        `json:"price"`
	DateTime nexmark.Millis `json:"dateTime"`
	Extra    string         `json:"extra"`
}

// q5Window is a row of q5.lua: a window, its largest count of bids and
// the auctions that have it.
type q5Window struct {
	Start    nexmark.Millis `json:"window_start"`
	End      nexmark.Millis `json:"window_end"`
	Num      int64          `json:"num"`
	Auctions []int64        `json:"auctions"`
}

// q5Rows flattens q5.lua's windows into the SQL's rows, one per auction.
func q5Rows(t testing.TB, out []byte) []any {
	var res []any
	for _, r := range rows(func(w q5Window) q5Window { return w })(t, out) {
		w := r.(q5Window)
		for _, a := range w.Auctions {
			res = append(res, nexmark.Q5Row{WindowStart: w.Start, WindowEnd: w.End, Auction: a, Num: w.Num})
		}
	}
	return res
}

type q3Row struct {
	Name  string `json:"name"`
	City  string `json:"city"`
	State string `json:"state"`
	ID    int64  `json:"id"`
}

// q9Got makes the reference's rows of q9.lua's, each checked to have its
// auction's time and expiry as its window.
func q9Got(t testing.TB, out []byte) []any {
	return rows(func(r nexmark.Q9Out) nexmark.Q9Row {
		row, err := r.Row()
		if err != nil {
			t.Error(err)
		}
		return row
	})(t, out)
}

type q8Row struct {
	ID        int64          `json:"id"`
	Name      string         `json:"name"`
	StartTime nexmark.Millis `json:"starttime"`
}

// queries are the scripts of this directory, with their references.
var queries = []query{
	{
		name: "q0", sources: []string{"bid"},
		want: func(e *events) []any { return all(nexmark.Q0(e.bids)) },
		got:  rows(func(r bidRow) nexmark.Q0Row { return nexmark.Q0Row(r) }),
	},
	{
		// The reference's price is in exact thousandths of a euro; the
		// script's float64 rounds to the same thousandth.
		name: "q1", sources: []string{"bid"},
		want: func(e *events) []any { return all(nexmark.Q1(e.bids)) },
		got: rows(func(r q1Row) nexmark.Q0Row {
			return nexmark.Q0Row{Auction: r.Auction, Bidder: r.Bidder, Price: int64(math.Round(r.Price * 1000)), DateTime: r.DateTime, Extra: r.Extra}
		}),
	},
	{
		name: "q2", sources: []string{"bid"},
		want: func(e *events) []any { return all(nexmark.Q2(e.bids)) },
		got:  rows(func(r q2Row) nexmark.Q2Row { return nexmark.Q2Row(r) }),
	},
	{
		name: "q3", sources: []string{"person", "auction"},
		want: func(e *events) []any { return all(nexmark.Q3(e.persons, e.auctions)) },
		got:  rows(func(r q3Row) nexmark.Q3Row { return nexmark.Q3Row(r) }),
	},
	{
		// Flink's AVG over BIGINT truncates: the test's Final is the
		// script's exact mean truncated (which can't round across an
		// integer at these sums and counts).
		name: "q4", sources: []string{"auction", "bid"},
		want: func(e *events) []any { return all(nexmark.Q4(e.auctions, e.bids)) },
		got:  rows(nexmark.Q4Out.Row),
	},
	{
		name: "q5", sources: []string{"bid"},
		want: func(e *events) []any { return all(nexmark.Q5(e.bids)) },
		got:  q5Rows,
	},
	{
		name: "q7", sources: []string{"bid"},
		want: func(e *events) []any { return all(nexmark.Q7(e.bids)) },
		got:  q7Rows,
	},
	{
		name: "q8", sources: []string{"person", "auction"},
		want: func(e *events) []any { return all(nexmark.Q8(e.persons, e.auctions)) },
		got:  rows(func(r q8Row) nexmark.Q8Row { return nexmark.Q8Row(r) }),
	},
	{
		name: "q9", sources: []string{"auction", "bid"},
		want: func(e *events) []any { return all(nexmark.Q9Selected(e.auctions, e.bids)) },
		got:  q9Got,
	},
	{
		name: "q11", sources: []string{"bid"},
		want: func(e *events) []any { return all(nexmark.Q11(e.bids)) },
		got: rows(func(r q11Row) nexmark.Q11Row {
			return nexmark.Q11Row{Bidder: r.Bidder, BidCount: r.BidCount, StartTime: r.Start, EndTime: r.End}
		}),
	},
}

// dirSource is the --source of q on the generated files in dir.
func dirSource(q query, dir string) string {
	if len(q.sources) == 1 {
		return "dir:" + filepath.Join(dir, q.sources[0])
	}
	var s []string
	for _, name := range q.sources {
		s = append(s, name+"=dir:"+filepath.Join(dir, name))
	}
	return strings.Join(s, ",")
}

// run runs q's script on source and returns its output.
func run(t testing.TB, q query, source string) []byte {
	t.Helper()
	out := filepath.Join(t.TempDir(), q.name+".jsonl")
	eddy(t, "run", q.name+".lua", "--source", source, "--sink", "file:"+out, "--until-idle", "--progress=false")
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestQueries runs each script on 300,000 events at 2,000 events per
// second of event time (150 seconds: 15 of q7's windows, 75 of q5's
// slides) and compares its rows with the reference's.
func TestQueries(t *testing.T) {
	n := int64(300000)
	if testing.Short() {
		n = 50000
	}
	e := generate(t, t.TempDir(), "nexmark?event-rate=2000", n)
	for _, q := range queries {
		t.Run(q.name, func(t *testing.T) {
			want := q.want(e)
			got := q.got(t, run(t, q, dirSource(q, e.dir)))
			if err := nexmark.Compare(want, got, false); err != nil {
				t.Fatal(err)
			}
			t.Logf("%d rows equal the reference's", len(want))
		})
	}
	// The gen:nexmark source yields the bids the files hold.
	q := queries[len(queries)-1]
	src := fmt.Sprintf("gen:nexmark?stream=bid&event-rate=2000&seed=42&count=%d", len(e.bids))
	if err := nexmark.Compare(q.want(e), q.got(t, run(t, q, src)), false); err != nil {
		t.Fatalf("%s on %s: %v", q.name, src, err)
	}
}

// TestJoinQueriesSeeds runs the join queries (q3, q4, q9) on other seeds,
// sizes and event rates than TestQueries: their rows depend on which
// auctions and persons meet, and when auctions expire.
func TestJoinQueriesSeeds(t *testing.T) {
	if testing.Short() {
		t.Skip("generates and runs several data sets")
	}
	for _, c := range []struct {
		seed, n int64
		rate    string
	}{{7, 40000, "1000"}, {1234, 120000, "5000"}} {
		e := generateSeed(t, t.TempDir(), "nexmark?event-rate="+c.rate, c.n, c.seed)
		for _, q := range queries {
			if q.name != "q3" && q.name != "q4" && q.name != "q9" {
				continue
			}
			t.Run(fmt.Sprintf("%s/seed=%d,n=%d", q.name, c.seed, c.n), func(t *testing.T) {
				if err := nexmark.Compare(q.want(e), q.got(t, run(t, q, dirSource(q, e.dir))), false); err != nil {
					t.Fatal(err)
				}
			})
		}
	}
}

// TestScripts: every script in this directory loads cleanly (eddy check)
// and passes its inline tests (eddy test).
func TestScripts(t *testing.T) {
	scripts, _ := filepath.Glob("*.lua")
	if len(scripts) < len(queries) {
		t.Fatalf("found %d scripts, want at least %d", len(scripts), len(queries))
	}
	eddy(t, append([]string{"check"}, scripts...)...)
	for _, s := range scripts {
		eddy(t, "test", s)
	}
}

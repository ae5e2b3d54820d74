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

// A session-window join pairs the records of a key, of both sides, in the
// same session: a run of them each at most the gap after the one before.
// Its rows, on generated records of both sides a little out of order,
// equal those of sessionJoinReference, a plain-Go session join, for every
// kind.

// sessionRec is a generated record of side a or b.
type sessionRec struct {
	side     string
	k, id    int64
	ms       int64 // its time
	arriveAt int64 // its time plus up to 2s: the order it comes in
}

const sessionGap = 5000 // ms

// sessionRecords makes n records over a few keys: per key, bursts of
// records of either side, 0.1s to 4.9s apart within a burst (one
// session), bursts 5.1s to 30s apart (another) — and exactly 5s apart at
// times, which the gap includes.
func sessionRecords(rng *rand.Rand, n int) []sessionRec {
	var out []sessionRec
	for k := int64(1); k <= 6; k++ {
		ms := int64(0)
		for range n / 6 {
			switch x := rng.IntN(10); {
			case x == 0:
				ms += sessionGap
			case x < 3:
				ms += sessionGap + 100 + rng.Int64N(250)*100
			default:
				ms += 100 + rng.Int64N(48)*100
			}
			side := []string{"a", "b"}[rng.IntN(2)]
			out = append(out, sessionRec{side: side, k: k, id: int64(len(out)), ms: ms, arriveAt: ms + rng.Int64N(2000)})
		}
	}
	return out
}

// sessionJoinReference joins recs by sessions over both sides per key, as
// the SQL of a session window over the two streams unioned and then
// joined within each window would: each a–b pair in a session; for an
// outer kind, a side's records alone in a session where the other side
// has none; for semi, a session's a records when it has a b one.
func sessionJoinReference(recs []sessionRec, kind string) []map[string]any {
	byKey := map[int64][]sessionRec{}
	for _, r := range recs {
		byKey[r.k] = append(byKey[r.k], r)
	}
	format := func(ms int64) string { return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z") }
	var out []map[string]any
	for _, rs := range byKey {
		slices.SortStableFunc(rs, func(x, y sessionRec) int { return cmp.Compare(x.ms, y.ms) })
		for len(rs) > 0 {
			n := 1
			for n < len(rs) && rs[n].ms-rs[n-1].ms <= sessionGap {
				n++
			}
			ses := rs[:n]
			rs = rs[n:]
			start, end := format(ses[0].ms), format(ses[n-1].ms+sessionGap)
			var as, bs []sessionRec
			for _, r := range ses {
				if r.side == "a" {
					as = append(as, r)
				} else {
					bs = append(bs, r)
				}
			}
			row := func(a, b *sessionRec) map[string]any {
				m := map[string]any{"window_start": start, "window_end": end}
				if a != nil {
					m["a"] = a.id
				}
				if b != nil {
					m["b"] = b.id
				}
				// (k is a's column, b's for a right join: a row without
				// that side has none)
				if kind == "right" && b != nil || kind != "right" && a != nil {
					m["k"] = ses[0].k
				}
				return m
			}
			switch {
			case kind == "semi":
				for i := range as {
					if len(bs) > 0 {
						out = append(out, row(&as[i], nil))
					}
				}
			case len(as) > 0 && len(bs) > 0:
				for i := range as {
					for j := range bs {
						out = append(out, row(&as[i], &bs[j]))
					}
				}
			case len(as) > 0 && (kind == "left" || kind == "full"):
				for i := range as {
					out = append(out, row(&as[i], nil))
				}
			case len(bs) > 0 && (kind == "right" || kind == "full"):
				for j := range bs {
					out = append(out, row(nil, &bs[j]))
				}
			}
		}
	}
	return out
}

func TestSessionJoinEqualsReference(t *testing.T) {
	for _, kind := range []string{"inner", "left", "right", "full", "semi"} {
		t.Run(kind, func(t *testing.T) {
			rng := rand.New(rand.NewPCG(uint64(len(kind)), 7))
			recs := sessionRecords(rng, 600)
			sel := `"a.k", "a.id as a", "b.id as b", "window_start", "window_end"`
			if kind == "semi" {
				sel = `"a.k", "a.id as a", "window_start", "window_end"`
			} else if kind == "right" {
				sel = `"b.k", "a.id as a", "b.id as b", "window_start", "window_end"`
			}
			src := `return {
  sources = {
    a = { parse = eddy.json{ k = "integer", id = "integer", t = "number" }, event_time = "t" },
    b = { parse = eddy.json{ k = "integer", id = "integer", t = "number" }, event_time = "t" },
  },
  join = eddy.join{ left = "a", right = "b", on = "k", window = eddy.session("5s"), kind = "` + kind + `", select = { ` + sel + ` } },
  watermark = { out_of_order = "3s" },
}`
			p, err := scripting.LoadSource("session_"+kind+".lua", []byte(src))
			if err != nil {
				t.Fatal(err)
			}
			want := sessionJoinReference(recs, kind)
			if len(want) < 100 {
				t.Fatalf("the reference has %d rows: too few to test anything", len(want))
			}
			res, err := runOne(context.Background(), p, scripting.Test{Name: kind, Inputs: sessionInputs(recs), WantRecords: want, Late: 0, DeadLetters: 0})
			if err != nil {
				t.Fatal(err)
			}
			if !res.Passed() {
				t.Fatal(strings.Join(res.Failures, "\n"))
			}
			t.Logf("%d records, %d rows equal to the reference's", len(recs), len(want))
		})
	}
}

// sessionInputs are each side's lines, in the order they arrive: at most
// 2s out of time order, less than the watermark's out_of_order.
func sessionInputs(recs []sessionRec) map[string][]string {
	sorted := slices.Clone(recs)
	slices.SortStableFunc(sorted, func(x, y sessionRec) int { return cmp.Compare(x.arriveAt, y.arriveAt) })
	in := map[string][]string{}
	for _, r := range sorted {
		in[r.side] = append(in[r.side], fmt.Sprintf(`{"k":%d,"id":%d,"t":%g}`, r.k, r.id, float64(r.ms)/1000))
	}
	return in
}

// A record behind the watermark is late for a session join, never paired;
// one at the watermark is on time. The auctions reach 30s first and the
// bids' own time then holds the watermark: the bid at 1s, behind 20s, is
// late (on time, it would have made a session with the auction at 0s);
// the second bid at 20s is at the watermark. The bids at 20s and 25s and
// the auction at 30s make one session (5s apart is within the gap); the
// auction at 0s is alone in its own.
func TestSessionJoinLateRecords(t *testing.T) {
	runInline(t, "session_late.lua", `return {`+auctionBidSources+`
  join = eddy.join{ left = "auction", right = "bid", on = { "id", "auction" }, window = eddy.session("5s"),
                    select = { "auction.t", "bid.price", "window_start", "window_end" } },
  tests = { {
      name = "late bid",
      input = {
        auction = { '{"id":1,"t":0}', '{"id":1,"t":30}' },
        bid = { '{"auction":1,"price":1,"t":20}', '{"auction":1,"price":2,"t":1}', '{"auction":1,"price":4,"t":20}',
                '{"auction":1,"price":3,"t":25}' },
      },
      want_records = {
        { t = 30, price = 1, window_start = "1970-01-01T00:00:20.000Z", window_end = "1970-01-01T00:00:35.000Z" },
        { t = 30, price = 4, window_start = "1970-01-01T00:00:20.000Z", window_end = "1970-01-01T00:00:35.000Z" },
        { t = 30, price = 3, window_start = "1970-01-01T00:00:20.000Z", window_end = "1970-01-01T00:00:35.000Z" },
      },
      late = 1,
  } },
}`)
}

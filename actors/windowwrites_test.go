package actors

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/internal/memio"
)

// keyWatch is a changelog that notes every key written to it.
type keyWatch struct {
	*memio.Changelog
	mu   sync.Mutex
	keys []string
}

func (w *keyWatch) Write(partition string, key, value []byte) {
	w.mu.Lock()
	w.keys = append(w.keys, string(key))
	w.mu.Unlock()
	w.Changelog.Write(partition, key, value)
}

// A window that opens and fires between two checkpoints never needs to be
// in state: no checkpoint writes it, nor deletes it, to the store or the
// changelog. Here the only checkpoint is the final one, after every window
// fired, so no window key may reach either.
func TestWindowsBetweenCheckpointsAreNotWritten(t *testing.T) {
	script := `return {
		parse = eddy.json { k = "string", t = "number" },
		event_time = "t",
		watermark = { out_of_order = "0s" },
		key = "k",
		window = eddy.tumbling("60s"),
		aggregate = { n = eddy.count() },
		emit = "final",
	}`
	var lines []string
	for ts := 0; ts < 200; ts += 10 {
		for _, k := range []string{"a", "b"} {
			lines = append(lines, fmt.Sprintf(`{"k":%q,"t":%d}`, k, ts))
		}
	}
	cl := &keyWatch{Changelog: &memio.Changelog{}}
	store := openStore(t)
	results := &memio.Sink{}
	_, err := Run(context.Background(), Config{Pipeline: load(t, script), Source: &memio.Source{Lines: lines, BatchSize: 7},
		Store: store, Results: results, MaxErrors: -1, Changelog: cl, Shards: 2, Node: "test", CheckpointInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	var want strings.Builder
	for m, n := range []int{6, 6, 6, 2} {
		for _, k := range []string{"a", "b"} {
			fmt.Fprintf(&want, "{\"k\":%q,\"window_start\":\"1970-01-01T00:%02d:00.000Z\",\"window_end\":\"1970-01-01T00:%02d:00.000Z\",\"n\":%d}\n", k, m, m+1, n)
		}
	}
	if got := rowsText(results.Rows()); got != want.String() {
		t.Fatalf("emitted\n%swant\n%s", got, want.String())
	}
	for _, k := range cl.keys {
		if strings.HasPrefix(k, "agg/") {
			t.Errorf("the changelog got window key %q", k)
		}
	}
	if got := storeKeys(t, store, "agg/"); len(got) != 0 {
		t.Errorf("the store holds window keys %v", got)
	}
}

// Within a batch a key's records open windows, fire them, come late into
// one that fired and go on into the next ones, in tumbling and in hopping
// windows. The shard remembers each key's latest window (lastWindow),
// which the batch opens, fires and drops as it goes: the windows must
// still equal a plain-Go reference's, and the late record must be the late
// output's. (Batches of 7 records, so that most cross a window's end.)
func TestWindowsChangingWithinABatch(t *testing.T) {
	for _, tc := range []struct {
		window      string
		size, slide int
	}{
		{`eddy.tumbling("60s")`, 60, 60},
		{`eddy.hopping("60s", "20s")`, 60, 20},
	} {
		t.Run(tc.window, func(t *testing.T) {
			script := `return {
				parse = eddy.json { k = "string", t = "number" },
				event_time = "t",
				watermark = { out_of_order = "0s" },
				key = "k",
				window = ` + tc.window + `,
				aggregate = { n = eddy.count(), s = eddy.sum("t") },
				emit = "final",
			}`
			type rec struct {
				k    string
				t    int // seconds
				late bool
			}
			var recs []rec
			for ts := 0; ts < 200; ts += 10 {
				for _, k := range []string{"a", "b", "c"} {
					recs = append(recs, rec{k: k, t: ts})
				}
				if ts == 130 {
					recs = append(recs, rec{k: "a", t: 30, late: true}) // its windows fired
				}
			}
			var lines []string
			for _, r := range recs {
				lines = append(lines, fmt.Sprintf(`{"k":%q,"t":%d}`, r.k, r.t))
			}
			results, late := &memio.Sink{}, &memio.Sink{}
			_, err := Run(context.Background(), Config{Pipeline: load(t, script), Source: &memio.Source{Lines: lines, BatchSize: 7},
				Store: openStore(t), Results: results, Late: late, MaxErrors: -1, Shards: 1, Node: "test", CheckpointInterval: time.Hour})
			if err != nil {
				t.Fatal(err)
			}
			// the reference: every record but the late one, in each window
			// [start, start+size) that holds it
			type win struct {
				k     string
				start int
			}
			n, s := map[win]int{}, map[win]int{}
			for _, r := range recs {
				if r.late {
					continue
				}
				for start := r.t - r.t%tc.slide; start > r.t-tc.size; start -= tc.slide {
					n[win{r.k, start}]++
					s[win{r.k, start}] += r.t
				}
			}
			var want []string
			for w, c := range n {
				want = append(want, fmt.Sprintf(`{"k":%q,"window_start":%q,"window_end":%q,"n":%d,"s":%d}`, w.k,
					time.UnixMilli(int64(w.start)*1000).UTC().Format("2006-01-02T15:04:05.000Z"),
					time.UnixMilli(int64(w.start+tc.size)*1000).UTC().Format("2006-01-02T15:04:05.000Z"), c, s[w]))
			}
			sort.Strings(want)
			if got := lastTable(results.Rows(), false); got != strings.Join(want, "\n") {
				t.Errorf("emitted\n%s\nwant\n%s", got, strings.Join(want, "\n"))
			}
			if rows := late.Rows(); len(rows) != 1 || !strings.Contains(rowsText(rows), `"event_time":"1970-01-01T00:00:30.000Z"`) {
				t.Errorf("late output %s, want the record of a at 30 s", rowsText(rows))
			}
		})
	}
}

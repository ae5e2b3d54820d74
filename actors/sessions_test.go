package actors

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"testing"

	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/internal/memio"
)

// A key's sessions on several partitions are one session where they
// overlap or touch: the rows equal sessions computed over all the records
// at once, for every aggregate kind (a Lua one included), in each emit mode.
func TestSessionsMergeAcrossPartitions(t *testing.T) {
	// key, event time (s), by partition: "a" alternates between p1 and p2
	// 10 s apart (one session, touching [40,50) and [50,60) on p3), b's
	// sessions are split on p1 and p3 and bridged on p2.
	parts := map[string][][2]any{
		"p1": {{"a", 0}, {"b", 0}, {"a", 20}, {"a", 40}},
		"p2": {{"a", 10}, {"a", 30}, {"b", 25}, {"a", 100}},
		"p3": {{"c", 7}, {"b", 15}, {"a", 50}},
	}
	for _, emit := range []string{"final", "complete"} {
		t.Run(emit, func(t *testing.T) {
			script := `return {
				parse = eddy.json { k = "string", t = "number" },
				event_time = "t",
				watermark = { out_of_order = "0s" },
				key = "k",
				window = eddy.session("10s"),
				aggregate = {
					n = eddy.count(), total = eddy.sum("t"), first = eddy.min("t"), ts = eddy.count_distinct("t"),
					lua_n = { init = function() return 0 end, add = function(a, r) return a + 1 end,
						merge = function(a, b) return a + b end, result = function(a) return a end },
				},
				emit = "` + emit + `",
			}`
			var src []connectors.Partition
			for _, id := range []string{"p1", "p2", "p3"} {
				var lines []string
				for _, r := range parts[id] {
					lines = append(lines, fmt.Sprintf(`{"k":%q,"t":%d}`, r[0], r[1]))
				}
				src = append(src, &quietPart{id: id, lines: lines})
			}
			results := &memio.Sink{}
			_, err := Run(context.Background(), Config{Pipeline: load(t, script), Source: &partsSource{parts: src},
				Store: openStore(t), Results: results, Shards: 2, UntilIdle: true})
			if err != nil {
				t.Fatal(err)
			}
			got := lastTable(results.Rows(), emit == "complete")
			if want := referenceSessions(parts, 10); got != want {
				t.Fatalf("got\n%s\nwant\n%s", got, want)
			}
		})
	}
}

// lastTable renders rows sorted, keeping only the last complete table
// (numbered by TriggerColumn) when complete.
func lastTable(rows []connectors.Row, complete bool) string {
	var last int64
	if complete && len(rows) > 0 {
		last = rows[len(rows)-1].Fields[len(rows[0].Fields)-1].Value.(int64)
	}
	var lines []string
	for _, r := range rows {
		if complete {
			if r.Fields[len(r.Fields)-1].Value.(int64) != last {
				continue
			}
			r.Fields = r.Fields[:len(r.Fields)-1]
		}
		lines = append(lines, string(connectors.AppendJSON(nil, r)))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// referenceSessions computes the sessions of all partitions' records at
// once, in plain Go: a key's records sorted by time, a new session where
// the next record is more than gap after the last.
func referenceSessions(parts map[string][][2]any, gap int) string {
	times := map[string][]int{}
	for _, rs := range parts {
		for _, r := range rs {
			times[r[0].(string)] = append(times[r[0].(string)], r[1].(int))
		}
	}
	var lines []string
	ts := func(s int) string { return fmt.Sprintf("1970-01-01T00:%02d:%02d.000Z", s/60, s%60) }
	for k, tt := range times {
		sort.Ints(tt)
		for i := 0; i < len(tt); {
			j, total := i, 0
			for ; j < len(tt) && (j == i || tt[j] <= tt[j-1]+gap); j++ {
				total += tt[j]
			}
			n := j - i
			lines = append(lines, fmt.Sprintf(`{"k":%q,"window_start":%q,"window_end":%q,"first":%d,"lua_n":%d,"n":%d,"total":%d,"ts":%d}`,
				k, ts(tt[i]), ts(tt[j-1]+gap), tt[i], n, n, total, n))
			i = j
		}
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

package main

import (
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

const (
	stagesScript = "testdata/stages_bids.lua"
	threeScript  = "testdata/stages_three.lua"
)

// bidsEvery is the event time between two generated bids.
const bidsEvery = 10 * time.Millisecond

// genBids writes files of count bids each, in event-time order (Unix
// seconds), on auctions 1..auctions with a few hot ones, and returns the
// directory and every bid as (auction, Unix ms).
func genBids(t *testing.T, files, count, auctions int) (string, [][2]int64) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "bids")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	rng := rand.New(rand.NewPCG(5, 15))
	var bids [][2]int64
	at := time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	for f := range files {
		var sb strings.Builder
		for range count {
			a := 1 + rng.Int64N(int64(auctions))
			if rng.IntN(3) == 0 {
				a = 1 + rng.Int64N(3) // hot auctions
			}
			at += bidsEvery.Milliseconds()
			bids = append(bids, [2]int64{a, at})
			fmt.Fprintf(&sb, "{\"auction\":%d,\"time\":%g}\n", a, float64(at)/1000)
		}
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("part-%05d.jsonl", f)), []byte(sb.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir, bids
}

// expectedWindowMax is stages_bids.lua's result computed directly: bids
// per auction in each 10 s window every 5 s, then per window the largest
// count, the number of auctions and the bids in all, by window start.
func expectedWindowMax(bids [][2]int64) string {
	const size, slide = 10_000, 5_000
	type win struct{ start, auction int64 }
	counts := map[win]int64{}
	for _, b := range bids {
		for start := b[1] - b[1]%slide; start > b[1]-size; start -= slide {
			counts[win{start, b[0]}]++
		}
	}
	type agg struct{ most, auctions, bids int64 }
	per := map[int64]*agg{}
	for w, n := range counts {
		a := per[w.start]
		if a == nil {
			a = &agg{}
			per[w.start] = a
		}
		a.most, a.auctions, a.bids = max(a.most, n), a.auctions+1, a.bids+n
	}
	return linesByStart(per, func(s int64, a *agg) string {
		return fmt.Sprintf("{\"window_start\":%q,\"window_end\":%q,\"most\":%d,\"auctions\":%d,\"bids\":%d}\n",
			msTime(s), msTime(s+size), a.most, a.auctions, a.bids)
	})
}

// expectedThree is stages_three.lua's result computed directly.
func expectedThree(bids [][2]int64) string {
	const tenS, minute = 10_000, 60_000
	type win struct{ auction, start int64 }
	counts := map[win]int64{}
	for _, b := range bids {
		counts[win{b[0], b[1] - b[1]%tenS}]++
	}
	type perMinute struct{ peak, active, total int64 }
	second := map[win]*perMinute{}
	for w, n := range counts {
		last := w.start + tenS - 1 // the 10 s window's last instant
		k := win{w.auction, last - last%minute}
		a := second[k]
		if a == nil {
			a = &perMinute{}
			second[k] = a
		}
		a.peak, a.active, a.total = max(a.peak, n), a.active+1, a.total+n
	}
	type third struct{ auctions, hottest, peaks int64 }
	per := map[int64]*third{}
	for w, a := range second {
		t := per[w.start]
		if t == nil {
			t = &third{}
			per[w.start] = t
		}
		t.auctions, t.hottest, t.peaks = t.auctions+1, max(t.hottest, a.total), t.peaks+a.peak
	}
	return linesByStart(per, func(s int64, t *third) string {
		return fmt.Sprintf("{\"window_start\":%q,\"window_end\":%q,\"auctions\":%d,\"hottest\":%d,\"peaks\":%d}\n",
			msTime(s), msTime(s+minute), t.auctions, t.hottest, t.peaks)
	})
}

// linesByStart writes line's text for each window of per, by window start.
func linesByStart[T any](per map[int64]T, line func(start int64, v T) string) string {
	starts := make([]int64, 0, len(per))
	for s := range per {
		starts = append(starts, s)
	}
	sort.Slice(starts, func(i, j int) bool { return starts[i] < starts[j] })
	var sb strings.Builder
	for _, s := range starts {
		sb.WriteString(line(s, per[s]))
	}
	return sb.String()
}

func msTime(ms int64) string { return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z") }

// stagesCases are the multi-stage scripts and their direct computations.
var stagesCases = []struct {
	name, script string
	expect       func([][2]int64) string
}{
	{"two", stagesScript, expectedWindowMax},
	{"three", threeScript, expectedThree},
}

// Stages over files equal the direct computation.
func TestStagesBatch(t *testing.T) {
	dir, bids := genBids(t, 4, 5_000, 200)
	for _, tc := range stagesCases {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.expect(bids)
			out, stderr, err := eddy(t, "run", tc.script, "--source", "dir:"+dir, "--until-idle", "-q")
			if err != nil {
				t.Fatalf("eddy run: %v\n%s", err, stderr)
			}
			if out != want {
				t.Fatalf("stdout differs from the direct computation\n%s", lineDiff(out, want))
			}
		})
	}
}

// kill -9 mid-work at observed points, restart with the same state each
// time: the last stage's final table equals the direct computation exactly
// (a window a stage emitted before a checkpoint is in the next stage's
// checkpointed table, and one after it is emitted again).
func TestStagesKillAndRestart(t *testing.T) {
	const files, perFile, trials = 12, 20_000, 5
	for i, tc := range stagesCases {
		t.Run(tc.name, func(t *testing.T) {
			generated, bids := genBids(t, files, perFile, 500)
			want := tc.expect(bids)
			box := newInbox(t, generated)
			args := []string{"run", tc.script, "--source", "dir:" + box.dir + "?poll=20ms", "--state", filepath.Join(t.TempDir(), "state"),
				"--checkpoint-interval", "100ms", "--trigger-interval", "50ms"}
			killTrials(t, box, args, trials, perFile, uint64(7+i))
			box.publish(t, files)
			out, stderr, err := eddy(t, append(args, "--until-idle", "-q")...)
			if err != nil {
				t.Fatalf("final run: %v\n%s", err, stderr)
			}
			if out != want {
				t.Fatalf("after %d kills the result differs from the direct computation\n%s", trials, lineDiff(out, want))
			}
		})
	}
}

// lineDiff lists the lines only one side has (up to 10 of each).
func lineDiff(got, want string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	g, w := in(got), in(want)
	var sb strings.Builder
	fmt.Fprintf(&sb, "got %d lines, want %d\n", strings.Count(got, "\n"), strings.Count(want, "\n"))
	for _, side := range []struct {
		sign       string
		lines      string
		notInOther map[string]bool
	}{{"+ ", got, w}, {"- ", want, g}} {
		n := 0
		for _, l := range strings.Split(side.lines, "\n") {
			if !side.notInOther[l] && n < 10 {
				sb.WriteString(side.sign + l + "\n")
				n++
			}
		}
	}
	return sb.String()
}

package main

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/eddy-stream/eddy/internal/nexmark"
)

// The Nexmark scripts survive kill -9: runs killed at observed points and
// a last run to the end print, together, exactly the rows of
// internal/nexmark's reference of the query's SQL, with repeats only of
// rows emitted after the last checkpoint (stdout is at-least-once).

const nexmarkScripts = "../../scripts/nexmark/"

// genNexmarkFiles writes the first n events of seed 42 at 2,000 events per
// second of event time into dir, files files per stream, each file the
// next stretch of time.
func genNexmarkFiles(t *testing.T, dir string, n, files int) {
	t.Helper()
	_, stderr, err := eddy(t, "gen", "nexmark?event-rate=2000", "--count", fmt.Sprint(n), "--seed", "42",
		"--files", fmt.Sprint(files), "--out", dir)
	if err != nil {
		t.Fatalf("eddy gen: %v\n%s", err, stderr)
	}
}

// readNexmark reads a generated stream's files for the reference.
func readNexmark[T nexmark.Person | nexmark.Auction | nexmark.Bid](t *testing.T, dir string) []T {
	t.Helper()
	out, err := nexmark.ReadDir[T](dir)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// sameRows fails unless the killed runs' and the last run's output, out,
// decoded into R and turned into the reference's rows by f, holds exactly
// want's rows, repeats allowed.
func sameRows[R, W any](t *testing.T, want []W, out string, f func(R) []any) {
	t.Helper()
	got, err := nexmark.Decode([]byte(out), f)
	if err != nil {
		t.Fatal(err)
	}
	if err := nexmark.Compare(nexmark.Rows(want), got, true); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d rows (%d with repeats), equal to the reference's", len(want), len(got))
}

// q5 (two stages: a hopping count, then the auctions with the largest
// count per window) killed in five runs.
func TestNexmarkQ5SurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("kills eddy mid-run several times")
	}
	const events, files, trials = 240_000, 12, 5
	base := t.TempDir()
	genNexmarkFiles(t, filepath.Join(base, "gen"), events, files)
	bids := readNexmark[nexmark.Bid](t, filepath.Join(base, "gen", "bid"))
	box := newInbox(t, filepath.Join(base, "gen", "bid"))
	args := []string{"run", nexmarkScripts + "q5.lua", "--source", "dir:" + box.dir + "?poll=20ms",
		"--state", filepath.Join(base, "state"), "--checkpoint-interval", "100ms", "--trigger-interval", "50ms"}
	out := killTrials(t, box, args, trials, int64(len(bids)/files), 55)
	box.publish(t, files)
	stdout, stderr, err := eddy(t, append(args, "--until-idle")...)
	if err != nil {
		t.Fatalf("last run: %v\n%s", err, stderr)
	}
	type window struct {
		Start    nexmark.Millis `json:"window_start"`
		End      nexmark.Millis `json:"window_end"`
		Num      int64          `json:"num"`
		Auctions []int64        `json:"auctions"`
	}
	sameRows(t, nexmark.Q5(bids), out+stdout, func(w window) []any {
		var rows []any
		for _, a := range w.Auctions {
			rows = append(rows, nexmark.Q5Row{WindowStart: w.Start, WindowEnd: w.End, Auction: a, Num: w.Num})
		}
		return rows
	})
}

// killTwoStreams runs script on two streams (sides, "person", "auction"
// or "bid") of events generated events, split into files files each, in
// trials runs, each
// started on the next file of each stream and killed (kill -9) partway
// through the one after, once it has completed a checkpoint; then a last
// run reads the rest to the end. It returns the generated streams' files
// and every run's output together.
func killTwoStreams(t *testing.T, script string, sides [2]string, events, files, trials int, seed uint64) (gen, out string) {
	t.Helper()
	base := t.TempDir()
	gen = filepath.Join(base, "gen")
	genNexmarkFiles(t, gen, events, files)
	in := map[string]string{}
	var perFile int64
	for _, side := range sides {
		in[side] = filepath.Join(base, "in", side)
		if err := os.MkdirAll(in[side], 0o755); err != nil {
			t.Fatal(err)
		}
		perFile += int64(countLines(t, filepath.Join(gen, side))) / int64(files)
	}
	publish := func(k int) {
		for _, side := range sides {
			name := fmt.Sprintf("part-%05d.json", k)
			if err := os.Rename(filepath.Join(gen, side, name), filepath.Join(in[side], name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	// (The files moved into in/ are moved back at the end, for the
	// reference.)
	defer func() {
		for _, side := range sides {
			moved, _ := filepath.Glob(filepath.Join(in[side], "part-*.json"))
			for _, f := range moved {
				if err := os.Rename(f, filepath.Join(gen, side, filepath.Base(f))); err != nil {
					t.Fatal(err)
				}
			}
		}
	}()
	args := []string{"run", nexmarkScripts + script, "--source", sides[0] + "=dir:" + in[sides[0]] + "?poll=20ms," + sides[1] + "=dir:" + in[sides[1]] + "?poll=20ms",
		"--state", filepath.Join(base, "state"), "--checkpoint-interval", "50ms", "--trigger-interval", "50ms"}
	rng := rand.New(rand.NewPCG(seed, seed+1))
	var all strings.Builder
	publish(0)
	for k := range trials {
		r := startLive(t, args...)
		cp := r.checkpointWith(t)
		read := r.waitRead(t, 0)
		publish(k + 1)
		at := r.waitRead(t, read+1+rng.Int64N(perFile*9/10))
		r.kill(t)
		t.Logf("trial %d: checkpoint %d wrote %d keys; killed after %d records read", k, cp.id, cp.changed, at)
		all.WriteString(r.stdout.String())
	}
	for k := trials + 1; k < files; k++ {
		publish(k)
	}
	stdout, stderr, err := eddy(t, append(args, "--until-idle")...)
	if err != nil {
		t.Fatalf("last run: %v\n%s", err, stderr)
	}
	return gen, all.String() + stdout
}

// countLines counts the lines of the part-*.json files in dir.
func countLines(t *testing.T, dir string) int {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dir, "part-*.json"))
	n := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		n += bytes.Count(b, []byte("\n"))
	}
	return n
}

// q8 (a windowed semi join of persons and auctions, two directories)
// killed in five runs.
func TestNexmarkQ8SurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("kills eddy mid-run several times")
	}
	gen, out := killTwoStreams(t, "q8.lua", [2]string{"person", "auction"}, 240_000, 8, 5, 8)
	type row struct {
		ID        int64          `json:"id"`
		Name      string         `json:"name"`
		StartTime nexmark.Millis `json:"starttime"`
	}
	persons := readNexmark[nexmark.Person](t, filepath.Join(gen, "person"))
	auctions := readNexmark[nexmark.Auction](t, filepath.Join(gen, "auction"))
	sameRows(t, nexmark.Q8(persons, auctions), out, func(r row) []any { return []any{nexmark.Q8Row(r)} })
}

// q3 (a regular join keeping both sides for ever: each run restores every
// person and auction kept before its last checkpoint) killed in five runs.
func TestNexmarkQ3SurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("kills eddy mid-run several times")
	}
	gen, out := killTwoStreams(t, "q3.lua", [2]string{"person", "auction"}, 240_000, 8, 5, 3)
	type row struct {
		Name  string `json:"name"`
		City  string `json:"city"`
		State string `json:"state"`
		ID    int64  `json:"id"`
	}
	persons := readNexmark[nexmark.Person](t, filepath.Join(gen, "person"))
	auctions := readNexmark[nexmark.Auction](t, filepath.Join(gen, "auction"))
	sameRows(t, nexmark.Q3(persons, auctions), out, func(r row) []any { return []any{nexmark.Q3Row(r)} })
}

// q4 (an interval join of auctions and their bids to each auction's
// expiry, the highest price per auction, then the mean per category):
// each run restores the auctions and bids waiting in the join and the
// highest prices of the auctions still running.
func TestNexmarkQ4SurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("kills eddy mid-run several times")
	}
	gen, out := killTwoStreams(t, "q4.lua", [2]string{"auction", "bid"}, 240_000, 8, 5, 4)
	auctions := readNexmark[nexmark.Auction](t, filepath.Join(gen, "auction"))
	bids := readNexmark[nexmark.Bid](t, filepath.Join(gen, "bid"))
	sameRows(t, nexmark.Q4(auctions, bids), out, func(r nexmark.Q4Out) []any { return []any{r.Row()} })
}

// q9 (the same interval join, and each auction's winning bid by a Lua
// aggregate over its rows): each run restores the waiting records and the
// running auctions' best bids so far.
func TestNexmarkQ9SurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("kills eddy mid-run several times")
	}
	gen, out := killTwoStreams(t, "q9.lua", [2]string{"auction", "bid"}, 240_000, 8, 5, 9)
	auctions := readNexmark[nexmark.Auction](t, filepath.Join(gen, "auction"))
	bids := readNexmark[nexmark.Bid](t, filepath.Join(gen, "bid"))
	sameRows(t, nexmark.Q9Selected(auctions, bids), out, func(r nexmark.Q9Out) []any {
		row, err := r.Row()
		if err != nil {
			t.Error(err)
		}
		return []any{row}
	})
}

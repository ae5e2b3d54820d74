package main

import (
	"bytes"
	"encoding/json"
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
	files, _ := filepath.Glob(filepath.Join(dir, "part-*"))
	var out []T
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		rows, err := nexmark.Read[T](bytes.NewReader(b))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, rows...)
	}
	return out
}

// decodeLines decodes each line of out strictly into R and renders the
// rows f makes of it.
func decodeLines[R any](t *testing.T, out string, f func(R) []any) map[string]bool {
	t.Helper()
	got := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		if line == "" {
			continue
		}
		d := json.NewDecoder(strings.NewReader(line))
		d.DisallowUnknownFields()
		var r R
		if err := d.Decode(&r); err != nil {
			t.Fatalf("output line: %v: %s", err, line)
		}
		for _, row := range f(r) {
			got[fmt.Sprintf("%+v", row)] = true
		}
	}
	return got
}

// sameRows fails unless got holds exactly want's rows.
func sameRows[W any](t *testing.T, want []W, got map[string]bool) {
	t.Helper()
	if len(want) == 0 {
		t.Fatal("the reference has no rows: the test would prove nothing")
	}
	w := map[string]bool{}
	for _, r := range want {
		w[fmt.Sprintf("%+v", r)] = true
	}
	bad := 0
	for r := range got {
		if !w[r] && bad < 10 {
			t.Errorf("a row the reference lacks: %s", r)
			bad++
		}
	}
	for r := range w {
		if !got[r] && bad < 20 {
			t.Errorf("missing row: %s", r)
			bad++
		}
	}
	if bad == 0 {
		t.Logf("%d rows, all present, none extra", len(w))
	}
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
	got := decodeLines(t, out+stdout, func(w window) []any {
		var rows []any
		for _, a := range w.Auctions {
			rows = append(rows, nexmark.Q5Row{WindowStart: w.Start, WindowEnd: w.End, Auction: a, Num: w.Num})
		}
		return rows
	})
	sameRows(t, nexmark.Q5(bids), got)
}

// q8 (a windowed semi join of persons and auctions, two directories)
// killed in five runs, each started on the next file of each stream and
// killed partway through the one after.
func TestNexmarkQ8SurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("kills eddy mid-run several times")
	}
	const events, files, trials = 240_000, 8, 5
	base := t.TempDir()
	genNexmarkFiles(t, filepath.Join(base, "gen"), events, files)
	persons := readNexmark[nexmark.Person](t, filepath.Join(base, "gen", "person"))
	auctions := readNexmark[nexmark.Auction](t, filepath.Join(base, "gen", "auction"))
	in := map[string]string{}
	for _, side := range []string{"person", "auction"} {
		in[side] = filepath.Join(base, "in", side)
		if err := os.MkdirAll(in[side], 0o755); err != nil {
			t.Fatal(err)
		}
	}
	publish := func(k int) {
		for _, side := range []string{"person", "auction"} {
			name := fmt.Sprintf("part-%05d.json", k)
			if err := os.Rename(filepath.Join(base, "gen", side, name), filepath.Join(in[side], name)); err != nil {
				t.Fatal(err)
			}
		}
	}
	args := []string{"run", nexmarkScripts + "q8.lua", "--source", "person=dir:" + in["person"] + "?poll=20ms,auction=dir:" + in["auction"] + "?poll=20ms",
		"--state", filepath.Join(base, "state"), "--checkpoint-interval", "50ms", "--trigger-interval", "50ms"}
	perFile := int64(len(persons)+len(auctions)) / files
	rng := rand.New(rand.NewPCG(8, 9))
	var out strings.Builder
	publish(0)
	for k := range trials {
		r := startLive(t, args...)
		cp := r.checkpointWith(t)
		read := r.waitRead(t, 0)
		publish(k + 1)
		at := r.waitRead(t, read+1+rng.Int64N(perFile*9/10))
		r.kill(t)
		t.Logf("trial %d: checkpoint %d wrote %d keys; killed after %d records read", k, cp.id, cp.changed, at)
		out.WriteString(r.stdout.String())
	}
	for k := trials + 1; k < files; k++ {
		publish(k)
	}
	stdout, stderr, err := eddy(t, append(args, "--until-idle")...)
	if err != nil {
		t.Fatalf("last run: %v\n%s", err, stderr)
	}
	type row struct {
		ID        int64          `json:"id"`
		Name      string         `json:"name"`
		StartTime nexmark.Millis `json:"starttime"`
	}
	got := decodeLines(t, out.String()+stdout, func(r row) []any { return []any{nexmark.Q8Row(r)} })
	sameRows(t, nexmark.Q8(persons, auctions), got)
}

package main

import (
	"encoding/json"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"
)

// joinCrashScript joins persons with the auctions they opened in the same
// 10s tumbling window, reading two directories the test fills.
const joinCrashScript = `return {
  sources = {
    person = { parse = eddy.json{ id = "integer", t = "number" }, event_time = "t" },
    auction = { parse = eddy.json{ id = "integer", seller = "integer", t = "number" }, event_time = "t" },
  },
  join = eddy.join{ left = "person", right = "auction", on = { "id", "seller" }, window = eddy.tumbling("10s"),
                    select = { "person.id", "auction.id as auction", "window_start" } },
  watermark = { out_of_order = "20s" },
}`

// sessionJoinCrashScript joins persons with the auctions they opened in
// the same session: at most 5s apart.
const sessionJoinCrashScript = `return {
  sources = {
    person = { parse = eddy.json{ id = "integer", t = "number" }, event_time = "t" },
    auction = { parse = eddy.json{ id = "integer", seller = "integer", t = "number" }, event_time = "t" },
  },
  join = eddy.join{ left = "person", right = "auction", on = { "id", "seller" }, window = eddy.session("5s"),
                    select = { "person.id", "auction.id as auction", "window_start" } },
  watermark = { out_of_order = "20s" },
}`

// tumblingPair is the window start of a person and an auction of theirs
// in the same 10s tumbling window.
func tumblingPair(p, a int64) (int64, bool) {
	return p / 10000 * 10000, p/10000 == a/10000
}

// sessionPair is the session start of a person and an auction of theirs
// at most 5s apart, alone in their key's session.
func sessionPair(p, a int64) (int64, bool) {
	return min(p, a), max(p, a)-min(p, a) <= 5000
}

type crashPerson struct {
	ID int64   `json:"id"`
	T  float64 `json:"t"`
}

type crashAuction struct {
	ID     int64   `json:"id"`
	Seller int64   `json:"seller"`
	T      float64 `json:"t"`
}

// joinCrashData writes files persons files and as many auction files:
// auction file k holds the auctions of file k's persons (0s, 4s or 8s
// after them: some in the next window, and some by sellers who never
// registered). It returns the reference: each joined row, computed in
// plain Go from the person's and auction's times (ms) by pair.
func joinCrashData(t *testing.T, gen string, files, perFile int, pair func(p, a int64) (start int64, ok bool)) map[string]bool {
	t.Helper()
	ms := func(s float64) int64 { return int64(math.Round(s * 1000)) }
	var persons []crashPerson
	var auctions []crashAuction
	for k := range files {
		var ps []string
		var as []crashAuction
		for j := range perFile {
			i := int64(k*perFile + j)
			p := crashPerson{ID: i, T: float64(i) * 0.37}
			persons = append(persons, p)
			b, _ := json.Marshal(p)
			ps = append(ps, string(b))
			seller := i
			if i%7 == 0 {
				seller = -i - 1 // nobody
			}
			as = append(as, crashAuction{ID: 1000000 + i, Seller: seller, T: p.T + float64(i%3)*4})
		}
		sort.Slice(as, func(a, b int) bool { return as[a].T < as[b].T })
		var lines []string
		for _, a := range as {
			b, _ := json.Marshal(a)
			lines = append(lines, string(b))
		}
		auctions = append(auctions, as...)
		for dir, content := range map[string][]string{"person": ps, "auction": lines} {
			if err := os.MkdirAll(filepath.Join(gen, dir), 0o755); err != nil {
				t.Fatal(err)
			}
			name := filepath.Join(gen, dir, fmt.Sprintf("part-%03d.json", k))
			if err := os.WriteFile(name, []byte(strings.Join(content, "\n")+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	want := map[string]bool{}
	for _, p := range persons {
		for _, a := range auctions {
			if start, ok := pair(ms(p.T), ms(a.T)); ok && a.Seller == p.ID {
				want[fmt.Sprintf(`{"id":%d,"auction":%d,"window_start":"%s"}`, p.ID, a.ID, time.UnixMilli(start).UTC().Format("2006-01-02T15:04:05.000Z"))] = true
			}
		}
	}
	return want
}

// A join's waiting records survive kill -9: runs killed at observed
// points (after a checkpoint that wrote state, partway through the files
// moved in after it) and a last run to the end print, together, exactly
// the reference's rows — persons read before a kill still meet the
// auctions read after it — with repeats only of rows after the last
// checkpoint (stdout is at-least-once).
func TestJoinSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("kills eddy mid-run several times")
	}
	t.Run("tumbling", func(t *testing.T) { joinSurvivesKill(t, joinCrashScript, tumblingPair) })
	// A session's records wait until the watermark passes its end, its
	// rows all come then: a person read before a kill still meets the
	// auction read after it, and a session a checkpoint saw open is not
	// emitted twice or lost.
	t.Run("session", func(t *testing.T) { joinSurvivesKill(t, sessionJoinCrashScript, sessionPair) })
}

func joinSurvivesKill(t *testing.T, src string, pair func(p, a int64) (int64, bool)) {
	base := t.TempDir()
	const files, perFile = 4, 150
	want := joinCrashData(t, filepath.Join(base, "gen"), files, perFile, pair)
	script := filepath.Join(base, "join.lua")
	if err := os.WriteFile(script, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	in := map[string]string{}
	for _, side := range []string{"person", "auction"} {
		in[side] = filepath.Join(base, "in", side)
		if err := os.MkdirAll(in[side], 0o755); err != nil {
			t.Fatal(err)
		}
	}
	publish := func(side string, k int) {
		name := fmt.Sprintf("part-%03d.json", k)
		if err := os.Rename(filepath.Join(base, "gen", side, name), filepath.Join(in[side], name)); err != nil {
			t.Fatal(err)
		}
	}
	args := []string{"run", script, "--source", "person=dir:" + in["person"] + ",auction=dir:" + in["auction"],
		"--state", filepath.Join(base, "state"), "--checkpoint-interval", "50ms", "--trigger-interval", "50ms"}
	rng := rand.New(rand.NewPCG(15, 16))
	var out strings.Builder
	publish("person", 0)
	for k := range files - 1 {
		r := startLive(t, args...)
		cp := r.checkpointWith(t)
		read := r.waitRead(t, 0)
		publish("auction", k)
		publish("person", k+1)
		at := r.waitRead(t, read+1+rng.Int64N(2*perFile*9/10))
		r.kill(t)
		t.Logf("trial %d: checkpoint %d wrote %d keys; killed after %d records read", k, cp.id, cp.changed, at)
		out.WriteString(r.stdout.String())
	}
	publish("auction", files-1)
	stdout, stderr, err := eddy(t, append(args, "--until-idle")...)
	if err != nil {
		t.Fatalf("last run: %v\n%s", err, stderr)
	}
	out.WriteString(stdout)
	got := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if line == "" {
			continue
		}
		if !want[line] {
			t.Errorf("a row the reference lacks: %s", line)
		}
		got[line] = true
	}
	for row := range want {
		if !got[row] {
			t.Errorf("missing row: %s", row)
		}
	}
	if len(want) < perFile {
		t.Fatalf("the reference has only %d rows: the data joins too little to test anything", len(want))
	}
	t.Logf("%d rows, all present, none extra", len(want))
}

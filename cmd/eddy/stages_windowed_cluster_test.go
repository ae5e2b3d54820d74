package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/eddy-stream/eddy/internal/testenv"
)

// stages_three.lua (bids per auction in 10 s windows; per auction and
// minute, a windowed second stage; per minute, an unwindowed third) on two
// nodes with --repartition, node b killed with kill -9 (stagesOnTwoNodes):
// the per-minute rows equal the direct computation, each once.
func TestWindowedStagesOnTwoNodesSurviveKill(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two nodes and kills one")
	}
	const files, perFile = 6, 3_000 // 30 s of event time per file
	gen, bids := genBids(t, files, perFile, 300)
	stagesOnTwoNodes(t, threeScript, files, []stageStream{{dir: gen, file: "part-%05d.jsonl"}}, expectedThree(bids), false)
}

// stages_three_windowed.lua (three windowed stages: the third closes its
// windows by the markers of stage 2's partitions on the third stage's
// topic) the same way, the nodes writing a Kafka topic with
// --exactly-once: the third stage closes windows live on node a (rows
// committed on the output topic before any run ends), and what a
// read_committed reader reads in the end equals the direct computation,
// each row once.
func TestThreeWindowedStagesOnTwoNodesExactlyOnce(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two nodes and kills one")
	}
	const files, perFile = 6, 3_000
	gen, bids := genBids(t, files, perFile, 300)
	stagesOnTwoNodes(t, "testdata/stages_three_windowed.lua", files, []stageStream{{dir: gen, file: "part-%05d.jsonl"}},
		expectedThreeWindowed(bids), true)
}

// expectedThreeWindowed is stages_three_windowed.lua's result computed
// directly, by window start and busy count.
func expectedThreeWindowed(bids [][2]int64) string {
	const tenS, minute, twoMin = 10_000, 60_000, 120_000
	type win struct{ key, start int64 }
	counts := map[win]int64{}
	for _, b := range bids {
		counts[win{b[0], b[1] - b[1]%tenS}]++
	}
	type perMinute struct{ peak, active int64 }
	second := map[win]*perMinute{}
	for w, n := range counts {
		last := w.start + tenS - 1
		k := win{w.key, last - last%minute}
		a := second[k]
		if a == nil {
			a = &perMinute{}
			second[k] = a
		}
		a.peak, a.active = max(a.peak, n), a.active+1
	}
	type perTwo struct{ auctions, peaks int64 }
	third := map[win]*perTwo{}
	for w, a := range second {
		last := w.start + minute - 1
		k := win{a.active, last - last%twoMin}
		x := third[k]
		if x == nil {
			x = &perTwo{}
			third[k] = x
		}
		x.auctions, x.peaks = x.auctions+1, x.peaks+a.peak
	}
	var sb strings.Builder
	for k, x := range third {
		fmt.Fprintf(&sb, "{\"active\":%d,\"window_start\":%q,\"window_end\":%q,\"auctions\":%d,\"peaks\":%d}\n",
			k.key, msTime(k.start), msTime(k.start+twoMin), x.auctions, x.peaks)
	}
	return sb.String()
}

// stages_join_windowed.lua (a windowed join's aggregate, then a windowed
// stage, then a last one) the same way: its rows equal those of one
// process reading the same events from files.
func TestWindowedStagesAfterAJoinOnTwoNodesSurviveKill(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two nodes and kills one")
	}
	const events, files = 60_000, 6
	gen := filepath.Join(t.TempDir(), "gen")
	genNexmarkFiles(t, gen, events, files)
	const script = "testdata/stages_join_windowed.lua"
	want, stderr, err := eddy(t, "run", script, "--source",
		"person=dir:"+filepath.Join(gen, "person")+",auction=dir:"+filepath.Join(gen, "auction"), "--until-idle", "-q")
	if err != nil {
		t.Fatalf("in one process: %v\n%s", err, stderr)
	}
	if strings.Count(want, "\n") < 3 {
		t.Fatalf("in one process, %d rows: the comparison would prove little\n%s", strings.Count(want, "\n"), want)
	}
	stagesOnTwoNodes(t, script, files, []stageStream{
		{name: "person", dir: filepath.Join(gen, "person"), file: "part-%05d.json"},
		{name: "auction", dir: filepath.Join(gen, "auction"), file: "part-%05d.json"},
	}, want, false)
}

// stageStream is one source of a stagesOnTwoNodes test: its name (none
// for a pipeline of one source) and its files, file being their name
// pattern by number.
type stageStream struct{ name, dir, file string }

// stagesOnTwoNodes runs script, whose second stage is windowed and which
// has a third, on two nodes with --repartition over the files of streams,
// produced one number at a time to topics of 4 partitions: stage 2's
// windows close by the watermark stage 1's partitions mark on the stage
// topic, and its rows go on to stage 3 through a second stage topic. Node
// b checkpoints every 3 s and is killed with kill -9 once it has written
// stage 1 rows since its last checkpoint; node a takes its partitions over
// (of every stage), and stage 2 closes windows live there (rows committed
// on the third stage's topic before any run ends). A last run drains the
// rest. Every row of the three runs must equal want's (as JSON objects,
// in any order), each once: a stage-1 row lost, late in stage 2 or counted
// twice would change its window's sums.
//
// With exactlyOnce the nodes are static members (instance a and b; the
// last run is b restarted, whose start aborts the sink transaction the
// kill left open) writing a Kafka topic with --exactly-once, and the rows
// are what a read_committed reader reads.
func stagesOnTwoNodes(t *testing.T, script string, files int, streams []stageStream, want string, exactlyOnce bool) {
	t.Helper()
	brokers := testenv.Kafka(t)
	hosts := strings.Join(brokers, ",")
	topics := make([]string, len(streams))
	for i := range streams {
		topics[i] = testenv.NewTopic(t, brokers, 4)
	}
	group := topics[0] + "-g"
	sources := func(instance string) string {
		var uris []string
		for i, s := range streams {
			u := "kafka://" + hosts + "/" + topics[i] + "?group=" + group + "&poll=20ms&session-timeout=6s"
			if s.name != "" {
				u = s.name + "=" + u
			}
			if instance != "" {
				u += "&instance=" + instance
			}
			uris = append(uris, u)
		}
		return strings.Join(uris, ",")
	}
	deleteRepartitionTopicsAfter(t, brokers, group)
	deleteStageTopicsAfter(t, brokers, group)
	produced := 0
	produceNext := func() {
		for i, s := range streams {
			testenv.Produce(t, brokers, topics[i], readLinesOf(t, filepath.Join(s.dir, fmt.Sprintf(s.file, produced))))
		}
		produced++
	}
	dir := t.TempDir()
	outs := []string{filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "b.jsonl"), filepath.Join(dir, "last.jsonl")}
	args := func(i int, interval string) []string {
		return []string{"run", script, "--source", sources(""), "--repartition",
			"--sink", "file:" + outs[i], "--state", filepath.Join(dir, fmt.Sprint("state", i)),
			"--checkpoint-interval", interval, "--trigger-interval", "50ms"}
	}
	var outURI string
	if exactlyOnce {
		out := testenv.NewTopic(t, brokers, 2)
		outURI = "kafka://" + hosts + "/" + out
		t.Cleanup(func() { // the sink's checkpoint markers
			list, _, err := eddy(t, "topics", "list", "--brokers", hosts)
			if err != nil {
				return
			}
			for _, line := range strings.Split(list, "\n") {
				if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], "__eddy_checkpoints.") && strings.Contains(f[0], out) {
					eddy(t, "topics", "delete", "kafka://"+hosts+"/"+f[0])
				}
			}
		})
		args = func(i int, interval string) []string {
			node := []int{0, 1, 1}[i]
			return []string{"run", script, "--source", sources([]string{"a", "b"}[node]), "--repartition",
				"--sink", outURI, "--exactly-once", "--state", filepath.Join(dir, fmt.Sprint("state", node)),
				"--checkpoint-interval", interval, "--trigger-interval", "50ms"}
		}
	}
	produceNext()
	a := startLive(t, args(0, "100ms")...)
	b := startLive(t, args(1, "3s")...)
	t.Cleanup(func() {
		keepTestLog(t, "wstages-a.log", a.allLog())
		keepTestLog(t, "wstages-b.log", b.allLog())
	})
	b.waitFor(t, "the repartition partitions split between the nodes", func() bool {
		sa, okA := a.status()
		sb, okB := b.status()
		return okA && okB && len(sb.Partitions) > 0 && len(sa.Partitions)+len(sb.Partitions) == 4
	})
	killed := false
	for produced < files-1 && !killed {
		base := b.rowsMark(t)
		produceNext()
		var rows int64
		if rows, killed = b.rowsSince(t, base); killed {
			b.kill(t)
			t.Logf("killed node b with %d rows to stage 2 written since its last checkpoint %d", rows, base.cp)
		}
	}
	if !killed {
		t.Fatalf("node b checkpointed each file's rows before the test saw them written: no kill point\n%s", b.tail())
	}
	for produced < files {
		produceNext()
	}
	// Stage 2's windows close live, on node a, by the markers of all four
	// stage-1 partitions (b's taken over): their rows reach the third
	// stage's topic before any run ends.
	third := "kafka://" + hosts + "/eddy-stages." + group + ".3"
	a.waitFor(t, "stage 2's rows on the third stage's topic", func() bool {
		out, _, err := eddy(t, "consume", third, "--from-beginning", "--read-committed", "--until-idle")
		return err == nil && strings.TrimSpace(out) != ""
	})
	if exactlyOnce {
		// The last stage, windowed, closes windows live too, by the
		// markers of stage 2's partitions.
		a.waitFor(t, "the last stage's rows committed on the output topic", func() bool {
			out, _, err := eddy(t, "consume", outURI, "--from-beginning", "--read-committed", "--until-idle")
			return err == nil && strings.TrimSpace(out) != ""
		})
	}
	before := a.lastCheckpoint()
	a.waitFor(t, "a checkpoint of node a after the rows", func() bool { return a.lastCheckpoint() > before })
	a.cmd.Process.Signal(syscall.SIGTERM)
	<-a.exited
	if !a.cmd.ProcessState.Success() {
		t.Fatalf("node a ended %v\n%s", a.cmd.ProcessState, a.tail())
	}
	_, stderr, err := eddy(t, append(args(2, "100ms"), "--until-idle", "-v")...)
	keepTestLog(t, "wstages-last.log", stderr)
	if err != nil {
		t.Fatalf("last run: %v\n%s", err, stderr)
	}
	var out string
	if exactlyOnce {
		out = readCommittedOnce(t, outURI)
	} else {
		for _, f := range outs {
			b, err := os.ReadFile(f)
			if err != nil && !os.IsNotExist(err) {
				t.Fatal(err)
			}
			out += string(b)
		}
	}
	keepTestLog(t, "wstages-rows.jsonl", out)
	all := canonicalLines(t, out)
	if got, want := strings.Join(all, "\n"), strings.Join(canonicalLines(t, want), "\n"); got != want {
		t.Fatalf("the rows differ from the reference\n%s", lineDiff(got+"\n", want+"\n"))
	}
	t.Logf("%d rows, each once, equal to the reference", len(all))
}

// canonicalLines are out's JSON lines each as its object's canonical
// JSON (fields by name), sorted.
func canonicalLines(t *testing.T, out string) []string {
	t.Helper()
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l == "" {
			continue
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Fatalf("row %q: %v", l, err)
		}
		b, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, string(b))
	}
	slices.Sort(lines)
	return lines
}

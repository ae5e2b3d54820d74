package main

import (
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
	stagesOnTwoNodes(t, threeScript, files, []stageStream{{dir: gen, file: "part-%05d.jsonl"}}, expectedThree(bids))
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
	}, want)
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
// rest. Every row of the three runs, in order, must equal want (sorted
// lines), each once: a stage-1 row lost, late in stage 2 or counted twice
// would change its window's sums.
func stagesOnTwoNodes(t *testing.T, script string, files int, streams []stageStream, want string) {
	t.Helper()
	brokers := testenv.Kafka(t)
	hosts := strings.Join(brokers, ",")
	topics := make([]string, len(streams))
	var uris []string
	for i := range streams {
		topics[i] = testenv.NewTopic(t, brokers, 4)
	}
	group := topics[0] + "-g"
	for i, s := range streams {
		u := "kafka://" + hosts + "/" + topics[i] + "?group=" + group + "&poll=20ms&session-timeout=6s"
		if s.name != "" {
			u = s.name + "=" + u
		}
		uris = append(uris, u)
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
		return []string{"run", script, "--source", strings.Join(uris, ","), "--repartition",
			"--sink", "file:" + outs[i], "--state", filepath.Join(dir, fmt.Sprint("state", i)),
			"--checkpoint-interval", interval, "--trigger-interval", "50ms"}
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
	var all []string
	for _, f := range outs {
		out, err := os.ReadFile(f)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		keepTestLog(t, "wstages-"+filepath.Base(f), string(out))
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if l != "" {
				all = append(all, l)
			}
		}
	}
	slices.Sort(all)
	got := strings.Join(all, "\n") + "\n"
	if got != want {
		t.Fatalf("the rows differ from the reference\n%s", lineDiff(got, want))
	}
	t.Logf("%d rows, each once, equal to the reference", len(all))
}

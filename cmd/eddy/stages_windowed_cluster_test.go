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
// nodes with --repartition: stage 2's minute windows close by the
// watermark stage 1's partitions mark on the stage topic, and its rows go
// on to stage 3 through a second stage topic. Node b checkpoints every
// 3 s and is killed with kill -9 once it has written stage 1 rows since
// its last checkpoint; node a takes its partitions over (of every stage)
// and, while both are live or after, stage 2 fires minute windows (rows
// committed on the third stage's topic before the last run starts). The
// last run drains the rest; the per-minute rows equal the direct
// computation, each once: a stage-1 row lost, late in stage 2 or counted
// twice would change its minute's sums.
func TestWindowedStagesOnTwoNodesSurviveKill(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two nodes and kills one")
	}
	brokers := testenv.Kafka(t)
	const files, perFile = 6, 3_000 // 30 s of event time per file
	gen, bids := genBids(t, files, perFile, 300)
	want := expectedThree(bids)
	topic := testenv.NewTopic(t, brokers, 4)
	group := topic + "-g"
	deleteRepartitionTopicsAfter(t, brokers, group)
	deleteStageTopicsAfter(t, brokers, group)
	uri := "kafka://" + strings.Join(brokers, ",") + "/" + topic + "?group=" + group + "&poll=20ms&session-timeout=6s"
	produced := 0
	produceNext := func() {
		testenv.Produce(t, brokers, topic, readLinesOf(t, filepath.Join(gen, fmt.Sprintf("part-%05d.jsonl", produced))))
		produced++
	}
	dir := t.TempDir()
	outs := []string{filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "b.jsonl"), filepath.Join(dir, "last.jsonl")}
	args := func(i int, interval string) []string {
		return []string{"run", threeScript, "--source", uri, "--repartition",
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
	// Stage 2's minute windows close live, on node a, by the markers of
	// all four stage-1 partitions (b's taken over): their rows reach the
	// third stage's topic before any run ends.
	third := "kafka://" + strings.Join(brokers, ",") + "/eddy-stages." + group + ".3"
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
		t.Fatalf("the per-minute rows differ from the direct computation\n%s", lineDiff(got, want))
	}
	t.Logf("%d per-minute rows, each once, equal to the direct computation", len(all))
}

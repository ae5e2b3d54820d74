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
	"github.com/eddy-stream/eddy/internal/testenv"
)

// q5 (stages) and q8 (a join of two topics) on Kafka topics of four
// partitions, exactly-once into a Kafka topic, killed with kill -9 at
// observed points: a read_committed reader of the output sees each of the
// reference's rows exactly once. The input is produced a file of each
// stream at a time, so each run is killed mid-stream, partway through
// records it has not checkpointed.
func TestNexmarkOnKafkaSurvivesKill(t *testing.T) {
	if testing.Short() {
		t.Skip("kills eddy mid-run several times")
	}
	brokers := testenv.Kafka(t)
	const events, files, trials = 120_000, 8, 4
	gen := filepath.Join(t.TempDir(), "gen")
	genNexmarkFiles(t, gen, events, files)
	persons := readNexmark[nexmark.Person](t, filepath.Join(gen, "person"))
	auctions := readNexmark[nexmark.Auction](t, filepath.Join(gen, "auction"))
	bids := readNexmark[nexmark.Bid](t, filepath.Join(gen, "bid"))
	t.Run("q5", func(t *testing.T) {
		type window struct {
			Start    nexmark.Millis `json:"window_start"`
			End      nexmark.Millis `json:"window_end"`
			Num      int64          `json:"num"`
			Auctions []int64        `json:"auctions"`
		}
		out := killOnKafka(t, brokers, gen, "q5", "nexmark_q5", []string{"bid"}, files, trials, int64(len(bids)/files))
		got, err := nexmark.Decode([]byte(out), func(w window) []any {
			var rows []any
			for _, a := range w.Auctions {
				rows = append(rows, nexmark.Q5Row{WindowStart: w.Start, WindowEnd: w.End, Auction: a, Num: w.Num})
			}
			return rows
		})
		if err != nil {
			t.Fatal(err)
		}
		if err := nexmark.Compare(nexmark.Rows(nexmark.Q5(bids)), got, false); err != nil {
			t.Fatal(err)
		}
	})
	t.Run("q8", func(t *testing.T) {
		type row struct {
			ID        int64          `json:"id"`
			Name      string         `json:"name"`
			StartTime nexmark.Millis `json:"starttime"`
		}
		out := killOnKafka(t, brokers, gen, "q8", "q8", []string{"auction", "person"}, files, trials, int64(len(persons)+len(auctions))/files)
		got, err := nexmark.Decode([]byte(out), func(r row) []any { return []any{nexmark.Q8Row(r)} })
		if err != nil {
			t.Fatal(err)
		}
		if err := nexmark.Compare(nexmark.Rows(nexmark.Q8(persons, auctions)), got, false); err != nil {
			t.Fatal(err)
		}
	})
}

// EDDY_TEST_LOG_DIR=DIR keeps each run's log and the committed rows
// (keepTestLog).
//
// killOnKafka runs the Nexmark script q (pipeline name) on topics of
// four partitions of streams, exactly-once into a topic, trials times killed with kill -9, then
// once to the end, and returns what a read_committed reader of the output
// reads, after checking it holds no line twice. Each trial produces the
// next file of each stream (of files, each perFile records together),
// waits for a checkpoint of its own that wrote state, produces the next
// and kills the run partway through it. The source is a static member of
// its group (instance=i1), so a restart gets the partitions at once rather
// than after the killed member's session times out.
func killOnKafka(t *testing.T, brokers []string, gen, q, name string, streams []string, files, trials int, perFile int64) string {
	t.Helper()
	topics := map[string]string{}
	var sources []string
	group := ""
	for _, s := range streams {
		topics[s] = testenv.NewTopic(t, brokers, 4)
		if group == "" {
			group = topics[s] + "-g"
		}
	}
	for _, s := range streams {
		uri := "kafka://" + strings.Join(brokers, ",") + "/" + topics[s] + "?group=" + group + "&instance=i1&poll=20ms"
		if len(streams) > 1 {
			uri = s + "=" + uri
		}
		sources = append(sources, uri)
	}
	out := testenv.NewTopic(t, brokers, 2)
	outURI := "kafka://" + strings.Join(brokers, ",") + "/" + out
	t.Cleanup(func() {
		// The transactional id has the instance when the run has one
		// kafka:// source URI to take it from (q5), not with several (q8).
		for _, id := range []string{name + "." + out + ".i1", name + "." + out} {
			eddy(t, "topics", "delete", "kafka://"+strings.Join(brokers, ",")+"/__eddy_checkpoints.eddy."+id)
		}
	})
	produced := 0
	produceNext := func() {
		for _, s := range streams {
			file := filepath.Join(gen, s, fmt.Sprintf("part-%05d.json", produced))
			testenv.Produce(t, brokers, topics[s], readLinesOf(t, file))
		}
		produced++
	}
	args := []string{"run", nexmarkScripts + q + ".lua", "--source", strings.Join(sources, ","), "--sink", outURI, "--exactly-once",
		"--state", filepath.Join(t.TempDir(), "state"), "--checkpoint-interval", "100ms", "--trigger-interval", "50ms"}
	rng := rand.New(rand.NewPCG(15, 16))
	produceNext()
	var prev uint64
	for i := range trials {
		r := startLive(t, args...)
		cp := r.checkpointWith(t)
		if cp.id <= prev {
			t.Fatalf("trial %d: checkpoint %d after the one before reached %d: it did not resume", i, cp.id, prev)
		}
		read := r.waitRead(t, 0)
		produceNext()
		target := read + 1 + rng.Int64N(perFile*9/10)
		at := r.waitRead(t, target)
		r.kill(t)
		keepTestLog(t, fmt.Sprintf("%s-trial%d.log", out, i), r.log())
		prev = r.lastCheckpoint()
		t.Logf("trial %d: checkpoint %d wrote %d keys; killed after %d records read (target %d), last checkpoint %d",
			i, cp.id, cp.changed, at, target, prev)
	}
	for produced < files {
		produceNext()
	}
	_, stderr, err := eddy(t, append(args, "-v", "--until-idle")...)
	keepTestLog(t, out+"-last.log", stderr)
	if err != nil {
		t.Fatalf("last run: %v\n%s", err, stderr)
	}
	stdout, stderr, err := eddy(t, "consume", outURI, "--from-beginning", "--read-committed", "--until-idle")
	if err != nil {
		t.Fatalf("consume: %v\n%s", err, stderr)
	}
	keepTestLog(t, out+"-rows.jsonl", stdout)
	seen := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(stdout), "\n") {
		if seen[l] {
			t.Fatalf("a committed row twice: %s", l)
		}
		seen[l] = true
	}
	return stdout
}

// keepTestLog writes data to name in EDDY_TEST_LOG_DIR, when it is set,
// for a post-mortem of a run that went wrong: each killed run's log, the
// last run's and the rows it committed.
func keepTestLog(t *testing.T, name, data string) {
	t.Helper()
	dir := os.Getenv("EDDY_TEST_LOG_DIR")
	if dir == "" {
		return
	}
	if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
		t.Error(err)
	}
}

// readLinesOf reads a file's lines.
func readLinesOf(t *testing.T, file string) [][]byte {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Split(bytes.TrimSuffix(b, []byte("\n")), []byte("\n"))
}

// A second process joining the group of a q5 run on Kafka takes
// partitions from it: the first stops with an error naming the partition
// it lost, rather than going on with later stages that see part of the
// input (eddy runs such pipelines in one process so far).
func TestStagesOnKafkaStopWhenAPartitionMoves(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two processes in one consumer group")
	}
	brokers := testenv.Kafka(t)
	gen := filepath.Join(t.TempDir(), "gen")
	genNexmarkFiles(t, gen, 20_000, 1)
	topic := testenv.NewTopic(t, brokers, 4)
	testenv.Produce(t, brokers, topic, readLinesOf(t, filepath.Join(gen, "bid", "part-00000.json")))
	src := "kafka://" + strings.Join(brokers, ",") + "/" + topic + "?group=" + topic + "-g&poll=20ms"
	run := func(name string) *liveRun {
		return startLive(t, "run", nexmarkScripts+"q5.lua", "--source", src, "--sink", "file:"+filepath.Join(t.TempDir(), "out.jsonl"),
			"--state", filepath.Join(t.TempDir(), name), "--checkpoint-interval", "100ms")
	}
	first := run("first")
	first.checkpointWith(t)
	second := run("second")
	first.waitFor(t, "the first run's end", func() bool {
		select {
		case <-first.exited:
			return true
		default:
			return false
		}
	})
	if first.cmd.ProcessState.Success() || !strings.Contains(first.tail(), "was taken from this process (did another process join the consumer group?)") {
		t.Fatalf("the first run ended %v, want an error naming the partition it lost\n%s", first.cmd.ProcessState, first.tail())
	}
	second.kill(t)
}

// A pipeline that reads its Kafka topics whole in one process writes no
// changelog: --changelog on its command line is refused, naming why,
// rather than accepted and ignored.
func TestInProcessKafkaRefusesChangelog(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := testenv.NewTopic(t, brokers, 2)
	src := "kafka://" + strings.Join(brokers, ",") + "/" + topic + "?group=" + topic + "-g"
	_, stderr, err := eddy(t, "run", nexmarkScripts+"q5.lua", "--source", src, "--changelog", "--sink", "discard:")
	if err == nil || !strings.Contains(stderr, "--changelog: ") || !strings.Contains(stderr, "writes no changelog") {
		t.Fatalf("eddy run q5.lua on Kafka with --changelog: err=%v, want it refused naming why\n%s", err, stderr)
	}
}

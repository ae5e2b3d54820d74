package kafka_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/internal/reference"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eddy-stream/eddy/connectors/gen"
	"github.com/eddy-stream/eddy/internal/testenv"
)

// These tests run the eddy binary against the real broker, as a user
// would: several processes of one group, kill -9 mid-stream, replays.

var (
	buildOnce sync.Once
	eddyBin   string
	buildErr  error
)

// eddyPath builds cmd/eddy once per test binary.
func eddyPath(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "eddy-kafka-bin-")
		if err != nil {
			buildErr = err
			return
		}
		eddyBin = filepath.Join(dir, "eddy")
		out, err := exec.Command("go", "build", "-o", eddyBin, "../../cmd/eddy").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("building eddy: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return eddyBin
}

func eddy(t *testing.T, args ...string) (string, string, error) {
	t.Helper()
	cmd := exec.Command(eddyPath(t), args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	return stdout.String(), stderr.String(), err
}

// flowLines generates netflow lines (seed 003's input).
func flowLines(t *testing.T, count int64) (dir string, lines [][]byte) {
	t.Helper()
	dir = filepath.Join(t.TempDir(), "flows")
	if err := gen.WriteDir(dir, "netflow", 42, count, 4, 0.001); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	sort.Strings(files)
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		lines = append(lines, bytes.Split(bytes.TrimRight(b, "\n"), []byte("\n"))...)
	}
	return dir, lines
}

// lastCounts reads update-mode rows {"dstdevice":…,"count":…} and keeps
// the last count per device.
func lastCounts(t *testing.T, out []byte, into map[string]int64) {
	t.Helper()
	eachCount(t, out, func(dev string, n int64) { into[dev] = n })
}

// eachCount calls fn with each row {"dstdevice":…,"count":…} of out.
func eachCount(t *testing.T, out []byte, fn func(dev string, n int64)) {
	t.Helper()
	for _, l := range bytes.Split(out, []byte("\n")) {
		if len(l) == 0 {
			continue
		}
		var row struct {
			Dev   string `json:"dstdevice"`
			Count int64  `json:"count"`
		}
		if err := json.Unmarshal(l, &row); err != nil {
			t.Fatalf("bad result line %q: %v", l, err)
		}
		fn(row.Dev, row.Count)
	}
}

func sameCounts(t *testing.T, what string, want, got map[string]int64) {
	t.Helper()
	bad := 0
	for k, w := range want {
		if got[k] != w {
			if bad < 5 {
				t.Errorf("%s: %s counted %d, want %d", what, k, got[k], w)
			}
			bad++
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok {
			t.Errorf("%s: %s counted %d, want none", what, k, g)
			bad++
		}
	}
	if bad > 0 {
		t.Fatalf("%s: %d of %d keys differ", what, bad, len(want))
	}
}

func produceLines(t *testing.T, brokers []string, topic string, lines [][]byte) {
	t.Helper()
	testenv.Produce(t, brokers, topic, lines)
}

func brokerURI(brokers []string, topic, params string) string { return uri(brokers, topic, params) }

// The netflow seed reading a topic gives the same top 20 as reading the
// files the topic was filled from.
func TestNetflowFromTopicEqualsFiles(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := testenv.NewTopic(t, brokers, 4)
	dir, _ := flowLines(t, 60_000)
	if _, stderr, err := eddy(t, "produce", brokerURI(brokers, topic, ""), "--from", dir, "--key", "dstdevice"); err != nil {
		t.Fatalf("eddy produce: %v\n%s", err, stderr)
	}
	script := "../../scripts/netflow_webservers.lua"
	deadFile := filepath.Join(t.TempDir(), "dead.jsonl")
	fromFiles, stderr, err := eddy(t, "run", script, "--source", "dir:"+dir, "--until-idle", "-q", "--dead-letter", "file:"+deadFile)
	if err != nil {
		t.Fatalf("run on files: %v\n%s", err, stderr)
	}
	deadTopic := testenv.NewTopic(t, brokers, 1)
	fromTopic, stderr, err := eddy(t, "run", script, "--source", brokerURI(brokers, topic, "group="+topic), "--until-idle", "-q",
		"--dead-letter", brokerURI(brokers, deadTopic, ""))
	if err != nil {
		t.Fatalf("run on the topic: %v\n%s", err, stderr)
	}
	if strings.Count(fromFiles, "\n") != 20 || fromTopic != fromFiles {
		t.Fatalf("top 20 from the topic differs from the files'\ntopic:\n%s\nfiles:\n%s", fromTopic, fromFiles)
	}
	// The same records failed, and their dead letters say where from.
	deadLines, _ := os.ReadFile(deadFile)
	want := strings.Count(string(deadLines), "\n")
	dead := consumeAllIdle(t, brokers, deadTopic)
	if want == 0 || len(dead) != want {
		t.Fatalf("%d dead letters in the topic, %d from the files", len(dead), want)
	}
	h := map[string]string{}
	for _, x := range dead[0].Headers {
		h[x.Key] = string(x.Value)
	}
	failed := map[string]bool{}
	for _, l := range strings.Split(strings.TrimSpace(string(deadLines)), "\n") {
		var d struct{ Record string }
		if json.Unmarshal([]byte(l), &d) == nil {
			failed[d.Record] = true
		}
	}
	if h["kafka-topic"] != topic || h["kafka-offset"] == "" || h["eddy-error"] == "" || !failed[string(dead[0].Value)] {
		t.Fatalf("dead letter %q with headers %v", dead[0].Value, h)
	}
}

// Two processes of one group split a 4-partition topic while records
// arrive, one joining mid-stream (a cooperative rebalance hands two
// partitions over); their counts add up exactly to the independent ones.
func TestTwoProcessesSplitTheGroup(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := testenv.NewTopic(t, brokers, 4)
	_, lines := flowLines(t, 80_000)
	want := reference.NetflowCounts(lines)
	group := topic + "-g"
	start := func(name string) (*exec.Cmd, *bytes.Buffer, *bytes.Buffer) {
		// Without the changelog each process counts what it read, so the
		// two tables add up (TestClusterOfThreeNodes moves the state).
		cmd := exec.Command(eddyPath(t), "run", "testdata/flows_all.lua", "--source", brokerURI(brokers, topic, "group="+group),
			"--changelog=false", "--state", filepath.Join(t.TempDir(), name), "--checkpoint-interval", "200ms", "--trigger-interval", "100ms",
			"--dead-letter", "file:"+filepath.Join(t.TempDir(), name+".dead.jsonl"), "-v")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd, &out, &errb
	}
	a, aOut, aErr := start("a")
	// Half the records, in slices, before and while b joins.
	half := len(lines) / 2
	feed := func(part [][]byte) {
		for i := 0; i < len(part); i += 4000 {
			produceLines(t, brokers, topic, part[i:min(i+4000, len(part))])
			time.Sleep(50 * time.Millisecond) // a steady input rate
		}
	}
	feed(lines[:half/2])
	b, bOut, bErr := start("b")
	feed(lines[half/2 : half])
	waitMembers(t, brokers, group, 2)
	feed(lines[half:])
	waitNoLag(t, brokers, group, topic)
	for _, c := range []*exec.Cmd{a, b} {
		c.Process.Signal(syscall.SIGTERM)
	}
	for _, c := range []*exec.Cmd{a, b} {
		if err := c.Wait(); err != nil {
			t.Fatalf("a stopped process failed: %v\na:\n%s\nb:\n%s", err, tail(aErr), tail(bErr))
		}
	}
	got := map[string]int64{}
	ca, cb := map[string]int64{}, map[string]int64{}
	lastCounts(t, aOut.Bytes(), ca)
	lastCounts(t, bOut.Bytes(), cb)
	if len(cb) == 0 {
		t.Fatalf("the second process counted nothing: no partitions were handed over\n%s", tail(bErr))
	}
	for k, v := range ca {
		got[k] += v
	}
	for k, v := range cb {
		got[k] += v
	}
	sameCounts(t, "a+b", want, got)
	t.Logf("%d keys: %d counted by a, %d by b", len(want), len(ca), len(cb))
}

// onceEach reads topic's committed records {"n": i} and counts the i in
// [0, n) no record has (missing) and those more than one has (dup).
func onceEach(t *testing.T, brokers []string, topic string, n int) (recs []*kgo.Record, missing, dup int) {
	t.Helper()
	seen := make([]int, n)
	recs = consumeAllIdle(t, brokers, topic)
	for _, r := range recs {
		var row struct{ N int }
		if err := json.Unmarshal(r.Value, &row); err != nil || row.N < 0 || row.N >= n {
			t.Fatalf("bad output %q", r.Value)
		}
		seen[row.N]++
	}
	for _, c := range seen {
		switch {
		case c == 0:
			missing++
		case c > 1:
			dup++
		}
	}
	return recs, missing, dup
}

func tail(b *bytes.Buffer) string {
	s := b.String()
	if len(s) > 3000 {
		s = s[len(s)-3000:]
	}
	return s
}

func admin(t *testing.T, brokers []string) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

// waitMembers waits until the group has n members, each with partitions.
func waitMembers(t *testing.T, brokers []string, group string, n int) {
	t.Helper()
	adm := admin(t, brokers)
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		gs, err := adm.DescribeGroups(t.Context(), group)
		if err == nil {
			g := gs[group]
			withParts := 0
			for _, m := range g.Members {
				if a, ok := m.Assigned.AsConsumer(); ok && len(a.Topics) > 0 && g.State == "Stable" {
					withParts++
				}
			}
			if withParts == n {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("group %s did not reach %d members with partitions in 60s", group, n)
}

// waitNoLag waits until the group's committed offsets reach the topic's
// end: eddy mirrors each checkpoint to them.
func waitNoLag(t *testing.T, brokers []string, group, topic string) {
	t.Helper()
	adm := admin(t, brokers)
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		ends, err1 := adm.ListEndOffsets(t.Context(), topic)
		offs, err2 := adm.FetchOffsetsForTopics(t.Context(), group, topic)
		if err1 == nil && err2 == nil {
			behind := false
			ends.Each(func(o kadm.ListedOffset) {
				c, ok := offs.Lookup(topic, o.Partition)
				if !ok || c.At < o.Offset {
					behind = true
				}
			})
			if !behind {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("group %s still lags on %s after 90s", group, topic)
}

// kill -9 an exactly-once run again and again mid-stream: a read_committed
// consumer of the output sees every input record exactly once.
func TestExactlyOnceRecordsSurviveKill9(t *testing.T) {
	brokers := testenv.Kafka(t)
	in := testenv.NewTopic(t, brokers, 3)
	out := testenv.NewTopic(t, brokers, 2)
	t.Cleanup(func() { deleteTopics(brokers, "__eddy_checkpoints.eddy.passthrough."+out+".i1") })
	const n = 300_000
	lines := make([][]byte, n)
	for i := range lines {
		lines[i] = fmt.Appendf(nil, `{"n":%d}`, i)
	}
	produceLines(t, brokers, in, lines)
	state := filepath.Join(t.TempDir(), "state")
	args := []string{"run", "testdata/passthrough.lua", "--source", brokerURI(brokers, in, "group="+in+"&instance=i1&batch=500"),
		"--sink", brokerURI(brokers, out, ""), "--exactly-once", "--state", state, "--until-idle",
		"--checkpoint-interval", "100ms", "--trigger-interval", "50ms", "-q"}
	kills := killRepeatedly(t, args, 6)
	if kills == 0 {
		t.Fatal("no run was killed: the input is too small for this test")
	}
	if _, stderr, err := eddy(t, args...); err != nil {
		t.Fatalf("the last run: %v\n%s", err, stderr)
	}
	recs, missing, dup := onceEach(t, brokers, out, n)
	if missing > 0 || dup > 0 || len(recs) != n {
		t.Fatalf("after %d kills: %d output records, %d inputs missing, %d repeated", kills, len(recs), missing, dup)
	}
	waitNoLag(t, brokers, in, in) // the transactions committed the source offsets too
	t.Logf("%d kills, %d records exactly once", kills, n)
}

// kill -9 a netflow run in update mode with exactly-once output: the last
// committed value of each key is its exact count.
func TestExactlyOnceNetflowSurvivesKill9(t *testing.T) {
	brokers := testenv.Kafka(t)
	in := testenv.NewTopic(t, brokers, 4)
	out := testenv.NewTopic(t, brokers, 1)
	t.Cleanup(func() { deleteTopics(brokers, "__eddy_checkpoints.eddy.flows_all."+out+".i1") })
	_, lines := flowLines(t, 300_000)
	want := reference.NetflowCounts(lines)
	produceLines(t, brokers, in, lines)
	args := []string{"run", "testdata/flows_all.lua", "--source", brokerURI(brokers, in, "group="+in+"&instance=i1&batch=500"),
		"--sink", brokerURI(brokers, out, ""), "--exactly-once", "--state", filepath.Join(t.TempDir(), "state"), "--until-idle",
		"--checkpoint-interval", "100ms", "--trigger-interval", "50ms", "-q", "--dead-letter", "file:" + filepath.Join(t.TempDir(), "dead.jsonl")}
	kills := killRepeatedly(t, args, 5)
	if kills == 0 {
		t.Fatal("no run was killed: the input is too small for this test")
	}
	if _, stderr, err := eddy(t, args...); err != nil {
		t.Fatalf("the last run: %v\n%s", err, stderr)
	}
	var buf bytes.Buffer
	for _, r := range consumeAllIdle(t, brokers, out) {
		buf.Write(r.Value)
		buf.WriteByte('\n')
	}
	got := map[string]int64{}
	lastCounts(t, buf.Bytes(), got)
	sameCounts(t, fmt.Sprintf("after %d kills", kills), want, got)
	t.Logf("%d kills, %d keys exact", kills, len(want))
}

// killRepeatedly starts args and kill -9s it, `times` times or until a
// run ends by itself, each 50-500ms after its start (an
// uninterrupted run of the tests' input takes a second or two).
func killRepeatedly(t *testing.T, args []string, times int) int {
	t.Helper()
	rng := rand.New(rand.NewPCG(7, 9))
	kills := 0
	for i := 0; i < times; i++ {
		cmd := exec.Command(eddyPath(t), args...)
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &bytes.Buffer{}, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("run %d failed before the kill: %v\n%s", i, err, stderr.String())
			}
			return kills
		case <-time.After(50*time.Millisecond + time.Duration(rng.Int64N(int64(450*time.Millisecond)))):
			cmd.Process.Signal(syscall.SIGKILL)
			<-done
			kills++
		}
	}
	return kills
}

// consumeAllIdle reads a topic read_committed to its current end.
func consumeAllIdle(t *testing.T, brokers []string, topic string) []*kgo.Record {
	t.Helper()
	adm := admin(t, brokers)
	ends, err := adm.ListCommittedOffsets(t.Context(), topic)
	if err != nil {
		t.Fatal(err)
	}
	var total int64
	ends.Each(func(o kadm.ListedOffset) { total += o.Offset })
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topic), kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.KeepControlRecords())
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	next := map[int32]int64{}
	done := func() bool {
		ok := true
		ends.Each(func(o kadm.ListedOffset) {
			if next[o.Partition] < o.Offset {
				ok = false
			}
		})
		return ok
	}
	var out []*kgo.Record
	for !done() && ctx.Err() == nil {
		cl.PollFetches(ctx).EachRecord(func(r *kgo.Record) {
			next[r.Partition] = r.Offset + 1
			if !r.Attrs.IsControl() {
				out = append(out, r)
			}
		})
	}
	return out
}

func deleteTopics(brokers []string, topics ...string) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		return
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	kadm.NewClient(cl).DeleteTopics(ctx, topics...)
}

// A replay from a savepoint (and from a checkpoint, and from the earliest
// offset with empty state) to the end gives the original run's result.
func TestReplayGivesTheOriginalResult(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := testenv.NewTopic(t, brokers, 2)
	_, lines := flowLines(t, 40_000)
	script := "../../scripts/netflow_webservers.lua"
	stateDir := filepath.Join(t.TempDir(), "state")
	dead := "file:" + filepath.Join(t.TempDir(), "dead.jsonl")
	run := func(args ...string) string {
		t.Helper()
		out, stderr, err := eddy(t, append(args, "--until-idle", "-q", "--dead-letter", dead)...)
		if err != nil {
			t.Fatalf("eddy %s: %v\n%s", strings.Join(args, " "), err, stderr)
		}
		return out
	}
	src := brokerURI(brokers, topic, "group="+topic)
	produceLines(t, brokers, topic, lines[:len(lines)/2])
	run("run", script, "--source", src, "--state", stateDir)
	if out, stderr, err := eddy(t, "checkpoints", "save", "half", "--state", stateDir); err != nil {
		t.Fatalf("checkpoints save: %v\n%s%s", err, out, stderr)
	}
	list, _, _ := eddy(t, "checkpoints", "list", "--state", stateDir)
	var halfID string
	for _, l := range strings.Split(list, "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[1] == "half" {
			halfID = f[0]
		}
	}
	if halfID == "" {
		t.Fatalf("checkpoints list shows no savepoint half:\n%s", list)
	}
	produceLines(t, brokers, topic, lines[len(lines)/2:])
	original := run("run", script, "--source", src, "--state", stateDir)
	if want := reference.Top(reference.NetflowCounts(lines), 20); original != want {
		t.Fatalf("the original run printed\n%s\nwant (plain Go over the same lines):\n%s", original, want)
	}
	if got := run("replay", script, "--source", src, "--state", stateDir, "--from-savepoint", "half"); got != original {
		t.Fatalf("replay from the savepoint:\n%s\nwant:\n%s", got, original)
	}
	if got := run("replay", script, "--source", src, "--state", stateDir, "--from-checkpoint", halfID); got != original {
		t.Fatalf("replay from checkpoint %s:\n%s\nwant:\n%s", halfID, got, original)
	}
	if got := run("replay", script, "--source", src, "--from-offset", "earliest"); got != original {
		t.Fatalf("replay from the earliest offset:\n%s\nwant:\n%s", got, original)
	}
	if got := run("replay", script, "--source", src, "--from-time", "2000-01-01T00:00:00Z"); got != original {
		t.Fatalf("replay from a time before the first record:\n%s\nwant:\n%s", got, original)
	}
	if got := run("replay", script, "--source", src, "--from-time", time.Now().Add(time.Hour).UTC().Format(time.RFC3339)); got != "" {
		t.Fatalf("replay from a time after the last record printed\n%s", got)
	}
	_, stderr, err := eddy(t, "replay", script, "--source", src, "--state", stateDir, "--from-offset", "earliest")
	if err == nil || !strings.Contains(stderr, "holds checkpoints") {
		t.Fatalf("a replay from an offset into a used state directory: %v\n%s", err, stderr)
	}
}

// Seed 000 on Kafka: eddy produce --follow copies a growing tshark capture
// into a topic, and tshark_ips.lua reads it and writes the parsed packets
// to another topic: the same packets as reading the file directly.
func TestSeed000OnKafka(t *testing.T) {
	brokers := testenv.Kafka(t)
	lines := testenv.NewTopic(t, brokers, 1)
	packets := testenv.NewTopic(t, brokers, 1)
	dir := t.TempDir()
	capture := filepath.Join(dir, "en0.log")
	if _, stderr, err := eddy(t, "gen", "tshark", "--count", "3000", "--out", capture); err != nil {
		t.Fatalf("eddy gen: %v\n%s", err, stderr)
	}
	follow := exec.Command(eddyPath(t), "produce", brokerURI(brokers, lines, ""), "--follow", capture, "--offsets", filepath.Join(dir, "offsets"))
	var followErr bytes.Buffer
	follow.Stderr = &followErr
	if err := follow.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { follow.Process.Kill(); follow.Wait() })
	script := "../../scripts/tshark_ips.lua"
	pipeline := exec.Command(eddyPath(t), "run", script, "--source", brokerURI(brokers, lines, "group="+lines),
		"--records", brokerURI(brokers, packets, ""), "--dead-letter", "file:"+filepath.Join(dir, "dead.jsonl"), "-q")
	pipeline.Stdout = &bytes.Buffer{}
	var pipeErr bytes.Buffer
	pipeline.Stderr = &pipeErr
	if err := pipeline.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pipeline.Process.Kill(); pipeline.Wait() })
	// The capture grows while both run.
	more, err := exec.Command(eddyPath(t), "gen", "tshark", "--count", "2000", "--seed", "5", "--out", filepath.Join(dir, "more.log")).CombinedOutput()
	if err != nil {
		t.Fatalf("eddy gen: %v\n%s", err, more)
	}
	extra, _ := os.ReadFile(filepath.Join(dir, "more.log"))
	f, err := os.OpenFile(capture, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.Write(extra)
	f.Close()
	// The capture's packets, parsed in plain Go, are the expected answer.
	captured, err := os.ReadFile(capture)
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, p := range reference.TsharkPackets(strings.Split(strings.TrimRight(string(captured), "\n"), "\n")) {
		want = append(want, p.String())
	}
	if len(want) < 4000 {
		t.Fatalf("only %d packets in the capture", len(want))
	}
	deadline := time.Now().Add(60 * time.Second)
	var got []string
	for time.Now().Before(deadline) {
		got = got[:0]
		for _, r := range consumeAllIdle(t, brokers, packets) {
			var p reference.Packet
			if err := json.Unmarshal(r.Value, &p); err != nil {
				t.Fatalf("packet record %s: %v", r.Value, err)
			}
			got = append(got, p.String())
		}
		if len(got) >= len(want) {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	sort.Strings(got)
	sort.Strings(want)
	if err := reference.DiffRows(strings.Join(want, "\n"), strings.Join(got, "\n")); err != nil {
		t.Fatalf("the packets topic (sorted) against the capture's packets: %v\nproduce: %s\npipeline: %s", err, tail(&followErr), tail(&pipeErr))
	}
}

// The broker stops and starts again during an exactly-once run: eddy
// waits, logs, resumes, and the output holds every record exactly once.
// The broker is one of the test's own (testenv.PrivateKafka), not the
// shared one.
func TestBrokerRestartDuringRun(t *testing.T) {
	kafka := testenv.PrivateKafka(t)
	brokers := kafka.Brokers
	in := testenv.NewTopic(t, brokers, 3)
	out := testenv.NewTopic(t, brokers, 2)
	t.Cleanup(func() { deleteTopics(brokers, "__eddy_checkpoints.eddy.passthrough."+out) })
	const n = 100_000
	lines := make([][]byte, n)
	for i := range lines {
		lines[i] = fmt.Appendf(nil, `{"n":%d}`, i)
	}
	produceLines(t, brokers, in, lines[:n/2])
	cmd := exec.Command(eddyPath(t), "run", "testdata/passthrough.lua", "--source", brokerURI(brokers, in, "group="+in),
		"--sink", brokerURI(brokers, out, ""), "--exactly-once", "--state", filepath.Join(t.TempDir(), "state"),
		"--checkpoint-interval", "200ms")
	var stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &bytes.Buffer{}, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		if t.Failed() {
			t.Logf("eddy's log:\n%s", tail(&stderr))
		}
	})
	waitNoLag(t, brokers, in, in)
	kafka.Stop(t)
	kafka.Start(t)
	produceLines(t, brokers, in, lines[n/2:])
	waitNoLag(t, brokers, in, in)
	cmd.Process.Signal(syscall.SIGTERM)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("eddy failed after the broker came back: %v\n%s", err, tail(&stderr))
	}
	seen := map[string]int{}
	for _, r := range consumeAllIdle(t, brokers, out) {
		seen[string(r.Value)]++
	}
	for i := 0; i < n; i++ {
		if c := seen[fmt.Sprintf(`{"n":%d}`, i)]; c != 1 {
			t.Fatalf("record %d is in the output %d times\n%s", i, c, tail(&stderr))
		}
	}
	if !strings.Contains(stderr.String(), "retrying with backoff") {
		t.Logf("no fetch error was logged while the broker was down:\n%s", tail(&stderr))
	}
}

// Two exactly-once processes of one group (each its own instance, so its
// own transactional id), the second joining mid-stream: a read_committed
// consumer of their shared output sees every input exactly once.
func TestExactlyOnceTwoProcesses(t *testing.T) {
	brokers := testenv.Kafka(t)
	in := testenv.NewTopic(t, brokers, 4)
	out := testenv.NewTopic(t, brokers, 2)
	t.Cleanup(func() {
		deleteTopics(brokers, "__eddy_checkpoints.eddy.passthrough."+out+".a", "__eddy_checkpoints.eddy.passthrough."+out+".b",
			"eddy-changelog."+in+"."+in)
	})
	const n = 80_000
	lines := make([][]byte, n)
	for i := range lines {
		lines[i] = fmt.Appendf(nil, `{"n":%d}`, i)
	}
	dir := t.TempDir()
	start := func(instance string) (*exec.Cmd, *bytes.Buffer) {
		cmd := exec.Command(eddyPath(t), "run", "testdata/passthrough.lua",
			"--source", brokerURI(brokers, in, "group="+in+"&instance="+instance),
			"--sink", brokerURI(brokers, out, ""), "--exactly-once", "--state", filepath.Join(dir, instance),
			"--checkpoint-interval", "200ms", "--trigger-interval", "100ms")
		var stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &bytes.Buffer{}, &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		return cmd, &stderr
	}
	feed := func(part [][]byte) {
		for i := 0; i < len(part); i += 2000 {
			produceLines(t, brokers, in, part[i:min(i+2000, len(part))])
			time.Sleep(50 * time.Millisecond)
		}
	}
	killed, killedErr := start("a")
	feed(lines[:n/4])
	b, bErr := start("b")
	feed(lines[n/4 : n/2])
	waitMembers(t, brokers, in, 2)
	// a dies mid-stream, its transaction open; restarted under the same
	// instance it fences that transaction and takes its partitions back
	// from the changelog's markers.
	feed(lines[n/2 : 5*n/8])
	killed.Process.Kill()
	killed.Wait()
	feed(lines[5*n/8 : 3*n/4])
	a, aErr := start("a")
	feed(lines[3*n/4:])
	waitMembers(t, brokers, in, 2)
	waitNoLag(t, brokers, in, in)
	for _, c := range []*exec.Cmd{a, b} {
		c.Process.Signal(syscall.SIGTERM)
	}
	logs := func() string {
		return fmt.Sprintf("a before its kill:\n%s\na restarted:\n%s\nb:\n%s", tail(killedErr), tail(aErr), tail(bErr))
	}
	for _, c := range []*exec.Cmd{a, b} {
		if err := c.Wait(); err != nil {
			t.Fatalf("a stopped process failed: %v\n%s", err, logs())
		}
	}
	recs, missing, dup := onceEach(t, brokers, out, n)
	if missing > 0 || dup > 0 {
		t.Fatalf("%d output records: %d inputs missing, %d repeated\n%s", len(recs), missing, dup, logs())
	}
}

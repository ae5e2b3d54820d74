package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eddy-stream/eddy/internal/nexmark"
	"github.com/eddy-stream/eddy/internal/statusapi"
	"github.com/eddy-stream/eddy/internal/testenv"
)

// q4 (an interval join, then two stages: the highest bid per auction,
// then the mean of those per category) on two nodes with --repartition.
// Node b checkpoints every 3 s; it is killed with kill -9 once it has
// written rows of stage 1 to the stage topic since its last checkpoint.
// Those rows were written in its changelog's open transaction, so they are
// aborted with it, and node a, taking b's partitions over from b's last
// checkpoint, writes them again: stage 2 counts each auction's winning
// price once. A row counted twice would move its category's mean; the
// means (all emitted by the last run, at the input's end) equal the
// reference's exactly.
func TestStagesOnTwoNodesSurviveKill(t *testing.T) {
	if testing.Short() {
		t.Skip("runs two nodes and kills one")
	}
	brokers := testenv.Kafka(t)
	// Files produced one at a time: each a chance to find b with rows
	// it has not checkpointed.
	const events, files = 60_000, 6
	gen := filepath.Join(t.TempDir(), "gen")
	genNexmarkFiles(t, gen, events, files)
	auctions := readNexmark[nexmark.Auction](t, filepath.Join(gen, "auction"))
	bids := readNexmark[nexmark.Bid](t, filepath.Join(gen, "bid"))
	streams := []string{"auction", "bid"}
	topics := map[string]string{}
	var uris []string
	for _, s := range streams {
		topics[s] = testenv.NewTopic(t, brokers, 4)
	}
	group := topics["auction"] + "-g"
	for _, s := range streams {
		uris = append(uris, s+"=kafka://"+strings.Join(brokers, ",")+"/"+topics[s]+"?group="+group+"&poll=20ms&session-timeout=6s")
	}
	deleteRepartitionTopicsAfter(t, brokers, group)
	deleteStageTopicsAfter(t, brokers, group)
	produced := 0
	produceNext := func() {
		for _, s := range streams {
			testenv.Produce(t, brokers, topics[s], readLinesOf(t, filepath.Join(gen, s, fmt.Sprintf("part-%05d.json", produced))))
		}
		produced++
	}
	dir := t.TempDir()
	outs := []string{filepath.Join(dir, "a.jsonl"), filepath.Join(dir, "b.jsonl"), filepath.Join(dir, "last.jsonl")}
	args := func(i int, interval string) []string {
		return []string{"run", nexmarkScripts + "q4.lua", "--source", strings.Join(uris, ","), "--repartition",
			"--sink", "file:" + outs[i], "--state", filepath.Join(dir, fmt.Sprint("state", i)),
			"--checkpoint-interval", interval, "--trigger-interval", "50ms"}
	}
	produceNext()
	a := startLive(t, args(0, "100ms")...)
	b := startLive(t, args(1, "3s")...)
	t.Cleanup(func() {
		keepTestLog(t, "stagekill-a.log", a.allLog())
		keepTestLog(t, "stagekill-b.log", b.allLog())
	})
	b.waitFor(t, "the repartition partitions split between the nodes", func() bool {
		sa, okA := a.status()
		sb, okB := b.status()
		return okA && okB && len(sb.Partitions) > 0 && len(sa.Partitions)+len(sb.Partitions) == 4
	})
	// Each file moves the watermark past auctions' ends, and b writes
	// their rows at its next trigger, well before its next checkpoint.
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
	// A partition reports where it starts once its takeover (the fences,
	// then the restore) is done.
	a.waitFor(t, "node a reading all four repartition partitions", func() bool {
		st, ok := a.status()
		if !ok || len(st.Partitions) != 4 {
			return false
		}
		for _, p := range st.Partitions {
			if p.Restoring || p.Position == "" {
				return false
			}
		}
		return true
	})
	// The takeover ended b's open transaction on the stage topic: it
	// does not hold stage 2's readers back until it times out.
	bWriter, err := os.ReadFile(filepath.Join(dir, "state1", "stage-writer-id"))
	if err != nil {
		t.Fatal(err)
	}
	stageTopic := "eddy-stages." + group + ".2"
	if open := openTxnsOf(t, brokers, stageTopic, stageTopic+"."+strings.TrimSpace(string(bWriter))); len(open) > 0 {
		t.Fatalf("node b's transaction on the stage topic is still %v after node a took its partitions over", open)
	}
	for produced < files { // the reference counts every file's events
		produceNext()
	}
	before := a.lastCheckpoint()
	a.waitFor(t, "a checkpoint of node a after the last file", func() bool { return a.lastCheckpoint() > before })
	a.cmd.Process.Signal(syscall.SIGTERM)
	<-a.exited
	if !a.cmd.ProcessState.Success() {
		t.Fatalf("node a ended %v\n%s", a.cmd.ProcessState, a.tail())
	}
	_, stderr, err := eddy(t, append(args(2, "100ms"), "--until-idle", "-v")...)
	keepTestLog(t, "stagekill-last.log", stderr)
	if err != nil {
		t.Fatalf("last run: %v\n%s", err, stderr)
	}
	var all []byte
	for _, f := range outs {
		out, err := os.ReadFile(f)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		keepTestLog(t, "stagekill-"+filepath.Base(f), string(out))
		all = append(all, out...)
	}
	got, err := nexmark.Decode(all, func(r nexmark.Q4Out) []any { return []any{r.Row()} })
	if err != nil {
		t.Fatal(err)
	}
	if err := nexmark.Compare(nexmark.Rows(nexmark.Q4(auctions, bids)), got, false); err != nil {
		t.Errorf("%v\nstage 1's rows against the winning bids: %s", err, stageRowsDiff(t, brokers, group, auctions, bids))
	}
}

// stageRowsDiff compares the committed rows of the stage topic with the
// reference's winning price per auction, for a failure's message: which
// auctions are missing, repeated or wrong.
func stageRowsDiff(t *testing.T, brokers []string, group string, auctions []nexmark.Auction, bids []nexmark.Bid) string {
	t.Helper()
	topic := "kafka://" + strings.Join(brokers, ",") + "/eddy-stages." + group + ".2"
	out, stderr, err := eddy(t, "consume", topic, "--from-beginning", "--read-committed", "--until-idle")
	if err != nil {
		return fmt.Sprintf("consume %s: %v\n%s", topic, err, stderr)
	}
	keepTestLog(t, "stagekill-stagetopic.jsonl", out)
	want := map[int64]int64{}
	for _, r := range nexmark.Q9(auctions, bids) {
		want[r.Auction.ID] = r.Bid.Price
	}
	type row struct {
		ID    int64 `json:"id"`
		Final int64 `json:"final"`
	}
	seen := map[int64][]int64{}
	for _, line := range strings.Split(strings.TrimSpace(out), "\n") {
		var r row
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			return fmt.Sprintf("stage row %q: %v", line, err)
		}
		seen[r.ID] = append(seen[r.ID], r.Final)
	}
	var missing, repeated, wrong []int64
	for id, price := range want {
		switch got := seen[id]; {
		case len(got) == 0:
			missing = append(missing, id)
		case len(got) > 1:
			repeated = append(repeated, id)
		case got[0] != price:
			wrong = append(wrong, id)
		}
	}
	var extra []int64
	for id := range seen {
		if _, ok := want[id]; !ok {
			extra = append(extra, id)
		}
	}
	for _, s := range [][]int64{missing, repeated, wrong, extra} {
		slices.Sort(s)
	}
	return fmt.Sprintf("%d auctions won, %d stage rows; missing %d %v; repeated %d %v; wrong price %d %v; not won %d %v",
		len(want), strings.Count(out, "\n"), len(missing), missing, len(repeated), repeated, len(wrong), wrong, len(extra), extra)
}

// stageRowsLine is the results sink's row count in /metrics: stage 1's
// rows to the stage topic.
var stageRowsLine = regexp.MustCompile(`(?m)^eddy_sink_rows_total\{[^}]*sink="results"[^}]*\} (\d+)`)

// rowsMark is a run's results row count, read between two reads of its
// last complete checkpoint that agree.
type rowsMark struct {
	cp   uint64
	rows int64
}

// readRowsMark reads a rowsMark; ok is false while the run is starting or
// when a checkpoint completed during the reads.
func (r *liveRun) readRowsMark() (m rowsMark, ok bool) {
	cp := func() (uint64, bool) {
		st, ok := r.status()
		if !ok || st.Checkpoint == nil {
			return 0, false
		}
		return st.Checkpoint.ID, true
	}
	c1, ok1 := cp()
	r.mu.Lock()
	addr := r.addr
	r.mu.Unlock()
	body, err := statusapi.Fetch(context.Background(), addr, "/metrics")
	c2, ok2 := cp()
	match := stageRowsLine.FindSubmatch(body)
	if !ok1 || !ok2 || c1 != c2 || err != nil || match == nil {
		return m, false
	}
	n, err := strconv.ParseInt(string(match[1]), 10, 64)
	return rowsMark{c1, n}, err == nil
}

// rowsMark waits for a rowsMark.
func (r *liveRun) rowsMark(t *testing.T) rowsMark {
	t.Helper()
	var m rowsMark
	r.waitFor(t, "its results' row count", func() bool {
		var ok bool
		m, ok = r.readRowsMark()
		return ok
	})
	return m
}

// rowsSince waits until the run has written results rows since base with
// no checkpoint completed since (written says so, and rows how many are
// thus not checkpointed), or until a checkpoint completes (written false).
func (r *liveRun) rowsSince(t *testing.T, base rowsMark) (rows int64, written bool) {
	t.Helper()
	moved := false
	r.waitFor(t, "results rows or a checkpoint", func() bool {
		m, ok := r.readRowsMark()
		if !ok {
			st, ok := r.status()
			moved = ok && st.Checkpoint != nil && st.Checkpoint.ID != base.cp
			return moved
		}
		if m.cp != base.cp {
			moved = true
			return true
		}
		rows = m.rows - base.rows
		return rows > 0
	})
	return rows, !moved
}

// deleteStageTopicsAfter deletes, when the test ends, the topics a run
// with stages makes in group besides the first repartition topic's: the
// stage topic, its engine's changelog and the stage writers' checkpoint
// markers (each named with ".GROUP.2", or ".GROUP.3" for a third stage).
func deleteStageTopicsAfter(t *testing.T, brokers []string, group string) {
	hosts := strings.Join(brokers, ",")
	t.Cleanup(func() {
		list, _, err := eddy(t, "topics", "list", "--brokers", hosts)
		if err != nil {
			return
		}
		for _, line := range strings.Split(list, "\n") {
			if f := strings.Fields(line); len(f) > 0 && (strings.Contains(f[0], "."+group+".2") || strings.Contains(f[0], "."+group+".3")) {
				eddy(t, "topics", "delete", "kafka://"+hosts+"/"+f[0])
			}
		}
	})
}

// openTxnsOf lists the states of transactional id txnID's transactions
// open (not yet ended) on topic's partitions.
func openTxnsOf(t *testing.T, brokers []string, topic, txnID string) []string {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	parts := map[int32]struct{}{0: {}, 1: {}, 2: {}, 3: {}} // (four, as the test's topics)
	described, err := adm.DescribeProducers(t.Context(), kadm.TopicsSet{topic: parts})
	if err != nil {
		t.Fatal(err)
	}
	var pids []int64
	for _, dp := range described[topic].Partitions {
		if dp.Err != nil {
			t.Fatalf("describe producers of %s/%d: %v", topic, dp.Partition, dp.Err)
		}
		for _, p := range dp.ActiveProducers {
			if p.CurrentTxnStartOffset >= 0 {
				pids = append(pids, p.ProducerID)
			}
		}
	}
	if len(pids) == 0 {
		return nil
	}
	listed, err := adm.ListTransactions(t.Context(), pids, nil)
	if err != nil {
		t.Fatal(err)
	}
	var open []string
	for _, l := range listed {
		if l.TxnID == txnID && l.State != "CompleteCommit" && l.State != "CompleteAbort" && l.State != "Empty" {
			open = append(open, l.State)
		}
	}
	return open
}

package kafka_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/actors"
	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/internal/statusapi"
	"github.com/eddy-stream/eddy/internal/testenv"
	"github.com/eddy-stream/eddy/scripting"
)

// restoreMoved measures the restore of a partition whose changelog holds
// keys distinct keys, on a node that is handed it with no local state.
//
// The changelog is filled directly, through the source's own Changelog (the
// writes and transactions a node makes), with the entries
// testdata/count_ids.lua keeps: one count of 1 per id, and a marker whose
// position is the start of the topic, which holds 1,000 more ids. Filling it
// by running a first node over 10 million records took longer than the
// changelog's transaction timeout on the loaded test machine, and what is
// measured here is the second node only.
//
// The second node starts with an empty state directory; the bench polls its
// status every 20 ms and times: its start to the partition being assigned
// (it shows in the status, restoring), the assignment to the changelog read
// (no longer restoring: its shards then build the partition's state from
// what they collected), to the 1,000 new records read, and to serving: a
// restored key's row and a new one's answered by GET /state/KEY, each
// with a count of 1 (the partition is whole in the result table only once
// every shard has built its state).
// It returns the restore's changes/s, as the node logs them.
func restoreMoved(b *testing.B, bin string, brokers []string, keys int64) (changesPerS float64) {
	adm := benchAdmin(b, brokers)
	topic := testenv.NewTopic(b, brokers, 1)
	group := topic + "-g"
	ctopic := changelogOf(group, topic)
	const more = 1_000
	produceIDs(b, brokers, topic, keys, more)
	t0 := time.Now()
	fillCountIDsChangelog(b, brokers, topic, group, keys)
	changes, size, err := changelogSize(adm, ctopic)
	if err != nil {
		b.Fatal(err)
	}
	fmt.Printf("\nrestore of a moved partition: testdata/count_ids.lua, %d keys in changelog %s (end offset %d, %.1f MiB on the broker), filled in %v\n",
		keys, ctopic, changes, float64(size)/(1<<20), time.Since(t0).Round(time.Millisecond))

	limit := 2*time.Minute + time.Duration(keys/20_000)*time.Second
	var profile []string
	if dir := os.Getenv("EDDY_BENCH_PROFILE"); dir != "" {
		profile = []string{"--cpuprofile", filepath.Join(dir, "restore.pprof"), "--memprofile", filepath.Join(dir, "restore.heap")}
		fmt.Printf("  the node's CPU profile: %s, its heap when it stops: %s\n", profile[1], profile[3])
	}
	addr := testenv.FreeAddr(b)
	node := startNode(b, bin, "second", "testdata/count_ids.lua", brokers, topic, group, filepath.Join(b.TempDir(), "state"),
		append([]string{"--http", addr}, profile...)...)
	assigned := waitNodeStatus(b, node, addr, limit, "the partition assigned", func(st actors.Status) bool { return len(st.Partitions) == 1 })
	restored := waitNodeStatus(b, node, addr, limit, "the changelog read", func(st actors.Status) bool {
		return len(st.Partitions) == 1 && !st.Partitions[0].Restoring
	})
	read := waitNodeStatus(b, node, addr, limit, "the new records read", func(st actors.Status) bool { return st.Read >= more })
	// Serving: a restored key's row, and a new one's.
	var waitedOn string
	for _, id := range []int64{keys / 2, keys + more - 1} {
		if w := wantRow(b, node, addr, fmt.Sprintf("id-%09d", id), limit); w != "" {
			waitedOn = w
		}
	}
	serving := time.Since(node.started())
	cpuServing, _, _ := procUsage(node.cmd.Process.Pid)
	// The times so far first: a node that ends in its first checkpoint
	// of the partition (its changelog transaction outlived on a loaded
	// machine) still shows them.
	rs, ss := (restored - assigned).Seconds(), (serving - assigned).Seconds()
	fmt.Printf("  the node (empty state dir): start to assigned %v; from the assignment: changelog read %.2f s (%.0f keys/s, %.1f MB/s), %d new records read %.2f s, serving %.2f s (%.0f keys/s, %.1f MB/s of changelog); CPU when serving %.1f s (%.2f µs a key)\n",
		assigned.Round(time.Millisecond), rs, float64(keys)/rs, float64(size)/1e6/rs, more, (read - assigned).Seconds(), ss, float64(keys)/ss, float64(size)/1e6/ss,
		cpuServing.Seconds(), cpuServing.Seconds()*1e6/float64(keys))
	if waitedOn != "" {
		fmt.Printf("  GET /state answered, until serving: %s\n", waitedOn)
	}
	// The first checkpoint holding every restored key: the node's store
	// then has the partition (a restart reads none of the changelog).
	stored := waitNodeStatus(b, node, addr, limit, "the restored keys checkpointed", func(st actors.Status) bool {
		return st.Checkpoint != nil && st.Checkpoint.Keys >= keys
	})
	m := waitLogLine(b, node, 10*time.Second)
	var peak int64
	if st, err := nodeStatus(addr); err == nil {
		peak = st.StateBytes
	}
	// (Before the stop: a stop that fails, its checkpoint outlasting the
	// stop's bound on a loaded machine, still shows them.)
	if cpu, rss, err := procUsage(node.cmd.Process.Pid); err == nil {
		fmt.Printf("  its first checkpoint of the partition complete %.2f s after the assignment: CPU %.1f s (%.2f µs a key), peak RSS %.0f MiB\n",
			(stored - assigned).Seconds(), cpu.Seconds(), cpu.Seconds()*1e6/float64(keys), float64(rss)/(1<<20))
	}
	node.stop(b)
	n, _ := strconv.ParseInt(m[2], 10, 64)
	took, _ := time.ParseDuration(m[3])
	perS, _ := strconv.ParseInt(m[4], 10, 64)
	if n != keys {
		b.Fatalf("the node restored %d changes, want %d\n%s", n, keys, node.log.tail())
	}
	fmt.Printf("  its log: read the changelog in %v (%d changes/s); the process: CPU %.1f s (%.2f µs a key, start to stop), peak RSS %.0f MiB, state on disk %.0f MiB; the issue's bound: serving < 5 s after the assignment\n",
		took, perS, node.cpu.Seconds(), node.cpu.Seconds()*1e6/float64(keys), float64(node.rss)/(1<<20), float64(peak)/(1<<20))
	b.ReportMetric(rs, "changelog-read-s")
	b.ReportMetric(ss, "restore-to-serving-s")
	b.ReportMetric(float64(keys)/ss, "restore-keys/s")
	b.ReportMetric(float64(size)/1e6/ss, "restore-MB/s")
	b.ReportMetric(node.cpu.Seconds(), "node-cpu-s")

	// At most a million keys there: the standby's handoff is measured
	// beside the restore.
	// (Its first node counts the ids itself: the limit of the bench before
	// the restore's changelog was written directly.)
	standbyHandoff(b, bin, brokers, min(keys, 1_000_000), 2*time.Minute+time.Duration(keys/5_000)*time.Second)
	return float64(perS)
}

// fillCountIDsChangelog writes partition 0 of topic's changelog in group
// as a node of testdata/count_ids.lua would leave it after counting ids
// 0..keys-1 once each: one entry per id, in transactions of 500,000, and a
// marker after each saying the topic is to be read from its start. The
// entry's encoding is checked with the pipeline's own decoder first.
func fillCountIDsChangelog(b *testing.B, brokers []string, topic, group string, keys int64) {
	b.Helper()
	entry := func(id string) []byte { return []byte(`[["` + id + `"],[1]]`) }
	checkCountIDsEntry(b, entry("id-000000000"))
	cl := openChangelog(b, brokers, topic, group)
	part := "kafka:" + topic + "/0"
	prefix := "agg/" + part + "\x00"
	ctx := context.Background()
	for i, cp := int64(0), uint64(1); i < keys; cp++ {
		for j := 0; j < 500_000 && i < keys; j, i = j+1, i+1 {
			id := fmt.Sprintf("id-%09d", i)
			cl.Write(part, []byte(prefix+id), entry(id))
		}
		m := connectors.ChangelogMarker{Checkpoint: cp, Position: connectors.Position(`{"offset":0}`), Node: "filler"}
		if _, err := cl.Commit(ctx, map[string]connectors.ChangelogMarker{part: m}); err != nil {
			b.Fatal(err)
		}
	}
}

// checkCountIDsEntry fails unless count_ids.lua's runtime decodes v as
// key ["id-000000000"] and one accumulator, and encodes that as v again.
func checkCountIDsEntry(b *testing.B, v []byte) {
	b.Helper()
	p, err := scripting.Load("testdata/count_ids.lua")
	if err != nil {
		b.Fatal(err)
	}
	rt, err := p.NewRuntime(false)
	if err != nil {
		b.Fatal(err)
	}
	defer rt.Close()
	keyVals, accs, err := rt.DecodeEntry(v)
	if err != nil || len(keyVals) != 1 || keyVals[0] != "id-000000000" || len(accs) != 1 {
		b.Fatalf("count_ids.lua decodes %s as %v %v (%v)", v, keyVals, accs, err)
	}
	if again, err := rt.EncodeEntry(nil, keyVals, accs); err != nil || string(again) != string(v) {
		b.Fatalf("count_ids.lua encodes %s again as %s (%v)", v, again, err)
	}
}

func nodeStatus(addr string) (actors.Status, error) {
	var st actors.Status
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	body, err := statusapi.Fetch(ctx, addr, "/status?local=1")
	if err == nil {
		err = json.Unmarshal(body, &st)
	}
	return st, err
}

// waitNodeStatus polls node's status every 20 ms until cond holds, and
// returns when that was seen, since the node's start.
func waitNodeStatus(b *testing.B, n *benchNode, addr string, limit time.Duration, what string, cond func(actors.Status) bool) time.Duration {
	b.Helper()
	start := time.Now()
	for {
		if st, err := nodeStatus(addr); err == nil && cond(st) {
			return time.Since(n.started())
		}
		select {
		case <-n.done:
			b.Fatalf("node %s exited (%v) before %s\n%s", n.name, n.err, what, n.log.tail())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Since(start) > limit {
			b.Fatalf("node %s: %s: not within %v\n%s", n.name, what, limit, n.log.tail())
		}
	}
}

// wantRow waits until GET /state/ID on the node answers id's row with a
// count of 1. It returns the last refusal before that (and how many there
// were), "" for none.
func wantRow(b *testing.B, n *benchNode, addr, id string, limit time.Duration) (waitedOn string) {
	b.Helper()
	var body []byte
	var err error
	refused := 0
	for deadline := time.Now().Add(limit); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		// Longer than the node waits for its result table (30 s), so
		// that a busy table's answer is not thrown away.
		ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
		body, err = statusapi.Fetch(ctx, addr, statusapi.KeyPath(id))
		cancel()
		if err == nil {
			break
		}
		refused++
		waitedOn = fmt.Sprintf("%d refusals, the last: %v", refused, err)
	}
	want := `{"id":"` + id + `","count":1}`
	if err != nil || strings.TrimSpace(string(body)) != want {
		b.Fatalf("GET /state/%s: %v %q, want %s\n%s", id, err, body, want, n.log.tail())
	}
	return waitedOn
}

// waitLogLine waits for the node's "restored a partition" log line.
func waitLogLine(b *testing.B, n *benchNode, limit time.Duration) []string {
	b.Helper()
	for deadline := time.Now().Add(limit); ; time.Sleep(50 * time.Millisecond) {
		if m := restoredLine.FindStringSubmatch(n.log.String()); m != nil {
			return m
		}
		if time.Now().After(deadline) {
			b.Fatalf("node %s logged no restore from the changelog\n%s", n.name, n.log.tail())
		}
	}
}

// procUsage is a running process's CPU time so far and its peak resident
// memory, from /proc (Linux).
func procUsage(pid int) (cpu time.Duration, rss int64, err error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	// the fields after the command's closing parenthesis: utime and stime
	// are the 12th and 13th, in clock ticks (100 a second on Linux)
	fields := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
	if len(fields) < 13 {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %d fields", pid, len(fields))
	}
	utime, err1 := strconv.ParseInt(fields[11], 10, 64)
	stime, err2 := strconv.ParseInt(fields[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("/proc/%d/stat: %v %v", pid, err1, err2)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	for _, line := range strings.Split(string(status), "\n") {
		if kb, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(kb), "kB")), 10, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("/proc/%d/status: VmHWM: %w", pid, err)
			}
			rss = n << 10
		}
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond, rss, nil
}

package kafka_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eddy-stream/eddy/internal/lockedbuf"
	"github.com/eddy-stream/eddy/internal/testenv"
)

// BenchmarkCluster runs `eddy run` processes of one pipeline as a cluster
// on the real broker, as `just bench-cluster` does:
//
//  1. Scale-out: the netflow pipeline (scripts/netflow_webservers.lua) on
//     1 and 2 processes (and 4 on 4 cores or more), node i pinned to core i
//     with taskset (unpinned, with a message, where taskset is missing),
//     each count with a group and state directories of its own, over a
//     pre-filled 8-partition topic of EDDY_BENCH_RECORDS (default
//     1,000,000) generated netflow records, EDDY_BENCH_ROUNDS (default 3)
//     times; it prints each run's time, the median's rate, the nodes' CPU
//     time and the cores they used. The time of a run runs from starting
//     the processes until the group's committed offsets reach the topic's
//     end (eddy commits them with each checkpoint), so it includes process
//     start, group joins and the rebalances of nodes joining one after
//     another. Then what a partition costs a node at rest, and the
//     changelog's bytes per record: the inputs of docs/cluster.md's sizing
//     model, printed at the end.
//  2. Restore of a moved partition (restoreMoved): a changelog of
//     EDDY_BENCH_KEYS (default 10,000,000) distinct ids' counts
//     (testdata/count_ids.lua) in one partition, written directly; a node
//     with an empty state directory gets the partition, restores it and
//     takes in 1,000 more ids. It prints the times from the assignment to
//     the changelog read, to the new records read, to serving (GET
//     /state/KEY answers) and to its first checkpoint holding every
//     restored key, keys/s and MB/s, the node's CPU time at each of the
//     last two and its peak memory. EDDY_BENCH_PROFILE=DIR writes the node's CPU profile to
//     DIR/restore.pprof and its heap when it stops to DIR/restore.heap;
//     EDDY_BENCH_LOGS=DIR a failed node's log; EDDY_BENCH_GOMEMLIMIT
//     sets every node's GOMEMLIMIT (Go's soft memory limit: without one a
//     node peaks near 1.3 KB of RSS a restored key). Then the
//     handoff to a --standby copy (a million keys at most).
func BenchmarkCluster(b *testing.B) {
	brokers := testenv.Kafka(b)
	records, keys := int64(testenv.BenchSize(b, "EDDY_BENCH_RECORDS", 1_000_000)), int64(testenv.BenchSize(b, "EDDY_BENCH_KEYS", 10_000_000))
	rounds := testenv.BenchSize(b, "EDDY_BENCH_ROUNDS", 3)
	bin := eddyPath(b)
	// Sub-benchmarks, so that -bench BenchmarkCluster/restore runs one.
	var s *sizing
	var restorePerS float64
	b.Run("scale-out", func(b *testing.B) {
		for b.Loop() {
			r := scaleOut(b, bin, brokers, records, rounds)
			s = &r
		}
	})
	b.Run("restore", func(b *testing.B) {
		for b.Loop() {
			restorePerS = restoreMoved(b, bin, brokers, keys)
		}
	})
	if s != nil && restorePerS > 0 {
		printSizing(*s, restorePerS)
	}
}

// benchNode is one `eddy run` process; its stderr (the log) is kept.
type benchNode struct {
	name string
	cmd  *exec.Cmd
	log  *syncBuffer
	done chan struct{} // closed when the process has exited; err is then its end
	err  error
	cpu  time.Duration // the CPU time the process used, once it has exited
	rss  int64         // its peak resident memory in bytes, once it has exited
	at   time.Time     // when it was started
}

func (n *benchNode) started() time.Time { return n.at }

// syncBuffer is a process's output, read while it writes.
type syncBuffer struct{ lockedbuf.Buffer }

func (s *syncBuffer) tail() string {
	str := s.String()
	if len(str) > 3000 {
		str = str[len(str)-3000:]
	}
	return str
}

// startNode starts `eddy run script` on topic in group with state in dir;
// its results go to /dev/null. Checkpoints ride on triggers, so the
// trigger interval is short too: the group's committed offsets then follow
// the nodes within about half a second.
func startNode(b *testing.B, bin, name, script string, brokers []string, topic, group, dir string, extra ...string) *benchNode {
	b.Helper()
	return startNodeOn(b, "", bin, name, script, brokers, topic, group, dir, extra...)
}

// startNodeOn is startNode with the process pinned to the CPUs cpus
// (taskset's list, "" for none).
func startNodeOn(b *testing.B, cpus, bin, name, script string, brokers []string, topic, group, dir string, extra ...string) *benchNode {
	b.Helper()
	n := &benchNode{name: name, log: &syncBuffer{}}
	args := append([]string{"run", script,
		"--source", brokerURI(brokers, topic, "group="+group),
		"--state", dir, "--checkpoint-interval", "500ms", "--trigger-interval", "100ms", "--node", name, "-v"}, extra...)
	if cpus != "" {
		args = append([]string{"-c", cpus, bin}, args...)
		bin = "taskset" // which execs eddy in its own process
	}
	n.cmd = exec.Command(bin, args...)
	n.cmd.Stderr = n.log
	if limit := os.Getenv("EDDY_BENCH_GOMEMLIMIT"); limit != "" {
		// Go's soft memory limit for the nodes only: the garbage
		// collector then runs more often instead of letting the heap
		// grow to twice what is live.
		n.cmd.Env = append(os.Environ(), "GOMEMLIMIT="+limit)
	}
	n.at = time.Now()
	if err := n.cmd.Start(); err != nil {
		b.Fatal(err)
	}
	n.done = make(chan struct{})
	go func() {
		n.err = n.cmd.Wait()
		if st := n.cmd.ProcessState; st != nil {
			n.cpu = st.UserTime() + st.SystemTime()
			if ru, ok := st.SysUsage().(*syscall.Rusage); ok {
				n.rss = ru.Maxrss << 10 // Linux reports KiB
			}
		}
		close(n.done)
	}()
	b.Cleanup(func() { n.cmd.Process.Kill(); <-n.done })
	return n
}

// stop sends SIGTERM and waits for the node to exit cleanly.
func (n *benchNode) stop(b *testing.B) {
	b.Helper()
	n.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-n.done:
		if n.err != nil {
			if dir := os.Getenv("EDDY_BENCH_LOGS"); dir != "" {
				os.WriteFile(filepath.Join(dir, n.name+".log"), []byte(n.log.String()), 0o644)
			}
			b.Fatalf("node %s: %v\n%s", n.name, n.err, n.log.tail())
		}
	case <-time.After(2 * time.Minute):
		n.cmd.Process.Kill()
		b.Fatalf("node %s did not stop within 2m of SIGTERM\n%s", n.name, n.log.tail())
	}
}

// caughtUp waits until group's committed offsets reach topic's end, and
// fails if a node exits first or it takes longer than limit.
func caughtUp(b *testing.B, adm *kadm.Client, group, topic string, limit time.Duration, nodes ...*benchNode) {
	b.Helper()
	ctx := context.Background()
	deadline := time.Now().Add(limit)
	for {
		ends, err1 := adm.ListEndOffsets(ctx, topic)
		offs, err2 := adm.FetchOffsetsForTopics(ctx, group, topic)
		if err1 == nil && err2 == nil {
			behind := false
			ends.Each(func(o kadm.ListedOffset) {
				if c, ok := offs.Lookup(topic, o.Partition); !ok || c.At < o.Offset {
					behind = true
				}
			})
			if !behind {
				return
			}
		}
		for _, n := range nodes {
			select {
			case <-n.done:
				b.Fatalf("node %s exited (%v) before the group caught up\n%s", n.name, n.err, n.log.tail())
			default:
			}
		}
		if time.Now().After(deadline) {
			for _, n := range nodes {
				b.Logf("--- %s:\n%s", n.name, n.log.tail())
			}
			b.Fatalf("group %s still lags on %s after %v", group, topic, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// clusterState waits until the nodes (their --http addresses) own the
// topic's partitions between them, none of them restoring, and the first
// sees them all as members; it then returns the cluster's result table
// from the first (GET /state). A partition still restoring would be
// missing from the table.
func clusterState(b *testing.B, addrs []string, partitions int, nodes ...*benchNode) string {
	b.Helper()
	cl := http.Client{Timeout: 30 * time.Second}
	get := func(addr, path string, into any) ([]byte, error) {
		resp, err := cl.Get("http://" + addr + path)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err == nil && resp.StatusCode != http.StatusOK {
			err = fmt.Errorf("%s: %s", resp.Status, body)
		}
		if err == nil && into != nil {
			err = json.Unmarshal(body, into)
		}
		return body, err
	}
	settled := func() error {
		var cluster struct {
			Nodes []json.RawMessage `json:"nodes"`
		}
		if _, err := get(addrs[0], "/status", &cluster); err != nil || len(cluster.Nodes) != len(addrs) {
			return fmt.Errorf("the cluster lists %d of %d nodes (%v)", len(cluster.Nodes), len(addrs), err)
		}
		owned := 0
		for _, addr := range addrs {
			var st struct {
				Partitions []struct {
					Restoring bool `json:"restoring"`
				} `json:"partitions"`
			}
			if _, err := get(addr, "/status?local=1", &st); err != nil {
				return err
			}
			for _, p := range st.Partitions {
				if p.Restoring {
					return fmt.Errorf("a partition of %s is restoring", addr)
				}
				owned++
			}
		}
		if owned != partitions {
			return fmt.Errorf("the nodes own %d of %d partitions", owned, partitions)
		}
		return nil
	}
	logs := func() string {
		var sb strings.Builder
		for _, n := range nodes {
			fmt.Fprintf(&sb, "--- %s:\n%s\n", n.name, n.log.tail())
		}
		return sb.String()
	}
	deadline := time.Now().Add(time.Minute)
	for err := settled(); err != nil; err = settled() {
		if time.Now().After(deadline) {
			b.Fatalf("after a minute: %v\n%s", err, logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
	body, err := get(addrs[0], "/state", nil)
	if err != nil {
		b.Fatalf("the cluster's state from %s: %v\n%s", addrs[0], err, logs())
	}
	return string(body)
}

func benchAdmin(b *testing.B, brokers []string) *kadm.Client {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

func changelogOf(group, topic string) string { return "eddy-changelog." + group + "." + topic }

// groupReady waits until group has n members, each with partitions.
func groupReady(b *testing.B, adm *kadm.Client, group string, n int, limit time.Duration) {
	b.Helper()
	deadline := time.Now().Add(limit)
	for time.Now().Before(deadline) {
		gs, err := adm.DescribeGroups(context.Background(), group)
		if err == nil {
			g := gs[group]
			with := 0
			for _, m := range g.Members {
				if a, ok := m.Assigned.AsConsumer(); ok && len(a.Topics) > 0 && g.State == "Stable" {
					with++
				}
			}
			if with == n {
				return
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	b.Fatalf("group %s did not reach %d members with partitions in %v", group, n, limit)
}

// produceIDs writes {"id":"id-%09d"} for ids from..from+n-1 to partition
// 0 of topic, keyed by the id.
func produceIDs(b *testing.B, brokers []string, topic string, from, n int64) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic), kgo.ProducerLinger(10*time.Millisecond),
		kgo.ProducerBatchCompression(kgo.Lz4Compression()), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	var mu sync.Mutex
	var perr error
	for i := from; i < from+n; i++ {
		id := fmt.Sprintf("id-%09d", i)
		r := &kgo.Record{Key: []byte(id), Value: []byte(`{"id":"` + id + `"}`), Partition: 0}
		cl.Produce(context.Background(), r, func(_ *kgo.Record, err error) {
			if err != nil {
				mu.Lock()
				perr = err
				mu.Unlock()
			}
		})
	}
	if err := cl.Flush(context.Background()); err != nil || perr != nil {
		b.Fatal(err, perr)
	}
}

var restoredLine = regexp.MustCompile(`msg="restored a partition from the changelog" partition=(\S+) changes=(\d+) took=(\S+) changes_per_s=(\d+)`)

// standbyHandoff: a partition like restoreMoved's, with a second node running beside
// the first with --standby 1; the first is stopped and the second takes
// over from its warm copy.
func standbyHandoff(b *testing.B, bin string, brokers []string, keys int64, limit time.Duration) {
	adm := benchAdmin(b, brokers)
	topic := testenv.NewTopic(b, brokers, 1)
	group := topic + "-g"
	b.Cleanup(func() { deleteTopics(brokers, changelogOf(group, topic)) })
	produceIDs(b, brokers, topic, 0, keys)
	dirs := b.TempDir()
	first := startNode(b, bin, "first", "testdata/count_ids.lua", brokers, topic, group, filepath.Join(dirs, "first"))
	groupReady(b, adm, group, 1, limit)
	second := startNode(b, bin, "second", "testdata/count_ids.lua", brokers, topic, group, filepath.Join(dirs, "second"), "--standby", "1")
	caughtUp(b, adm, group, topic, limit, first, second)
	// The copy is current once the second node has read the changelog to
	// its end and checkpointed what it read.
	end := changelogEnd(b, adm, changelogOf(group, topic))
	deadline := time.Now().Add(limit)
	for standbyAt(second.log.String()) < end {
		if time.Now().After(deadline) {
			b.Fatalf("the standby copy did not reach the changelog's end %d\n%s", end, second.log.tail())
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(time.Second) // its next checkpoint
	// The first node stops (a clean stop, as in the measure above), then
	// more records come: the second takes the partition over from its
	// copy and reads them.
	const more = 1_000
	start := time.Now()
	first.stop(b)
	produceIDs(b, brokers, topic, keys, more)
	caughtUp(b, adm, group, topic, limit, second)
	caught := time.Since(start)
	var m []string
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if m = restoredLine.FindStringSubmatch(second.log.String()); m != nil || time.Now().After(deadline) {
			break
		}
	}
	second.stop(b)
	changes := "no restore logged"
	if m != nil {
		changes = m[2] + " changes in " + m[3]
	}
	fmt.Printf("  with --standby 1 on a second node beside the first: first stopped (SIGTERM), second restored %s, took in %d new records and checkpointed %v after the stop\n",
		changes, more, caught.Round(time.Millisecond))
	b.ReportMetric(caught.Seconds(), "standby-handoff-s")
}

var standbyRead = regexp.MustCompile(`msg="standby: read changes" partition=\S+ changes=\d+ to=(\d+)`)

// standbyAt is the furthest changelog offset a node's standby copy read.
func standbyAt(log string) int64 {
	var at int64
	for _, m := range standbyRead.FindAllStringSubmatch(log, -1) {
		n, _ := strconv.ParseInt(m[1], 10, 64)
		at = max(at, n)
	}
	return at
}

func changelogEnd(b *testing.B, adm *kadm.Client, topic string) int64 {
	ends, err := adm.ListEndOffsets(context.Background(), topic)
	if err != nil {
		b.Fatal(err)
	}
	var end int64
	ends.Each(func(o kadm.ListedOffset) { end += o.Offset })
	return end
}

package kafka_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"

	"github.com/eddy-stream/eddy/internal/reference"
	"github.com/eddy-stream/eddy/internal/testenv"
)

// The scale-out part of BenchmarkCluster and the inputs of the sizing
// model in docs/cluster.md ("Sizing a cluster").

// sizing is what the scale-out measures, for the summary that ends it.
type sizing struct {
	perNode      float64       // records/s of one node on one core (joined, median)
	cpuPerRecord time.Duration // one node's CPU time per record
	clogPerRec   float64       // changelog bytes per record read
	clogChanges  float64       // changelog changes per record read
	partCost     float64       // cores one more partition costs a node at rest
}

// pinning says which CPUs node i of count runs on, or "" when the
// nodes aren't pinned (no taskset, or fewer cores than nodes).
type pinning struct {
	taskset bool
	cores   int
}

func newPinning() pinning {
	_, err := exec.LookPath("taskset")
	if err != nil {
		fmt.Printf("  taskset not found (util-linux): the nodes are NOT pinned, each may use every core\n")
	}
	return pinning{taskset: err == nil, cores: runtime.NumCPU()}
}

func (p pinning) cpu(i, count int) string {
	if !p.taskset || count > p.cores {
		return ""
	}
	return strconv.Itoa(i)
}

// counts are the node counts the scale-out runs: 1 and 2, and 4 where
// every node can have a core of its own.
func (p pinning) counts() []int {
	if p.cores >= 4 {
		return []int{1, 2, 4}
	}
	return []int{1, 2}
}

// pinBroker pins the broker to the cores no node of count uses, when
// EDDY_BENCH_BROKER_PID names its process (a broker of your own: the
// shared one of a test machine is left alone).
func (p pinning) pinBroker(count int) string {
	pid := os.Getenv("EDDY_BENCH_BROKER_PID")
	switch {
	case pid == "":
		return "broker not pinned (set EDDY_BENCH_BROKER_PID to pin a broker of your own to the cores left)"
	case !p.taskset:
		return "broker not pinned (no taskset)"
	case count >= p.cores:
		return fmt.Sprintf("broker not pinned: no core left beside %d nodes on %d cores", count, p.cores)
	}
	rest := fmt.Sprintf("%d-%d", count, p.cores-1)
	if out, err := exec.Command("taskset", "-a", "-pc", rest, pid).CombinedOutput(); err != nil {
		return fmt.Sprintf("broker not pinned: taskset -a -pc %s %s: %v %s", rest, pid, err, out)
	}
	return "broker pinned to cores " + rest
}

// scaleOut runs the netflow pipeline on 1 and 2 nodes, each pinned to a
// core of its own, and returns per-node figures for the sizing model.
func scaleOut(b *testing.B, bin string, brokers []string, records int64, rounds int) sizing {
	adm := benchAdmin(b, brokers)
	pin := newPinning()
	topic := testenv.NewTopic(b, brokers, 8)
	t0 := time.Now()
	fill(b, brokers, topic, records)
	fmt.Printf("\nfilled %s (8 partitions) with %d netflow records in %v\n", topic, records, time.Since(t0).Round(time.Millisecond))
	fmt.Printf("scale-out: scripts/netflow_webservers.lua (CPU-bound: JSON parse, filter, count) on N `eddy run` processes, node i pinned to core i (taskset -c i),\n")
	fmt.Printf("  a group and fresh state per run, --checkpoint-interval 500ms --trigger-interval 100ms, %d rounds; GOMAXPROCS=%d NumCPU=%d\n",
		rounds, runtime.GOMAXPROCS(0), runtime.NumCPU())
	fmt.Printf("  cold: a pre-filled topic, from the processes' start until the group's committed offsets reach the end (joins and rebalances included)\n")
	fmt.Printf("  joined: the nodes join an empty topic first; from the first record produced until they have checkpointed the last\n")
	fmt.Printf("  CPU s: the nodes' CPU time (user+sys) over the whole process life; cores used: CPU s / the run's time; peak MiB: the largest node's peak RSS\n")
	limit := 2*time.Minute + time.Duration(records/5_000)*time.Second
	counts := pin.counts()
	for _, count := range counts {
		fmt.Printf("  %d nodes: %s\n", count, pin.pinBroker(count))
	}
	type result struct {
		took, cpu            time.Duration
		rss                  int64 // the largest node's peak memory
		clogBytes, clogItems int64
	}
	cold, joined := map[int][]result{}, map[int][]result{}
	// Rounds go 1, 2 nodes, then again: a busy spell of the machine
	// slows every count alike.
	for round := range rounds {
		for _, count := range counts {
			run := func(topic string, prefilled bool) result {
				group := fmt.Sprintf("%s-r%d-n%d", topic, round, count)
				ctopic := changelogOf(group, topic)
				b.Cleanup(func() { deleteTopics(brokers, ctopic) })
				dirs := b.TempDir()
				start := time.Now()
				nodes := make([]*benchNode, count)
				httpAddr := make([]string, count)
				for i := range nodes {
					name := fmt.Sprintf("r%d-n%d-%d", round, count, i)
					httpAddr[i] = testenv.FreeAddr(b)
					nodes[i] = startNodeOn(b, pin.cpu(i, count), bin, name, "../../scripts/netflow_webservers.lua", brokers, topic, group, filepath.Join(dirs, name),
						"--http", httpAddr[i], "--cluster-port", strings.TrimPrefix(testenv.FreeAddr(b), "127.0.0.1:"))
				}
				if !prefilled {
					groupReady(b, adm, group, count, limit)
					start = time.Now()
					fill(b, brokers, topic, records)
				}
				caughtUp(b, adm, group, topic, limit, nodes...)
				r := result{took: time.Since(start)}
				// The cluster's top 20, merged over the nodes, is the
				// plain loop's over the same topic.
				if err := reference.DiffRows(plainCount(b, brokers, topic), clusterState(b, httpAddr, 8, nodes...)); err != nil {
					b.Fatalf("%d nodes: the cluster's result and the plain loop's disagree: %v", count, err)
				}
				for _, n := range nodes {
					n.stop(b)
					r.cpu += n.cpu
					r.rss = max(r.rss, n.rss)
				}
				var err error
				if r.clogItems, r.clogBytes, err = changelogSize(adm, ctopic); err != nil {
					b.Fatalf("changelog %s: %v", ctopic, err)
				}
				return r
			}
			cold[count] = append(cold[count], run(topic, true))
			joined[count] = append(joined[count], run(testenv.NewTopic(b, brokers, 8), false))
		}
	}
	var s sizing
	for _, what := range []struct {
		name string
		runs map[int][]result
	}{{"cold", cold}, {"joined", joined}} {
		fmt.Printf("  %-6s %5s %10s %12s %9s %8s %10s %9s   %s\n", what.name, "nodes", "median", "records/s", "vs 1 node", "CPU s", "cores used", "peak MiB", "each round")
		var one float64
		for _, count := range counts {
			rs := what.runs[count]
			each := make([]string, len(rs))
			for i, r := range rs {
				each[i] = r.took.Round(10 * time.Millisecond).String()
			}
			slices.SortFunc(rs, func(x, y result) int { return int(x.took - y.took) })
			med := rs[len(rs)/2]
			rate := float64(records) / med.took.Seconds()
			if count == 1 {
				one = rate
			}
			fmt.Printf("  %-6s %5d %10v %12.0f %9.2f %8.1f %10.2f %9.0f   %s\n", "", count, med.took.Round(time.Millisecond), rate, rate/one,
				med.cpu.Seconds(), med.cpu.Seconds()/med.took.Seconds(), float64(med.rss)/(1<<20), strings.Join(each, " "))
			b.ReportMetric(rate, fmt.Sprintf("%s-%dnode-rec/s", what.name, count))
			if what.name == "joined" && count == 1 {
				s.perNode, s.cpuPerRecord = rate, med.cpu/time.Duration(records)
				s.clogPerRec, s.clogChanges = float64(med.clogBytes)/float64(records), float64(med.clogItems)/float64(records)
			}
		}
	}
	s.partCost = partitionCost(b, bin, brokers, pin)
	return s
}

// changelogSize is the number of changes in a changelog topic (its end
// offsets) and its bytes on the broker, before compaction.
func changelogSize(adm *kadm.Client, topic string) (changes, size int64, err error) {
	ctx := context.Background()
	ends, err := adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, 0, err
	}
	parts := kadm.TopicsSet{}
	ends.Each(func(o kadm.ListedOffset) { changes += o.Offset; parts.Add(topic, o.Partition) })
	dirs, err := adm.DescribeAllLogDirs(ctx, parts)
	if err != nil {
		return changes, 0, err
	}
	dirs.Each(func(d kadm.DescribedLogDir) {
		for _, p := range d.Topics[topic] {
			size += p.Size
		}
	})
	return changes, size, nil
}

// partitionCost measures what a partition costs a node that has no
// records to read: its share of the barriers, checkpoints, changelog
// markers and commits every --checkpoint-interval (500ms), and of the
// fetches that find nothing. One pinned node on an idle topic of 1 and
// of 16 partitions, its CPU time over the same 10 s window once it has
// checkpointed them all; returns the difference per partition, in cores.
func partitionCost(b *testing.B, bin string, brokers []string, pin pinning) float64 {
	const window = 10 * time.Second
	adm := benchAdmin(b, brokers)
	cores := map[int32]float64{}
	for _, parts := range []int32{1, 16} {
		topic := testenv.NewTopic(b, brokers, parts)
		group := topic + "-g"
		b.Cleanup(func() { deleteTopics(brokers, changelogOf(group, topic)) })
		addr := testenv.FreeAddr(b)
		n := startNodeOn(b, pin.cpu(0, 1), bin, "idle", "../../scripts/netflow_webservers.lua", brokers, topic, group,
			filepath.Join(b.TempDir(), "idle"), "--http", addr)
		groupReady(b, adm, group, 1, 2*time.Minute)
		checkpointedAll(b, n, addr, parts)
		before := procCPU(b, n)
		time.Sleep(window) // the measurement's window, not a wait for something
		cores[parts] = (procCPU(b, n) - before).Seconds() / window.Seconds()
		n.stop(b)
	}
	per := (cores[16] - cores[1]) / 15
	fmt.Printf("  a partition at rest (1 pinned node, idle topic, 10s): 1 partition %.3f cores, 16 partitions %.3f cores: %.4f cores per partition\n",
		cores[1], cores[16], per)
	b.ReportMetric(per, "cores/partition")
	return per
}

// checkpointedAll waits (a minute at most) until the node at addr owns
// parts partitions and has completed a checkpoint.
func checkpointedAll(b *testing.B, n *benchNode, addr string, parts int32) {
	b.Helper()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		var st struct {
			Partitions []json.RawMessage `json:"partitions"`
			Checkpoint *struct{}         `json:"last_checkpoint"`
		}
		body, err := (&clusterNode{http: addr}).get("/status?local=1")
		if err == nil && json.Unmarshal(body, &st) == nil && len(st.Partitions) == int(parts) && st.Checkpoint != nil {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("node %s: no checkpoint of %d partitions within a minute: %v %s\n%s", n.name, parts, err, body, n.log.tail())
		}
	}
}

// procCPU is the CPU time (user+sys) a running process has used so far,
// from /proc/PID/stat in clock ticks of 10ms (Linux's USER_HZ).
func procCPU(b *testing.B, n *benchNode) time.Duration {
	b.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", n.cmd.Process.Pid))
	if err != nil {
		b.Fatalf("CPU time of %s: %v", n.name, err)
	}
	// Fields after the command's ")" : state is the 3rd field, utime
	// the 14th and stime the 15th.
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		b.Fatalf("CPU time of %s: /proc stat %q: %v %v", n.name, raw, err1, err2)
	}
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

// printSizing ends the benchmark with the sizing model's inputs, as
// docs/cluster.md's "Sizing a cluster" uses them.
func printSizing(s sizing, restorePerS float64) {
	fmt.Printf("\nsizing inputs (docs/cluster.md, Sizing a cluster), netflow_webservers.lua:\n")
	fmt.Printf("  r   one node on one core:      %8.0f records/s (%.2f µs CPU per record)\n", s.perNode, float64(s.cpuPerRecord.Nanoseconds())/1000)
	fmt.Printf("  c_p a partition at rest:       %8.4f cores\n", s.partCost)
	fmt.Printf("  b   changelog per record:      %8.2f bytes (%.3f changes per record, before compaction)\n", s.clogPerRec, s.clogChanges)
	fmt.Printf("  x   restore from the changelog: %7.0f changes/s\n", restorePerS)
}

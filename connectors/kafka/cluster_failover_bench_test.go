package kafka_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/eddy-stream/eddy/internal/testenv"
)

// BenchmarkClusterFailover measures how soon a killed node's partitions
// serve again, as `just bench-cluster` runs it: two `eddy run` processes of
// testdata/count_ids.lua on a 4-partition topic, both with --standby 1 (so
// each keeps a warm copy of the other's partitions) and the group's
// session timeout at 10s, while a producer writes about 2,000 records/s
// spread over the partitions. EDDY_BENCH_KILLS (default 10) times, one node
// is killed with SIGKILL (alternately), and the survivor's status is
// polled every few milliseconds until each partition of the dead node has
// moved to it and processed a record (its position moved past where it
// took it up); then the dead node is restarted on its state directory and
// the next kill waits until both own partitions and keep copies of each
// other's. It prints each kill's time to the first moved partition's first
// record and to the last one's, with their medians and p99 (over 10 kills:
// the slowest), and checks at the end that the cluster's table holds
// exactly the count of every id produced.
func BenchmarkClusterFailover(b *testing.B) {
	brokers := testenv.Kafka(b)
	kills := testenv.BenchSize(b, "EDDY_BENCH_KILLS", 10)
	bin := eddyPath(b)
	for b.Loop() {
		failover(b, bin, brokers, kills)
	}
}

// failoverNode is one `eddy run` of the failover benchmark.
type failoverNode struct {
	*benchNode
	http string
}

// localStatus is what the benchmark reads of GET /status?local=1.
type localStatus struct {
	Partitions []struct {
		ID        string `json:"id"`
		Offset    *int64 `json:"offset"`
		Restoring bool   `json:"restoring"`
	} `json:"partitions"`
	Standbys []string `json:"standbys"`
}

func (n *failoverNode) status(cl *http.Client) (localStatus, error) {
	var st localStatus
	resp, err := cl.Get("http://" + n.http + "/status?local=1")
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return st, err
	}
	if resp.StatusCode != http.StatusOK {
		return st, fmt.Errorf("%s: %s", resp.Status, body)
	}
	return st, json.Unmarshal(body, &st)
}

func (st localStatus) owned() []string {
	var ids []string
	for _, p := range st.Partitions {
		ids = append(ids, p.ID)
	}
	slices.Sort(ids)
	return ids
}

// failoverProducer writes id-(i mod keys) to partition i mod 4 at about
// rate records/s until stopped, and counts what it wrote.
type failoverProducer struct {
	stop    chan struct{}
	done    chan struct{}
	counts  map[string]int64
	err     error
	written atomic.Int64
}

func produceSteadily(b *testing.B, brokers []string, topic string, keys, rate int) *failoverProducer {
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topic),
		kgo.RecordPartitioner(kgo.ManualPartitioner()), kgo.ProducerLinger(2*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	p := &failoverProducer{stop: make(chan struct{}), done: make(chan struct{}), counts: map[string]int64{}}
	go func() {
		defer close(p.done)
		defer cl.Close()
		var mu sync.Mutex
		var perr error
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		per := max(rate/100, 1)
		for i := 0; ; {
			select {
			case <-p.stop:
				if err := cl.Flush(context.Background()); err != nil {
					p.err = err
				}
				mu.Lock()
				if p.err == nil {
					p.err = perr
				}
				mu.Unlock()
				return
			case <-tick.C:
			}
			for range per {
				id := fmt.Sprintf("id-%06d", i%keys)
				p.counts[id]++
				r := &kgo.Record{Key: []byte(id), Value: []byte(`{"id":"` + id + `"}`), Partition: int32(i % 4)}
				cl.Produce(context.Background(), r, func(_ *kgo.Record, err error) {
					if err != nil {
						mu.Lock()
						perr = err
						mu.Unlock()
					}
				})
				i++
			}
			p.written.Add(int64(per))
		}
	}()
	b.Cleanup(func() {
		select {
		case <-p.done:
		default:
			close(p.stop)
			<-p.done
		}
	})
	return p
}

func (p *failoverProducer) finish(b *testing.B) map[string]int64 {
	b.Helper()
	close(p.stop)
	<-p.done
	if p.err != nil {
		b.Fatalf("producing: %v", p.err)
	}
	return p.counts
}

func failover(b *testing.B, bin string, brokers []string, kills int) {
	topic := testenv.NewTopic(b, brokers, 4)
	group := topic + "-g"
	b.Cleanup(func() { deleteTopics(brokers, changelogOf(group, topic)) })
	dirs := b.TempDir()
	peers := testenv.FreeAddr(b) + "," + testenv.FreeAddr(b)
	start := func(name string) *failoverNode {
		n := &failoverNode{benchNode: &benchNode{name: name, log: &syncBuffer{}}, http: testenv.FreeAddr(b)}
		n.cmd = exec.Command(bin, "run", "testdata/count_ids.lua",
			"--source", brokerURI(brokers, topic, "group="+group+"&session-timeout=10s"),
			"--state", filepath.Join(dirs, name), "--checkpoint-interval", "500ms", "--trigger-interval", "100ms",
			"--node", name, "--standby", "1", "--http", n.http, "--peers", peers, "-v")
		n.cmd.Stderr = n.log
		if err := n.cmd.Start(); err != nil {
			b.Fatal(err)
		}
		n.done = make(chan struct{})
		go func() { n.err = n.cmd.Wait(); close(n.done) }()
		b.Cleanup(func() { n.cmd.Process.Kill(); <-n.done })
		return n
	}
	var procs []*failoverNode // every process started, for their CPU and memory
	started := time.Now()
	startNode := start
	start = func(name string) *failoverNode {
		n := startNode(name)
		procs = append(procs, n)
		return n
	}
	cl := &http.Client{Timeout: 5 * time.Second}
	adm := benchAdmin(b, brokers)
	prod := produceSteadily(b, brokers, topic, 10_000, 2000)
	nodes := []*failoverNode{start("a"), start("b")}
	var first, all []time.Duration
	fmt.Printf("BenchmarkClusterFailover: 2 nodes, --standby 1, session timeout 10s, ~2,000 records/s over 4 partitions; kill -9 → the survivor processes a record of each moved partition\n")
	fmt.Printf("  %-4s %-6s %-10s %12s %12s %16s\n", "kill", "node", "partitions", "first", "all", "changes restored")
	for k := range kills {
		groupReady(b, adm, group, 2, 2*time.Minute)
		victim, survivor := nodes[k%2], nodes[1-k%2]
		moved := warm(b, cl, victim, survivor)
		mark := len(survivor.log.String())
		killed := time.Now()
		victim.cmd.Process.Kill()
		<-victim.done
		f, a := takenOver(b, cl, survivor, moved, killed)
		first, all = append(first, f), append(all, a)
		fmt.Printf("  %-4d %-6s %-10d %12v %12v %16s\n", k+1, victim.name, len(moved), f.Round(time.Millisecond), a.Round(time.Millisecond),
			restoredChanges(survivor.log.String()[mark:], moved))
		nodes[k%2] = start(victim.name)
	}
	want := prod.finish(b)
	groupReady(b, adm, group, 2, 2*time.Minute)
	caughtUp(b, adm, group, topic, 2*time.Minute, nodes[0].benchNode, nodes[1].benchNode)
	checkCounts(b, cl, nodes[0], want)
	fp50, fp99 := percentile(first, 50), percentile(first, 99)
	ap50, ap99 := percentile(all, 50), percentile(all, 99)
	fmt.Printf("  first moved partition serving: p50 %v, p99 %v; all of them: p50 %v, p99 %v (%d kills); the cluster's table is exact (%d records, %d ids)\n",
		fp50.Round(time.Millisecond), fp99.Round(time.Millisecond), ap50.Round(time.Millisecond), ap99.Round(time.Millisecond),
		len(first), prod.written.Load(), len(want))
	b.ReportMetric(fp50.Seconds(), "failover-first-p50-s")
	b.ReportMetric(fp99.Seconds(), "failover-first-p99-s")
	b.ReportMetric(ap50.Seconds(), "failover-all-p50-s")
	b.ReportMetric(ap99.Seconds(), "failover-all-p99-s")
	for _, n := range nodes {
		n.stop(b)
	}
	var cpu time.Duration
	var peak int64
	for _, n := range procs {
		if ru, ok := n.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
			cpu += time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
			peak = max(peak, ru.Maxrss)
		}
	}
	wall := time.Since(started)
	fmt.Printf("  the %d node processes: %v CPU in %v (%.2f cores), peak RSS of one %.0f MiB\n",
		len(procs), cpu.Round(time.Millisecond), wall.Round(time.Millisecond), cpu.Seconds()/wall.Seconds(), float64(peak)/1024)
}

// restoredChanges sums the changes the log's restores of partitions read;
// none is logged for a partition whose local copy was up to date.
func restoredChanges(log string, partitions []string) string {
	total, n := 0, 0 // n: restores logged
	for _, m := range restoredLine.FindAllStringSubmatch(log, -1) {
		if slices.Contains(partitions, m[1]) {
			c, _ := strconv.Atoi(m[2])
			total += c
			n++
		}
	}
	if n == 0 {
		return "0"
	}
	return strconv.Itoa(total)
}

// warm waits until the victim owns partitions, none restoring, and the
// survivor keeps a standby copy of each; it returns them.
func warm(b *testing.B, cl *http.Client, victim, survivor *failoverNode) []string {
	b.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		vs, err1 := victim.status(cl)
		ss, err2 := survivor.status(cl)
		if err1 == nil && err2 == nil {
			owned, ready := vs.owned(), true
			for _, p := range vs.Partitions {
				ready = ready && !p.Restoring && p.Offset != nil
			}
			for _, id := range owned {
				ready = ready && slices.Contains(ss.Standbys, id)
			}
			if ready && len(owned) > 0 {
				return owned
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s owns no partitions of which %s keeps standby copies after 2m (%v, %v)\n--- %s:\n%s\n--- %s:\n%s",
				victim.name, survivor.name, err1, err2, victim.name, victim.log.tail(), survivor.name, survivor.log.tail())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// takenOver polls the survivor until each of the moved partitions is its
// and has processed a record there (its offset moved from the first one
// seen), and returns the time from the kill to the first and the last.
func takenOver(b *testing.B, cl *http.Client, survivor *failoverNode, moved []string, killed time.Time) (first, all time.Duration) {
	b.Helper()
	seen := map[string]int64{}
	served := map[string]time.Duration{}
	deadline := killed.Add(time.Minute)
	for len(served) < len(moved) {
		st, err := survivor.status(cl)
		now := time.Since(killed)
		if err == nil {
			for _, p := range st.Partitions {
				if !slices.Contains(moved, p.ID) || p.Offset == nil || p.Restoring {
					continue
				}
				if at, ok := seen[p.ID]; !ok {
					seen[p.ID] = *p.Offset
				} else if *p.Offset != at && served[p.ID] == 0 {
					served[p.ID] = now
				}
			}
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s has not served %v a minute after the kill (served %v)\n%s", survivor.name, moved, served, survivor.log.tail())
		}
		time.Sleep(5 * time.Millisecond)
	}
	for _, d := range served {
		if first == 0 || d < first {
			first = d
		}
		all = max(all, d)
	}
	return first, all
}

// checkCounts asks the node for the cluster's table until it is complete
// and fails unless it holds exactly want.
func checkCounts(b *testing.B, cl *http.Client, n *failoverNode, want map[string]int64) {
	b.Helper()
	var got map[string]int64
	var last string
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		resp, err := cl.Get("http://" + n.http + "/state")
		if err != nil {
			last = err.Error()
			continue
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			last = resp.Status + ": " + string(body)
			continue
		}
		got = map[string]int64{}
		for _, l := range strings.Split(strings.TrimSpace(string(body)), "\n") {
			var row struct {
				ID    string `json:"id"`
				Count int64  `json:"count"`
			}
			if err := json.Unmarshal([]byte(l), &row); err != nil {
				b.Fatalf("a row of the cluster's table: %v: %s", err, l)
			}
			got[row.ID] += row.Count
		}
		if len(got) == len(want) {
			break
		}
		last = "ids: " + strconv.Itoa(len(got))
	}
	bad := 0
	for id, w := range want {
		if got[id] != w {
			if bad < 5 {
				b.Errorf("id %s counted %d, want %d", id, got[id], w)
			}
			bad++
		}
	}
	if bad > 0 || len(got) != len(want) {
		b.Fatalf("the cluster's table is not exact: %d of %d ids differ, %d ids in it (%s)\n%s", bad, len(want), len(got), last, n.log.tail())
	}
}

// percentile is the p-th percentile of ds (nearest rank).
func percentile(ds []time.Duration, p int) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	i := (p*len(s)+99)/100 - 1
	return s[max(i, 0)]
}

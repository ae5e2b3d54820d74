package kafka_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/internal/reference"
	"github.com/eddy-stream/eddy/internal/testenv"
)

// clusterNode is one `eddy run` process of a three-node test.
type clusterNode struct {
	name, http string
	cmd        *exec.Cmd
	out, err   *syncBuffer // written by the process's copying goroutines while the test reads them
}

// keepLog writes a node's whole log to $EDDY_TEST_LOG_DIR/TEST-TIME-NAME.log
// when that is set: the log a failure prints is the tail of it, filtered.
func keepLog(t *testing.T, name, log string) {
	dir := os.Getenv("EDDY_TEST_LOG_DIR")
	if dir == "" {
		return
	}
	file := filepath.Join(dir, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name())+"-"+time.Now().Format("150405.000")+"-"+name+".log")
	if err := os.WriteFile(file, []byte(log), 0o644); err != nil {
		t.Errorf("keeping %s's log: %v", name, err)
	}
}

func freePort(t *testing.T) string { return testenv.FreeAddr(t) }

// startClusterNode starts `bin run script` as node name of a cluster on
// topic in group, with its state under stateDir, and as user cred when
// given; the test's end kills it.
func startClusterNode(t *testing.T, bin, script, stateDir string, brokers []string, topic, group, name string, cred *syscall.Credential) *clusterNode {
	t.Helper()
	n := &clusterNode{name: name, http: freePort(t), out: &syncBuffer{}, err: &syncBuffer{}}
	n.cmd = exec.Command(bin, "run", script,
		"--source", brokerURI(brokers, topic, "group="+group+"&session-timeout=6s"),
		"--state", filepath.Join(stateDir, name), "--checkpoint-interval", "300ms", "--trigger-interval", "100ms",
		"--http", n.http, "--node", name, "--cluster-port", freePort(t)[len("127.0.0.1:"):], "-v")
	n.cmd.Stdout, n.cmd.Stderr = n.out, n.err
	if cred != nil {
		n.cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	}
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		n.cmd.Process.Kill()
		n.cmd.Wait()
		keepLog(t, name, n.err.String())
	})
	return n
}

// nodeLogs is what the nodes logged that tells what happened to them:
// every line but the debug lines of each barrier, its flushes and its
// checkpoint, the last 150 of each node.
func nodeLogs(nodes ...*clusterNode) string {
	var sb strings.Builder
	for _, n := range nodes {
		var kept []string
		for _, l := range strings.Split(n.err.String(), "\n") {
			if strings.Contains(l, "level=DEBUG") && (strings.Contains(l, "msg=barrier") || strings.Contains(l, `msg="partition passed barrier"`) ||
				strings.Contains(l, `msg="sink flushed"`) || strings.Contains(l, `msg="checkpoint complete"`) || strings.Contains(l, "msg=\"protoactor")) {
				continue
			}
			kept = append(kept, l)
		}
		if len(kept) > 150 {
			kept = kept[len(kept)-150:]
		}
		fmt.Fprintf(&sb, "--- %s:\n%s\n", n.name, strings.Join(kept, "\n"))
	}
	return sb.String()
}

// get fetches path from the node's --http address.
func (n *clusterNode) get(path string) ([]byte, error) {
	cl := http.Client{Timeout: 5 * time.Second}
	resp, err := cl.Get("http://" + n.http + path)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return b, fmt.Errorf("%s: %s: %s", path, resp.Status, b)
	}
	return b, err
}

// partitions lists the partitions the node owns and says whether any of
// them is still restoring.
func (n *clusterNode) partitions() ([]string, bool, error) {
	b, err := n.get("/status?local=1")
	if err != nil {
		return nil, false, err
	}
	var st struct {
		Partitions []struct {
			ID        string `json:"id"`
			Restoring bool   `json:"restoring"`
		} `json:"partitions"`
	}
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, false, fmt.Errorf("status of %s: %v: %s", n.name, err, b)
	}
	var ids []string
	restoring := false
	for _, p := range st.Partitions {
		ids = append(ids, p.ID)
		restoring = restoring || p.Restoring
	}
	sort.Strings(ids)
	return ids, restoring, nil
}

// Three nodes of one pipeline as separate processes on the real broker: a
// third node joins (only some partitions move), a node is killed with
// SIGKILL (the others take its partitions, state and all, once its session
// times out), it comes back; the cluster's result then equals a plain
// computation of the whole input, and so does the table any one node
// answers for the cluster.
func TestClusterOfThreeNodes(t *testing.T) {
	brokers := testenv.Kafka(t)
	topic := testenv.NewTopic(t, brokers, 6)
	_, lines := flowLines(t, 90_000)
	want := reference.NetflowCounts(lines)
	group := topic + "-g"
	t.Cleanup(func() { deleteTopics(brokers, "eddy-changelog."+group+"."+topic) })
	dirs := t.TempDir()
	start := func(name string) *clusterNode {
		return startClusterNode(t, eddyPath(t), "testdata/flows_all.lua", dirs, brokers, topic, group, name, nil)
	}
	logs := nodeLogs
	feed := func(part [][]byte) {
		for i := 0; i < len(part); i += 3000 {
			produceLines(t, brokers, topic, part[i:min(i+3000, len(part))])
			time.Sleep(30 * time.Millisecond)
		}
	}
	// owned waits until the live nodes own every partition between them,
	// none restoring, and returns who owns what.
	owned := func(nodes ...*clusterNode) map[string][]string {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			got, total, restoring := map[string][]string{}, 0, false
			for _, n := range nodes {
				ids, r, err := n.partitions()
				if err == nil {
					got[n.name] = ids
					total += len(ids)
					restoring = restoring || r
				}
			}
			if total == 6 && !restoring && len(got) == len(nodes) {
				return got
			}
			if time.Now().After(deadline) {
				t.Fatalf("the nodes don't own the 6 partitions between them after 60s: %v (restoring: %v)\n%s", got, restoring, logs(nodes...))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	q := len(lines) / 4
	a, b := start("a"), start("b")
	feed(lines[:q])
	waitMembers(t, brokers, group, 2)
	before := owned(a, b)

	// A third node joins: it gets some partitions, the others keep some.
	c := start("c")
	feed(lines[q : 2*q])
	waitMembers(t, brokers, group, 3)
	after := owned(a, b, c)
	for _, n := range []string{"a", "b"} {
		kept := 0
		for _, id := range after[n] {
			for _, was := range before[n] {
				if id == was {
					kept++
				}
			}
		}
		if kept == 0 || len(after["c"]) == 0 {
			t.Fatalf("adding c moved every partition of %s: before %v, after %v", n, before, after)
		}
	}

	// b is killed: a and c take its partitions once its session times out.
	killedAt := time.Now()
	b.cmd.Process.Kill()
	b.cmd.Wait()
	feed(lines[2*q : 3*q])
	waitMembers(t, brokers, group, 2)
	owned(a, c)
	t.Logf("b's partitions taken over %v after the kill (session timeout 6s)", time.Since(killedAt).Round(100*time.Millisecond))

	// b comes back on its old state directory.
	b2 := start("b")
	b2.name = "b (restarted)"
	feed(lines[3*q:])
	waitMembers(t, brokers, group, 3)
	waitNoLag(t, brokers, group, topic)
	owned(a, b2, c)

	// Every partition is owned by one node: the nodes' tables add up to
	// the whole result.
	var got map[string]int64
	deadline := time.Now().Add(30 * time.Second)
	for {
		got = map[string]int64{}
		for _, n := range []*clusterNode{a, b2, c} {
			body, err := n.get("/state?local=1")
			if err != nil {
				t.Fatalf("state of %s: %v", n.name, err)
			}
			addCounts(t, body, got)
		}
		if equalCounts(want, got) || time.Now().After(deadline) {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	if !equalCounts(want, got) {
		t.Log(logs(a, b2, c))
	}
	sameCounts(t, "the three nodes' tables", want, got)
	// Any node answers for the cluster: it merges every node's share.
	for _, n := range []*clusterNode{a, b2, c} {
		body, err := n.get("/state")
		if err != nil {
			t.Fatalf("the cluster's state from %s: %v", n.name, err)
		}
		merged := map[string]int64{}
		addCounts(t, body, merged)
		sameCounts(t, "the cluster's table from "+n.name, want, merged)
	}
	out, stderr, err := eddy(t, "status", "--http", a.http)
	if err != nil || !strings.Contains(out, "3 nodes") || strings.Count(out, "kafka:"+topic+"/") != 6 {
		t.Fatalf("eddy status: %v\n%s%s", err, out, stderr)
	}
	t.Logf("eddy status:\n%s", out)
	restored := 0
	for _, n := range []*clusterNode{a, c, b2} {
		restored += strings.Count(n.err.String(), "restored a partition from the changelog")
	}
	if restored == 0 {
		t.Fatalf("no node restored a partition from the changelog:\n%s", logs(a, b2, c))
	}
	for _, n := range []*clusterNode{a, b2, c} {
		n.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, n := range []*clusterNode{a, b2, c} {
		if err := n.cmd.Wait(); err != nil {
			t.Fatalf("%s failed: %v\n%s", n.name, err, logs(a, b2, c))
		}
	}
}

// addCounts adds /state rows {"dstdevice":…,"count":…} into counts.
func addCounts(t *testing.T, body []byte, into map[string]int64) {
	t.Helper()
	eachCount(t, body, func(dev string, n int64) { into[dev] += n })
}

func equalCounts(want, got map[string]int64) bool {
	if len(want) != len(got) {
		return false
	}
	for k, v := range want {
		if got[k] != v {
			return false
		}
	}
	return true
}

package kafka_test

import (
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/internal/reference"
	"github.com/eddy-stream/eddy/internal/testenv"
)

// A node paused with SIGSTOP past its group session (the other node drops
// it from the cluster and the group moves its partitions) rejoins both by
// itself once resumed: it is a member again, under a new member id, gets
// partitions from the group, and the cluster's answers add up.
func TestClusterHealsAfterAPause(t *testing.T) {
	healAfter(t, nil, func(t *testing.T, h healing) func() {
		if err := h.b.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		resumed := false
		resume := func() {
			if !resumed {
				resumed = true
				h.b.cmd.Process.Signal(syscall.SIGCONT)
			}
		}
		t.Cleanup(resume)
		waitMembers(t, h.brokers, h.group, 1) // b's session has timed out: a reads every partition
		return resume
	})
}

// A node cut off from the other (every TCP packet it sends on loopback,
// but to the broker, dropped by an nftables rule that matches its user)
// rejoins the cluster by itself once the link is back. It stays in the
// group meanwhile (it still reaches the broker), which keeps its
// partitions: Kafka, not the cluster, decides who reads what.
func TestClusterHealsAfterANetworkCut(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("cutting a node's network needs root (nftables rules); .ci/run runs this test as root")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("cutting a node's network needs nft: apt-get install nftables (.ci/run installs it)")
	}
	nobody, err := user.Lookup("nobody")
	if err != nil {
		t.Skipf("the cut node runs as user nobody, which this machine lacks: %v", err)
	}
	uid, _ := strconv.Atoi(nobody.Uid)
	gid, _ := strconv.Atoi(nobody.Gid)
	healAfter(t, &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, func(t *testing.T, h healing) func() {
		var ports []string
		for _, b := range h.brokers {
			_, p, _ := net.SplitHostPort(b)
			ports = append(ports, p)
		}
		return cutOff(t, uid, ports)
	})
}

// cutOff drops every TCP packet that processes of uid send on loopback,
// but to ports keep, until the returned func (or the test's end) removes
// the rule's table.
func cutOff(t *testing.T, uid int, keep []string) func() {
	t.Helper()
	table := fmt.Sprintf("eddy_test_cut_%d", os.Getpid())
	rules := fmt.Sprintf(`table inet %s {
	chain out {
		type filter hook output priority 0; policy accept;
		oifname "lo" meta skuid %d tcp dport != { %s } drop
	}
}
`, table, uid, strings.Join(keep, ", "))
	cmd := exec.Command("nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v\n%s\n%s", err, out, rules)
	}
	removed := false
	restore := func() {
		if !removed {
			removed = true
			if out, err := exec.Command("nft", "delete", "table", "inet", table).CombinedOutput(); err != nil {
				t.Errorf("removing the cut: nft delete table inet %s: %v\n%s", table, err, out)
			}
		}
	}
	t.Cleanup(restore)
	return restore
}

// healing is what a cut needs to know.
type healing struct {
	b       *clusterNode // the node to cut off
	brokers []string
	group   string
}

// healAfter runs two nodes a and b (b as user as, when given), cuts b off
// with cut at an observed point (both own partitions), waits until a has
// dropped b from the cluster, feeds more records, undoes the cut, and
// checks that b rejoins under a new member id and that every node's answer
// for the cluster is the whole input's.
func healAfter(t *testing.T, as *syscall.Credential, cut func(*testing.T, healing) func()) {
	brokers := testenv.Kafka(t)
	topic := testenv.NewTopic(t, brokers, 4)
	_, lines := flowLines(t, 40_000)
	want := reference.NetflowCounts(lines)
	group := topic + "-g"
	t.Cleanup(func() { deleteTopics(brokers, "eddy-changelog."+group+"."+topic) })
	// A directory the nodes can use whatever their user: the binary, the
	// script and the state.
	dir, err := os.MkdirTemp("", "eddy-heal-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	bin := filepath.Join(dir, "eddy")
	script := filepath.Join(dir, "flows_all.lua")
	copyFile(t, eddyPath(t), bin, 0o755)
	copyFile(t, "testdata/flows_all.lua", script, 0o644)
	if err := os.Chmod(dir, 0o777); err != nil {
		t.Fatal(err)
	}
	start := func(name string, cred *syscall.Credential) *clusterNode {
		return startClusterNode(t, bin, script, dir, brokers, topic, group, name, cred)
	}
	logs := nodeLogs
	third := len(lines) / 3
	a, b := start("a", nil), start("b", as)
	t.Cleanup(func() {
		if t.Failed() {
			t.Log(logs(a, b))
		}
	})
	produceLines(t, brokers, topic, lines[:third])
	waitMembers(t, brokers, group, 2)
	oldID := a.waitView(t, "both nodes", logs, func(v map[string]string) bool { return len(v) == 2 })[b.http]

	restore := cut(t, healing{b: b, brokers: brokers, group: group})
	a.waitView(t, "a without b", logs, func(v map[string]string) bool { return len(v) == 1 && v[b.http] == "" })
	produceLines(t, brokers, topic, lines[third:2*third])
	restore()
	restored := time.Now()
	newID := a.waitView(t, "b again, under a new member id", logs, func(v map[string]string) bool {
		return len(v) == 2 && v[b.http] != "" && v[b.http] != oldID
	})[b.http]
	t.Logf("b was a member again %v after the cut ended, as %s (was %s)", time.Since(restored).Round(10*time.Millisecond), newID, oldID)

	produceLines(t, brokers, topic, lines[2*third:])
	waitMembers(t, brokers, group, 2)
	waitNoLag(t, brokers, group, topic)
	for _, n := range []*clusterNode{a, b} {
		var got map[string]int64
		for deadline := time.Now().Add(time.Minute); ; {
			got = map[string]int64{}
			body, err := n.get("/state")
			if err == nil {
				addCounts(t, body, got)
				if equalCounts(want, got) {
					break
				}
			}
			if time.Now().After(deadline) {
				t.Logf("the cluster's state from %s: %v\n%s", n.name, err, logs(a, b))
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		sameCounts(t, "the cluster's table from "+n.name, want, got)
	}
	for _, n := range []*clusterNode{a, b} {
		n.cmd.Process.Signal(syscall.SIGTERM)
	}
	for _, n := range []*clusterNode{a, b} {
		if err := n.cmd.Wait(); err != nil {
			t.Fatalf("%s failed: %v\n%s", n.name, err, logs(a, b))
		}
	}
}

// waitView waits until the node's GET /status lists nodes that all
// answered and whose member ids by --http address satisfy ok.
func (n *clusterNode) waitView(t *testing.T, what string, logs func(...*clusterNode) string, ok func(map[string]string) bool) map[string]string {
	t.Helper()
	var last string
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		body, err := n.get("/status")
		var st struct {
			Nodes []struct {
				ID    string `json:"id"`
				HTTP  string `json:"http"`
				Error string `json:"error"`
			} `json:"nodes"`
		}
		if err == nil {
			err = json.Unmarshal(body, &st)
		}
		if err != nil {
			last = err.Error()
			continue
		}
		last = string(body)
		ids, answered := map[string]string{}, true
		for _, ns := range st.Nodes {
			ids[ns.HTTP] = ns.ID
			answered = answered && ns.Error == ""
		}
		if answered && ok(ids) {
			return ids
		}
	}
	t.Fatalf("%s's cluster view is not %s after a minute: %s\n%s", n.name, what, last, logs(n))
	return nil
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err == nil {
		err = os.WriteFile(to, b, mode)
	}
	if err != nil {
		t.Fatal(err)
	}
}

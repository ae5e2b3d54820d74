package cluster

import (
	"slices"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/eddy-stream/eddy/actors/cluster/clustertest"
)

// healingNodes starts three nodes that drop a peer after it has not
// answered for a second, each with a fakeGroup member id.
func healingNodes(t *testing.T) []*nodeProc {
	t.Helper()
	ports := freePorts(t, 3)
	var peers []string
	for _, p := range ports {
		peers = append(peers, "127.0.0.1:"+strconv.Itoa(p))
	}
	var specs []nodeSpec
	for i := range ports {
		w := clustertest.Words{Partition: "kafka:words/" + strconv.Itoa(i)}
		specs = append(specs, nodeSpec{Config: Config{
			Name: Name("wordcount", "eddy.heal"), Host: "127.0.0.1", AutoManagePort: ports[i], Peers: peers,
			RefreshTTL: 200 * time.Millisecond, DownAfter: time.Second, Timeout: 2 * time.Second,
		}, Partition: w.Partition, Group: "member-" + strconv.Itoa(i)})
	}
	nodes := startNodes(t, specs...)
	for _, n := range nodes {
		n.members(3, time.Minute)
	}
	return nodes
}

// A node paused (SIGSTOP) until the others drop it rejoins by itself once
// resumed, under a new member id, and answers the cluster's requests
// again. Its pause is not its death: nobody removes it from the group.
func TestAPausedNodeRejoins(t *testing.T) {
	nodes := healingNodes(t)
	paused := nodes[2]
	if err := paused.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	resumed := false
	resume := func() {
		if !resumed {
			paused.cmd.Process.Signal(syscall.SIGCONT)
			resumed = true
		}
	}
	t.Cleanup(resume)
	for _, n := range nodes[:2] {
		n.members(2, time.Minute)
	}
	resume()
	start := time.Now()
	for _, n := range nodes {
		n.members(3, time.Minute)
	}
	t.Logf("the paused node was a member again %v after it resumed", time.Since(start).Round(time.Millisecond))
	for _, n := range nodes {
		a := n.do(command{Op: "status"})
		if a.Err != "" || len(a.Status.Nodes) != 3 {
			t.Fatalf("status from %s after the pause: %s %+v", n.ID, a.Err, a.Status)
		}
		for _, ns := range a.Status.Nodes {
			if ns.Error != "" {
				t.Fatalf("status from %s: node %s: %s", n.ID, ns.ID, ns.Error)
			}
			if ns.Address == paused.Address && ns.ID == paused.ID {
				t.Fatalf("the paused node is back under its old member id %s, which protoactor blocks", ns.ID)
			}
		}
		if a := n.do(command{Op: "removed"}); len(a.Removed) > 0 {
			t.Fatalf("node %s removed %v from the group: a paused node is not gone", n.ID, a.Removed)
		}
	}
}

// A node whose process is gone (kill -9: its health port refuses) is
// removed from the group by the others, at their next poll.
func TestAKilledNodeLeavesTheGroup(t *testing.T) {
	nodes := healingNodes(t)
	killed := nodes[1]
	killed.kill()
	for _, n := range []*nodeProc{nodes[0], nodes[2]} {
		n.members(2, time.Minute)
		deadline := time.Now().Add(time.Minute)
		for {
			a := n.do(command{Op: "removed"})
			if slices.Contains(a.Removed, "member-1") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %s did not remove the killed node's member from the group: removed %v", n.ID, a.Removed)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

package cluster

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/cluster/clusterproviders/automanaged"

	"github.com/eddy-stream/eddy/actors/cluster/clustertest"
	"github.com/eddy-stream/eddy/connectors"
	"github.com/eddy-stream/eddy/internal/testenv"
)

// freePorts returns n distinct ports free now, below the ephemeral range
// (testenv.FreeAddr says why).
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	seen := map[int]bool{}
	for len(ports) < n {
		_, p, err := net.SplitHostPort(testenv.FreeAddr(t))
		if err != nil {
			t.Fatal(err)
		}
		port, err := strconv.Atoi(p)
		if err != nil {
			t.Fatal(err)
		}
		if !seen[port] {
			seen[port] = true
			ports = append(ports, port)
		}
	}
	return ports
}

// joinAll starts one node process a partition's word counts, all polling
// each other's health ports.
func joinAll(t *testing.T, name string, partitions ...clustertest.Words) []*nodeProc {
	t.Helper()
	ports := freePorts(t, len(partitions))
	var peers []string
	for _, p := range ports {
		peers = append(peers, "127.0.0.1:"+strconv.Itoa(p))
	}
	var specs []nodeSpec
	for i, w := range partitions {
		specs = append(specs, nodeSpec{Config: Config{
			Name: name, Host: "127.0.0.1", AutoManagePort: ports[i], Peers: peers,
			HTTP: fmt.Sprintf("127.0.0.1:%d", 8080+i), RefreshTTL: 300 * time.Millisecond,
			Timeout: 2 * time.Second,
		}, Partition: w.Partition, Counts: w.Counts, All: w.All})
	}
	return startNodes(t, specs...)
}

func TestThreeMembersSeeEachOtherAndOneLeaves(t *testing.T) {
	nodes := joinAll(t, Name("wordcount", "eddy.words"), clustertest.Words{Partition: "kafka:words/0"}, clustertest.Words{Partition: "kafka:words/1"}, clustertest.Words{Partition: "kafka:words/2"})
	var ids []string
	for _, n := range nodes {
		ids = append(ids, n.ID)
	}
	slices.Sort(ids)
	for _, n := range nodes {
		ms := n.members(3, 10*time.Second)
		var seen []string
		self := 0
		for _, m := range ms {
			seen = append(seen, m.ID)
			if m.Self {
				self++
				if m.ID != n.ID || m.Address != n.Address {
					t.Errorf("self member %v is not node %s at %s", m, n.ID, n.Address)
				}
			}
		}
		slices.Sort(seen)
		if !slices.Equal(seen, ids) || self != 1 {
			t.Fatalf("node %s sees %v (self %d), want %v", n.ID, ms, self, ids)
		}
	}

	// A member that leaves is gone from the others' lists within a few
	// polls.
	gone := nodes[2]
	start := time.Now()
	gone.leave()
	const bound = 5 * time.Second
	for _, n := range nodes[:2] {
		for _, m := range n.members(2, bound) {
			if m.ID == gone.ID {
				t.Fatalf("node %s still lists %s", n.ID, gone.ID)
			}
		}
	}
	t.Logf("the member that left was dropped %v after it was told to leave", time.Since(start).Round(time.Millisecond))
}

func TestStatusAndStateFanOut(t *testing.T) {
	// "the" is counted on all three nodes (its records were spread over
	// partitions owned by each): the merged answer is the sum.
	nodes := joinAll(t, Name("wordcount", "eddy.words"),
		clustertest.Words{Partition: "kafka:words/0", Counts: map[string]int{"the": 3, "cat": 1}},
		clustertest.Words{Partition: "kafka:words/1", Counts: map[string]int{"the": 4, "dog": 2}},
		clustertest.Words{Partition: "kafka:words/2", Counts: map[string]int{"the": 5}})
	for _, n := range nodes {
		n.members(3, 10*time.Second)
	}
	a := nodes[1].do(command{Op: "status"})
	if a.Err != "" {
		t.Fatal(a.Err)
	}
	st := a.Status
	if st.Cluster != "eddy/wordcount/eddy.words" || st.Pipeline != "wordcount" || len(st.Nodes) != 3 {
		t.Fatalf("status %+v", st)
	}
	var parts []string
	for _, ns := range st.Nodes {
		if ns.Error != "" || ns.Status == nil || ns.HTTP == "" || ns.ID == "" || ns.Address == "" {
			t.Fatalf("node status %+v", ns)
		}
		if ns.Self != (ns.ID == nodes[1].ID) {
			t.Fatalf("self is %v for %s (asked %s)", ns.Self, ns.ID, nodes[1].ID)
		}
		parts = append(parts, ns.Status.Partitions[0].ID)
	}
	slices.Sort(parts)
	if !slices.Equal(parts, []string{"kafka:words/0", "kafka:words/1", "kafka:words/2"}) {
		t.Fatalf("partitions %v", parts)
	}

	the := fmt.Sprint([]connectors.Row{{Key: "the", Fields: []connectors.Field{{Name: "word", Value: "the"}, {Name: "count", Value: int64(12)}}}})
	for _, n := range nodes {
		if a := n.do(command{Op: "state", Key: "the"}); a.Err != "" || a.Rows != the {
			t.Fatalf("state of the via %s: %s%s, want %s", n.ID, a.Err, a.Rows, the)
		}
	}
	whole := fmt.Sprint([]connectors.Row{
		{Key: "cat", Fields: []connectors.Field{{Name: "word", Value: "cat"}, {Name: "count", Value: int64(1)}}},
		{Key: "dog", Fields: []connectors.Field{{Name: "word", Value: "dog"}, {Name: "count", Value: int64(2)}}},
		{Key: "the", Fields: []connectors.Field{{Name: "word", Value: "the"}, {Name: "count", Value: int64(12)}}},
	})
	if a := nodes[0].do(command{Op: "state"}); a.Err != "" || a.Rows != whole {
		t.Fatalf("whole table: %s%s, want %s", a.Err, a.Rows, whole)
	}

	// This node's own failure comes back as it is.
	nodes[0].do(command{Op: "fail", Fail: true})
	if a := nodes[0].do(command{Op: "state"}); !a.NoTable {
		t.Fatalf("own failure: %+v", a)
	}
	// Another's names it.
	a = nodes[1].do(command{Op: "state"})
	if !slices.Equal(a.Failed, []string{nodes[0].ID}) || !strings.Contains(a.Err, nodes[0].Address) || !strings.Contains(a.Err, "no result table") {
		t.Fatalf("a member's failure: %+v", a)
	}
	nodes[0].do(command{Op: "fail", Fail: false})

	// A dead member: its health port still answers, so it is still listed,
	// but nothing answers on its remote. Shares fail naming it; Status
	// answers for the others and marks it.
	dead := nodes[2]
	dead.do(command{Op: "kill-remote"})
	start := time.Now()
	a = nodes[0].do(command{Op: "state", Key: "the"})
	if !slices.Equal(a.Failed, []string{dead.ID}) || !strings.Contains(a.Err, dead.Address) {
		t.Fatalf("state with a dead member: %+v", a)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("the fan-out took %v with a dead member (timeout 2s)", took)
	}
	t.Logf("with a dead member: %v", a.Err)
	a = nodes[0].do(command{Op: "status"})
	if a.Err != "" {
		t.Fatal(a.Err)
	}
	marked := 0
	for _, ns := range a.Status.Nodes {
		switch {
		case ns.ID == dead.ID && ns.Error != "" && ns.Status == nil:
			marked++
		case ns.ID != dead.ID && ns.Error == "" && ns.Status != nil:
		default:
			t.Fatalf("node status with a dead member: %+v", ns)
		}
	}
	if marked != 1 {
		t.Fatalf("the dead member is not marked: %+v", a.Status)
	}
}

// A query answers whole or says it isn't: a partition restoring from its
// changelog, or without an owner while the group rebalances, makes the
// answer incomplete, naming the partition, with the partial rows beside.
func TestStateSaysWhenIncomplete(t *testing.T) {
	all := []string{"kafka:words/0", "kafka:words/1", "kafka:words/2"}
	nodes := joinAll(t, Name("wordcount", "eddy.words"),
		clustertest.Words{Partition: "kafka:words/0", Counts: map[string]int{"the": 3}, All: all},
		clustertest.Words{Partition: "kafka:words/1", Counts: map[string]int{"the": 4}, All: all},
		clustertest.Words{Partition: "kafka:words/2", Counts: map[string]int{"the": 5}, All: all})
	for _, n := range nodes {
		n.members(3, 10*time.Second)
	}
	the := func(n int64) string {
		return fmt.Sprint([]connectors.Row{{Key: "the", Fields: []connectors.Field{{Name: "word", Value: "the"}, {Name: "count", Value: n}}}})
	}
	if a := nodes[0].do(command{Op: "state"}); a.Err != "" || a.Rows != the(12) {
		t.Fatalf("whole cluster: %s %s, want %s", a.Err, a.Rows, the(12))
	}

	// The third partition restores: its counts are not in the share.
	nodes[2].do(command{Op: "restoring", Restoring: true, Restored: 120, ToRestore: 1000})
	for _, n := range nodes {
		a := n.do(command{Op: "state", Key: "the"})
		if !a.Incomplete || !strings.Contains(a.Err, "partition kafka:words/2 is restoring (120 of 1000 changes)") || a.Rows != the(7) {
			t.Fatalf("with a partition restoring, via %s: %+v", n.ID, a)
		}
	}
	// A node's own answer is incomplete only for its own partitions.
	if a := nodes[0].do(command{Op: "local-state"}); a.Err != "" || a.Rows != the(3) {
		t.Fatalf("local state of a node not restoring: %+v", a)
	}
	if a := nodes[2].do(command{Op: "local-state"}); !a.Incomplete || !strings.Contains(a.Err, "kafka:words/2 is restoring") {
		t.Fatalf("local state of the node restoring: %+v", a)
	}
	nodes[2].do(command{Op: "restoring", Restoring: false})
	if a := nodes[1].do(command{Op: "state"}); a.Err != "" || a.Rows != the(12) {
		t.Fatalf("restored: %s %s, want %s", a.Err, a.Rows, the(12))
	}

	// The third node leaves; until Kafka hands its partition to another,
	// nobody owns it.
	nodes[2].leave()
	for _, n := range nodes[:2] {
		n.members(2, 10*time.Second)
		a := n.do(command{Op: "state"})
		if !a.Incomplete || !strings.Contains(a.Err, "partition kafka:words/2 has no owner in the cluster (a rebalance is under way)") || a.Rows != the(7) {
			t.Fatalf("with a partition without an owner, via %s: %+v", n.ID, a)
		}
	}
}

// A node polls every peer port, and one that answers for another cluster
// is not a member: shown with a health endpoint that answers as a node of
// cluster b would, and as one of the node's own cluster would (which
// joins, so the test sees the polls it waits for decide membership).
func TestOtherClustersOnTheSamePortsAreIgnored(t *testing.T) {
	for _, tc := range []struct {
		name, other string
		members     int
	}{
		{name: "other cluster", other: Name("b", ""), members: 1},
		{name: "same cluster", other: Name("a", ""), members: 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			polls := make(chan struct{}, 100)
			peer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				select {
				case polls <- struct{}{}:
				default: // the test counts only the first ones
				}
				port := r.Context().Value(http.LocalAddrContextKey).(*net.TCPAddr).Port
				json.NewEncoder(w).Encode(automanaged.NewNode(tc.other, "peer-id", "127.0.0.1", 1, port, nil))
			}))
			defer peer.Close()
			own := freePorts(t, 1)[0]
			n := startNodes(t, nodeSpec{Config: Config{Name: Name("a", ""), AutoManagePort: own,
				Peers: []string{fmt.Sprintf("127.0.0.1:%d", own), peer.Listener.Addr().String()}, RefreshTTL: 100 * time.Millisecond}})[0]
			// The provider polls every peer, then updates the members,
			// then sleeps: once the peer has been polled twice since the
			// join, the members reflect at least one answer of it.
			for range len(polls) {
				<-polls
			}
			for range 2 {
				select {
				case <-polls:
				case <-time.After(10 * time.Second):
					t.Fatal("the node did not poll the peer's health port within 10s")
				}
			}
			ms := n.members(0, 0)
			if len(ms) != tc.members || !slices.ContainsFunc(ms, func(m Member) bool { return m.Self && m.ID == n.ID }) {
				t.Fatalf("members %v, want %d with itself", ms, tc.members)
			}
		})
	}
}

// With no health port given, a node takes the first free one of the peers
// on this machine.
func TestFirstFreeLocalPort(t *testing.T) {
	ports := freePorts(t, 2)
	taken, err := net.Listen("tcp", ":"+strconv.Itoa(ports[0]))
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	peers := []string{fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("localhost:%d", ports[1])}
	n := startNodes(t, nodeSpec{Config: Config{Name: Name("p", ""), Peers: peers, RefreshTTL: 300 * time.Millisecond}})[0]
	if n.Health != ports[1] {
		t.Fatalf("health port %d, want %d (%d is taken)", n.Health, ports[1], ports[0])
	}
	if !strings.HasPrefix(n.Address, "127.0.0.1:") {
		t.Fatalf("address %s", n.Address)
	}
}

func TestExpandPeers(t *testing.T) {
	got, err := ExpandPeers([]string{"a:6330-6332,b:6330", " b:6330 ", "[::1]:7000"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a:6330", "a:6331", "a:6332", "b:6330", "[::1]:7000"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
	for _, bad := range []string{"a", "a:x", ":6330", "a:6332-6330", "a:1-1000", "a:0"} {
		if _, err := ExpandPeers([]string{bad}); err == nil {
			t.Errorf("%q: no error", bad)
		}
	}
}

func TestName(t *testing.T) {
	if got := Name("netflow", "eddy.flows"); got != "eddy/netflow/eddy.flows" {
		t.Fatal(got)
	}
	if got := Name("netflow", ""); got != "eddy/netflow" {
		t.Fatal(got)
	}
}

// A cluster port in use is a clear error, and the next node starts.
func TestClusterPortInUse(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer taken.Close()
	port := taken.Addr().(*net.TCPAddr).Port
	health := freePorts(t, 1)[0]
	cfg := Config{Name: Name("p", ""), Port: port, Peers: []string{fmt.Sprintf("127.0.0.1:%d", health)}, RefreshTTL: 300 * time.Millisecond}
	n := startNode(t, nodeSpec{Config: cfg, Retry: true})
	if a := n.read("join"); !strings.Contains(a.Err, "address already in use") {
		t.Fatalf("join on a port in use: %+v", a)
	}
	if a := n.read("join with port 0"); a.Err != "" {
		t.Fatalf("join after a failed one: %s", a.Err)
	}
}

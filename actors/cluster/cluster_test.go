package cluster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/asynkron/protoactor-go/actor"

	"github.com/eddy-stream/eddy/actors"
	"github.com/eddy-stream/eddy/actors/cluster/clustertest"
	"github.com/eddy-stream/eddy/connectors"
)

// fake is a node's engine: word counts over one partition.
type fake = clustertest.Words

// freePorts returns n distinct ports free now.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", ":0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports
}

func testLogger(t *testing.T) *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}

// joinAll starts one node a local, all polling each other's health ports.
func joinAll(t *testing.T, name string, locals ...Local) []*Node {
	t.Helper()
	ports := freePorts(t, len(locals))
	var peers []string
	for _, p := range ports {
		peers = append(peers, "127.0.0.1:"+strconv.Itoa(p))
	}
	nodes := make([]*Node, len(locals))
	errs := make([]error, len(locals))
	var wg sync.WaitGroup
	for i, l := range locals {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nodes[i], errs[i] = Join(context.Background(), Config{
				Name: name, Host: "127.0.0.1", AutoManagePort: ports[i], Peers: peers,
				HTTP: fmt.Sprintf("127.0.0.1:%d", 8080+i), RefreshTTL: 300 * time.Millisecond,
				Timeout: 2 * time.Second, Logger: testLogger(t),
			}, l)
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
	}
	t.Cleanup(func() {
		var wg sync.WaitGroup
		for _, n := range nodes {
			wg.Add(1)
			go func() { defer wg.Done(); n.Leave() }()
		}
		wg.Wait()
	})
	return nodes
}

// waitMembers waits until n sees want members, and returns them.
func waitMembers(t *testing.T, n *Node, want int, within time.Duration) []Member {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ms := n.Members()
		if len(ms) == want {
			return ms
		}
		if time.Now().After(deadline) {
			t.Fatalf("node %s sees %d members after %v, want %d: %v", n.ID(), len(ms), within, want, ms)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestThreeMembersSeeEachOtherAndOneLeaves(t *testing.T) {
	nodes := joinAll(t, Name("wordcount", "eddy.words"), &fake{Partition: "kafka:words/0"}, &fake{Partition: "kafka:words/1"}, &fake{Partition: "kafka:words/2"})
	var ids []string
	for _, n := range nodes {
		ids = append(ids, n.ID())
	}
	slices.Sort(ids)
	for _, n := range nodes {
		ms := waitMembers(t, n, 3, 10*time.Second)
		var seen []string
		self := 0
		for _, m := range ms {
			seen = append(seen, m.ID)
			if m.Self {
				self++
				if m.ID != n.ID() || m.Address != n.Address() {
					t.Errorf("self member %v is not node %s at %s", m, n.ID(), n.Address())
				}
			}
		}
		slices.Sort(seen)
		if !slices.Equal(seen, ids) || self != 1 {
			t.Fatalf("node %s sees %v (self %d), want %v", n.ID(), ms, self, ids)
		}
	}

	// A member that leaves is gone from the others' lists within a few
	// polls.
	gone := nodes[2]
	start := time.Now()
	gone.Leave()
	const bound = 5 * time.Second
	for _, n := range nodes[:2] {
		for _, m := range waitMembers(t, n, 2, bound) {
			if m.ID == gone.ID() {
				t.Fatalf("node %s still lists %s", n.ID(), gone.ID())
			}
		}
	}
	t.Logf("the member that left was dropped %v after Leave was called", time.Since(start).Round(time.Millisecond))
}

func TestStatusAndStateFanOut(t *testing.T) {
	// "the" is counted on all three nodes (its records were spread over
	// partitions owned by each): the merged answer is the sum.
	locals := []*fake{
		{Partition: "kafka:words/0", Counts: map[string]int{"the": 3, "cat": 1}},
		{Partition: "kafka:words/1", Counts: map[string]int{"the": 4, "dog": 2}},
		{Partition: "kafka:words/2", Counts: map[string]int{"the": 5}},
	}
	nodes := joinAll(t, Name("wordcount", "eddy.words"), locals[0], locals[1], locals[2])
	for _, n := range nodes {
		waitMembers(t, n, 3, 10*time.Second)
	}
	ctx := context.Background()
	st, err := nodes[1].Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Cluster != "eddy/wordcount/eddy.words" || st.Pipeline != "wordcount" || len(st.Nodes) != 3 {
		t.Fatalf("status %+v", st)
	}
	var parts []string
	for _, ns := range st.Nodes {
		if ns.Error != "" || ns.Status == nil || ns.HTTP == "" || ns.ID == "" || ns.Address == "" {
			t.Fatalf("node status %+v", ns)
		}
		if ns.Self != (ns.ID == nodes[1].ID()) {
			t.Fatalf("self is %v for %s (asked %s)", ns.Self, ns.ID, nodes[1].ID())
		}
		parts = append(parts, ns.Status.Partitions[0].ID)
	}
	slices.Sort(parts)
	if !slices.Equal(parts, []string{"kafka:words/0", "kafka:words/1", "kafka:words/2"}) {
		t.Fatalf("partitions %v", parts)
	}

	for _, n := range nodes {
		rows, err := n.State(ctx, "the")
		if err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 || rows[0].Fields[1].Value != int64(12) {
			t.Fatalf("state of the via %s: %v", n.ID(), rows)
		}
	}
	rows, err := nodes[0].State(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if fmt.Sprint(rows) != fmt.Sprint([]connectors.Row{
		{Key: "cat", Fields: []connectors.Field{{Name: "word", Value: "cat"}, {Name: "count", Value: int64(1)}}},
		{Key: "dog", Fields: []connectors.Field{{Name: "word", Value: "dog"}, {Name: "count", Value: int64(2)}}},
		{Key: "the", Fields: []connectors.Field{{Name: "word", Value: "the"}, {Name: "count", Value: int64(12)}}},
	}) {
		t.Fatalf("whole table: %v", rows)
	}

	// This node's own failure comes back as it is.
	locals[0].Fail = actors.ErrNoResultTable
	if _, err := nodes[0].State(ctx, ""); !errors.Is(err, actors.ErrNoResultTable) {
		t.Fatalf("own failure: %v", err)
	}
	// Another's names it.
	_, err = nodes[1].State(ctx, "")
	var me *MemberError
	if !errors.As(err, &me) || len(me.Failed) != 1 || me.Failed[0].ID != nodes[0].ID() ||
		!strings.Contains(err.Error(), nodes[0].Address()) || !strings.Contains(err.Error(), "no result table") {
		t.Fatalf("a member's failure: %v", err)
	}
	locals[0].Fail = nil

	// A dead member: its health port still answers, so it is still listed,
	// but nothing answers on its remote. Shares fail naming it; Status
	// answers for the others and marks it.
	dead := nodes[2]
	dead.system.Root.Stop(actor.NewPID(dead.Address(), nodeActor))
	dead.c.Remote.Shutdown(false)
	start := time.Now()
	_, err = nodes[0].State(ctx, "the")
	if !errors.As(err, &me) || len(me.Failed) != 1 || me.Failed[0].ID != dead.ID() || !strings.Contains(err.Error(), dead.Address()) {
		t.Fatalf("state with a dead member: %v", err)
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Fatalf("the fan-out took %v with a dead member (timeout 2s)", took)
	}
	t.Logf("with a dead member: %v", err)
	st, err = nodes[0].Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	marked := 0
	for _, ns := range st.Nodes {
		switch {
		case ns.ID == dead.ID() && ns.Error != "" && ns.Status == nil:
			marked++
		case ns.ID != dead.ID() && ns.Error == "" && ns.Status != nil:
		default:
			t.Fatalf("node status with a dead member: %+v", ns)
		}
	}
	if marked != 1 {
		t.Fatalf("the dead member is not marked: %+v", st)
	}
}

func TestOtherClustersOnTheSamePortsAreIgnored(t *testing.T) {
	ports := freePorts(t, 2)
	peers := []string{fmt.Sprintf("127.0.0.1:%d-%d", min(ports[0], ports[1]), max(ports[0], ports[1]))}
	if d := max(ports[0], ports[1]) - min(ports[0], ports[1]); d > 200 {
		peers = []string{fmt.Sprintf("127.0.0.1:%d", ports[0]), fmt.Sprintf("127.0.0.1:%d", ports[1])}
	}
	var nodes []*Node
	for i, name := range []string{Name("a", ""), Name("b", "")} {
		n, err := Join(context.Background(), Config{Name: name, AutoManagePort: ports[i], Peers: peers, RefreshTTL: 300 * time.Millisecond, Logger: testLogger(t)}, &fake{})
		if err != nil {
			t.Fatal(err)
		}
		defer n.Leave()
		nodes = append(nodes, n)
	}
	time.Sleep(time.Second)
	for _, n := range nodes {
		if ms := n.Members(); len(ms) != 1 || !ms[0].Self {
			t.Fatalf("%s sees %v", n.Name(), ms)
		}
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
	n, err := Join(context.Background(), Config{Name: Name("p", ""), Peers: peers, RefreshTTL: 300 * time.Millisecond, Logger: testLogger(t)}, &fake{})
	if err != nil {
		t.Fatal(err)
	}
	defer n.Leave()
	if n.HealthPort() != ports[1] {
		t.Fatalf("health port %d, want %d (%d is taken)", n.HealthPort(), ports[1], ports[0])
	}
	if !strings.HasPrefix(n.Address(), "127.0.0.1:") {
		t.Fatalf("address %s", n.Address())
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
	cfg := Config{Name: Name("p", ""), Port: port, Peers: []string{fmt.Sprintf("127.0.0.1:%d", health)}, RefreshTTL: 300 * time.Millisecond, Logger: testLogger(t)}
	if _, err := Join(context.Background(), cfg, &fake{}); err == nil || !strings.Contains(err.Error(), "address already in use") {
		t.Fatalf("join on a port in use: %v", err)
	}
	cfg.Port = 0
	n, err := Join(context.Background(), cfg, &fake{})
	if err != nil {
		t.Fatalf("join after a failed one: %v", err)
	}
	n.Leave()
}
